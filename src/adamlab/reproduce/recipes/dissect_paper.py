"""Shared definition of Balles & Hennig 2018's deep-learning comparisons (sec. 6, fig. 5, P1-P4):
the four corners of the 2x2 grid -- M-SGD, M-SSD, M-SVAG, M-SSD-VA (momentum beta = 0.9) -- at tuned
constant learning rates. Ordering by final training loss (the paper compares training loss and
test accuracy).

Dissection statistics. Each variant has one extra run of seed 0 at its selected learning rate that
records the :class:`~adamlab.dissect.Monitor`'s quantities through the runner hook
(:class:`~adamlab.dissect.MonitorHook`: per-example moments from the step's own backward pass, so every
step costs a plain step plus the moments), overall and per layer: every step under the quick protocol,
every :data:`CPU_EVERY` steps under the CPU one, every :data:`FULL_EVERY` steps under the full one (a store-size choice: the full runs are 5,000-19,000
steps with about 60 metrics per record). The recipe draws, besides the learning curves, one bar figure
of eta^2, rho and measured vs ideal gamma per variant (``<recipe>_dissection``) and one per-layer dashboard
per variant (``<recipe>_layers_<variant>``).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np

from adamlab.dissect.integrations import MonitorHook
from adamlab.plotting import log_scale, pyplot, quick_stamp, save_figure
from adamlab.plotting.dissect import layer_dashboard
from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant
from adamlab.reproduce.recipes.common import group_wins

QUICK_EVERY = 1
CPU_EVERY = 2
FULL_EVERY = 10
HOOK_METRICS = ["dx_eta2_median", "dx_rho_gaussian_mean", "dx_gamma_measured_median", "dx_gamma_sign_ideal_median",
                "dx_gamma_grad_ideal_median", "dx_gamma_corr", "dx_gamma_rank_corr", "dx_frac_zero_grad"]
#: The ideal gamma of each variant's kind of direction (sign: 2 rho - 1, gradient: 1/(1 + eta^2)).
IDEAL = {"msgd": "gamma_grad_ideal_median", "msvag": "gamma_grad_ideal_median",
         "mssd": "gamma_sign_ideal_median", "mssdva": "gamma_sign_ideal_median"}


def dissection_hook(problem: Any, every: int) -> MonitorHook:
    """The recipes' hook: the Monitor's metrics, overall and per layer, every ``every`` steps."""
    return MonitorHook(every, per_layer=True)


def _with_hook(protocol: Protocol, every: int) -> Protocol:
    if protocol.hook_every:
        return protocol
    return dataclasses.replace(protocol, hook_every=every, hook_seeds=[0])


def dissection_figures(execution: Any, summary: dict[str, Any], out_dir: Path) -> list[Path]:
    """Bars of the dissection statistics per variant, and one per-layer dashboard per variant."""
    from adamlab.store import borrowed

    plt = pyplot()
    name = execution.recipe.name
    paths: list[Path] = []
    for label, setting in summary["settings"].items():
        variants = setting["variants"]
        order = [v for v in ("msgd", "mssd", "msvag", "mssdva") if v in variants]
        if not any("dissection" in variants[v] for v in order):
            continue
        fig, axes = plt.subplots(1, 3, figsize=(11.0, 3.2), layout="constrained")
        x = np.arange(len(order))

        def value(v: str, metric: str, variants: dict[str, Any] = variants) -> float:
            d = variants[v].get("dissection", {}).get(metric, {})
            return float(d.get("mean")) if d.get("mean") is not None else float("nan")

        eta2 = [value(v, "dx_eta2_median") for v in order]
        axes[0].bar(x, eta2, color="0.5")
        if any(e > 0 for e in eta2):
            log_scale(axes[0])
        axes[0].set_title("eta^2 (median over coordinates)", fontsize=8)
        axes[1].bar(x, [value(v, "dx_rho_gaussian_mean") for v in order], color="0.5")
        axes[1].axhline(0.5, color="k", lw=0.8, ls="--")
        axes[1].set_ylim(0.45, 1.0)
        axes[1].set_title("sign agreement rho (Gaussian, mean)", fontsize=8)
        axes[2].bar(x - 0.2, [value(v, "dx_gamma_measured_median") for v in order], 0.4, label="measured")
        axes[2].bar(x + 0.2, [value(v, "dx_" + IDEAL[v]) for v in order], 0.4, label="ideal (its kind)")
        axes[2].set_title("gamma (median over coordinates)", fontsize=8)
        axes[2].legend(fontsize=7)
        for ax in axes:
            ax.set_xticks(x, order, fontsize=8)
            ax.grid(True, axis="y", alpha=0.3)
        fig.suptitle(f"{label}: dissection statistics, seed-0 run at the selected lr (mean over the second "
                     "half of the run)", fontsize=9)
        quick_stamp(fig, execution.quick)
        paths += save_figure(fig, out_dir, f"{name}_dissection", formats=("png",))
        plt.close(fig)
    with borrowed(execution.store) as db:
        for entry in execution.runs:
            if not entry.hook_ids:
                continue
            curves = db.curves(entry.hook_ids[:1]).get(entry.hook_ids[0], {})
            if not curves:
                continue
            variant = entry.variant.label
            fig = layer_dashboard(curves, prefix="dx_", ideal=IDEAL.get(variant, "gamma_sign_ideal_median"),
                                  title=f"{entry.setting.label}, {variant} (lr {entry.selected_lr:g}, seed 0): "
                                        "per-layer dissection")
            quick_stamp(fig, execution.quick)
            paths += save_figure(fig, out_dir, f"{name}_layers_{variant}", formats=("png",))
            plt.close(fig)
    return paths

SIGN = ("mssd", "mssdva")
NON_SIGN = ("msgd", "msvag")


def dissect_recipe(
    *,
    name: str,
    title: str,
    setting: Setting,
    dataset: str,
    sign_wins: bool | None,
    full: Protocol,
    quick: Protocol,
    doc: str,
    cpu: Protocol | None = None,
) -> Recipe:
    """A recipe of the four corners on one problem; ``sign_wins`` states the paper's finding
    (True: the sign methods win, False: the non-sign methods win, None: no clear winner claimed)."""
    claims = []
    if sign_wins is not None:
        winners, losers = (SIGN, NON_SIGN) if sign_wins else (NON_SIGN, SIGN)
        claims.append(Claim(
            f"The {'sign' if sign_wins else 'non-sign'}-based methods ({', '.join(winners)}) reach a lower "
            f"training loss than the {'non-sign' if sign_wins else 'sign'}-based ones ({', '.join(losers)})",
            group_wins(setting.label, winners, losers, "train_loss", "min")))
        claims.append(Claim(
            "... and a higher test accuracy",
            group_wins(setting.label, winners, losers, "test_accuracy", "max")))
    return Recipe(
        name=name,
        title=title,
        settings=[setting],
        variants=[Variant(v, v) for v in ("msgd", "mssd", "msvag", "mssdva")],
        full=_with_hook(full, FULL_EVERY),
        quick=_with_hook(quick, QUICK_EVERY),
        cpu=None if cpu is None else _with_hook(cpu, CPU_EVERY),
        criterion="min:train_loss",
        metrics=["train_loss", "test_loss", "test_accuracy"],
        plot_metrics=["train_loss", "test_accuracy"],
        claims=claims,
        datasets=[dataset],
        hook=dissection_hook,
        hook_metrics=HOOK_METRICS,
        extra_figures=dissection_figures,
        doc=doc,
    )
