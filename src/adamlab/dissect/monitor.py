r"""A dissection monitor for any PyTorch training loop: Balles & Hennig's quantities per layer, live.

``Monitor(model, optimizer, every=k)`` hooks into the model (a :class:`~adamlab.dissect.moments.MomentRecorder`)
and into the optimizer (step pre- and post-hooks), so a plain loop needs no other change::

    monitor = Monitor(model, optimizer, every=10, csv="dissect.csv")
    for x, y in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optimizer.step()              # every 10th step, the monitor records the statistics of this step
    monitor.close()

On a sampled step the statistics come from the step's own backward pass (the gradient the optimizer
uses, at the parameters before the step) and the optimizer's state right after the step. Per layer
(``/<module name>``) and overall (no suffix) it records

=============================  =================================================================================
name                           quantity (medians and means over live coordinates, see below)
=============================  =================================================================================
``eta2_median``                :math:`\eta^2 = \sigma^2/\bar g^2`, :math:`\sigma^2` the variance of the mini-batch gradient
``rho_gaussian_mean``          mean sign agreement :math:`\rho` under the Gaussian model
``gamma_grad_ideal_median``    :math:`1/(1+\eta^2)`, the lemma's factor for a gradient direction
``gamma_sign_ideal_median``    :math:`2\rho - 1`, the lemma's factor for a sign direction
``gamma_measured_median``      the optimizer's own per-coordinate :math:`\gamma` (adamlab optimizers)
``gamma_abs_error_median``     :math:`|\gamma_{measured} - \gamma_{ideal}|`, the ideal one of the optimizer's kind
``gamma_corr``                 Pearson correlation of measured and ideal :math:`\gamma` over live coordinates
``gamma_rank_corr``            Spearman rank correlation of the same
``frac_zero_grad``             fraction of coordinates whose every per-example gradient is exactly 0
``grad_norm``, ``step_norm``   :math:`\|\bar g\|` and :math:`\|\theta_t - \theta_{t-1}\|`
=============================  =================================================================================

Live coordinates. On ReLU networks many coordinates have exactly-zero per-example gradients (dead units,
unused embedding rows): there :math:`\bar g = \sigma = 0`, so :math:`\eta^2 = 0` and the ideal
:math:`\gamma = 1` by convention, while Adam's measured :math:`\gamma` is whatever its state holds. A
Pearson correlation over all coordinates is then dominated by that cluster (and the medians move to
0 or 1 once more than half the coordinates are dead), so every median, mean and correlation is taken
over the live coordinates (not every per-example gradient exactly 0), and ``frac_zero_grad`` says how
many were left out; the rank correlation is also insensitive to the heavy tails of :math:`\gamma`.

Output. :attr:`Monitor.history` holds one ``{"step": t, name: value, ...}`` per sampled step;
``csv=path`` rewrites that file atomically at every record (long format: step, layer, quantity,
value); ``tensorboard=logdir`` writes scalars (needs the ``tensorboard`` package, extra
``adamlab[tensorboard]``); :class:`adamlab.dissect.integrations.MonitorHook` records into the
results store when the runner trains; Lightning and Hugging Face callbacks are in
:mod:`adamlab.dissect.integrations`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from adamlab.dissect.decompose import decompose
from adamlab.dissect.moments import MomentRecorder, Moments
from adamlab.dissect.stats import GradientStats, stats_from_moments
from adamlab.util.files import atomic_open

QUANTITIES = ("eta2_median", "rho_gaussian_mean", "gamma_grad_ideal_median", "gamma_sign_ideal_median",
              "gamma_measured_median", "gamma_abs_error_median", "gamma_corr", "gamma_rank_corr",
              "frac_zero_grad", "grad_norm", "step_norm")
OVERALL = "all"


SAMPLE = 4096  # coordinates per layer behind the medians and the rank correlation


def _median(x: Tensor) -> float:
    """The median (the mean of the two middle values for an even count, as NumPy's; NaN for none)."""
    k = x.numel()
    if k == 0:
        return float("nan")
    if k % 2:
        return float(x.kthvalue(k // 2 + 1).values)
    return 0.5 * (float(x.kthvalue(k // 2).values) + float(x.kthvalue(k // 2 + 1).values))


def _pearson(a: Tensor, b: Tensor) -> float:
    """Pearson correlation (centred first, float64; NaN for fewer than 2 values or a constant one)."""
    if a.numel() < 2:
        return float("nan")
    a, b = a.double() - a.double().mean(), b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else float("nan")


def _ranks(x: Tensor) -> Tensor:
    """Average ranks (ties share their mean rank), float64."""
    sorted_x, order = torch.sort(x)
    _, inverse, counts = torch.unique_consecutive(sorted_x, return_inverse=True, return_counts=True)
    sums = torch.zeros(counts.numel(), dtype=torch.float64).index_add_(
        0, inverse, torch.arange(x.numel(), dtype=torch.float64))
    ranks = torch.empty(x.numel(), dtype=torch.float64)
    ranks[order] = (sums / counts)[inverse]
    return ranks


_PICKS: dict[int, Tensor] = {}


def sample_order(numel: int) -> Tensor:
    """A fixed random permutation of ``numel`` coordinates (seeded by ``numel``: the same network samples
    the same coordinates in every run). Every prefix of it is a uniform random sample."""
    if numel not in _PICKS:
        _PICKS[numel] = torch.randperm(numel, generator=torch.Generator().manual_seed(numel))
    return _PICKS[numel]


def summarise(stats: GradientStats, groups: dict[str, list[str]], *, measured: dict[str, Tensor] | None = None,
              kinds: dict[str, str] | None = None, exact: dict[str, Tensor] | None = None,
              take: dict[str, int] | None = None) -> dict[str, float]:
    """The monitor's scalars (see the module docstring) for each group of parameters and overall.

    ``stats`` holds, per parameter, flat values at sampled coordinates (or at all of them); medians,
    means and correlations are taken over those. ``exact`` holds, per parameter, sums over all its
    coordinates, ``[numel, zero-gradient count, |g|^2, |step|^2]`` (the last NaN when unknown), behind
    ``frac_zero_grad``, ``grad_norm`` and ``step_norm``.

    Parameters
    ----------
    stats:
        The step's statistics (flat per parameter).
    groups:
        ``{layer: [parameter names]}`` (``{}``: overall values only).
    measured, kinds:
        The optimizer's :math:`\\gamma` at the same coordinates and the kind (``"sign"`` / ``"grad"``) of
        its direction, per parameter (absent: no measured-:math:`\\gamma` metrics).
    exact:
        The exact sums above (absent: those three metrics are left out).
    take:
        How many of each parameter's leading values enter the overall values (default: all), so that
        parameters enter in proportion to their sizes.
    """
    measured, kinds, exact, take = measured or {}, kinds or {}, exact or {}, take or {}
    names_all = [n for n in stats.names if n in stats.mean]
    has_gamma = bool(names_all) and all(n in measured for n in names_all)

    def values_of(names: Sequence[str], cut: dict[str, int] | None) -> dict[str, float]:
        def cat(values: dict[str, Tensor]) -> Tensor:
            return torch.cat([values[n].reshape(-1)[:cut[n] if cut else None].double() for n in names])

        alive = (cat(stats.mean) != 0) | (cat(stats.variance) != 0)
        eta2, rho = cat(stats.eta2)[alive], cat(stats.rho_gaussian)[alive]
        out = {"eta2_median": _median(eta2), "rho_gaussian_mean": float(rho.mean()) if rho.numel() else math.nan,
               "gamma_grad_ideal_median": _median(cat(stats.gamma_grad)[alive]),
               "gamma_sign_ideal_median": _median(cat(stats.gamma_sign_gaussian)[alive])}
        if all(n in exact for n in names):
            e = torch.stack([exact[n] for n in names]).sum(0)
            out.update({"frac_zero_grad": float(e[1] / e[0]), "grad_norm": float(e[2].sqrt())})
            if math.isfinite(float(e[3])):
                out["step_norm"] = float(e[3].sqrt())
        if has_gamma:
            m = cat(measured)
            ideal = torch.cat([(stats.gamma_sign_gaussian if kinds.get(n) == "sign" else stats.gamma_grad)[n]
                               .reshape(-1)[:cut[n] if cut else None].double() for n in names])
            live = alive & torch.isfinite(m) & torch.isfinite(ideal)
            out.update({"gamma_measured_median": _median(m[live]),
                        "gamma_abs_error_median": _median((m - ideal)[live].abs()),
                        "gamma_corr": _pearson(m[live], ideal[live]),
                        "gamma_rank_corr": _pearson(_ranks(m[live]), _ranks(ideal[live]))})
        return out

    if not names_all:
        return {}
    result = values_of(names_all, {n: take.get(n, stats.mean[n].numel()) for n in names_all})
    for layer, names in groups.items():
        names = [n for n in names if n in stats.mean]
        if names:
            result.update({f"{k}/{layer}": v for k, v in values_of(names, None).items()})
    return result


class Monitor:
    """Record the Dissecting Adam statistics of ``model`` trained by ``optimizer`` every ``every`` steps.

    Parameters
    ----------
    model, optimizer:
        The network and its optimizer (any ``torch.optim.Optimizer``; the measured :math:`\\gamma` needs an
        adamlab optimizer with a decomposition).
    every:
        Sampling period in optimizer steps (>= 1); steps in between cost nothing but a flag check.
    reduction:
        ``"mean"`` (default) or ``"sum"``: how the loss combines the examples (see
        :mod:`adamlab.dissect.moments`).
    per_layer:
        Also record each module's values (``name/module``); default True.
    csv, tensorboard:
        A CSV file rewritten atomically at each record, and a TensorBoard log directory.
    callback:
        Called with ``(step, metrics)`` at each record (e.g. a logger).
    dtype:
        Accumulation dtype of the moments (default: the parameters').
    sample:
        Coordinates per layer behind the medians, means and correlations (a fixed random sample,
        default 4096, overall: the layers' samples in proportion to their sizes), so a record costs
        O(parameters) in a few cheap passes; None: every coordinate (exact). The zero-gradient
        fraction and the norms always use every coordinate.

    Raises
    ------
    ValueError
        ``every`` < 1 or a bad ``reduction``; ImportError for ``tensorboard`` without the package.
    """

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, every: int = 1, *,
                 reduction: str = "mean", per_layer: bool = True, csv: str | os.PathLike[str] | None = None,
                 tensorboard: str | os.PathLike[str] | None = None,
                 callback: Callable[[int, dict[str, float]], None] | None = None,
                 dtype: torch.dtype | None = None, sample: int | None = SAMPLE) -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.model, self.optimizer, self.every = model, optimizer, int(every)
        self.recorder = MomentRecorder(model, reduction=reduction, dtype=dtype).attach()
        if sample is not None and int(sample) < 1:
            raise ValueError(f"sample must be >= 1 or None (every coordinate), got {sample}")
        self.sample = None if sample is None else int(sample)
        self.per_layer = per_layer
        self.csv = csv
        self.callback = callback
        self.history: list[dict[str, float]] = []
        self.step = 0
        self._writer: Any = None
        if tensorboard is not None:
            from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package

            self._writer = SummaryWriter(str(tensorboard))
        self._names = {id(p): n for n, p in model.named_parameters()}
        self._before: dict[str, Tensor] = {}
        self._handles = [optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post)]
        self.recorder.enabled = self._sampled(1)
        self.recorder.reset()

    def _sampled(self, step: int) -> bool:
        return step % self.every == 0

    @property
    def fell_back(self) -> dict[str, str]:
        """Modules whose moments come from ``torch.func`` (no closed form), with the reason."""
        return dict(self.recorder.fell_back)

    @property
    def skipped(self) -> dict[str, str]:
        """Modules not measured at all (e.g. BatchNorm in training mode), with the reason."""
        return dict(self.recorder.skipped)

    def _pre(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._sampled(self.step + 1):
            self._before = {self._names[id(p)]: p.detach().clone() for g in optimizer.param_groups
                            for p in g["params"] if id(p) in self._names}

    def _post(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        self.step += 1
        if self._sampled(self.step):
            self.record()
        self.recorder.reset()
        self.recorder.enabled = self._sampled(self.step + 1)

    def record(self) -> dict[str, float]:
        """Compute and store the statistics of the moments accumulated since the last step (called by the
        optimizer's post-step hook on sampled steps); returns ``{}`` when nothing was accumulated."""
        moments = {k: v for k, v in self.recorder.moments().items() if v.n >= 2}
        if not moments:
            return {}
        n = min(m.n for m in moments.values())
        layers: dict[str, list[str]] = {}
        for name in moments:
            layers.setdefault(name.rpartition(".")[0] or name, []).append(name)
        total = sum(m.s1.numel() for m in moments.values())
        picks, take = {}, {}
        for names in layers.values():
            size = sum(moments[k].s1.numel() for k in names)
            for k in names:
                numel = moments[k].s1.numel()
                if self.sample is None:
                    picks[k], take[k] = None, numel
                else:
                    keep = min(numel, max(1, round(self.sample * numel / size)))
                    picks[k] = sample_order(numel)[:keep]
                    take[k] = min(keep, max(1, round(self.sample * numel / total)))
        params = dict(self.model.named_parameters())
        means, variances, exact = {}, {}, {}
        for k, m in moments.items():
            s1, s2 = m.s1.reshape(-1), m.s2.reshape(-1)
            sub = Moments(s1 if picks[k] is None else s1[picks[k]], s2 if picks[k] is None else s2[picks[k]], m.n)
            means[k], variances[k] = sub.mean(), sub.variance()
            before = self._before.get(k)
            step = float("nan") if before is None else float(torch.linalg.vector_norm(params[k].detach() - before))
            exact[k] = torch.tensor([float(s1.numel()), float((s2 == 0).sum()),
                                     (float(torch.linalg.vector_norm(s1)) / m.n) ** 2, step ** 2], dtype=torch.float64)
        self._before = {}
        stats = stats_from_moments(means, variances, n, n, fell_back=self.recorder.fell_back)
        measured, kinds = self._measured(picks)
        metrics = summarise(stats, layers if self.per_layer else {}, measured=measured, kinds=kinds, exact=exact,
                            take=take)
        self.history.append({"step": float(self.step), **metrics})
        if self.csv is not None:
            self.write_csv(self.csv)
        if self._writer is not None:
            for key, value in metrics.items():
                if math.isfinite(value):
                    quantity, _, layer = key.partition("/")
                    self._writer.add_scalar(f"{quantity}/{layer or OVERALL}", value, self.step)
        if self.callback is not None:
            self.callback(self.step, metrics)
        return metrics

    def _measured(self, picks: dict[str, Tensor | None]) -> tuple[dict[str, Tensor], dict[str, str]]:
        try:
            inner = getattr(self.optimizer, "optimizer", self.optimizer)
            index = {id(p): i for i, p in enumerate(p for g in inner.param_groups for p in g["params"])}
            coords = {index[id(p)]: picks[k] for k, p in self.model.named_parameters()
                      if id(p) in index and picks.get(k) is not None}
            pieces = decompose(self.optimizer, coords=coords)
        except ValueError:  # not an adamlab optimizer with a decomposition
            return {}, {}
        inner = getattr(self.optimizer, "optimizer", self.optimizer)
        params = [p for g in inner.param_groups for p in g["params"]]
        measured, kinds = {}, {}
        for piece in pieces:
            name = self._names.get(id(params[piece.index]))
            if name is None:
                continue
            if name not in picks:
                continue
            gamma, pick = piece.gamma, picks[name]
            if isinstance(gamma, Tensor):
                measured[name] = gamma.detach().reshape(-1).double()
            else:
                size = params[piece.index].numel() if pick is None else pick.numel()
                measured[name] = torch.full((size,), float(gamma), dtype=torch.float64)
            kinds[name] = piece.kind
        return measured, kinds

    def rows(self) -> list[tuple[int, str, str, float]]:
        """The history in long format: ``(step, layer, quantity, value)``."""
        out = []
        for rec in self.history:
            step = int(rec["step"])
            for key, value in rec.items():
                if key != "step":
                    quantity, _, layer = key.partition("/")
                    out.append((step, layer or OVERALL, quantity, value))
        return out

    def write_csv(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`rows` to ``path`` atomically (header ``step,layer,quantity,value``)."""
        with atomic_open(path) as f:
            f.write("step,layer,quantity,value\n")
            for step, layer, quantity, value in self.rows():
                f.write(f"{step},{layer},{quantity},{value!r}\n")

    def close(self) -> None:
        """Remove every hook and close the TensorBoard writer."""
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self.recorder.detach()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
