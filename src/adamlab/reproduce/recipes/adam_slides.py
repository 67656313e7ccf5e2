r"""Seed 003's three picture slides, measured: acceleration, noise cancelling, sparsity.

Seed 003 (a lecture on Kingma & Ba) shows three pictures without numbers: "Power of Momentum:
Acceleration" (trajectories of gradient descent, gradient descent with momentum and Adam),
"Power of Momentum: Noise Cancelling" (the same with noisy gradients) and "Second moment helps with
sparsity". This recipe draws them and puts a number on each.

1. **Acceleration.** :math:`L(\theta) = \frac12 \theta^\top Q \theta` in 2-D, :math:`Q = R\,
   \operatorname{diag}(1, 1/\kappa)\, R^\top` with :math:`\kappa = 100` and :math:`R` a rotation by 30
   degrees, :math:`\theta_0 = R(-1, 10)` (far along the flat direction). Methods (adamlab's optimizers):
   ``sgd`` (GD), ``momentum`` (heavy ball, :math:`\rho = 0.9`) and ``adam`` (defaults). Measured: the
   steps to reach :math:`L \le 10^{-4} L(\theta_0)`. Theory: GD with its best constant lr
   :math:`2/(\lambda_{\min}+\lambda_{\max})` contracts the error by :math:`(\kappa-1)/(\kappa+1)` per step,
   heavy ball with :math:`\rho = 0.9` (lr in its stable range) by :math:`\sqrt\rho`, i.e.
   :math:`\approx 230` against :math:`\approx 87` steps.
2. **Noise cancelling.** The same problem with :math:`g = Q\theta + \sigma \xi`, :math:`\xi \sim
   \mathcal N(0, I)`, :math:`\sigma = 0.05`, 8 seeds. Measured: the mean cosine between the update and
   the true descent direction :math:`-\nabla L(\theta)` (a noise-free step has 1), the mean cosine
   between consecutive updates (smoothness), and the loss averaged over the last quarter of the run
   (the noise floor). The claim is read as smoothness and floor; the alignment is reported too (a
   momentum step lags the current gradient, so it can align *worse* with it).
3. **Sparsity.** Linear regression :math:`y = w_*^\top x + 0.1\,\epsilon` with 20 binary features:
   10 frequent (present with probability 0.5) and 10 rare (probability 0.01); squared loss,
   batch 8, :math:`w_0 = 0`. Methods ``sgd``, ``adagrad``, ``adam``. Measured: the steps until the
   rare coordinates' mean squared error falls to 10% of its initial value (and the same for the
   frequent ones); "how much faster" is SGD's steps over the adaptive method's, and each method's rare
   over frequent steps says how much the rare features lag.

Protocol (full): lr grid :math:`10^{-3} \ldots 10^{1}` (quarter decades, 17 values); each method's lr is
tuned on seed 0 for the lowest final loss (acceleration: after 400 steps; noise: mean over the last
quarter of 400 steps; sparsity: the mean of :math:`\log_{10}\|w - w_*\|^2` over the run, which rewards
speed; 3,000 steps), then rerun on seeds
0..7 (noise) or 0..3 (sparsity). Quick: lr grid in half decades (9 values), 2,000 regression steps,
seeds 0..3 (noise) and 0, 1 (sparsity). Selection: lowest final loss.

Claims: (1) momentum reaches the target in fewer steps than GD (acceleration) and Adam too;
(2) momentum's path is smoother than GD's and ends at a lower loss floor (noise cancelling); (3) AdaGrad and Adam learn the rare coordinates faster than SGD (sparsity).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from adamlab.plotting import LOG_FLOOR, log_scale, pyplot, quick_stamp, save_figure
from adamlab.reproduce.base import Claim, Protocol, Setting, Variant, register
from adamlab.reproduce.recipes.standalone import StandaloneRecipe

DTYPE = torch.float64
KAPPA = 100.0
ANGLE = math.pi / 6
SIGMA = 0.05
TARGET = 1e-4
QUAD_STEPS = 400
SPARSE_STEPS = 3000
QUICK_SPARSE_STEPS = 2000
MOMENTUM_METHODS = ("sgd", "momentum", "adam")
SPARSE_METHODS = ("sgd", "adagrad", "adam")
N_FREQ, N_RARE, P_FREQ, P_RARE = 10, 10, 0.5, 0.01


def rotation() -> Tensor:
    c, s = math.cos(ANGLE), math.sin(ANGLE)
    return torch.tensor([[c, -s], [s, c]], dtype=DTYPE)


def hessian() -> Tensor:
    """:math:`Q = R \\operatorname{diag}(1, 1/\\kappa) R^\\top`."""
    r = rotation()
    return r @ torch.diag(torch.tensor([1.0, 1.0 / KAPPA], dtype=DTYPE)) @ r.T


def start() -> Tensor:
    return rotation() @ torch.tensor([-1.0, 10.0], dtype=DTYPE)


def quad_loss(theta: Tensor, q: Tensor) -> Tensor:
    """Row-wise :math:`\\frac12 \\theta^\\top Q \\theta` of ``theta`` [S, 2]."""
    return 0.5 * ((theta @ q) * theta).sum(-1)


def theory_steps(target: float = TARGET) -> dict[str, float]:
    r"""Steps to :math:`L \le` ``target`` :math:`L_0` predicted by the contraction rates (module docstring)."""
    gd = (KAPPA - 1) / (KAPPA + 1)
    hb = math.sqrt(0.9)
    # L ~ rate^(2t)
    return {"sgd": math.log(target) / (2 * math.log(gd)), "momentum": math.log(target) / (2 * math.log(hb))}


def run_quadratic(method: str, lr: float, steps: int, seeds: int, sigma: float, seed0: int = 0) -> dict[str, Tensor]:
    """``seeds`` runs (rows of one parameter) of ``method`` on the 2-D quadratic, noise ``sigma``.

    Returns ``{"traj": [steps+1, S, 2], "loss": [steps+1, S], "align": [steps, S], "smooth": [steps-1, S]}``:
    ``align`` is cos(update, -grad L) and ``smooth`` cos(update_t, update_{t-1}).
    """
    from adamlab.claims.seed_claims import single_thread
    from adamlab.optim.registry import make_optimizer

    q = hessian()
    theta = start().repeat(seeds, 1).clone().requires_grad_(True)
    opt = make_optimizer(method, [theta], lr=lr)
    gen = torch.Generator().manual_seed(1000 + seed0)
    traj = [theta.detach().clone()]
    align, smooth, prev = [], [], None
    with single_thread():
        for _ in range(steps):
            with torch.no_grad():
                true = theta @ q
                theta.grad = true + sigma * torch.randn(seeds, 2, dtype=DTYPE, generator=gen)
                before = theta.detach().clone()
            opt.step()
            with torch.no_grad():
                move = theta.detach() - before
                align.append(torch.nn.functional.cosine_similarity(move, -true, dim=1))
                if prev is not None:
                    smooth.append(torch.nn.functional.cosine_similarity(move, prev, dim=1))
                prev = move
                traj.append(theta.detach().clone())
    t = torch.stack(traj)
    return {"traj": t, "loss": quad_loss(t, q), "align": torch.stack(align),
            "smooth": torch.stack(smooth) if smooth else torch.zeros(0, seeds, dtype=DTYPE)}


def steps_to(curve: np.ndarray, level: float) -> int | None:
    """First index where ``curve`` <= ``level`` (None if never)."""
    hit = np.nonzero(curve <= level)[0]
    return int(hit[0]) if hit.size else None


def _tune(score: Callable[[float], float], grid: list[float]) -> tuple[float, dict[str, float]]:
    scores = {lr: score(lr) for lr in grid}
    finite = {lr: s for lr, s in scores.items() if math.isfinite(s)}
    best = min(finite, key=lambda lr: (finite[lr], lr)) if finite else grid[0]
    return best, {f"{lr:.4g}": (s if math.isfinite(s) else None) for lr, s in scores.items()}


def _safe(x: Tensor) -> float:
    v = float(x)
    return v if math.isfinite(v) else math.inf


# -- sparsity ------------------------------------------------------------------------------------------
def sparse_data(seed: int) -> tuple[Tensor, Tensor]:
    """``w_*`` (d = 20) and the feature probabilities (10 frequent, 10 rare)."""
    g = torch.Generator().manual_seed(seed)
    w_star = torch.randn(N_FREQ + N_RARE, dtype=DTYPE, generator=g)
    probs = torch.tensor([P_FREQ] * N_FREQ + [P_RARE] * N_RARE, dtype=DTYPE)
    return w_star, probs


def run_sparse(method: str, lr: float, steps: int, seeds: list[int], batch: int = 8) -> dict[str, Tensor]:
    """Rows = seeds; returns the rare / frequent mean squared errors ``[steps+1, S]`` and the total."""
    from adamlab.claims.seed_claims import single_thread
    from adamlab.optim.registry import make_optimizer

    stars = torch.stack([sparse_data(s)[0] for s in seeds])
    probs = sparse_data(0)[1]
    w = torch.zeros_like(stars).requires_grad_(True)
    opt = make_optimizer(method, [w], lr=lr)
    gen = torch.Generator().manual_seed(2000 + seeds[0])
    freq, rare = slice(0, N_FREQ), slice(N_FREQ, None)
    err = [(w.detach() - stars).square()]
    with single_thread():
        for _ in range(steps):
            with torch.no_grad():
                x = (torch.rand(len(seeds), batch, probs.numel(), dtype=DTYPE, generator=gen) < probs).to(DTYPE)
                y = (x @ stars[:, :, None])[..., 0] + 0.1 * torch.randn(len(seeds), batch, dtype=DTYPE,
                                                                          generator=gen)
                resid = (x @ w.detach()[:, :, None])[..., 0] - y  # [S, B]
                w.grad = (resid[:, :, None] * x).mean(1)  # gradient of the mean of 1/2 resid^2
            opt.step()
            err.append((w.detach() - stars).square())
    e = torch.stack(err)  # [T+1, S, d]
    return {"rare": e[:, :, rare].mean(-1), "frequent": e[:, :, freq].mean(-1), "total": e.sum(-1)}


# -- the experiment -------------------------------------------------------------------------------------
def experiment(protocol: Protocol, quick: bool, log: Any) -> dict[str, Any]:
    grid = [float(x) for x in protocol.lr_grid]
    n_noise = len(protocol.seeds)
    sparse_seeds = list(protocol.seeds)[: max(2, n_noise // 2)]
    sparse_steps = int(protocol.steps)
    out: dict[str, Any] = {"kappa": KAPPA, "sigma": SIGMA, "target": TARGET, "theory_steps": theory_steps(),
                           "sparse_steps": sparse_steps,
                           "acceleration": {}, "noise": {}, "sparsity": {}}
    # 1. acceleration (deterministic: one run)
    for m in MOMENTUM_METHODS:
        lr, scores = _tune(lambda lr, m=m: _safe(run_quadratic(m, lr, QUAD_STEPS, 1, 0.0)["loss"][-1, 0]), grid)
        r = run_quadratic(m, lr, QUAD_STEPS, 1, 0.0)
        loss = r["loss"][:, 0].numpy()
        out["acceleration"][m] = {"lr": lr, "lr_scores": scores,
                                  "steps_to_target": steps_to(loss / loss[0], TARGET),
                                  "final_loss": float(loss[-1]), "loss": loss.tolist(),
                                  "traj": r["traj"][:, 0].tolist()}
        log(f"  acceleration {m}: lr {lr:.3g}, steps to 1e-4 L0: {out['acceleration'][m]['steps_to_target']}")
    # 2. noise cancelling
    tail = QUAD_STEPS // 4
    for m in MOMENTUM_METHODS:
        lr, scores = _tune(lambda lr, m=m: _safe(run_quadratic(m, lr, QUAD_STEPS, 1, SIGMA)["loss"][-tail:].mean()),
                           grid)
        r = run_quadratic(m, lr, QUAD_STEPS, n_noise, SIGMA, seed0=1)
        out["noise"][m] = {
            "lr": lr, "lr_scores": scores,
            "floor": float(r["loss"][-tail:].mean()), "floor_per_seed": r["loss"][-tail:].mean(0).tolist(),
            "align": float(r["align"].mean()), "align_per_seed": r["align"].mean(0).tolist(),
            "smooth": float(r["smooth"].mean()), "smooth_per_seed": r["smooth"].mean(0).tolist(),
            "loss_mean": r["loss"].mean(1).tolist(), "traj": r["traj"][:, 0].tolist()}
        log(f"  noise {m}: lr {lr:.3g}, cos(update, -grad) {out['noise'][m]['align']:.3f}, "
            f"cos(consecutive) {out['noise'][m]['smooth']:.3f}, floor {out['noise'][m]['floor']:.3g}")
    # 3. sparsity
    for m in SPARSE_METHODS:
        lr, scores = _tune(lambda lr, m=m: _safe(run_sparse(m, lr, sparse_steps, [0])["total"].log10().mean()),
                           grid)
        r = run_sparse(m, lr, sparse_steps, sparse_seeds)
        rare, freq = r["rare"].mean(1).numpy(), r["frequent"].mean(1).numpy()
        out["sparsity"][m] = {"lr": lr, "lr_scores": scores, "seeds": sparse_seeds,
                              "steps_rare": steps_to(rare / rare[0], 0.1), "steps_frequent": steps_to(freq / freq[0], 0.1),
                              "final_rare": float(rare[-1] / rare[0]), "final_frequent": float(freq[-1] / freq[0]),
                              "rare": (rare / rare[0]).tolist(), "frequent": (freq / freq[0]).tolist()}
        s = out["sparsity"][m]
        log(f"  sparsity {m}: lr {lr:.3g}, steps to 10% error: rare {s['steps_rare']}, frequent {s['steps_frequent']}")
    sgd_rare = out["sparsity"]["sgd"]["steps_rare"]
    for m in SPARSE_METHODS:
        mine = out["sparsity"][m]["steps_rare"]
        out["sparsity"][m]["speedup_rare_vs_sgd"] = (
            None if mine is None else (sgd_rare / max(mine, 1) if sgd_rare is not None else math.inf))
    return out


# -- claims -----------------------------------------------------------------------------------------------
def _fmt_steps(x: int | None, cap: int) -> str:
    return f"> {cap}" if x is None else str(x)


def _acceleration(summary: dict[str, Any]) -> tuple[bool, str]:
    a = summary["results"]["acceleration"]
    th = summary["results"]["theory_steps"]
    s = {m: a[m]["steps_to_target"] for m in MOMENTUM_METHODS}
    big = QUAD_STEPS + 1
    ok = (s["momentum"] or big) < (s["sgd"] or big) and (s["adam"] or big) < (s["sgd"] or big)
    return ok, (f"steps to L <= 1e-4 L0 at the tuned lr: GD {_fmt_steps(s['sgd'], QUAD_STEPS)} (lr {a['sgd']['lr']:.3g}; "
                f"theory at the best lr {th['sgd']:.0f}), momentum 0.9 {_fmt_steps(s['momentum'], QUAD_STEPS)} "
                f"(lr {a['momentum']['lr']:.3g}; theory {th['momentum']:.0f}), Adam {_fmt_steps(s['adam'], QUAD_STEPS)} "
                f"(lr {a['adam']['lr']:.3g})")


def _noise(summary: dict[str, Any]) -> tuple[bool, str]:
    n = summary["results"]["noise"]
    ok = n["momentum"]["smooth"] > n["sgd"]["smooth"] and n["momentum"]["floor"] < n["sgd"]["floor"]
    parts = [f"{m}: cos(update, -grad L) {n[m]['align']:.3f}, cos(consecutive updates) {n[m]['smooth']:.3f}, "
             f"loss floor {n[m]['floor']:.3g} (lr {n[m]['lr']:.3g})" for m in MOMENTUM_METHODS]
    return ok, "; ".join(parts) + f" (sigma = {SIGMA}, means over seeds and steps)"


def _sparsity(summary: dict[str, Any]) -> tuple[bool, str]:
    sp = summary["results"]["sparsity"]
    cap = summary["results"]["sparse_steps"]
    big = cap + 1
    sgd = sp["sgd"]["steps_rare"] or big
    ok = all((sp[m]["steps_rare"] or big) < sgd for m in ("adagrad", "adam"))
    parts = []
    for m in SPARSE_METHODS:
        s = sp[m]
        speed = s.get("speedup_rare_vs_sgd")
        parts.append(f"{m} (lr {s['lr']:.3g}): rare {_fmt_steps(s['steps_rare'], cap)}, frequent "
                     f"{_fmt_steps(s['steps_frequent'], cap)} steps"
                     + (f", {speed:.1f}x faster than SGD on the rare ones" if m != "sgd" and speed else ""))
    return ok, "steps to 10% of the initial squared error: " + "; ".join(parts)


# -- figures ---------------------------------------------------------------------------------------------
COLORS = {"sgd": "tab:gray", "momentum": "tab:green", "adam": "tab:red", "adagrad": "tab:blue"}
NAMES = {"sgd": "GD / SGD", "momentum": "GD + momentum 0.9", "adam": "Adam", "adagrad": "AdaGrad"}


def _contours(ax: Any, traj_sets: list[np.ndarray]) -> None:
    q = hessian().numpy()
    pts = np.concatenate([t for t in traj_sets] + [np.zeros((1, 2))])
    lo, hi = pts.min(0), pts.max(0)
    pad = 0.15 * (hi - lo).max()
    xs = np.linspace(lo[0] - pad, hi[0] + pad, 200)
    ys = np.linspace(lo[1] - pad, hi[1] + pad, 200)
    gx, gy = np.meshgrid(xs, ys)
    z = 0.5 * (q[0, 0] * gx**2 + 2 * q[0, 1] * gx * gy + q[1, 1] * gy**2)
    levels = np.geomspace(max(z.min(), 1e-4), z.max(), 14)
    ax.contour(gx, gy, z, levels=levels, colors="0.75", linewidths=0.6)
    ax.plot(0, 0, "k*", ms=8)
    ax.set_aspect("equal")


def _trajectory_figure(results: dict[str, Any], key: str, out_dir: Path, quick: bool, subtitle: str,
                       stem: str, title: str) -> list[Path]:
    plt = pyplot()
    data = results[key]
    fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), layout="constrained")
    trajs = [np.asarray(data[m]["traj"]) for m in MOMENTUM_METHODS]
    for ax, m, tr in zip(axes[:3], MOMENTUM_METHODS, trajs, strict=True):
        _contours(ax, trajs)
        ax.plot(tr[:, 0], tr[:, 1], "-", color=COLORS[m], lw=0.9)
        ax.plot(tr[:60, 0], tr[:60, 1], ".", color=COLORS[m], ms=2.5)
        ax.plot(tr[0, 0], tr[0, 1], "ko", ms=4)
        if key == "acceleration":
            note = f"steps to 1e-4 L0: {_fmt_steps(data[m]['steps_to_target'], QUAD_STEPS)}"
        else:
            note = f"cos(step, -grad) {data[m]['align']:.2f}, cos(consecutive) {data[m]['smooth']:.2f}"
        ax.set_title(f"{NAMES[m]} (lr {data[m]['lr']:.3g})\n{note}", fontsize=8)
        ax.tick_params(labelsize=7)
    for m in MOMENTUM_METHODS:
        curve = np.asarray(data[m]["loss"] if key == "acceleration" else data[m]["loss_mean"])
        axes[3].plot(np.arange(curve.size), np.maximum(curve, 1e-16), color=COLORS[m], label=NAMES[m])
    log_scale(axes[3])
    axes[3].set_xlabel("step", fontsize=8)
    axes[3].set_ylabel("loss L(theta)" + ("" if key == "acceleration" else " (mean over seeds)"), fontsize=8)
    axes[3].legend(fontsize=7)
    axes[3].grid(True, alpha=0.3)
    axes[3].tick_params(labelsize=7)
    fig.suptitle(f"{title}: L = 1/2 theta^T Q theta, Q = R diag(1, 1/{KAPPA:g}) R^T (rotated 30 deg); "
                 f"first 60 steps dotted; each method at its tuned lr\n{subtitle}", fontsize=8)
    quick_stamp(fig, quick)
    paths = save_figure(fig, out_dir, stem)
    plt.close(fig)
    return paths


def _sparsity_figure(results: dict[str, Any], out_dir: Path, quick: bool, subtitle: str) -> list[Path]:
    plt = pyplot()
    sp = results["sparsity"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), layout="constrained", sharey=True)
    for ax, part, p in ((axes[0], "frequent", P_FREQ), (axes[1], "rare", P_RARE)):
        for m in SPARSE_METHODS:
            curve = np.asarray(sp[m][part])
            ax.plot(np.arange(curve.size), np.maximum(curve, LOG_FLOOR), color=COLORS[m],
                    label=f"{NAMES[m]} (lr {sp[m]['lr']:.3g}): "
                          f"{_fmt_steps(sp[m]['steps_' + part], results['sparse_steps'])} steps to 10%")
        ax.axhline(0.1, color="k", ls=":", lw=0.8)
        log_scale(ax)
        ax.set_title(f"{part} features (present with probability {p:g})", fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.legend(fontsize=7)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("mean squared error of the coordinates / initial", fontsize=8)
    fig.suptitle("Second moment helps with sparsity: linear regression, 10 frequent + 10 rare binary features, "
                 f"batch 8, mean over seeds {sp['sgd']['seeds']}; each method at its tuned lr\n{subtitle}",
                 fontsize=8)
    quick_stamp(fig, quick)
    paths = save_figure(fig, out_dir, "adam-slides_sparsity")
    plt.close(fig)
    return paths


def draw(results: dict[str, Any], out_dir: Path, quick: bool, subtitle: str) -> list[Path]:
    return (_trajectory_figure(results, "acceleration", out_dir, quick, subtitle, "adam-slides_acceleration",
                               "Power of momentum: acceleration")
            + _trajectory_figure(results, "noise", out_dir, quick, subtitle, "adam-slides_noise",
                                 f"Power of momentum: noise cancelling (g = Q theta + {SIGMA:g} xi)")
            + _sparsity_figure(results, out_dir, quick, subtitle))


_GRID_FULL = [round(10 ** (-3 + k / 4), 10) for k in range(17)]
_GRID_QUICK = [round(10 ** (-3 + k / 2), 10) for k in range(9)]

RECIPE = register(StandaloneRecipe(
    name="adam-slides",
    title="Seed 003's picture slides: momentum accelerates and cancels noise; the second moment helps with "
          "sparse features",
    settings=[Setting("2-D quadratic, kappa=100", "-", {"kappa": KAPPA}),
              Setting(f"2-D quadratic, noise sigma={SIGMA}", "-", {"kappa": KAPPA, "sigma": SIGMA}),
              Setting("sparse linear regression", "-", {"p_rare": P_RARE, "p_frequent": P_FREQ})],
    variants=[Variant(m, m) for m in ("sgd", "momentum", "adagrad", "adam")],
    full=Protocol(lr_grid=_GRID_FULL, tune_seeds=[0], seeds=list(range(8)), steps=SPARSE_STEPS,
                  note=f"{QUAD_STEPS} steps on the quadratics, {SPARSE_STEPS} on the regression; noise: 8 seeds, "
                       "sparsity: 4"),
    quick=Protocol(lr_grid=_GRID_QUICK, tune_seeds=[0], seeds=list(range(4)), steps=QUICK_SPARSE_STEPS,
                   note=f"{QUAD_STEPS} steps on the quadratics, {QUICK_SPARSE_STEPS} on the regression; noise: 4 "
                        "seeds, sparsity: 2"),
    criterion="min:final_loss",
    metrics=["steps_to_target", "align", "steps_rare"],
    claims=[
        Claim("Power of momentum, acceleration: GD with momentum (and Adam) reach the minimum of an "
              "ill-conditioned quadratic in fewer steps than GD", _acceleration),
        Claim("Power of momentum, noise cancelling: with noisy gradients the momentum path is smoother than GD's "
              "(consecutive updates agree) and ends at a lower loss floor (each at its tuned lr)", _noise),
        Claim("Second moment helps with sparsity: AdaGrad and Adam learn the rare features' weights faster "
              "than SGD", _sparsity),
    ],
    experiment=experiment,
    draw=draw,
    doc=__doc__ or "",
), order=130)
