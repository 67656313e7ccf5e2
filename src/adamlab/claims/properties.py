r"""Property checks: measure the seeds' claims on real optimizer runs and compare with theory.

Each check runs ``adamlab.optim`` optimizers (built with :func:`adamlab.optim.registry.make_optimizer`)
on a tiny synthetic problem in float64, measures one number, and compares it with what theory predicts
*for that optimizer*. A :class:`Record` says whether the optimizer showed the property
(``has_property``), whether theory says it should (``theory``), and ``holds`` = the two agree. So SGD's
rescaling record has ``has_property=False, theory=False, holds=True``: the absence is reported, with
its number. Theory is the optimizer's own: its class's ``theory`` table (the prediction, the step
bound, the reasons; :mod:`adamlab.optim.theory`), read through :mod:`adamlab.claims.records`.

Properties (seeds 000-003):

``rescaling_invariance``
    Two runs from the same start and noise, one fed :math:`D g` with :math:`D` a random positive diagonal
    (entries in [0.1, 10]). Measured: max deviation of the trajectories relative to the distance travelled.
    Theory (seeds 000, 003): invariant when the step only depends on ratios of gradient statistics.
``step_bound``
    max over steps and coordinates of :math:`|\Delta|/\alpha` on a gradient stream of dense noisy and
    isolated sparse coordinates (scale 100). Theory (seed 003): Adam :math:`\le (1-\beta_1)/\sqrt{1-\beta_2}`
    when :math:`1-\beta_1 > \sqrt{1-\beta_2}` else :math:`\le 1`; sign methods :math:`= 1`; unbounded for
    (M-)SGD and (M-)SVAG, whose steps scale with the gradient.
``constant_gradient_ratio``
    For a constant gradient :math:`c` of random scales: :math:`\max|\Delta/(-\alpha\operatorname{sign}(c)) - 1|`.
    Theory (seed 001): :math:`\hat m/\sqrt{\hat v} = 1`. Details add, for Adam, the standard deviation of
    :math:`\hat m/\sqrt{\hat v}` for zero-mean noise with :math:`\beta_1 = 0` (seed 001: about 1).
``cautiousness``
    Mean :math:`|\Delta|` at SNR :math:`|\mu|/\sigma = 0.01` over the mean at SNR 100, with
    :math:`\mathbf E[g^2] = 1` fixed. Theory (seed 003): the step shrinks (ratio < 0.5) as the SNR goes to 0
    for methods that average or variance-adapt; SGD, sign descent, RMSprop and Adagrad keep their step size.
``param_scale_lr_equivalence``
    Seed 001: train :math:`y = (w'/k) x` with weight scale :math:`k` and learning rate; cases (1) k=1,
    lr=1e-3 vs (2) k=10, lr=1e-2, and (3) k=10, lr=1e-3 vs (4) k=1, lr=1e-4. Measured: max gap of the
    function trajectories :math:`w'/k`, relative to the distance travelled.
``optimal_gamma_lemma``
    Monte Carlo of :math:`\mathbf E\|\gamma\odot g - \nabla\mathcal L\|^2` (and of the sign version) on a
    grid of :math:`\gamma`, for Gaussian :math:`g` with several :math:`\eta`; measured: the largest gap
    between the grid minimiser and :math:`1/(1+\eta^2)` (resp. :math:`2\rho - 1`) (seed 002).
``erf_approximation``
    :math:`\max_\eta |\operatorname{erf}(1/(\sqrt2\eta)) - (1+\eta^2)^{-1/2}|` over
    :math:`\eta \in [10^{-3}, 10^3]` (seed 002 writes :math:`\approx`), plus a Monte Carlo check that
    :math:`2\rho - 1 = \operatorname{erf}(1/(\sqrt 2\eta))` for Gaussian gradients.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor

from adamlab.claims.records import (
    DTYPE,
    Record,
    claims_device,
    make_record,
    on_device,
    predicted,
    theory_fact,
)
from adamlab.claims.seed_claims import CLAIM_CHECKS, OPTIMIZER_CHECKS
from adamlab.dissect.decompose import StepRecorder
from adamlab.dissect.stats import gaussian_sign_agreement, ideal_gamma_grad, ideal_gamma_sign

PROPERTIES: tuple[str, ...] = (
    "rescaling_invariance", "step_bound", "constant_gradient_ratio", "cautiousness",
    "param_scale_lr_equivalence", "optimal_gamma_lemma", "erf_approximation",
    # issue 13's claims (adamlab.claims.seed_claims)
    "svag_idealized_rate", "ill_conditioning", "ill_conditioning_normalized", "eps_dominance",
)
#: Properties about the theory itself (not one optimizer); their records have optimizer "-".
THEORY_PROPERTIES: tuple[str, ...] = ("optimal_gamma_lemma", "erf_approximation")

Factory = Callable[..., torch.optim.Optimizer]


def theory_table(properties: Iterable[str] | None = None) -> dict[str, frozenset[str]]:
    """``{property: registry names that theory says have it}``, from the classes (for docs and tests)."""
    from adamlab.optim.registry import names

    props = [p for p in PROPERTIES if p not in THEORY_PROPERTIES] if properties is None else list(properties)
    return {p: frozenset(n for n in names() if predicted(n, p)) for p in props}


#: The generic reason for an absent property, where the optimizer's class gives none (``<property>.why``).
WHY_NOT: dict[str, str] = {
    "rescaling_invariance": "the step is proportional to the gradient's scale",
    "step_bound": "the step is proportional to the gradient's scale",
    "constant_gradient_ratio": "the step is not alpha*sign(g) for a constant gradient",
    "cautiousness": "the step size does not depend on the SNR",
    "param_scale_lr_equivalence": "the step does not scale with the learning rate alone",
}


def _record(name: str, prop: str, measured: float, has: bool, expected_yes: str, expected_no: str,
            details: str) -> Record:
    theory = True if prop in THEORY_PROPERTIES else predicted(name, prop)
    expected = "no prediction" if theory is None else (expected_yes if theory else expected_no)
    return make_record(name, prop, measured, has, theory, expected, details)


def _why(optimizer: torch.optim.Optimizer, prop: str) -> str:
    """The reason the optimizer's class gives for its prediction of ``prop``, else the generic one."""
    return theory_fact(optimizer, f"{prop}.why") or WHY_NOT[prop]


def _factory(name: str, factory: Factory | None) -> Factory:
    if factory is not None:
        return factory
    from adamlab.optim.registry import make_optimizer

    return lambda params, **hp: make_optimizer(name, params, **hp)


def _hparams(factory: Factory, params: list[Tensor], lr: float, **extra: Any) -> torch.optim.Optimizer:
    return factory(params, lr=lr, **extra)


def _run(
    factory: Factory,
    theta0: Tensor,
    grad_fn: Callable[[int, Tensor], Tensor],
    steps: int,
    lr: float,
    **extra: Any,
) -> tuple[Tensor, Tensor]:
    """Run ``steps`` steps on one parameter vector; returns (trajectory (steps+1, d), steps without decay (steps, d)).

    ``grad_fn(t, theta)`` gives the gradient at step ``t`` (1-based). The "step" is the applied update
    minus any decoupled weight decay, taken from :func:`adamlab.dissect.decompose`.
    """
    device = claims_device(theta0.dtype)  # the optimizer steps there; the gradients come from the CPU
    theta = theta0.detach().clone().to(device).requires_grad_(True)
    opt = _hparams(factory, [theta], lr, **extra)
    traj = [theta.detach().clone()]
    moves = []
    for t in range(1, steps + 1):
        theta.grad = grad_fn(t, theta.detach().cpu()).detach().clone().to(device)
        with StepRecorder(opt) as rec:
            opt.step()
        (piece,) = rec.pieces
        move = piece.update if piece.decay is None else piece.update - piece.decay
        moves.append(move)
        traj.append(theta.detach().clone())
    return torch.stack(traj).cpu(), torch.stack(moves).cpu()


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- rescaling_invariance ------------------------------------------------------------------------------
def check_rescaling_invariance(name: str, *, seed: int = 0, factory: Factory | None = None,
                               steps: int = 100, dim: int = 20, lr: float = 1e-2) -> Record:
    """Trajectory deviation under gradients multiplied by a random positive diagonal (seeds 000, 003)."""
    fac = _factory(name, factory)
    g = _gen(seed)
    h = torch.empty(dim, dtype=DTYPE).uniform_(0.5, 2.0, generator=g)
    theta0 = torch.randn(dim, dtype=DTYPE, generator=g)
    noise = 0.5 * torch.randn(steps, dim, dtype=DTYPE, generator=g)
    scale = torch.exp(torch.empty(dim, dtype=DTYPE).uniform_(-math.log(10), math.log(10), generator=g))
    plain, _ = _run(fac, theta0, lambda t, th: h * th + noise[t - 1], steps, lr)
    scaled, _ = _run(fac, theta0, lambda t, th: scale * (h * th + noise[t - 1]), steps, lr)
    travelled = float((plain - theta0).abs().max())
    deviation = float((plain - scaled).abs().max()) / max(travelled, 1e-300)
    has = deviation < 1e-4
    return _record(name, "rescaling_invariance", deviation, has,
                   "invariant: deviation ~ 0 (< 1e-4, eps effects only)",
                   f"not invariant: deviation > 1e-4 ({WHY_NOT['rescaling_invariance']})",
                   f"{steps} steps, lr={lr}, d={dim}, noisy quadratic; D_ii in [0.1, 10]; "
                   f"max |theta - theta_D| / max |theta - theta_0| = {deviation:.3g}; "
                   f"has the property: {'yes' if has else 'no'}")


# -- step_bound ------------------------------------------------------------------------------------------
def _bound_stream(seed: int, steps: int, dim: int, scale: float) -> Callable[[int, Tensor], Tensor]:
    g = _gen(seed)
    half = dim // 2
    means = torch.randn(half, dtype=DTYPE, generator=g)
    stds = torch.exp(torch.empty(half, dtype=DTYPE).uniform_(-2, 2, generator=g))
    dense = means + stds * torch.randn(steps, half, dtype=DTYPE, generator=g)
    sparse = torch.zeros(steps, dim - half, dtype=DTYPE)
    period = 60  # isolated spikes: Kingma & Ba's "most severe case of sparsity"
    offsets = torch.randint(0, period, (dim - half,), generator=g)
    for t in range(steps):
        hit = (offsets == t % period).nonzero().flatten()
        if hit.numel():
            mag = torch.exp(torch.empty(hit.numel(), dtype=DTYPE).uniform_(-3, 3, generator=g))
            sign = torch.randint(0, 2, (hit.numel(),), generator=g).to(DTYPE) * 2 - 1
            sparse[t, hit] = mag * sign
    stream = scale * torch.cat([dense, sparse], dim=1)
    return lambda t, th: stream[t - 1]


def check_step_bound(name: str, *, seed: int = 0, factory: Factory | None = None,
                     steps: int = 300, dim: int = 32, lr: float = 1e-3) -> Record:
    """max_{t,i} |Delta_{t,i}|/alpha on dense + isolated sparse gradients, against the seed's bound."""
    fac = _factory(name, factory)
    stream = _bound_stream(seed, steps, dim, scale=100.0)
    theta0 = torch.zeros(dim, dtype=DTYPE)
    _, moves = _run(fac, theta0, stream, steps, lr)
    measured = float(moves.abs().max()) / lr
    opt_probe = _hparams(fac, [torch.zeros(1, dtype=DTYPE, requires_grad=True)], lr)
    bound = theory_fact(opt_probe, "step_bound.value")  # adamlab.optim.theory.StepBound, or None
    extra = ""
    if bound is None:
        why = _why(opt_probe, "step_bound")
        has = measured <= 10.0
        expected_yes = f"bounded <= 10 (theory: {why})"
        expected_no = f"unbounded: grows with |g| ({why}; gradients here ~100)"
    else:  # measured against the bound whether theory predicts it (Adam) or not (Adam without bias correction)
        has = measured <= bound.value * (1 + bound.rtol)
        expected_yes = f"<= {bound.value:.4g} ({bound.why})"
        expected_no = f"exceeds the seed's {bound.value:.4g}: {bound.why}"
        if bound.approximate is not None:
            # e.g. Adam's second case, (1 - beta1) <= sqrt(1 - beta2): "|Delta| <= alpha", which seed 003
            # itself softens to "in general |Delta| <~ alpha". Reported, not required: Cauchy-Schwarz allows more.
            setting, approx = bound.approximate
            _, moves2 = _run(fac, theta0, stream, steps, lr, **setting)
            m2 = float(moves2.abs().max()) / lr
            where = ", ".join(f"{k}={v}" for k, v in setting.items())
            extra = (f"; with {where} the seed's approximate bound is {approx:g}: measured {m2:.4g} "
                     f"({'within' if m2 <= approx * (1 + 1e-9) else 'EXCEEDED'}; it is |Delta| <~ alpha, "
                     "not a strict bound)")
    return _record(name, "step_bound", measured, has, expected_yes, expected_no,
                   f"{steps} steps, lr={lr}, half dense N(mu, s^2) and half isolated spikes, x100; "
                   f"max |Delta|/alpha = {measured:.4g}{extra}; has the property: {'yes' if has else 'no'}")


# -- constant_gradient_ratio -----------------------------------------------------------------------------
def _noise_ratio_std(fac: Factory, seed: int, lr: float) -> float:
    """std of m_hat/sqrt(v_hat) = -Delta/alpha for zero-mean noise with beta1 = 0 (seed 001: ~ 1)."""
    g = _gen(seed + 1)
    dim, steps, burn = 64, 250, 50
    sd = torch.exp(torch.empty(dim, dtype=DTYPE).uniform_(-3, 3, generator=g))
    noise = sd * torch.randn(steps, dim, dtype=DTYPE, generator=g)
    _, moves = _run(fac, torch.zeros(dim, dtype=DTYPE), lambda t, th: noise[t - 1], steps, lr,
                    betas=(0.0, 0.999))
    return float((moves[burn:] / lr).std())


def check_constant_gradient_ratio(name: str, *, seed: int = 0, factory: Factory | None = None,
                                  steps: int = 50, dim: int = 16, lr: float = 1e-3) -> Record:
    """For a constant gradient c: max |Delta / (-alpha sign c) - 1| (seed 001: m/sqrt(v) = 1)."""
    fac = _factory(name, factory)
    g = _gen(seed)
    mag = torch.exp(torch.empty(dim, dtype=DTYPE).uniform_(-math.log(100), math.log(100), generator=g))
    c = mag * (torch.randint(0, 2, (dim,), generator=g).to(DTYPE) * 2 - 1)
    _, moves = _run(fac, torch.zeros(dim, dtype=DTYPE), lambda t, th: c, steps, lr)
    measured = float((moves / (-lr * c.sign()) - 1).abs().max())
    has = measured < 1e-3
    extra = ""
    opt_probe = _hparams(fac, [torch.zeros(1, dtype=DTYPE, requires_grad=True)], lr)
    if theory_fact(opt_probe, "constant_gradient_ratio.noise_std"):
        extra = f"; zero-mean noise, beta1=0: std(m_hat/sqrt(v_hat)) = {_noise_ratio_std(fac, seed, lr):.3f} (seed 001: ~1)"
    why = _why(opt_probe, "constant_gradient_ratio")
    return _record(name, "constant_gradient_ratio", measured, has,
                   "|Delta| = alpha exactly: deviation ~ 0 (< 1e-3)",
                   f"deviation > 1e-3 ({why})",
                   f"{steps} steps, |c| in [0.01, 100]; max |Delta/(-alpha sign c) - 1| = {measured:.3g}{extra}; "
                   f"has the property: {'yes' if has else 'no'}")


# -- cautiousness ---------------------------------------------------------------------------------------
SNRS = (100.0, 1.0, 0.01)


def check_cautiousness(name: str, *, seed: int = 0, factory: Factory | None = None,
                       steps: int = 200, dim: int = 64, lr: float = 1e-3) -> Record:
    """Gradient-normalised step mean|Delta|/(alpha mean|g|) at SNR 0.01 over SNR 100, E[g^2] = 1 (seed 003)."""
    fac = _factory(name, factory)
    burn = steps // 3
    g = _gen(seed)
    signs = torch.randint(0, 2, (dim,), generator=g).to(DTYPE) * 2 - 1
    xi = torch.randn(steps, dim, dtype=DTYPE, generator=g)
    sizes = []
    for snr in SNRS:
        mu = signs * snr / math.sqrt(1 + snr**2)
        sigma = 1 / math.sqrt(1 + snr**2)
        stream = mu + sigma * xi
        _, moves = _run(fac, torch.zeros(dim, dtype=DTYPE), lambda t, th, s=stream: s[t - 1], steps, lr)
        sizes.append(float(moves[burn:].abs().mean()) / (lr * float(stream[burn:].abs().mean())))
    ratio = sizes[-1] / sizes[0] if sizes[0] > 0 else float("inf")
    has = ratio < CAUTIOUS_RATIO
    curve = ", ".join(f"SNR {s:g}: {v:.3g}" for s, v in zip(SNRS, sizes, strict=True))
    return _record(name, "cautiousness", ratio, has,
                   f"step shrinks as SNR -> 0: ratio < {CAUTIOUS_RATIO}",
                   f"ratio >= {CAUTIOUS_RATIO} ({WHY_NOT['cautiousness']})",
                   f"mean |Delta| / (alpha mean |g|) with E[g^2]=1 ({curve}); ratio SNR 0.01 / SNR 100 = {ratio:.3g}; "
                   f"has the property: {'yes' if has else 'no'}")


#: A step that does not depend on the SNR gives a ratio of about 1 (1.25 for sign descent, since
#: E|g| drops to 0.8 while |sign g| stays 1); averaging over time gives about sqrt((1-b)/(1+b)) = 0.23
#: for b = 0.9, and M-SSD-VA's sqrt(m^2/(m^2 + rho s)) about 0.65.
CAUTIOUS_RATIO = 0.75


# -- param_scale_lr_equivalence --------------------------------------------------------------------------
class _ScaledLinear(torch.nn.Module):
    """y = (w'/k) x with w' = k w (seed 001's reparameterisation)."""

    def __init__(self, w: Tensor, k: float) -> None:
        super().__init__()
        self.k = k
        self.weight = torch.nn.Parameter(k * w.clone())

    def forward(self, x: Tensor) -> Tensor:
        return x @ (self.weight / self.k)


def _scaled_run(fac: Factory, w0: Tensor, x: Tensor, y: Tensor, order: Tensor, k: float, lr: float) -> Tensor:
    device = claims_device(DTYPE)
    model = _ScaledLinear(w0, k).to(DTYPE).to(device)
    x, y = x.to(device), y.to(device)
    opt = _hparams(fac, list(model.parameters()), lr)
    traj = [model.weight.detach() / k]
    for idx in order:
        opt.zero_grad()
        loss = 0.5 * (model(x[idx]) - y[idx]).square().mean()
        loss.backward()
        opt.step()
        traj.append(model.weight.detach() / k)
    return torch.stack(traj).cpu()


def check_param_scale_lr_equivalence(name: str, *, seed: int = 0, factory: Factory | None = None,
                                     steps: int = 100, base_lr: float = 1e-2) -> Record:
    """Seed 001's cases (1) == (2) and (3) == (4) for y = (w'/k) x: max relative gap of w'/k trajectories."""
    fac = _factory(name, factory)
    g = _gen(seed)
    dim, n, batch = 10, 256, 16
    x = torch.randn(n, dim, dtype=DTYPE, generator=g)
    w_true = torch.randn(dim, dtype=DTYPE, generator=g)
    y = x @ w_true + 0.5 * torch.randn(n, dtype=DTYPE, generator=g)
    w0 = 0.1 * torch.randn(dim, dtype=DTYPE, generator=g)
    order = torch.randint(0, n, (steps, batch), generator=g)
    # (k, lr) pairs: (1) scale 1, lr a; (2) scale 10, lr 10a; (3) scale 10, lr a; (4) scale 1, lr a/10.
    a = base_lr
    cases = {1: (1.0, a), 2: (10.0, 10 * a), 3: (10.0, a), 4: (1.0, a / 10)}
    runs = {c: _scaled_run(fac, w0, x, y, order, k, lr) for c, (k, lr) in cases.items()}
    gaps = []
    for p, q in ((1, 2), (3, 4)):
        travelled = float((runs[p] - runs[p][0]).abs().max())
        gaps.append(float((runs[p] - runs[q]).abs().max()) / max(travelled, 1e-300))
    measured = max(gaps)
    has = measured < 1e-3
    why = _why(_hparams(fac, [torch.zeros(1, dtype=DTYPE, requires_grad=True)], a), "param_scale_lr_equivalence")
    return _record(name, "param_scale_lr_equivalence", measured, has,
                   "(1)==(2) and (3)==(4): gap ~ 0 (< 1e-3)",
                   f"gap > 1e-3 ({why})",
                   f"linear regression y=(w'/k)x, {steps} steps, base lr {a}; relative gap (1)vs(2) = {gaps[0]:.3g}, "
                   f"(3)vs(4) = {gaps[1]:.3g}; has the property: {'yes' if has else 'no'}")


# -- optimal_gamma_lemma ----------------------------------------------------------------------------------
ETAS = (0.25, 0.5, 1.0, 2.0, 4.0)


def check_optimal_gamma_lemma(*, seed: int = 0, samples: int = 40_000, grid: int = 101) -> Record:
    """Monte Carlo: argmin over a gamma grid of E||gamma*g - grad||^2 (and the sign version) vs the lemma."""
    g = _gen(seed)
    eta = torch.tensor(ETAS, dtype=DTYPE)
    true = torch.ones_like(eta)  # grad_i = 1, sigma_i = eta_i
    draws = true + eta * torch.randn(samples, eta.numel(), dtype=DTYPE, generator=g)
    gammas = torch.linspace(0, 1, grid, dtype=DTYPE)
    worst_grad = worst_sign = 0.0
    rows = []
    for i in range(eta.numel()):
        gi = draws[:, i]
        # the Monte Carlo objective at every grid gamma (brute force, one row per gamma)
        obj_grad = ((gammas[:, None] * gi[None, :] - true[i]) ** 2).mean(1)
        obj_sign = ((gammas[:, None] * gi.sign()[None, :] - true[i].sign()) ** 2).mean(1)
        best_grad = float(gammas[obj_grad.argmin()])
        best_sign = float(gammas[obj_sign.argmin()])
        want_grad = float(ideal_gamma_grad(eta[i] ** 2))
        want_sign = float(ideal_gamma_sign(gaussian_sign_agreement(true[i], eta[i])))
        worst_grad = max(worst_grad, abs(best_grad - want_grad))
        worst_sign = max(worst_sign, abs(best_sign - want_sign))
        rows.append(f"eta={float(eta[i]):g}: {best_grad:.3f} vs {want_grad:.3f}, sign {best_sign:.3f} vs {want_sign:.3f}")
    measured = max(worst_grad, worst_sign)
    tol = 0.015
    has = measured <= tol
    return _record("-", "optimal_gamma_lemma", measured, has,
                   f"MC minimiser = 1/(1+eta^2) and 2rho-1 (gap <= {tol}: grid step {1 / (grid - 1):.3g} + MC error)",
                   "", f"{samples} Gaussian samples per eta, grid of {grid} gammas; " + "; ".join(rows)
                   + f"; max gap grad {worst_grad:.3g}, sign {worst_sign:.3g}")


# -- erf_approximation -------------------------------------------------------------------------------------
def check_erf_approximation(*, seed: int = 0, samples: int = 200_000) -> Record:
    """max_eta |erf(1/(sqrt 2 eta)) - (1+eta^2)^(-1/2)|, and an MC check of 2rho-1 = erf(...) (seed 002)."""
    eta = torch.logspace(-3, 3, 20001, dtype=DTYPE)
    exact = ideal_gamma_sign(gaussian_sign_agreement(torch.ones_like(eta), eta))
    approx = (1 + eta**2) ** -0.5
    gap = (exact - approx).abs()
    i = int(gap.argmax())
    g = _gen(seed)
    mc_eta = torch.tensor(ETAS, dtype=DTYPE)
    draws = 1 + mc_eta * torch.randn(samples, mc_eta.numel(), dtype=DTYPE, generator=g)
    rho_mc = (draws > 0).to(DTYPE).mean(0)
    erf_mc_gap = float((ideal_gamma_sign(rho_mc) - torch.erf(1 / (math.sqrt(2) * mc_eta))).abs().max())
    measured = float(gap[i])
    has = measured < 0.1 and erf_mc_gap < 0.01
    return _record("-", "erf_approximation", measured, has,
                   "approximation: max gap small (< 0.1); 2rho-1 = erf exactly for Gaussian g (MC < 0.01)", "",
                   f"max gap {measured:.4f} at eta = {float(eta[i]):.3g} over eta in [1e-3, 1e3]; "
                   f"Monte Carlo |2rho-1 - erf(1/(sqrt2 eta))| <= {erf_mc_gap:.2g} ({samples} samples)")


CHECKS: dict[str, Callable[..., Record]] = {
    "rescaling_invariance": check_rescaling_invariance,
    "step_bound": check_step_bound,
    "constant_gradient_ratio": check_constant_gradient_ratio,
    "cautiousness": check_cautiousness,
    "param_scale_lr_equivalence": check_param_scale_lr_equivalence,
}
THEORY_CHECKS: dict[str, Callable[..., Record]] = {
    "optimal_gamma_lemma": check_optimal_gamma_lemma,
    "erf_approximation": check_erf_approximation,
}


def verify(
    optimizers: Sequence[str] | None = None,
    properties: Iterable[str] | None = None,
    seed: int = 0,
    data: bool = False,
    device: torch.device | str | None = None,
) -> list[Record]:
    """Measure each property on each optimizer (default: all registered optimizers, all properties).

    Parameters
    ----------
    optimizers:
        Short names from :func:`adamlab.optim.registry.names`. Theory-only properties
        (``optimal_gamma_lemma``, ``erf_approximation``) are added once, with optimizer ``"-"``.
    properties:
        Names from :data:`PROPERTIES`.
    seed:
        Seed of every random draw.
    data:
        Run the long data-driven records (``eps_dominance``: 1,874 steps = 2 epochs of ``fmnist.cnn``, minutes)
        instead of their short default (30 steps); ``adamlab verify --data``.
    device:
        Where the optimizers step and the data-driven records train (None: the CPU; ``adamlab verify
        --device``). The synthetic gradient streams are drawn on the CPU, so the inputs are the same on
        every device; the float64 checks stay on the CPU on MPS (no float64 there).

    Raises
    ------
    ValueError
        An unknown optimizer or property name (the message lists the known ones).
    """
    from adamlab.optim.registry import names

    known = names()
    opts = list(known) if optimizers is None else [o.lower() for o in optimizers]
    for o in opts:
        if o not in known:
            raise ValueError(f"unknown optimizer {o!r}; known optimizers: {', '.join(known)}")
    props = list(PROPERTIES) if properties is None else list(properties)
    for p in props:
        if p not in PROPERTIES:
            raise ValueError(f"unknown property {p!r}; known properties: {', '.join(PROPERTIES)}")
    from adamlab.runs.device import parse_device

    with on_device(parse_device(device)):
        return _measure(props, opts, seed, data)


def _measure(props: Sequence[str], opts: Sequence[str], seed: int, data: bool) -> list[Record]:
    records = []
    for p in props:
        if p in THEORY_CHECKS:
            records.append(THEORY_CHECKS[p](seed=seed))
            continue
        if p in CLAIM_CHECKS:  # several records, named by method (adamlab.claims.seed_claims)
            records.extend(CLAIM_CHECKS[p](seed=seed, long=data))
            continue
        if p in OPTIMIZER_CHECKS:
            records.extend(OPTIMIZER_CHECKS[p](o, seed=seed) for o in opts)
            continue
        for o in opts:
            records.append(CHECKS[p](o, seed=seed))
    return records
