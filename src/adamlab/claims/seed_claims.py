r"""Three claims of the seeds measured as ``adamlab verify`` records (issue 13, items 1, 2 and 5).

``svag_idealized_rate`` (seed 002: "The idealized version [of SVAG] converges at O(1/t) with constant
:math:`\alpha_t \equiv \alpha`.")
    Idealized SVAG on the noisy quadratic (``quadratic.noisy``, default options: d = 100, rotated,
    well-conditioned, :math:`\nu = 0.1`, batch 1) uses the *true* moments,

    .. math:: \gamma = \frac{1}{1 + \eta^2}, \quad \eta_i^2 = \frac{\sigma_i^2}{\nabla\mathcal L_i^2},
        \quad \nabla\mathcal L = Q\theta, \quad \sigma^2 = \operatorname{diag}(\nu^2 Q Q),
        \qquad \theta \leftarrow \theta - \alpha\,\gamma \odot g,

    computed by :func:`adamlab.functional.dissected_pieces` fed with :math:`m = \nabla\mathcal L`,
    :math:`v = \nabla\mathcal L^2 + \sigma^2` and :math:`\rho = 0` (then its :math:`s = v - m^2 =
    \sigma^2`). Measured: the least-squares slope of :math:`\log L` against :math:`\log t` over the
    second half of each run, one slope per seed, and a 95% Student-t interval over the seeds. The claim
    holds when the interval lies in [-1.2, -0.8]. Next to it, on the same noise: constant-lr SGD (theory:
    it stalls at its noise floor :math:`L_\infty = \frac{\alpha\nu^2}{2}\sum_i \lambda_i^2/(2 -
    \alpha\lambda_i)`, slope 0) and the practical M-SVAG (``adamlab.optim.MSVAG``; the seed claims the
    rate for the idealized version only; its estimated :math:`\gamma = m^2/(m^2 + \rho s)` tends to about
    1/2, not 0, as :math:`\nabla\mathcal L \to 0`, because :math:`m^2` carries :math:`m`'s own variance
    :math:`\rho\sigma^2`, so it stalls too).

``ill_conditioning`` and ``ill_conditioning_normalized`` (seed 000, quoting Zhang et al. 2017, ND-Adam:
"suppose we have two DNNs that parameterize the same function, but with some of the input weight
vectors having different magnitudes, applying the same SGD or Adam update rule will, in general,
change the network functions in different ways.")
    Two one-hidden-layer ReLU networks compute the same function. ``ill_conditioning``: network B has the
    hidden units' input weights scaled by :math:`c_i \in [1/3, 3]` and their output weights by
    :math:`1/c_i` (:math:`W_1' = C W_1`, :math:`W_2' = W_2 C^{-1}`). ``ill_conditioning_normalized``: the
    hidden pre-activations are divided by the norm of each input weight vector (the scale invariance
    batch normalisation gives), so B is just :math:`W_1' = C W_1`. Both are trained from the same data
    for a few steps with the same optimizer. Measured: the function-space gap
    :math:`\operatorname{RMS}(f_A - f_B)` on held-out inputs, relative to how far A moved,
    :math:`\operatorname{RMS}(f_A - f_{A,0})`. Theory: SGD on B is SGD on A with per-unit learning rates
    :math:`\alpha/c_i^2` (input weights) and :math:`\alpha c_i^2` (output weights), Adam the same with
    :math:`\alpha/c_i` and :math:`\alpha c_i` (its step is invariant to rescaled *gradients*, not to
    rescaled *parameters*), so neither is invariant: an optimizer is predicted *not* to remove the gap
    unless its class's ``theory`` says so. ND-Adam's does: it keeps each normalised input weight vector
    on the unit sphere, which removes the gap where the function does not depend on those norms
    (``_normalized``); where the rescaling is compensated by the output layer, which it does not
    normalise, it does not. Which tensors an optimizer normalises is a param-group option its class
    names (``normalize_key``).

``eps_dominance`` (Kingma & Ba 2015, sec. 6.3, via seed 003's CNN slide: "Second momentum vanishes")
    Adam trains ``fmnist.cnn`` (Fashion-MNIST, Balles & Hennig's P1 network; *not* the paper's CIFAR-10
    CNN, which needs data not present here). Every ``every`` steps the step is taken apart with
    :class:`adamlab.dissect.StepRecorder` and the fraction of coordinates with
    :math:`\sqrt{\hat v} < \epsilon` is read from the pieces' ``second_moment`` (no re-derivation),
    among the coordinates with :math:`\hat v > 0` (the measured number; a coordinate with
    :math:`\hat v = 0` never had a gradient, so nothing vanished) and over all coordinates.
    Theory (the paper): the fraction grows during training ("after a few epochs"). The default
    ``adamlab verify`` makes a short run (no prediction at that length); ``adamlab verify --data`` the
    long one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from adamlab import functional as F
from adamlab.claims.records import (
    DTYPE,
    Record,
    claims_device,
    known,
    make_record,
    predicted,
    probe,
    theory_fact,
)

#: The interval the SVAG slope's 95% interval must lie in (issue 13).
RATE_BAND = (-1.2, -0.8)


# -- helpers --------------------------------------------------------------------------------------------
@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (restored after).

    The checks step tiny tensors thousands of times; on a busy 2-core host two threads made such a
    loop 20x slower (5,000 SVAG steps: 138 s with 2 threads, 6.8 s with 1, loaded host).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def t_quantile_975(df: int) -> float:
    """The 0.975 quantile of Student's t with ``df`` degrees of freedom (table for df <= 30, else normal)."""
    table = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
             2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
             2.045, 2.042)
    if df < 1:
        raise ValueError(f"df must be >= 1, got {df}")
    return table[df - 1] if df <= len(table) else 1.96


def loglog_slope(losses: Tensor, start: int | None = None) -> Tensor:
    r"""Least-squares slope of :math:`\log L_t` against :math:`\log t` for :math:`t \in [start, T]`.

    Parameters
    ----------
    losses:
        ``[T]`` or ``[T, S]``: the loss after step t = 1..T (one column per seed), all > 0.
    start:
        First step of the fit (1-based); default ``T // 2 + 1``, the second half of the run.

    Returns
    -------
    Tensor
        One slope per column (0-dim for a 1-D input). :math:`L = c/t` gives exactly -1.
    """
    y = losses if losses.dim() == 2 else losses[:, None]
    steps = y.shape[0]
    lo = steps // 2 + 1 if start is None else int(start)
    if not 1 <= lo < steps:
        raise ValueError(f"start must be in [1, {steps - 1}], got {lo}")
    if bool((y[lo - 1:] <= 0).any()):
        raise ValueError("losses: must be > 0 over the fitted range (log L)")
    x = torch.arange(lo, steps + 1, dtype=DTYPE).log()
    ly = y[lo - 1:].to(DTYPE).log()
    xc = x - x.mean()
    slope = (xc[:, None] * (ly - ly.mean(0))).sum(0) / (xc * xc).sum()
    return slope if losses.dim() == 2 else slope[0]


def seed_interval(values: Tensor) -> tuple[float, float, float]:
    """``(mean, low, high)``: the mean and its 95% Student-t interval over seeds (needs >= 2 values)."""
    n = values.numel()
    if n < 2:
        raise ValueError(f"values: need at least 2 seeds for an interval, got {n}")
    mean = float(values.mean())
    half = t_quantile_975(n - 1) * float(values.std(unbiased=True)) / math.sqrt(n)
    return mean, mean - half, mean + half


# -- item 1: idealized SVAG converges at O(1/t) ----------------------------------------------------------
def idealized_svag_step(theta: Tensor, g: Tensor, true_grad: Tensor, sigma2: Tensor, lr: float) -> Tensor:
    r"""One idealized SVAG step :math:`\theta - \alpha \gamma \odot g`, :math:`\gamma = 1/(1+\sigma^2/\nabla L^2)`.

    :math:`\gamma` comes from :func:`adamlab.functional.dissected_pieces` (the SVAG corner: gradient
    direction, variance adaptation, no momentum) fed with the true moments
    :math:`m = \nabla\mathcal L`, :math:`v = \nabla\mathcal L^2 + \sigma^2` and :math:`\rho = 0`.
    """
    svag = F.PRESETS["svag"]
    d, gamma = F.dissected_pieces(g, true_grad, true_grad * true_grad + sigma2,
                                  variance_factor=F.variance_factor(0.0, momentum=False),
                                  direction=svag["direction"], variance_adaptation=svag["variance_adaptation"],
                                  momentum=svag["use_momentum"])
    return theta - lr * (d * gamma)


def svag_rate_curves(*, seeds: int = 8, steps: int = 20_000, lr: float = 0.5, seed: int = 0,
                     options: dict[str, Any] | None = None) -> dict[str, Any]:
    """Loss curves ``[steps, seeds]`` of idealized SVAG, SGD and M-SVAG on ``quadratic.noisy``.

    All three see the same noise draws (seed ``seed``); each column is one seed. Returns
    ``{"ideal", "sgd", "msvag": Tensor, "floor": SGD's theoretical noise floor, "problem": ...}``.
    """
    from adamlab import problems
    from adamlab.optim.registry import make_optimizer

    prob = problems.get("quadratic.noisy", **(options or {}))
    hess = torch.from_numpy(prob.hessian64)
    cov = torch.from_numpy(prob.noise_covariance(1))
    sigma2 = torch.diagonal(cov).clone()
    chol = torch.linalg.cholesky(cov + 1e-300 * torch.eye(prob.d, dtype=DTYPE)) if prob.nu > 0 else None
    gen = torch.Generator().manual_seed(seed)
    theta0 = torch.ones(seeds, prob.d, dtype=DTYPE)
    ideal, sgd = theta0.clone(), theta0.clone()
    msvag = theta0.clone().requires_grad_(True)
    opt = make_optimizer("msvag", [msvag], lr=lr)

    def loss(th: Tensor) -> Tensor:
        return 0.5 * ((th @ hess) * th).sum(1)

    out = {k: torch.empty(steps, seeds, dtype=DTYPE) for k in ("ideal", "sgd", "msvag")}
    with torch.no_grad(), single_thread():
        for t in range(steps):
            noise = torch.zeros_like(theta0) if chol is None else \
                torch.randn(seeds, prob.d, generator=gen, dtype=DTYPE) @ chol.T
            true = ideal @ hess  # Q symmetric: rows of theta times Q
            ideal = idealized_svag_step(ideal, true + noise, true, sigma2, lr)
            sgd = sgd - lr * (sgd @ hess + noise)
            msvag.grad = msvag.detach() @ hess + noise
            opt.step()
            out["ideal"][t], out["sgd"][t], out["msvag"][t] = loss(ideal), loss(sgd), loss(msvag.detach())
    lam = torch.from_numpy(prob.eigenvalues64)
    floor = float(0.5 * lr * prob.nu**2 * (lam**2 / (2 - lr * lam)).sum())
    return {**out, "floor": floor, "problem": prob}


def check_svag_idealized_rate(*, seed: int = 0, seeds: int = 8, steps: int = 10_000, lr: float = 0.5,
                              **_: Any) -> list[Record]:
    """Records for idealized SVAG (the claim), constant-lr SGD and M-SVAG (see the module docstring)."""
    curves = svag_rate_curves(seeds=seeds, steps=steps, lr=lr, seed=seed)
    prob = curves["problem"]
    lo, hi = RATE_BAND
    setup = (f"quadratic.noisy d={prob.d}, {prob.options['rotation']}, {prob.options['spectrum']}, nu={prob.nu:g}, "
             f"batch 1, lr={lr:g} constant, {steps} steps, {seeds} seeds; slope of log L vs log t over "
             f"steps {steps // 2 + 1}..{steps}, 95% t-interval over seeds")
    floor = curves["floor"]
    # (curve, record label, theory: O(1/t)?, expected, what to add about the second half's mean loss)
    claims = (
        ("ideal", "svag-ideal", True, f"O(1/t): slope interval inside [{lo}, {hi}] (seed 002)", None),
        ("sgd", "sgd", False, f"stalls at its noise floor (slope ~ 0; L_inf = {floor:.4g} by theory)",
         f"vs theoretical floor {floor:.4g}"),
        ("msvag", "msvag", False, "stalls: the estimated gamma tends to about 1/2, not 0, as grad L -> 0 (m^2 "
         "carries m's own variance rho sigma^2), so the step does not shrink like the ideal one",
         f"(SGD's floor at this lr: {floor:.4g})"),
    )
    records = []
    for name, label, theory, expected, versus in claims:
        slopes = loglog_slope(curves[name])
        mean, low, high = seed_interval(slopes)
        has = lo <= low and high <= hi
        final = float(curves[name][-1].mean())
        half = float(curves[name][steps // 2:].mean())
        extra = "" if versus is None else f"; mean L over the 2nd half {half:.4g} {versus}"
        records.append(make_record(label, "svag_idealized_rate", mean, has, theory, expected,
                               f"{setup}: slope {mean:.3f} [{low:.3f}, {high:.3f}], per seed "
                               f"{', '.join(f'{s:.3f}' for s in slopes.tolist())}; final L {final:.3g}{extra}"))
    return records


# -- item 2: the ill-conditioning problem (two networks, one function) -----------------------------------
class TwoLayerNet(nn.Module):
    r""":math:`f(x) = W_2 \operatorname{relu}(z) + b_2`, :math:`z = W_1 x` (or :math:`z_i = w_i^\top x/\|w_i\|`).

    ``normalized=True`` divides each hidden pre-activation by the norm of the unit's input weight vector
    (the scale invariance batch normalisation gives), so :math:`f` does not depend on those norms.
    """

    def __init__(self, w1: Tensor, w2: Tensor, b2: Tensor, *, normalized: bool) -> None:
        super().__init__()
        self.hidden = nn.Linear(w1.shape[1], w1.shape[0], bias=False).to(w1.dtype)
        self.out = nn.Linear(w2.shape[1], w2.shape[0]).to(w2.dtype)
        with torch.no_grad():
            self.hidden.weight.copy_(w1)
            self.out.weight.copy_(w2)
            self.out.bias.copy_(b2)
        self.normalized = normalized

    def forward(self, x: Tensor) -> Tensor:
        z = self.hidden(x)
        if self.normalized:
            z = z / self.hidden.weight.norm(dim=1)
        return self.out(torch.relu(z))


def equivalent_pair(seed: int, *, normalized: bool, d_in: int = 6, hidden: int = 16, d_out: int = 2,
                    c_range: float = 3.0) -> tuple[TwoLayerNet, TwoLayerNet, Tensor]:
    r"""Networks A and B computing the same function, and the scales :math:`c_i \in [1/c, c]` (log-uniform).

    B has :math:`W_1' = C W_1` and, unless ``normalized``, :math:`W_2' = W_2 C^{-1}`
    (:math:`\operatorname{relu}(c z)/c = \operatorname{relu}(z)` for :math:`c > 0`).
    """
    g = torch.Generator().manual_seed(seed)
    w1 = torch.randn(hidden, d_in, dtype=DTYPE, generator=g) / math.sqrt(d_in)
    w2 = torch.randn(d_out, hidden, dtype=DTYPE, generator=g) / math.sqrt(hidden)
    b2 = 0.1 * torch.randn(d_out, dtype=DTYPE, generator=g)
    c = torch.exp(torch.empty(hidden, dtype=DTYPE).uniform_(-math.log(c_range), math.log(c_range), generator=g))
    a = TwoLayerNet(w1, w2, b2, normalized=normalized)
    b = TwoLayerNet(c[:, None] * w1, w2 if normalized else w2 / c[None, :], b2, normalized=normalized)
    return a, b, c


def _regression_data(seed: int, d_in: int, d_out: int, n: int) -> tuple[Tensor, Tensor, Tensor]:
    g = torch.Generator().manual_seed(seed + 7919)
    teacher = torch.randn(d_out, d_in, dtype=DTYPE, generator=g)
    x = torch.randn(n, d_in, dtype=DTYPE, generator=g)
    y = torch.tanh(x @ teacher.T) + 0.1 * torch.randn(n, d_out, dtype=DTYPE, generator=g)
    held_out = torch.randn(256, d_in, dtype=DTYPE, generator=g)
    return x, y, held_out


def param_groups(name: str, model: TwoLayerNet) -> list[dict[str, Any]] | list[Tensor]:
    """The parameters as the optimizer ``name`` wants them.

    An optimizer whose class names a ``normalize_key`` (the param-group option that marks weight vectors
    to normalise: ND-Adam's ``normalized``) normalises the hidden layer's input weight vectors (rows of
    ``hidden.weight``) and treats the output layer as plain parameters, as in Zhang et al.'s Algorithm 1.
    Every other optimizer gets the parameter list.
    """
    from adamlab.optim.registry import optimizer_class

    key = getattr(optimizer_class(name), "normalize_key", None) if known(name) else None
    if key is None:
        return list(model.parameters())
    return [{"params": [model.hidden.weight], key: True},
            {"params": [model.out.weight, model.out.bias], key: False}]


def function_gap(name: str, *, seed: int = 0, normalized: bool = False, steps: int = 10, lr: float = 1e-2,
                 factory: Callable[..., torch.optim.Optimizer] | None = None,
                 batch: int = 16) -> dict[str, float]:
    r"""Train the equivalent pair A, B with optimizer ``name`` for ``steps`` steps on the same batches.

    Returns ``{"gap0", "gap", "moved", "relative"}``: the RMS output difference on held-out inputs before
    any step (``gap0``) and after (``gap``), how far A moved in function space, and ``gap / moved``.
    """
    a, b, _ = equivalent_pair(seed, normalized=normalized)
    x, y, held = _regression_data(seed, a.hidden.weight.shape[1], a.out.weight.shape[0], 256)
    order = torch.randint(0, x.shape[0], (steps, batch), generator=torch.Generator().manual_seed(seed + 1))
    with single_thread():
        return _train_pair(name, a, b, x, y, held, order, lr, factory)


def _train_pair(name: str, a: TwoLayerNet, b: TwoLayerNet, x: Tensor, y: Tensor, held: Tensor, order: Tensor,
                lr: float, factory: Callable[..., torch.optim.Optimizer] | None) -> dict[str, float]:
    from adamlab.optim.registry import make_optimizer

    with torch.no_grad():
        f0 = a(held)
        gap0 = float((f0 - b(held)).square().mean().sqrt())
    opts = []
    for net in (a, b):
        params = param_groups(name, net)
        opts.append(factory(params, lr=lr) if factory is not None else make_optimizer(name, params, lr=lr))
    for idx in order:
        for net, opt in zip((a, b), opts, strict=True):
            opt.zero_grad()
            (0.5 * (net(x[idx]) - y[idx]).square().sum(1).mean()).backward()
            opt.step()
    with torch.no_grad():
        fa, fb = a(held), b(held)
        gap = float((fa - fb).square().mean().sqrt())
        moved = float((fa - f0).square().mean().sqrt())
    return {"gap0": gap0, "gap": gap, "moved": moved, "relative": gap / max(moved, 1e-300)}


#: A relative gap below this counts as "moves the two networks the same way" (float64 rounding ~1e-14).
GAP_TOL = 1e-6
#: Why an optimizer is predicted not to remove the gap, where its class gives no reason of its own.
GAP_WHY = "the update depends on the parameters' scale (SGD: per-unit lr/c^2, Adam-like: lr/c)"


def check_ill_conditioning(name: str, *, seed: int = 0, normalized: bool = False, steps: int = 10,
                           lr: float = 1e-2, factory: Callable[..., torch.optim.Optimizer] | None = None,
                           **_: Any) -> Record:
    """Function-space gap of two equivalent networks after ``steps`` steps (seed 000, Zhang et al. 2017)."""
    prop = "ill_conditioning_normalized" if normalized else "ill_conditioning"
    r = function_gap(name, seed=seed, normalized=normalized, steps=steps, lr=lr, factory=factory)
    has = r["relative"] < GAP_TOL
    theory = bool(predicted(name, prop))  # not invariant unless the class's theory says so
    why = theory_fact(probe(name), f"{prop}.why") if known(name) else None
    if theory:
        expected = "same function after the steps" + (f" ({why})" if why else "")
    else:
        expected = f"gap > 0: {why or GAP_WHY}"
    pair = ("pre-activations divided by |w_i|, B: W1' = C W1" if normalized
            else "ReLU, B: W1' = C W1, W2' = W2 C^-1")
    details = (f"1-hidden-layer net 6-16-2 ({pair}), c_i in [1/3, 3]; {steps} steps, lr={lr:g}, batch 16; "
               f"held-out RMS(f_A - f_B) before {r['gap0']:.2g}, after {r['gap']:.3g}; A moved {r['moved']:.3g}; "
               f"relative gap {r['relative']:.3g}; same function: {'yes' if has else 'no'}")
    return make_record(name, prop, r["relative"], has, theory, expected, details)


def check_ill_conditioning_normalized(name: str, **kwargs: Any) -> Record:
    """:func:`check_ill_conditioning` on the scale-invariant (normalised) hidden layer."""
    return check_ill_conditioning(name, normalized=True, **kwargs)


# -- item 5: the second moment "vanishes" (sqrt(v_hat) < eps) in a CNN -------------------------------------
class EpsFractionProbe:
    r"""Fraction of coordinates whose :math:`\sqrt{\hat v}` is below Adam's :math:`\epsilon`, from the pieces.

    ``probe(pieces, eps, names)`` returns ``{"all": f, "all_nonzero": f', <param name>: f, ...}``: over all
    coordinates, over coordinates with :math:`\hat v > 0` (a dead unit's exactly-zero gradient is
    excluded), and per parameter. ``pieces`` are :class:`adamlab.dissect.StepPieces` of an Adam step.
    """

    def __call__(self, pieces: Sequence[Any], eps: float, names: Sequence[str]) -> dict[str, float]:
        below = total = below_nz = total_nz = 0
        out: dict[str, float] = {}
        for piece in pieces:
            v = piece.second_moment
            if v is None:
                raise ValueError("pieces: no second_moment (the optimizer is not Adam-like)")
            small = v.sqrt() < eps
            nonzero = v > 0
            below += int(small.sum())
            total += v.numel()
            below_nz += int((small & nonzero).sum())
            total_nz += int(nonzero.sum())
            out[names[piece.index]] = float(small.double().mean()) if v.numel() else 0.0
        out["all"] = below / max(total, 1)
        out["all_nonzero"] = below_nz / max(total_nz, 1)
        return out


def eps_fraction_curve(*, steps: int, every: int, seed: int = 0, lr: float = 1e-3, batch_size: int = 64,
                       problem: str = "fmnist.cnn", root: str | None = None,
                       log: Callable[[str], None] | None = None, **hparams: Any) -> list[dict[str, float]]:
    """Train Adam (defaults, lr 1e-3) on ``problem`` and record :class:`EpsFractionProbe` every ``every`` steps.

    ``hparams`` go to the optimizer (e.g. ``fused=False``: the reference path, no kernel compile).
    """
    from adamlab import problems
    from adamlab.dissect.decompose import StepRecorder
    from adamlab.optim.registry import make_optimizer

    prob = problems.get(problem, root=root) if root is not None else problems.get(problem)
    device = claims_device(torch.float32)  # adamlab verify --device: data held there, the model moved there
    prob.set_device(device)
    torch.manual_seed(seed)
    model = prob.make_model(seed)
    if device.type != "cpu":
        model = model.to(device)
    names = [n for n, _ in model.named_parameters()]
    opt = make_optimizer("adam", model.parameters(), lr=lr, **hparams)
    eps = float(opt.param_groups[0]["eps"])
    batches = prob.train_batches(seed, batch_size)
    probe = EpsFractionProbe()
    rows = []
    model.train()
    for t in range(1, steps + 1):
        batch = next(batches)
        opt.zero_grad()
        loss = prob.loss(model, batch)
        loss.backward()
        if t % every == 0 or t in (1, steps):
            with StepRecorder(opt) as rec:
                opt.step()
            row = {"step": float(t), "loss": float(loss.detach()), **probe(rec.pieces, eps, names)}
            rows.append(row)
            if log is not None:
                log(f"  step {t}: loss {row['loss']:.4f}, fraction sqrt(v_hat) < eps {row['all']:.4f} "
                    f"(excluding v_hat = 0: {row['all_nonzero']:.4f}); " + ", ".join(
                        f"{k} {v:.3g}" for k, v in row.items() if k not in ("step", "loss", "all", "all_nonzero")))
        else:
            opt.step()
    return rows


#: ``adamlab verify --data``: two epochs of fmnist.cnn (937 batches of 64 each).
LONG_STEPS = 1874


def check_eps_dominance(*, seed: int = 0, long: bool = False, steps: int | None = None, every: int | None = None,
                        root: str | None = None, batch_size: int = 64,
                        log: Callable[[str], None] | None = None, **hparams: Any) -> list[Record]:
    """The fraction of sqrt(v_hat) < eps during Adam training of ``fmnist.cnn`` (Adam paper sec. 6.3)."""
    from adamlab.data.errors import DataIntegrityError

    steps = steps or (LONG_STEPS if long else 30)
    every = every or (max(1, steps // 15))
    try:
        rows = eps_fraction_curve(steps=steps, every=every, seed=seed, root=root, batch_size=batch_size,
                                  log=log, **hparams)
    except (FileNotFoundError, DataIntegrityError) as exc:
        return [make_record("adam", "eps_dominance", float("nan"), False, None, "not run: Fashion-MNIST is missing",
                        f"fmnist.cnn needs Fashion-MNIST (set ADAMLAB_DATA): {str(exc).splitlines()[0]}")]
    return [eps_record(rows, steps=steps, seed=seed, batch_size=batch_size, long=long)]


def eps_record(rows: Sequence[dict[str, float]], *, steps: int, seed: int, batch_size: int, long: bool) -> Record:
    r"""The ``eps_dominance`` record from the rows of :func:`eps_fraction_curve`.

    The verdict reads the fraction among coordinates with :math:`\hat v > 0`: a coordinate whose
    :math:`\hat v` is exactly 0 has had a zero gradient on every batch so far (an input that is always 0,
    a unit dead from the start), so it never had a second moment that could vanish; those are reported
    apart. "Grows" means the last value exceeds the smallest after step 1 by more than 5% (at step 1,
    :math:`\hat v = g_1^2`, and every coordinate with a zero gradient on the first batch counts).
    """
    last = rows[-1]
    later = rows[1:] or rows
    low = min(later, key=lambda r: r["all_nonzero"])
    low_all = min(later, key=lambda r: r["all"])
    grows = last["all_nonzero"] > low["all_nonzero"] * 1.05
    grows_all = last["all"] > low_all["all"] * 1.05
    theory = True if long else None
    expected = ("grows during training (Kingma & Ba sec. 6.3: v_hat 'vanishes to zeros after a few epochs')"
                if long else f"no prediction at {steps} steps (the paper speaks of epochs; use --data)")
    layers = {k: v for k, v in last.items() if k not in ("step", "loss", "all", "all_nonzero")}
    per_layer = ", ".join(f"{k} {v:.3g}" for k, v in layers.items())
    curve = ", ".join(f"{int(r['step'])}: {r['all_nonzero']:.4f}" for r in rows)
    curve_all = ", ".join(f"{int(r['step'])}: {r['all']:.4f}" for r in rows)
    details = (f"fmnist.cnn (Fashion-MNIST, P1 2c2d; not the paper's CIFAR-10 CNN), Adam lr=1e-3, eps=1e-8, "
               f"batch {batch_size}, seed {seed}, {steps} steps ({steps / 937:.2f} epochs); fraction with "
               f"sqrt(v_hat) < eps among coordinates with v_hat > 0 at step {curve}; grows: "
               f"{'yes' if grows else 'no'} (end {last['all_nonzero']:.4f} vs min {low['all_nonzero']:.4f} at step "
               f"{int(low['step'])}); over all coordinates (v_hat = 0 included) at step {curve_all}; grows: "
               f"{'yes' if grows_all else 'no'}; per parameter at the end: {per_layer}; final batch loss "
               f"{last['loss']:.3f}")
    return make_record("adam", "eps_dominance", last["all_nonzero"], grows, theory, expected, details)


#: Claim properties that give several records (not one per optimizer).
CLAIM_CHECKS: dict[str, Callable[..., list[Record]]] = {
    "svag_idealized_rate": check_svag_idealized_rate,
    "eps_dominance": check_eps_dominance,
}
#: Per-optimizer properties.
OPTIMIZER_CHECKS: dict[str, Callable[..., Record]] = {
    "ill_conditioning": check_ill_conditioning,
    "ill_conditioning_normalized": check_ill_conditioning_normalized,
}

