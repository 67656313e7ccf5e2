"""Training-time hook: gradient noise statistics and the optimizer's gamma every k steps.

Matches :class:`adamlab.runner.hooks.RunHook`: the runner calls ``hook(step, model, optimizer, problem,
batch)`` after optimizer step ``step`` whenever ``step % hook.every == 0`` and records the returned
``{name: float}`` at that step.

Cost (measured with ``python -m benchmarks.dissect_cost``, see docs/dissect.md): one call costs about
5 to 25 training steps of a small MLP (784-256-10, batch 128, Adam, 2 CPU threads), dominated by the
per-example gradients and the resampled sign agreement; with ``every=k`` the overhead is that divided by
k (``every=100``: 5-25%). ``max_examples`` and ``resamples`` lower it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from adamlab.dissect.decompose import decompose
from adamlab.dissect.stats import GradientStats, gradient_stats
from adamlab.dissect.summary import summarise


@contextmanager
def batchnorm_in_eval(model: nn.Module) -> Iterator[None]:
    """Temporarily put BatchNorm layers in eval mode (running statistics), so per-example gradients exist."""
    switched = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    for m in switched:
        m.eval()
    try:
        yield
    finally:
        for m in switched:
            m.train()


class GradientStatsHook:
    """Record summary gradient statistics every ``every`` steps.

    Parameters
    ----------
    every:
        Call period in steps (>= 1).
    loss_fn:
        ``loss_fn(outputs, targets)``, mean-reduced; default: the problem's ``criterion`` (its data term;
        a deterministic regularisation term is not included).
    max_examples:
        Use at most this many examples of the batch (bounds the cost; None: the whole batch).
    resamples:
        Mini-batches drawn for the empirical sign agreement (see :func:`gradient_stats`); its standard
        error is at most 0.5/sqrt(resamples) per coordinate, and its cost is resamples x parameters.
    name:
        Name recorded in the run's config (``name@every``).

    Recorded metrics (prefix ``gs_``, the instrument; quantity names as everywhere, see
    :mod:`adamlab.dissect.names` and the table in docs/dissect.md): :meth:`GradientStats.summary`'s
    ``eta2_median``, ``eta2_mean``, ``frac_eta2_gt_1``, ``rho_gaussian_mean``, ``rho_empirical_mean``,
    ``gamma_grad_ideal_median``, ``gamma_sign_ideal_median``, ``gamma_sign_empirical_median``,
    ``frac_zero_grad``, and, when the optimizer has a per-coordinate gamma, the :class:`Monitor`'s
    ``gamma_measured_median``, ``gamma_abs_error_median``, ``gamma_corr`` and ``gamma_rank_corr`` (against
    the ideal gamma of the optimizer's kind of direction, over live coordinates, as the monitor's).
    Every median and mean is over the live coordinates (not every per-example gradient exactly 0).

    The statistics are taken at the parameters after the step, on the step's batch, with BatchNorm in
    eval mode and dropout as in training (each example its own mask).
    """

    def __init__(self, every: int = 100, *, loss_fn: Callable[[Tensor, Tensor], Tensor] | None = None,
                 max_examples: int | None = None, resamples: int = 64, name: str = "gradstats") -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if max_examples is not None and int(max_examples) < 2:
            raise ValueError(f"max_examples must be >= 2 (a variance needs 2 examples), got {max_examples}")
        self.every = int(every)
        self.loss_fn = loss_fn
        self.max_examples = max_examples
        self.resamples = int(resamples)
        self.name = name

    def __call__(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, problem: Any,
                 batch: tuple[Tensor, ...]) -> dict[str, float]:
        loss_fn = self.loss_fn or getattr(problem, "criterion", None)
        if loss_fn is None:
            raise ValueError(f"loss_fn: problem {getattr(problem, 'name', problem)!r} has no per-example "
                             "criterion; pass GradientStatsHook(loss_fn=...)")
        if len(batch) != 2:
            raise ValueError(f"batch: expected (inputs, targets), got {len(batch)} tensors")
        inputs, targets = batch
        if self.max_examples is not None:
            inputs, targets = inputs[: self.max_examples], targets[: self.max_examples]
        with batchnorm_in_eval(model):
            stats = gradient_stats(model, loss_fn, inputs, targets, resamples=self.resamples)
        out = {f"gs_{k}": v for k, v in stats.summary().items()}
        out.update({f"gs_{k}": v for k, v in self._gamma_metrics(model, optimizer, stats).items()})
        return out

    @staticmethod
    def _gamma_metrics(model: nn.Module, optimizer: torch.optim.Optimizer, stats: GradientStats) -> dict[str, float]:
        try:
            pieces = decompose(optimizer)
        except ValueError:  # not an adamlab optimizer, or a piece needs the previous parameters
            return {}
        names = {id(p): n for n, p in model.named_parameters()}
        params = [p for g in getattr(optimizer, "optimizer", optimizer).param_groups for p in g["params"]]
        measured, kinds = {}, {}
        for piece in pieces:
            name = names.get(id(params[piece.index]))
            if name is None or name not in stats.eta2 or not isinstance(piece.gamma, Tensor):
                continue  # a scalar gamma (SGD's 1) is not a per-coordinate variance adaptation
            measured[name], kinds[name] = piece.gamma.detach().double(), piece.kind
        metrics = summarise(stats, {}, measured=measured, kinds=kinds)
        return {k: v for k, v in metrics.items() if k.startswith("gamma_") and "ideal" not in k}
