"""A recipe's figure: learning curves per setting, one line per variant at its selected lr.

Each line is the mean over the final seeds with a min-max band (the runner's plotting convention).
The title states the recipe, its protocol (grid, seeds, budget) and selection rule; a quick run is
marked "QUICK" in red on the figure. Files are written atomically as PNG and PDF. The set-up, colours,
labels, log floor, band and stamp are those of :mod:`adamlab.plotting` (``save_figure`` is re-exported
here for the recipes); curves are read with the store's :meth:`~adamlab.store.Store.curves`.
"""

from __future__ import annotations

import math
import os
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from adamlab.plotting import (
    LOG_FLOOR,
    LOG_RANGE,
    method_colors,
    method_styles,
    metric_label,
    pyplot,
    quick_prefix,
    quick_stamp,
    save_figure,
    seed_band,
)
from adamlab.reproduce.engine import Execution
from adamlab.store import borrowed

__all__ = ["LOG_FLOOR", "LOG_RANGE", "header", "plot_lr_sensitivity", "plot_recipe", "save_figure"]


def _curves(db: Any, run_ids: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps (union) and a [runs, steps] array (NaN where a run has no value)."""
    curves = db.curves(run_ids, [metric])
    series = [curves[i].get(metric, ([], [])) for i in run_ids]
    steps = sorted({s for st, _ in series for s in st})
    index = {s: k for k, s in enumerate(steps)}
    arr = np.full((len(series), len(steps)), np.nan)
    for r, (st, vals) in enumerate(series):
        for s, v in zip(st, vals, strict=True):
            arr[r, index[s]] = v
    return np.asarray(steps, dtype=float), arr


def _wide_range(db: Any, entries: list[Any], metric: str) -> bool:
    vals = np.concatenate([_curves(db, e.final_ids, metric)[1].ravel() for e in entries] or [np.zeros(0)])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0 or (vals < 0).any():
        return False
    return bool(vals.max() / max(vals.min(), LOG_FLOOR) > LOG_RANGE)


def header(execution: Execution, summary: dict[str, Any], width: int = 110) -> str:
    """Figure title: recipe, protocol, selection rule, and QUICK where it applies."""
    lines = [execution.recipe.title, f"{quick_prefix(execution.quick)}{summary['protocol']['description']}",
             f"selection: {summary['selection']}; lines: mean over seeds, band: min-max"]
    return "\n".join(textwrap.fill(line, width) for line in lines)


def short_title(execution: Execution, width: int = 90) -> str:
    """The figure's title: the recipe's title, at most two lines (QUICK first where it applies)."""
    text = ("QUICK -- " if execution.quick else "") + execution.recipe.title
    lines = textwrap.wrap(text, width)
    return "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")


def caption(execution: Execution, summary: dict[str, Any], width: int, clipped: bool = False) -> str:
    """The details under the figure: protocol, selection, what lines and bands are, clipping."""
    parts = [f"{summary['protocol']['description']}", f"selection: {summary['selection']}",
             "lines: mean over seeds, band: min-max over seeds, markers every few eval points"]
    if clipped:
        parts.append(f"log axes: values below {LOG_FLOOR:g} drawn at {LOG_FLOOR:g}")
    return "\n".join(textwrap.wrap("; ".join(parts), width))


def plot_recipe(execution: Execution, summary: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """The recipe's learning-curve figure (``<recipe>.png`` / ``.pdf``)."""
    plt = pyplot()
    recipe = execution.recipe
    metrics = list(recipe.plot_metrics) or [recipe.metrics[0]]
    settings = list(dict.fromkeys(r.setting.label for r in execution.runs))
    variants = list(dict.fromkeys(r.variant.label for r in execution.runs))
    styles = method_styles(variants)
    panels: list[tuple[str, str]]
    if len(metrics) == 1:
        cols = min(recipe.figure_cols, len(settings))
        rows = math.ceil(len(settings) / cols)
        panels = [(s, metrics[0]) for s in settings]
    else:
        rows, cols = len(metrics), len(settings)
        panels = [(s, m) for m in metrics for s in settings]
    width = max(4.6 * cols, 7.5)
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.8 * rows + 1.4), squeeze=False, layout="constrained")
    clipped = False
    with borrowed(execution.store) as db:
        # one y scale per metric across the grid: log when any panel's values span decades
        log_metric = {m: "loss" in m and _wide_range(db, list(execution.runs), m) for m in metrics}
        for k, (setting, metric) in enumerate(panels):
            ax = axes[k // cols][k % cols]
            log_scale = log_metric[metric]
            drawn = []
            for entry in (r for r in execution.runs if r.setting.label == setting):
                steps, arr = _curves(db, entry.final_ids, metric)
                if steps.size == 0:
                    continue
                mean, lo, hi = seed_band(arr)
                info = summary["settings"][setting]["variants"][entry.variant.label]
                label = f"{entry.variant.label} (lr {entry.selected_lr:.2g})"
                if info["n_diverged"]:
                    label += " [diverged]"
                if log_scale:
                    clipped = clipped or bool(np.nanmin(lo, initial=np.inf) < LOG_FLOOR)
                    mean, lo, hi = (np.maximum(a, LOG_FLOOR) for a in (mean, lo, hi))
                final = mean[np.isfinite(mean)]
                drawn.append((float(final[-1]) if final.size else np.inf, entry.variant.label, label, steps,
                              mean, lo, hi, arr.shape[0]))
            # the best final value is drawn last, on top; worse curves under it
            for rank, (_, variant, label, steps, mean, lo, hi, n) in enumerate(
                    sorted(drawn, key=lambda d: -d[0] if np.isfinite(d[0]) else np.inf)):
                style = styles[variant]
                every = max(1, len(steps) // 8)
                ax.plot(steps, mean, color=style["color"], ls=style["linestyle"], marker=style["marker"],
                        ms=3.5, markevery=(rank % every, every), lw=1.4, label=label, zorder=3 + rank)
                if n > 1:
                    ax.fill_between(steps, lo, hi, color=style["color"], alpha=0.15, lw=0, zorder=1)
            if log_scale:
                ax.set_yscale("log")
            ax.set_title(setting if len(metrics) == 1 or k < cols else "", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.set_ylabel(metric_label(metric), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            handles, labels = ax.get_legend_handles_labels()
            order = sorted(range(len(labels)), key=lambda i: variants.index(labels[i].split(" (")[0]))
            ax.legend([handles[i] for i in order], [labels[i] for i in order], fontsize=7,
                      loc="upper center", bbox_to_anchor=(0.5, -0.22), ncols=2, frameon=False)
        for k in range(len(panels), rows * cols):
            axes[k // cols][k % cols].axis("off")
    fig.suptitle(short_title(execution), fontsize=10)
    fig.supxlabel(caption(execution, summary, int(15 * width), clipped), fontsize=7)
    quick_stamp(fig, execution.quick)
    paths = save_figure(fig, out_dir, recipe.name, dpi=110)
    plt.close(fig)
    return paths


def plot_lr_sensitivity(execution: Execution, summary: dict[str, Any],
                        out_dir: str | os.PathLike[str]) -> list[Path]:
    """Tuning curves (``<recipe>_lr.png`` / ``.pdf``): the selection score against the lr, per variant.

    One panel per setting; the score is the criterion's final metric, mean over the tune seeds; lrs
    where a tune run diverged are drawn as crosses at the top of the panel. Variants with a fixed lr
    are left out. Returns no files when no variant was tuned on at least two lrs.
    """
    from matplotlib.transforms import blended_transform_factory

    plt = pyplot()

    recipe = execution.recipe
    settings = list(summary["settings"])
    tuned = [(lab, v) for lab in settings for v, info in summary["settings"][lab]["variants"].items()
             if len(info["lr_scores"]) >= 2]
    if not tuned:
        return []
    cols = min(recipe.figure_cols, len(settings))
    rows = math.ceil(len(settings) / cols)
    width = max(3.6 * cols, 7.5)
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.6 * rows + 1.0), squeeze=False, layout="constrained")
    variants = list(dict.fromkeys(v for _, v in tuned))
    colors = method_colors(variants)
    crit = recipe.selection()
    metric, mode = crit.metric, crit.mode
    for k, lab in enumerate(settings):
        ax = axes[k // cols][k % cols]
        top = blended_transform_factory(ax.transData, ax.transAxes)
        tuned = [(v, info) for v, info in summary["settings"][lab]["variants"].items() if len(info["lr_scores"]) >= 2]
        finite = [y for _, info in tuned for y in info["lr_scores"].values() if y is not None and np.isfinite(y)]
        positive = [y for y in finite if y > 0]
        # losses spanning decades on a log axis; exact zeros (a fitted training set) drawn at the floor
        log_y = "loss" in metric and bool(positive) and max(positive) / min(positive) > LOG_RANGE
        floor = max(min(positive), LOG_FLOOR) if log_y else 0.0
        for v, info in tuned:
            lrs = sorted((float(x), y) for x, y in info["lr_scores"].items())
            xs = [x for x, _ in lrs]
            ys = [np.nan if y is None else (max(y, floor) if log_y else y) for _, y in lrs]
            ax.plot(xs, ys, "o-", ms=3, lw=1.2, color=colors[v], label=v)
            bad = [x for x, y in lrs if y is None]
            if bad:
                ax.plot(bad, [1.03] * len(bad), "x", color=colors[v], transform=top, clip_on=False)
            ax.axvline(info["selected_lr"], color=colors[v], lw=0.6, ls=":")
        ax.set_xscale("log")
        if log_y:
            ax.set_yscale("log")
            cap = float(np.median(positive)) * 1e4  # blown-up finite losses would squash the rest
            if max(positive) > cap:
                ax.set_ylim(top=cap)
        ax.set_title(lab, fontsize=9)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_ylabel(f"final {metric_label(metric)} ({mode})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    for k in range(len(settings), rows * cols):
        axes[k // cols][k % cols].axis("off")
    text = header(execution, summary, width=int(18 * width)).split("\n", 1)[1]
    fig.suptitle(f"{recipe.title}: tuning (score of each lr, tune seeds; x above the frame: diverged; "
                 f"dotted: selected lr)\n{text}", fontsize=8)
    quick_stamp(fig, execution.quick)
    paths = save_figure(fig, out_dir, f"{recipe.name}_lr", dpi=110)
    plt.close(fig)
    return paths
