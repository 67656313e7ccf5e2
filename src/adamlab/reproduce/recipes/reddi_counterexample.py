r"""Reddi, Kale & Kumar 2018 ("On the convergence of Adam and beyond"), sec. 3: the online counterexample.

Seed 003: "Does it actually converge? [...] Not always in practice. It depends at a great extent to the
choice of beta2." Reddi et al.'s Theorem 1 makes it concrete. On :math:`\mathcal F = [-1, 1]`,

.. math:: f_t(x) = \begin{cases} C x & t \bmod 3 = 1 \\ -x & \text{otherwise,} \end{cases}
    \qquad C = 3 \;(> 2),

so the average loss :math:`\frac{C-2}{3} x` is minimised at :math:`x = -1`. Projected Adam with
:math:`\beta_1 = 0`, :math:`\beta_2 = 1/(1 + C^2) = 0.1` and :math:`\alpha_t = \alpha/\sqrt t` drifts to
the *worst* point :math:`x = +1`: the rare large gradient :math:`C` is normalised away by
:math:`\sqrt{v_t}`, the two small gradients are not. AMSGrad's :math:`\hat v_t = \max(\hat v_{t-1}, v_t)`
remembers the large gradient and converges to :math:`-1`. We use :math:`C = 3` (Theorem 1's
construction with the smallest integer :math:`C > 2`; the paper's own synthetic experiment, sec. 5,
uses :math:`C = 1010` with period 101).

Methods: adamlab's ``adam`` and ``amsgrad`` (the optimizer classes, bias correction on as in Kingma &
Ba; Reddi et al. omit it, which changes nothing after the first few steps for small :math:`\beta_2`),
:math:`\beta_1 = 0` (Theorem 1), :math:`\epsilon = 10^{-8}`, :math:`\alpha_t = 0.1/\sqrt t`,
:math:`x_1 = 0`, projection onto [-1, 1] after every step. A sweep over :math:`\beta_2` (one param group
per value). The problem is deterministic: one run (seed) per point.

Protocol (full): :math:`\beta_2` in 25 values evenly spaced in :math:`\operatorname{logit}\beta_2` over
[0.01, 0.9999], plus :math:`1/(1+C^2)`; 100,000 steps. Quick: 13 values, 20,000 steps. The lr grid is the single
:math:`\alpha = 0.1` (no tuning: the construction fixes the step sizes; "selection" is therefore
none). Measured per :math:`\beta_2`: the final iterate :math:`x_{T+1}` and the average regret
:math:`R_T/T = \frac1T\big(\sum_t f_t(x_t) - \min_{x\in\mathcal F}\sum_t f_t(x)\big)`
(:math:`\to 2(C-2)/3 = 2/3` at :math:`x = +1`, :math:`\to 0` at :math:`x = -1`).

Claims: (1) at Theorem 1's :math:`\beta_2 = 1/(1+C^2)` Adam ends at :math:`x \approx +1` with average
regret near 2/3 while AMSGrad ends near :math:`-1`; (2) whether Adam converges depends on
:math:`\beta_2` (seed 003): for :math:`\beta_2` close to 1 it ends near :math:`-1`; (3) AMSGrad ends near
:math:`-1` for every :math:`\beta_2` of the sweep.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from adamlab.plotting import pyplot, quick_stamp, save_figure
from adamlab.reproduce.base import Claim, Protocol, Setting, Variant, register
from adamlab.reproduce.recipes.standalone import StandaloneRecipe

C = 3.0
ALPHA = 0.1
BETA1 = 0.0
THEOREM_BETA2 = 1.0 / (1.0 + C**2)
METHODS = ("adam", "amsgrad")


def coefficient(t: int, c: float = C) -> float:
    """:math:`f_t(x) = a_t x` with :math:`a_t = C` for :math:`t \\bmod 3 = 1` (t = 1, 4, 7, ...), else -1."""
    return c if t % 3 == 1 else -1.0


def best_fixed_loss(steps: int, c: float = C) -> float:
    r""":math:`\min_{x \in [-1, 1]} \sum_{t \le T} f_t(x) = -|\sum_t a_t|`."""
    return -abs(sum(coefficient(t, c) for t in range(1, steps + 1)))


def average_regret(xs: np.ndarray, c: float = C) -> float:
    r""":math:`R_T/T` for iterates ``xs`` = :math:`(x_1, \dots, x_T)` (the points where each :math:`f_t` is played)."""
    steps = len(xs)
    a = np.array([coefficient(t, c) for t in range(1, steps + 1)])
    return float((a @ np.asarray(xs, dtype=float) - best_fixed_loss(steps, c)) / steps)


def run_online(method: str, beta2s: list[float], steps: int, *, alpha: float = ALPHA, beta1: float = BETA1,
               c: float = C, x0: float = 0.0, keep: int = 400) -> dict[str, Any]:
    """Projected ``method`` (a registry name) on the counterexample, one param group per beta2.

    Returns ``{"final_x": [...], "avg_regret": [...], "steps": [...], "trajectory": [[x per kept step]]}``
    (``keep`` log-spaced steps of each trajectory).
    """
    from adamlab.claims.seed_claims import single_thread
    from adamlab.optim.registry import make_optimizer

    buffer = torch.full((len(beta2s),), x0, dtype=torch.float64)
    # one 0-dim parameter per beta2, all views of one buffer (so one clamp projects them all)
    params = [torch.nn.Parameter(buffer[k]) for k in range(len(beta2s))]
    groups = [{"params": [p], "betas": (beta1, b2)} for p, b2 in zip(params, beta2s, strict=True)]
    opt = make_optimizer(method, groups, lr=alpha)
    kept = sorted({int(round(v)) for v in np.geomspace(1, steps, keep)})
    keep_set = set(kept)
    played = np.zeros((steps, len(params)))
    traj = []
    grads = {a: torch.full((), a, dtype=torch.float64) for a in (c, -1.0)}  # rules never mutate a gradient
    view = buffer.numpy()
    with single_thread():
        for t in range(1, steps + 1):
            g = grads[coefficient(t, c)]
            lr = alpha / math.sqrt(t)
            played[t - 1] = view
            for p, group in zip(params, opt.param_groups, strict=True):
                p.grad = g
                group["lr"] = lr
            opt.step()
            with torch.no_grad():
                buffer.clamp_(-1.0, 1.0)  # projection onto F = [-1, 1]
            if t in keep_set:
                traj.append(view.tolist())
    return {"final_x": view.tolist(),
            "avg_regret": [average_regret(played[:, k], c) for k in range(len(params))],
            "steps": kept, "trajectory": np.asarray(traj).T.tolist()}


def beta2_grid(n: int) -> list[float]:
    """``n`` values of beta2 evenly spaced in logit(beta2) over [0.01, 0.9999], plus Theorem 1's 1/(1+C^2)."""
    logit = np.linspace(math.log(0.01 / 0.99), math.log(0.9999 / 0.0001), n)
    return sorted({round(float(1 / (1 + math.exp(-z))), 8) for z in logit} | {THEOREM_BETA2})


GRID_SIZE = {True: 13, False: 25}  # quick, full


def experiment(protocol: Protocol, quick: bool, log: Any) -> dict[str, Any]:
    """Sweep beta2 for Adam and AMSGrad (``protocol.steps`` steps, ``protocol.lr_grid[0]`` as alpha)."""
    grid = beta2_grid(GRID_SIZE[quick])
    alpha = float(protocol.lr_grid[0])
    out: dict[str, Any] = {"C": C, "alpha": alpha, "beta1": BETA1, "theorem_beta2": THEOREM_BETA2,
                           "beta2": grid, "methods": {}}
    for method in METHODS:
        res = run_online(method, grid, protocol.steps, alpha=alpha)
        out["methods"][method] = res
        log(f"  {method}: final x " + ", ".join(f"{b:.4g}:{x:+.2f}" for b, x in zip(grid, res["final_x"],
                                                                                    strict=True)))
    adam = out["methods"]["adam"]["final_x"]
    wrong = [b for b, x in zip(grid, adam, strict=True) if x > 0]
    out["adam_wrong_end_max_beta2"] = max(wrong) if wrong else None
    right = [b for b, x in zip(grid, adam, strict=True) if x < -0.9]
    out["adam_right_end_min_beta2"] = min(right) if right else None
    return out


def _at(results: dict[str, Any], method: str, key: str, beta2: float) -> float:
    i = results["beta2"].index(beta2)
    return float(results["methods"][method][key][i])


def _theorem(summary: dict[str, Any]) -> tuple[bool, str]:
    r = summary["results"]
    b = r["theorem_beta2"]
    xa, xm = _at(r, "adam", "final_x", b), _at(r, "amsgrad", "final_x", b)
    ra, rm = _at(r, "adam", "avg_regret", b), _at(r, "amsgrad", "avg_regret", b)
    ok = xa > 0.9 and xm < -0.9
    return ok, (f"beta2 = 1/(1+C^2) = {b:.3g}: Adam final x {xa:+.3f}, average regret {ra:.3f} (2(C-2)/3 = "
                f"{2 * (C - 2) / 3:.3f} at x = +1); AMSGrad final x {xm:+.3f}, average regret {rm:.3f}")


def _depends(summary: dict[str, Any]) -> tuple[bool, str]:
    r = summary["results"]
    top = max(r["beta2"])
    xa = _at(r, "adam", "final_x", top)
    wrong, right = r["adam_wrong_end_max_beta2"], r["adam_right_end_min_beta2"]
    ok = xa < -0.9 and wrong is not None
    return ok, (f"Adam's final x at beta2 = {top:g}: {xa:+.3f}; Adam ends at x > 0 for beta2 <= {wrong} and "
                f"at x < -0.9 for beta2 >= {right} (of the sweep)")


def _amsgrad_always(summary: dict[str, Any]) -> tuple[bool, str]:
    r = summary["results"]
    xs = r["methods"]["amsgrad"]["final_x"]
    worst = max(xs)
    b = r["beta2"][xs.index(worst)]
    regret = max(r["methods"]["amsgrad"]["avg_regret"])
    return worst < -0.9, (f"AMSGrad's largest final x over the sweep: {worst:+.3f} (at beta2 = {b:g}); largest "
                          f"average regret {regret:.3f}")


def draw(results: dict[str, Any], out_dir: Path, quick: bool, subtitle: str) -> list[Path]:
    """Final x and average regret against 1 - beta2; trajectories at three beta2 values."""
    plt = pyplot()
    grid = np.asarray(results["beta2"])
    fig, axes = plt.subplots(1, 3, figsize=(13.5, 4.2), layout="constrained")
    colors = {"adam": "tab:red", "amsgrad": "tab:blue"}
    for m in METHODS:
        res = results["methods"][m]
        axes[0].plot(grid, res["final_x"], "o-", ms=3.5, color=colors[m], label=m)
        axes[1].plot(grid, res["avg_regret"], "o-", ms=3.5, color=colors[m], label=m)
    for ax in axes[:2]:
        ax.set_xscale("logit")
        ax.axvline(results["theorem_beta2"], color="k", ls=":", lw=0.9,
                   label=f"Theorem 1: beta2 = 1/(1+C^2) = {results['theorem_beta2']:.2g}")
        ax.set_xlabel("beta2 (logit scale)", fontsize=8)
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("final iterate x_T (optimum: -1)", fontsize=8)
    axes[0].set_ylim(-1.1, 1.1)
    axes[0].set_title("final x against beta2", fontsize=9)
    axes[1].axhline(2 * (C - 2) / 3, color="gray", ls="--", lw=0.8, label="2(C-2)/3 (stuck at +1)")
    axes[1].set_ylabel("average regret R_T / T", fontsize=8)
    axes[1].set_title("average regret against beta2", fontsize=9)
    axes[1].legend(fontsize=7)
    picks = [results["theorem_beta2"], 0.5, 0.999]
    styles = ["-", "--", ":"]
    for b, ls in zip(picks, styles, strict=True):
        i = int(np.argmin(np.abs(grid - b)))
        for m in METHODS:
            res = results["methods"][m]
            axes[2].plot(res["steps"], res["trajectory"][i], ls, color=colors[m], lw=1.2,
                         label=f"{m}, beta2 = {grid[i]:.4g}")
    axes[2].set_xscale("log")
    axes[2].set_ylim(-1.1, 1.1)
    axes[2].set_xlabel("step t", fontsize=8)
    axes[2].set_ylabel("x_t", fontsize=8)
    axes[2].set_title("trajectories", fontsize=9)
    axes[2].legend(fontsize=6)
    axes[2].grid(True, alpha=0.3)
    axes[2].tick_params(labelsize=7)
    fig.suptitle(f"Reddi et al. 2018 counterexample: f_t(x) = {C:g}x if t mod 3 = 1 else -x, x in [-1, 1] "
                 f"(projected), beta1 = {results['beta1']:g}, alpha_t = {results['alpha']:g}/sqrt(t)\n{subtitle}",
                 fontsize=8)
    quick_stamp(fig, quick)
    paths = save_figure(fig, out_dir, "reddi-counterexample")
    plt.close(fig)
    return paths


RECIPE = register(StandaloneRecipe(
    name="reddi-counterexample",
    title="Reddi et al. 2018 Theorem 1: Adam converges to the worst point of f_t = 3x / -x unless beta2 is "
          "large; AMSGrad does not",
    settings=[Setting("C=3, beta1=0", "-", {"C": C, "beta1": BETA1})],
    variants=[Variant("adam", "adam", {"betas": (BETA1, THEOREM_BETA2)}, lr=ALPHA),
              Variant("amsgrad", "amsgrad", {"betas": (BETA1, THEOREM_BETA2)}, lr=ALPHA)],
    full=Protocol(lr_grid=[ALPHA], tune_seeds=[0], seeds=[0], steps=100_000,
                  note="25 beta2 values (logit-spaced in [0.01, 0.9999]) + 1/(1+C^2); alpha_t = alpha/sqrt t; "
                       "deterministic"),
    quick=Protocol(lr_grid=[ALPHA], tune_seeds=[0], seeds=[0], steps=20_000,
                   note="13 beta2 values (logit-spaced in [0.01, 0.9999]) + 1/(1+C^2); alpha_t = alpha/sqrt t; "
                        "deterministic"),
    criterion="none:final_x",
    metrics=["final_x", "avg_regret"],
    order="min:avg_regret",
    claims=[
        Claim("Theorem 1: with beta2 = 1/(1+C^2) (beta1 = 0) Adam converges to the worst point x = +1, "
              "AMSGrad to the optimum x = -1", _theorem),
        Claim("Seed 003: convergence 'depends to a great extent on the choice of beta2': with beta2 close to 1 "
              "Adam does converge to x = -1", _depends),
        Claim("AMSGrad converges to x = -1 for every beta2", _amsgrad_always),
    ],
    experiment=experiment,
    draw=draw,
    doc=__doc__ or "",
), order=120)
