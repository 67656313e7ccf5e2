r"""Gradient noise statistics from per-example gradients (``torch.func``: vmap over grad).

For a mini-batch of :math:`n` examples with per-example gradients :math:`g^{(1)}, \dots, g^{(n)}`, the
statistics describe the stochastic gradient :math:`g` an optimizer sees when it averages ``batch_size``
(:math:`b`, default :math:`n`) examples, per coordinate :math:`i` (Balles & Hennig 2018, seed 002):

.. math::
    \nabla\mathcal L_i \approx \bar g_i = \frac1n \sum_k g^{(k)}_i, \qquad
    \sigma_i^2 = \frac{1}{b}\,\frac{1}{n-1}\sum_k (g^{(k)}_i - \bar g_i)^2, \qquad
    \eta_i^2 = \sigma_i^2 / \bar g_i^2,

    \rho_i = \mathbf P[\operatorname{sign}(g_i) = \operatorname{sign}(\nabla\mathcal L_i)], \qquad
    \rho_i^{\text{Gauss}} = \tfrac12\Big(1 + \operatorname{erf}\big(|\bar g_i| / (\sqrt2\,\sigma_i)\big)\Big),

and the lemma's optimal factors :math:`\gamma_i = 1/(1+\eta_i^2)` (for :math:`\gamma \odot g`) and
:math:`\gamma_i = 2\rho_i - 1` (for :math:`\gamma \odot \operatorname{sign}(g)`). The empirical
:math:`\rho` counts sign agreement of mini-batch means of :math:`b` examples drawn with replacement
from the :math:`n` per-example gradients (``resamples`` of them; for :math:`b = 1` it is the exact
fraction over the :math:`n` examples).

Model requirements. Any ``nn.Module`` built from standard layers works: parameters and buffers are
passed through :func:`torch.func.functional_call`. A module whose output for one example depends on
other examples (BatchNorm in training mode) has no per-example gradient; it is rejected with a
``ValueError`` (call ``model.eval()`` first: BatchNorm then uses its running statistics). Dropout in
training mode is allowed: each example draws its own mask (``vmap(randomness="different")``), so the
variance includes the dropout noise, as in training; put the model in eval mode to exclude it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

LossFn = Callable[[Tensor, Tensor], Tensor]


# The statistics below run over every coordinate of a network at every sampled step. Each builds its
# result in one fresh tensor and works on it in place: a float64 temporary of a 200k-parameter layer is
# 1.6 MB, which the allocator maps fresh from the OS, and the page faults of some twenty of them were
# two thirds of stats_from_moments' time (6.8 ms against 2.2 ms with the allocator keeping its memory,
# measured 2026-12-02). The operations and their order are those of the formulas, so the values are
# the same bits. Inputs are not modified.


def ideal_gamma_grad(eta2: Tensor) -> Tensor:
    r"""The lemma's optimal factor for a gradient direction, :math:`1/(1+\eta^2)` (seed 002)."""
    return eta2.add(1.0).reciprocal_()


def ideal_gamma_sign(rho: Tensor) -> Tensor:
    r"""The lemma's optimal factor for a sign direction, :math:`2\rho - 1` (seed 002)."""
    return rho.mul(2.0).sub_(1.0)


def gaussian_sign_agreement(mean: Tensor, std: Tensor) -> Tensor:
    r""":math:`\rho = \tfrac12(1 + \operatorname{erf}(|\mu|/(\sqrt2\sigma)))` for :math:`g \sim \mathcal N(\mu, \sigma^2)`.

    :math:`\sigma = 0` gives 1 for :math:`\mu \ne 0`; :math:`\mu = 0` gives 1/2.
    """
    z = mean.abs().div_(std.mul(math.sqrt(2.0)))
    z.masked_fill_(mean == 0, 0.0)  # 0/0 -> 0
    return z.erf_().add_(1.0).mul_(0.5)


@dataclass
class GradientStats:
    """Per-coordinate gradient statistics of one mini-batch, one entry per parameter name.

    Attributes
    ----------
    mean, variance:
        :math:`\\bar g` and the per-example variance (unbiased, divisor n - 1).
    sigma2:
        Variance of the mini-batch gradient of ``batch_size`` examples, ``variance / batch_size``.
    eta2:
        :math:`\\sigma^2/\\bar g^2` (inf where :math:`\\bar g = 0 < \\sigma`, 0 where :math:`\\sigma = 0`).
    rho_empirical, rho_gaussian:
        Sign agreement, counted and under the Gaussian model.
    gamma_grad, gamma_sign, gamma_sign_gaussian:
        :math:`1/(1+\\eta^2)`, :math:`2\\rho - 1` (empirical) and :math:`2\\rho^{Gauss} - 1`.
    n_examples, batch_size:
        :math:`n` and :math:`b`.
    """

    mean: dict[str, Tensor]
    variance: dict[str, Tensor]
    sigma2: dict[str, Tensor]
    eta2: dict[str, Tensor]
    rho_empirical: dict[str, Tensor]
    rho_gaussian: dict[str, Tensor]
    gamma_grad: dict[str, Tensor]
    gamma_sign: dict[str, Tensor]
    gamma_sign_gaussian: dict[str, Tensor]
    n_examples: int
    batch_size: int
    names: list[str] = field(default_factory=list)
    fell_back: dict[str, str] = field(default_factory=dict)

    def flat(self, stat: str) -> Tensor:
        """One statistic for all coordinates, concatenated in parameter order (float64).

        ``rho_empirical`` and ``gamma_sign`` cover only the parameters they were computed for
        (all of them in :func:`gradient_stats`, the ones asked in ``backward_stats``)."""
        values: dict[str, Tensor] = getattr(self, stat)
        parts = [values[n].reshape(-1) for n in self.names if n in values]
        return torch.cat(parts) if parts else torch.zeros(0, dtype=torch.float64)

    def summary(self) -> dict[str, float]:
        """Scalars over the live coordinates (not every per-example gradient exactly 0; docs/dissect.md,
        "gamma_corr on ReLU networks"), named as everywhere in adamlab (:mod:`adamlab.dissect.names`):
        ``eta2_median``, ``eta2_mean`` (finite values), ``frac_eta2_gt_1``, ``rho_gaussian_mean``,
        ``rho_empirical_mean``, ``gamma_grad_ideal_median`` (1/(1+eta^2)), ``gamma_sign_ideal_median``
        (2 rho_gaussian - 1), ``gamma_sign_empirical_median`` (2 rho_empirical - 1; NaN without it) and
        ``frac_zero_grad`` (the coordinates left out)."""
        nan = float("nan")
        alive = (self.flat("mean") != 0) | (self.flat("variance") != 0)
        eta2 = self.flat("eta2")[alive]
        finite = eta2[torch.isfinite(eta2)]
        covered = [n for n in self.names if n in self.rho_empirical]
        alive_rho = torch.cat([((self.mean[n] != 0) | (self.variance[n] != 0)).reshape(-1) for n in covered]) \
            if covered else torch.zeros(0, dtype=torch.bool)
        rho = self.flat("rho_empirical")[alive_rho]

        def median(x: Tensor) -> float:  # NumPy's: the mean of the two middle values for an even count
            k = x.numel()
            return nan if k == 0 else 0.5 * (float(x.kthvalue((k + 1) // 2).values) + float(x.kthvalue(k // 2 + 1).values))

        return {
            "eta2_median": median(eta2),
            "eta2_mean": float(finite.mean()) if finite.numel() else nan,
            "frac_eta2_gt_1": float((eta2 > 1).double().mean()) if eta2.numel() else nan,
            "rho_gaussian_mean": float(self.flat("rho_gaussian")[alive].mean()) if eta2.numel() else nan,
            "rho_empirical_mean": float(rho.mean()) if rho.numel() else nan,
            "gamma_grad_ideal_median": median(self.flat("gamma_grad")[alive]),
            "gamma_sign_ideal_median": median(self.flat("gamma_sign_gaussian")[alive]),
            "gamma_sign_empirical_median": median(self.flat("gamma_sign")[alive_rho]),
            "frac_zero_grad": float((~alive).double().mean()) if alive.numel() else nan,
        }


def _check_batchnorm(model: nn.Module) -> None:
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.training:
            raise ValueError(
                f"model: BatchNorm module {name or type(module).__name__!r} is in training mode, so one "
                "example's output depends on the others and per-example gradients are undefined; "
                "call model.eval() first"
            )


def _sign_agreement(g: Tensor, sign: Tensor, weights: Tensor | None, chunk: int = 1 << 15) -> Tensor:
    """Fraction of rows of ``weights @ g`` (or of ``g``) whose sign equals ``sign``, column by column.

    Columns are processed in chunks so the resampled means never take more than
    ``resamples * chunk`` numbers of memory.
    """
    if weights is None:
        return (g.sign() == sign).double().mean(0)
    out = torch.empty(g.shape[1], dtype=torch.float64, device=g.device)
    for start in range(0, g.shape[1], chunk):
        cols = slice(start, start + chunk)
        agree = (weights @ g[:, cols]).sign_() == sign[cols]
        out[cols] = agree.sum(0, dtype=torch.float64) / weights.shape[0]
    return out


def per_example_grads(
    model: nn.Module, loss_fn: LossFn, inputs: Tensor, targets: Tensor, *, names: Sequence[str] | None = None
) -> dict[str, Tensor]:
    """``{name: tensor of shape (n, *param.shape)}``: the gradient of ``loss_fn`` on each example alone.

    ``names`` restricts it to those parameters (the others are held fixed).

    ``loss_fn(outputs, targets)`` is called on a batch of one (``inputs[k:k+1]``), so a mean-reduced
    criterion such as ``nn.functional.cross_entropy`` gives that example's loss. Only parameters with
    ``requires_grad`` are differentiated; buffers are passed unchanged.
    """
    wanted = set(names) if names is not None else None
    params = {k: v.detach() for k, v in model.named_parameters()
              if v.requires_grad and (wanted is None or k in wanted)}
    if not params:
        raise ValueError("model: has no trainable parameters (nothing to take gradients of)")
    _check_batchnorm(model)
    buffers = {k: v.detach() for k, v in model.named_buffers()}
    frozen = {k: v.detach() for k, v in model.named_parameters() if k not in params}

    def one(p: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
        out = functional_call(model, ({**p, **frozen}, buffers), (x.unsqueeze(0),))
        return loss_fn(out, y.unsqueeze(0))

    return vmap(grad(one), in_dims=(None, 0, 0), randomness="different")(params, inputs, targets)


def check_sample(inputs: Tensor, targets: Tensor, batch_size: int | None, resamples: int) -> tuple[int, int]:
    """The sample size ``n`` and mini-batch size ``b`` of a statistics call, checked (``ValueError``
    naming the argument): at least 2 examples (a variance needs two), as many targets as inputs,
    ``b >= 1`` (default ``n``) and ``resamples >= 1``. Shared by :func:`gradient_stats` and
    :func:`adamlab.dissect.moments.backward_stats`."""
    n = int(inputs.shape[0]) if inputs.dim() > 0 else 0
    if n < 2:
        raise ValueError(f"inputs: need at least 2 examples to estimate a variance, got {n}")
    if int(targets.shape[0]) != n:
        raise ValueError(f"targets: length {int(targets.shape[0])} does not match inputs' {n}")
    b = n if batch_size is None else int(batch_size)
    if b < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if resamples < 1:
        raise ValueError(f"resamples must be >= 1, got {resamples}")
    return n, b


def gradient_stats(
    model: nn.Module,
    loss_fn: LossFn,
    inputs: Tensor,
    targets: Tensor,
    *,
    batch_size: int | None = None,
    resamples: int = 256,
    generator: torch.Generator | None = None,
) -> GradientStats:
    """Per-coordinate mean, variance, eta^2, sign agreement and ideal gammas of one mini-batch.

    Parameters
    ----------
    model:
        Any ``nn.Module`` (see the module docstring for BatchNorm and dropout).
    loss_fn:
        ``loss_fn(outputs, targets) -> 0-dim tensor``, mean-reduced over the batch.
    inputs, targets:
        The mini-batch, first dimension = examples (at least 2).
    batch_size:
        Size :math:`b` of the stochastic gradient described (default: the number of examples,
        i.e. the optimizer's mini-batch gradient).
    resamples:
        Mini-batches drawn to count the empirical sign agreement when ``batch_size > 1``.
    generator:
        Random source for those draws (default: a fixed seed, so results are reproducible).

    Returns
    -------
    GradientStats

    Raises
    ------
    ValueError
        No trainable parameters, fewer than 2 examples (the variance is undefined), ``inputs`` and
        ``targets`` of different lengths, ``batch_size`` or ``resamples`` < 1, or BatchNorm in training mode.
    """
    n, b = check_sample(inputs, targets, batch_size, resamples)
    grads = per_example_grads(model, loss_fn, inputs, targets)
    names = list(grads)
    device = next(iter(grads.values())).device
    counts = resample_weights(n, b, resamples, generator, device)
    means, variances, rho = {}, {}, {}
    for name in names:
        g = grads[name].detach().to(torch.float64).reshape(n, -1)
        shape = grads[name].shape[1:]
        means[name], variances[name] = g.mean(0).reshape(shape), g.var(0, unbiased=True).reshape(shape)
        rho[name] = _sign_agreement(g, means[name].reshape(-1).sign(), counts).reshape(shape)
    return stats_from_moments(means, variances, n, b, rho_empirical=rho)


def resample_weights(n: int, b: int, resamples: int, generator: torch.Generator | None,
                     device: torch.device | str = "cpu") -> Tensor | None:
    """Weights (resamples, n) of ``resamples`` mini-batch means of ``b`` examples drawn with replacement
    (None for ``b = 1``: the sign agreement is then the exact fraction over the ``n`` examples).

    Drawn on the CPU (the generator's device, default seed 0), so results do not depend on the device."""
    if b <= 1:
        return None
    if generator is None:
        generator = torch.Generator().manual_seed(0)
    idx = torch.randint(0, n, (resamples, b), generator=generator)
    return (torch.zeros(resamples, n, dtype=torch.float64).scatter_add_(
        1, idx, torch.ones(resamples, b, dtype=torch.float64)) / b).to(device)


def empirical_sign_agreement(per_example: Tensor, weights: Tensor | None) -> Tensor:
    r"""Empirical :math:`\rho`: the fraction of resampled mini-batch means (rows of ``weights``; each
    example when None) whose sign equals that of the mean of ``per_example`` (shape (n, *param.shape))."""
    n = per_example.shape[0]
    g = per_example.detach().to(torch.float64).reshape(n, -1)
    return _sign_agreement(g, g.mean(0).sign(), weights).reshape(per_example.shape[1:])


def stats_from_moments(mean: dict[str, Tensor], variance: dict[str, Tensor], n: int, batch_size: int, *,
                       rho_empirical: dict[str, Tensor] | None = None,
                       fell_back: dict[str, str] | None = None) -> GradientStats:
    r"""All statistics from the per-example mean and unbiased variance of each parameter (float64).

    :math:`\sigma^2 = v/b`, :math:`\eta^2 = \sigma^2/\bar g^2` (0 where :math:`\sigma = 0`),
    :math:`\rho^{Gauss}`, :math:`1/(1+\eta^2)`, :math:`2\rho - 1` for the empirical :math:`\rho` given
    (for the parameters it covers) and :math:`2\rho^{Gauss} - 1`. The one place these equations live,
    for both the ``torch.func`` path and the backward-pass moments."""
    names = list(mean)
    rho_empirical = dict(rho_empirical or {})
    fields: dict[str, dict[str, Tensor]] = {k: {} for k in ("mean", "variance", *COORDINATE_STATS)}
    for name in names:
        m, var = mean[name].to(torch.float64), variance[name].to(torch.float64)
        fields["mean"][name], fields["variance"][name] = m, var
        for key, value in zip(COORDINATE_STATS, coordinate_stats(m, var, batch_size), strict=True):
            fields[key][name] = value
    gamma_sign = {k: ideal_gamma_sign(v) for k, v in rho_empirical.items()}
    return GradientStats(**fields, rho_empirical=rho_empirical, gamma_sign=gamma_sign, n_examples=n,
                         batch_size=batch_size, names=names, fell_back=dict(fell_back or {}))


#: What :func:`coordinate_stats` returns, in order (the :class:`GradientStats` fields of the same names).
COORDINATE_STATS = ("sigma2", "eta2", "rho_gaussian", "gamma_grad", "gamma_sign_gaussian")


def coordinate_stats(mean: Tensor, variance: Tensor, batch_size: int) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    r"""Every coordinate's statistics from the per-example mean and unbiased variance (one parameter).

    .. math::
        \sigma^2 = v/b, \quad \eta^2 = \sigma^2/\bar g^2 \ (0 \text{ where } \sigma = 0), \quad
        \rho^{Gauss} = \tfrac12\big(1 + \operatorname{erf}(|\bar g|/(\sqrt2\sigma))\big), \quad
        \frac{1}{1+\eta^2}, \quad 2\rho^{Gauss} - 1,

    in the dtype of ``mean`` (fresh tensors; the inputs are not modified), returned in the order of
    :data:`COORDINATE_STATS`. The one place these equations live: :func:`stats_from_moments` and the
    fused kernel of :class:`adamlab.dissect.step_stats.StepStats` both call it."""
    sigma2 = variance / batch_size
    eta2 = mean.square()
    torch.div(sigma2, eta2, out=eta2).masked_fill_(sigma2 == 0, 0.0)
    rho = gaussian_sign_agreement(mean, sigma2.sqrt())
    return sigma2, eta2, rho, ideal_gamma_grad(eta2), ideal_gamma_sign(rho)
