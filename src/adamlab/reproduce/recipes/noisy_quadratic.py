"""Balles & Hennig 2018 (Dissecting Adam), sec. 3 / fig. 2: the 2x2 grid on noisy quadratics.

Problem: ``quadratic.noisy`` (d = 100, theta_0 = 1, batch 1) in the settings {axis-aligned, rotated}
x {well-conditioned, ill-conditioned} x noise nu (full: {0, 0.1, 4}; quick: {0, 4}).
Methods: the four corners of the 2x2 grid, each with momentum beta = 0.9: M-SGD (``msgd``), M-SSD
(``mssd``, sign), M-SVAG (``msvag``, variance-adapted gradient), M-SSD-VA (``mssdva``, variance-adapted
sign), plus Adam (beta1 = 0.9, beta2 = 0.999) for the claim Adam ~ M-SSD-VA.

Protocol (full): lr grid 1e-4 ... 1e0 (13 log-spaced values), tune on seed 0, rerun the best lr on
seeds 0 ... 4, 1,000 steps. Quick: lr grid 1e-4 ... 1e0 (9 values), tune on seed 0, rerun on seeds
0, 1, 2, 500 steps. Selection: lowest final exact loss L(theta) = 1/2 theta^T Q theta (mean over the
tune seeds). A seed fixes the gradient-noise stream (Q is fixed by ``instance_seed`` 0).

DeepOBS protocol (``--protocol deepobs``): the full settings and budget, 36 log-spaced lrs in [1e-5,
1e2], tune on seed 0, rerun the best on seeds 0 ... 9 (batched); the dissection hook is recorded on
extra runs of seed 0 only.

Dissection statistics (every 10 steps of every final run, via :mod:`adamlab.dissect`): the measured
variance-adaptation factor gamma of the step (``adamlab.dissect.decompose``), the ideal one from the
lemma of seed 002 -- 1/(1 + eta^2) for gradient directions, 2 rho - 1 for sign directions -- computed
from the exact gradient statistics of this problem (g ~ N(Q theta, nu^2 diag(QQ)/B) per coordinate),
and the sign agreement rho = P[sign g_i = sign grad_i] (Gaussian, and counted on the step's batch).

Claims (Balles & Hennig 2018, sec. 3 and 6): (1) on noisy, ill-conditioned, axis-aligned problems
the sign methods beat their gradient counterparts, (2) the advantage disappears when the problem is
rotated, (3) variance adaptation helps (in the noisy settings), (4) Adam behaves like M-SSD-VA.
Each is checked as an effect in decades of final loss (mean over seeds of log10 loss ratios) with a
bootstrap 95% interval over the seeds; it agrees when the interval excludes zero.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from adamlab.reproduce.base import (
    Claim,
    Protocol,
    Recipe,
    Setting,
    Variant,
    Verdict,
    deepobs_protocol,
    register,
)
from adamlab.reproduce.figures import plot_dissection
from adamlab.reproduce.recipes.common import means_effect, samples

NOISES_FULL = (0.0, 0.1, 4.0)
NOISES_QUICK = (0.0, 4.0)
NOISY = 4.0
ADAM_TOLERANCE = 0.2  # decades (a factor 1.6) of final loss
ROTATED_TOLERANCE = 0.3  # decades: "the advantage disappears" = below this when rotated


def label(spectrum: str, rotation: str, nu: float) -> str:
    """Setting label, e.g. ``ill/axis nu=4``."""
    return f"{spectrum}/{rotation} nu={nu:g}"


def _settings(noises: tuple[float, ...]) -> list[Setting]:
    return [Setting(label(spec, rot, nu), "quadratic.noisy", {"spectrum": spec, "rotation": rot, "nu": nu})
            for nu in noises for spec in ("well", "ill") for rot in ("axis", "rotated")]


class QuadraticDissectionHook:
    """Records measured vs ideal variance adaptation and sign agreement on ``quadratic.noisy``.

    Metrics (means over the d coordinates): ``gamma_measured`` (the step's gamma from
    :func:`adamlab.dissect.decompose.decompose`; 1 for methods without variance adaptation),
    ``gamma_ideal`` (the lemma's optimum for the method's direction kind: 1/(1 + eta^2) for a
    gradient, 2 rho - 1 for a sign, :mod:`adamlab.dissect.stats`), ``rho`` (Gaussian sign agreement
    from the exact mean Q theta and standard deviation nu sqrt(diag(QQ)/B)), ``rho_batch`` (the
    fraction of coordinates where the step's stochastic gradient has the sign of Q theta) and
    ``eta2_median`` (the lower median of the noise-to-signal ratio eta^2 over coordinates).
    """

    name = "quadratic_dissection"

    def __init__(self, problem: Any, every: int = 10) -> None:
        self.every = int(every)
        hess = problem.hessian64
        self._std_unit = torch.from_numpy((hess * hess).sum(0) ** 0.5)  # sqrt(diag(QQ)), Q symmetric
        self._nu = float(problem.nu)
        self._problem = problem

    def __call__(self, step: int, model: Any, optimizer: Any, problem: Any, batch: Any) -> dict[str, float]:
        from adamlab.dissect.decompose import decompose
        from adamlab.dissect.stats import gaussian_sign_agreement, ideal_gamma_grad, ideal_gamma_sign

        with torch.no_grad():
            theta = model().detach().to(torch.float64)
            grad = self._problem.exact_gradient(theta.float()).to(torch.float64)
            b = int(batch[0].shape[0])
            std = self._nu * self._std_unit / math.sqrt(b)
            eta2 = torch.where(std == 0, torch.zeros_like(std), std.square() / grad.square())
            rho = gaussian_sign_agreement(grad, std)
            pieces = decompose(optimizer)
            piece = pieces[0]
            gamma = piece.gamma
            measured = float(gamma.to(torch.float64).mean()) if isinstance(gamma, torch.Tensor) else float(gamma)
            ideal = ideal_gamma_sign(rho) if piece.kind == "sign" else ideal_gamma_grad(eta2)
            g = model.theta.grad
            rho_batch = float((g.sign().to(torch.float64) == grad.sign()).double().mean()) if g is not None \
                else float("nan")
        return {
            "gamma_measured": measured,
            "gamma_ideal": float(ideal.mean()),
            "rho": float(rho.mean()),
            "rho_batch": rho_batch,
            "eta2_median": float(eta2.median()),
        }


def _hook(problem: Any, every: int) -> QuadraticDissectionHook:
    return QuadraticDissectionHook(problem, every)


def _settings_of(summary: dict[str, Any], spectrum: str, rotation: str, noisy: bool) -> list[str]:
    out = []
    for lab, s in summary["settings"].items():
        o = s["options"]
        if o["spectrum"] == spectrum and o["rotation"] == rotation and (o["nu"] > 0) == noisy:
            out.append(lab)
    return out


# Effects are in decades: differences of the mean over seeds of log10(final loss) (log10 of the ratio of
# geometric means), so that a positive effect is the paper's direction. A diverged run is +inf.

def _cols(labels: list[str], variants: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(lab, v) for lab in labels for v in variants]


def _effect(what: str, summary: dict[str, Any], columns: list[tuple[str, str]], combine: Any) -> Any:
    index = {c: i for i, c in enumerate(columns)}
    return means_effect(what, summary, columns, "train_loss", "min",
                        lambda m: combine(lambda lab, v: m[:, index[(lab, v)]]), log10=True)


def _point(summary: dict[str, Any], columns: list[tuple[str, str]]) -> dict[tuple[str, str], float]:
    """Mean over the shared seeds of log10(final loss) per column (the effects' estimates)."""
    x = samples(summary, columns, "train_loss", "min", log10=True)
    return dict(zip(columns, x.mean(axis=0).tolist(), strict=True))


PAIRS = (("msgd", "mssd"), ("msvag", "mssdva"))  # (gradient, sign) with the same variance adaptation


def _sign_wins_axis(summary: dict[str, Any]) -> Verdict:
    labs = _settings_of(summary, "ill", "axis", noisy=True)
    if not labs:
        raise ValueError("no noisy ill-conditioned axis-aligned setting in this run")
    columns = _cols(labs, ("msgd", "mssd", "msvag", "mssdva"))

    def combine(col: Any) -> Any:
        return np.min([col(lab, g) - col(lab, sg) for lab in labs for g, sg in PAIRS], axis=0)

    eff = _effect("min over ill/axis noisy settings and (msgd, mssd), (msvag, mssdva) of mean log10(loss of "
                  "gradient / loss of sign)", summary, columns, combine)
    p = _point(summary, columns)
    parts = [f"{lab}: log10(loss msgd/mssd) = {p[(lab, 'msgd')] - p[(lab, 'mssd')]:+.2f}, log10(msvag/mssdva) = "
             f"{p[(lab, 'msvag')] - p[(lab, 'mssdva')]:+.2f}" for lab in labs]
    return Verdict(eff, "; ".join(parts))


def _advantage(col: Any, lab: str) -> Any:
    return sum(col(lab, g) - col(lab, sg) for g, sg in PAIRS) / len(PAIRS)


def _advantage_gone_rotated(summary: dict[str, Any]) -> Verdict:
    axis = _settings_of(summary, "ill", "axis", noisy=True)
    rot = _settings_of(summary, "ill", "rotated", noisy=True)
    if not axis or not rot:
        raise ValueError("no noisy ill-conditioned settings")
    pairs = list(zip(axis, rot, strict=True))
    columns = _cols(axis + rot, ("msgd", "mssd", "msvag", "mssdva"))

    def combine(col: Any) -> Any:
        return np.min([np.minimum(_advantage(col, a) - _advantage(col, r), ROTATED_TOLERANCE - _advantage(col, r))
                       for a, r in pairs], axis=0)

    eff = _effect(f"min over noise levels of min(axis advantage - rotated advantage, {ROTATED_TOLERANCE} - rotated "
                  "advantage), advantage = mean log10(loss of gradient / loss of sign) over the two pairs",
                  summary, columns, combine)
    p = _point(summary, columns)

    def col(lab: str, v: str) -> float:
        return p[(lab, v)]

    parts = [f"mean log10 advantage of sign over gradient: {a} {_advantage(col, a):+.2f}, {r} {_advantage(col, r):+.2f}"
             for a, r in pairs]
    return Verdict(eff, "; ".join(parts))


def _va_helps(summary: dict[str, Any]) -> Verdict:
    labs = [lab for lab, s in summary["settings"].items() if s["options"]["nu"] >= NOISY]
    if not labs:
        raise ValueError("no high-noise setting in this run")
    comps = (("msgd", "msvag"), ("mssd", "mssdva"))
    columns = _cols(labs, ("msgd", "msvag", "mssd", "mssdva"))

    def combine(col: Any) -> Any:
        return np.mean([col(lab, b) - col(lab, va) for lab in labs for b, va in comps], axis=0)

    eff = _effect(f"mean over the {len(labs) * 2} high-noise comparisons of mean log10(loss without / loss with "
                  "variance adaptation)", summary, columns, combine)
    p = _point(summary, columns)
    diffs = {(lab, va, b): p[(lab, b)] - p[(lab, va)] for lab in labs for b, va in comps}
    wins = sum(d > 0 for d in diffs.values())
    text = (f"variance adaptation lowers the final loss in {wins}/{len(diffs)} high-noise comparisons (log10 "
            "base/VA): " + "; ".join(f"{va} vs {b} @ {lab}: {d:+.2f}" for (lab, va, b), d in diffs.items()))
    return Verdict(eff, text)


def _adam_like_mssdva(summary: dict[str, Any]) -> Verdict:
    labs = [lab for lab, s in summary["settings"].items() if s["options"]["nu"] > 0]
    if not labs:  # noise-free: Adam's effective step shrinks with the gradient, no noise to adapt to
        raise ValueError("no noisy setting in this run")
    columns = _cols(labs, ("adam", "mssdva", "msvag"))

    def combine(col: Any) -> Any:
        return ADAM_TOLERANCE - np.max([np.abs(col(lab, "adam") - col(lab, "mssdva")) for lab in labs], axis=0)

    eff = _effect(f"{ADAM_TOLERANCE} - max over the noisy settings of abs(mean log10(loss of adam / loss of mssdva))",
                  summary, columns, combine)
    p = _point(summary, columns)
    parts = [f"{lab}: abs(log10 adam/mssdva) = {abs(p[(lab, 'adam')] - p[(lab, 'mssdva')]):.2f} (abs(log10 "
             f"adam/msvag) = {abs(p[(lab, 'adam')] - p[(lab, 'msvag')]):.2f})" for lab in labs]
    return Verdict(eff, f"distance of Adam's final loss from M-SSD-VA's in the noisy settings (tolerance "
                        f"{ADAM_TOLERANCE} decades): " + "; ".join(parts))


_GRID_FULL = [round(10 ** (-4 + k / 3), 12) for k in range(13)]
_GRID_QUICK = [round(10 ** (-4 + k / 2), 12) for k in range(9)]

_FULL = Protocol(lr_grid=_GRID_FULL, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=1000, eval_every=10,
                 hook_every=10, note="noise nu in {0, 0.1, 4}")

RECIPE = register(Recipe(
    name="noisy-quadratic",
    title="Balles & Hennig 2018 fig. 2: the 2x2 grid (M-SGD, M-SSD, M-SVAG, M-SSD-VA) + Adam on noisy quadratics",
    settings=_settings(NOISES_FULL),
    variants=[Variant("msgd", "msgd"), Variant("mssd", "mssd"), Variant("msvag", "msvag"),
              Variant("mssdva", "mssdva"), Variant("adam", "adam")],
    full=_FULL,
    deepobs=deepobs_protocol(_FULL, hook_seeds=[0], note="noise nu in {0, 0.1, 4}; DeepOBS protocol; "
                             "dissection on seed 0"),
    quick=Protocol(lr_grid=_GRID_QUICK, tune_seeds=[0], seeds=[0, 1, 2], steps=500, eval_every=10,
                   hook_every=10, note="noise nu in {0, 4}", settings=_settings(NOISES_QUICK)),
    criterion="min:train_loss",
    metrics=["train_loss"],
    claims=[
        Claim("Sign descent beats SGD on noisy, ill-conditioned, axis-aligned quadratics "
              "(M-SSD < M-SGD and M-SSD-VA < M-SVAG in final loss)", _sign_wins_axis),
        Claim("The advantage of sign descent disappears when the problem is rotated (smaller than axis-aligned, "
              f"and below {ROTATED_TOLERANCE} decades)", _advantage_gone_rotated),
        Claim("Variance adaptation helps in the high-noise settings (M-SVAG < M-SGD, M-SSD-VA < M-SSD, on "
              "average over the comparisons)", _va_helps),
        Claim("Adam behaves like M-SSD-VA (in the noisy settings its final loss is within 0.2 decades of "
              "M-SSD-VA's)",
              _adam_like_mssdva),
    ],
    hook=_hook,
    hook_metrics=["gamma_measured", "gamma_ideal", "rho", "rho_batch", "eta2_median"],
    figure_cols=4,
    extra_figures=plot_dissection,
    doc=__doc__ or "",
), order=10)
