"""Figure of the ``svag_idealized_rate`` record: ``python -m scripts.claims_figure [OUT_DIR]``.

Draws log L against log t for idealized SVAG, constant-lr SGD and M-SVAG on ``quadratic.noisy`` (the
record's settings: 8 seeds, 10,000 steps, lr 0.5), with a c/t reference, SGD's theoretical noise floor and
the fitted window (the second half). Writes ``dissect_svag_rate.png``/``.pdf`` (default: ``docs/figures``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from adamlab.claims.seed_claims import loglog_slope, seed_interval, svag_rate_curves
from adamlab.plotting import pyplot, save_figure


def draw_svag_rate(out_dir: str | Path = "docs/figures", *, steps: int = 10_000, seeds: int = 8,
                   lr: float = 0.5) -> list[Path]:
    """Run the record's curves and draw them; returns the written paths."""
    plt = pyplot()
    curves = svag_rate_curves(seeds=seeds, steps=steps, lr=lr)
    t = np.arange(1, steps + 1)
    fig, ax = plt.subplots(figsize=(7.5, 4.6), layout="constrained")
    styles = {"ideal": ("tab:blue", "idealized SVAG (true eta^2)"), "sgd": ("tab:gray", "SGD, constant lr"),
              "msvag": ("tab:orange", "M-SVAG (estimated gamma)")}
    for key, (color, label) in styles.items():
        arr = curves[key].numpy()
        mean, lo, hi = seed_interval(loglog_slope(curves[key]))
        ax.plot(t, arr.mean(1), color=color, lw=1.3, label=f"{label}: slope {mean:.3f} [{lo:.3f}, {hi:.3f}]")
        ax.fill_between(t, arr.min(1), arr.max(1), color=color, alpha=0.2, lw=0)
    ideal_end = float(curves["ideal"].numpy().mean(1)[-1])
    ax.plot(t, ideal_end * steps / t, "k--", lw=0.8, label="c / t")
    ax.axhline(curves["floor"], color="tab:gray", ls=":", lw=0.9, label=f"SGD floor (theory) {curves['floor']:.3g}")
    ax.axvspan(steps // 2 + 1, steps, color="0.9", zorder=0, label="fitted: 2nd half")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("step t", fontsize=8)
    ax.set_ylabel("L(theta_t) (mean over seeds, band min-max)", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    prob = curves["problem"]
    ax.set_title(f"Seed 002: idealized SVAG converges at O(1/t) with constant lr\nquadratic.noisy d={prob.d}, "
                 f"{prob.options['rotation']}, nu={prob.nu:g}, batch 1, lr={lr:g}, {seeds} seeds; 95% t-intervals",
                 fontsize=8)
    paths = save_figure(fig, out_dir, "dissect_svag_rate")
    plt.close(fig)
    return paths


if __name__ == "__main__":  # pragma: no cover
    print(draw_svag_rate(sys.argv[1] if len(sys.argv) > 1 else "docs/figures"))
