"""The per-layer dissection dashboard: Balles & Hennig's quantities over training, one line per layer.

:func:`layer_dashboard` draws six panels from curves named as :class:`adamlab.dissect.Monitor` names its
metrics (``quantity`` overall, ``quantity/layer`` per layer; a common prefix such as the runner's ``dx_`` is
stripped with ``prefix``): eta^2 (median, log scale), the Gaussian sign agreement rho, the optimizer's
measured gamma against the ideal one of its kind (dashed), the correlation of measured and ideal gamma over
live coordinates, the fraction of exactly-zero gradients, and the step norm. The overall curve is black.
Only numpy and matplotlib are used here (this layer sits below ``dissect``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from adamlab.plotting.backend import pyplot
from adamlab.plotting.style import log_scale

Curve = tuple[Sequence[float], Sequence[float]]

PANELS: tuple[tuple[str, str, bool], ...] = (
    ("eta2_median", "eta^2 (median over coordinates)", True),
    ("rho_gaussian_mean", "sign agreement rho (Gaussian, mean)", False),
    ("gamma_measured_median", "gamma: measured (solid) vs ideal (dashed), median", False),
    ("gamma_corr", "corr(measured, ideal gamma), live coords", False),
    ("frac_zero_grad", "fraction of exactly-zero gradients", False),
    ("step_norm", "step norm ||theta_t - theta_t-1||", True),
)


def split_curves(curves: Mapping[str, Curve], prefix: str = "") -> dict[str, dict[str, Curve]]:
    """``{quantity: {layer: curve}}`` from ``{prefix + quantity[/layer]: curve}`` (layer ``"all"`` overall)."""
    out: dict[str, dict[str, Curve]] = {}
    for key, curve in curves.items():
        if not key.startswith(prefix):
            continue
        quantity, _, layer = key[len(prefix):].partition("/")
        out.setdefault(quantity, {})[layer or "all"] = curve
    return out


def layer_dashboard(curves: Mapping[str, Curve], *, title: str = "", prefix: str = "",
                    ideal: str = "gamma_sign_ideal_median") -> Any:
    """The dashboard figure (2 x 3 panels) of one run.

    Parameters
    ----------
    curves:
        ``{metric name: (steps, values)}``, named as the Monitor names them.
    title:
        Figure title.
    prefix:
        A prefix of every metric name to strip (``"dx_"`` for runs of the runner's MonitorHook).
    ideal:
        The ideal gamma drawn against the measured one: ``"gamma_sign_ideal_median"`` (2 rho - 1, for sign
        directions such as Adam's and M-SSD's) or ``"gamma_grad_ideal_median"`` (1/(1 + eta^2)).
    """
    plt = pyplot()
    by = split_curves(curves, prefix)
    layers = sorted({layer for q in by.values() for layer in q if layer != "all"},
                    key=lambda s: (len(s), s))
    cmap = plt.get_cmap("viridis")
    colors = {layer: cmap(i / max(1, len(layers) - 1)) for i, layer in enumerate(layers)}
    colors["all"] = "black"
    fig, axes = plt.subplots(2, 3, figsize=(12.0, 6.5), layout="constrained")
    for ax, (quantity, label, log) in zip(axes.flat, PANELS, strict=True):
        drawn, positive = False, False
        for layer in [*layers, "all"]:
            curve = by.get(quantity, {}).get(layer)
            if curve is None or not len(curve[0]):
                continue
            steps, values = np.asarray(curve[0], dtype=float), np.asarray(curve[1], dtype=float)
            width = 2.0 if layer == "all" else 1.0
            ax.plot(steps, values, color=colors[layer], lw=width, label=layer)
            drawn = True
            positive = positive or bool(np.any(values > 0))
            if quantity == "gamma_measured_median":
                ref = by.get(ideal, {}).get(layer)
                if ref is not None:
                    ax.plot(np.asarray(ref[0], dtype=float), np.asarray(ref[1], dtype=float), color=colors[layer],
                            lw=width, ls="--")
        if log and positive:
            log_scale(ax)
        if not drawn:
            ax.text(0.5, 0.5, "not recorded", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_title(label, fontsize=8)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(which="both", labelsize=7)
        ax.grid(True, alpha=0.3)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=7, title="layer", title_fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig
