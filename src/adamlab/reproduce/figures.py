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
    draw_stacked_curves,
    log_scale,
    method_styles,
    metric_label,
    pyplot,
    quick_prefix,
    quick_stamp,
    save_figure,
    seed_band,
    stacked_styles,
)
from adamlab.reproduce.engine import Execution
from adamlab.store import borrowed

__all__ = ["LOG_FLOOR", "LOG_RANGE", "header", "plot_dissection", "plot_lr_sensitivity", "plot_recipe", "save_figure"]


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


def short_title(execution: Execution, width: int = 90, what: str = "") -> str:
    """The figure's title: the recipe's title, at most two lines (QUICK first where it applies, then
    ``what`` the figure shows, e.g. ``lr tuning``)."""
    text = ("QUICK -- " if execution.quick else "") + (f"{what}: " if what else "") + execution.recipe.title
    lines = textwrap.wrap(text, width)
    return "\n".join(lines[:2]) + (" ..." if len(lines) > 2 else "")


def caption(execution: Execution, summary: dict[str, Any], width: int, clipped: bool = False,
            extra: list[str] | None = None) -> str:
    """The details under the figure: protocol, selection, what lines and bands are (or ``extra``), clipping."""
    parts = [f"{summary['protocol']['description']}", f"selection: {summary['selection']}"]
    parts += extra if extra is not None else [
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
            use_log = log_metric[metric]
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
                if use_log:
                    clipped = clipped or bool(np.nanmin(lo, initial=np.inf) < LOG_FLOOR)
                    mean, lo, hi = (np.maximum(a, LOG_FLOOR) for a in (mean, lo, hi))
                final = mean[np.isfinite(mean)]
                drawn.append((float(final[-1]) if final.size else np.inf, entry.variant.label, label, steps,
                              mean, lo, hi, arr.shape[0]))
            # the best final value is drawn last, on top; worse curves under it, with wider lines and larger
            # hollow markers (every eval point of a short curve is marked)
            mode = "max" if "accuracy" in metric else "min"
            ranked = sorted(drawn, key=lambda d: (bool(np.isfinite(d[0])),
                                                  (d[0] if mode == "max" else -d[0]) if np.isfinite(d[0]) else 0.0))
            draw_stacked_curves(ax, ranked, [d[1] for d in ranked], variants)
            if use_log:
                log_scale(ax)
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
    width = 3.4 * cols + 1.6  # the legend's column on the right
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.6 * rows + 1.2), squeeze=False, layout="constrained")
    variants = list(dict.fromkeys(v for _, v in tuned))
    crit = recipe.selection()
    metric, mode = crit.metric, crit.mode
    floored = capped = any_bad = False
    every = [y for lab in settings for info in summary["settings"][lab]["variants"].values()
             if len(info["lr_scores"]) >= 2 for y in info["lr_scores"].values() if y is not None and np.isfinite(y)]
    grid_pos = [y for y in every if y > 0]
    grid_log = "loss" in metric and bool(grid_pos) and max(grid_pos) / min(grid_pos) > LOG_RANGE
    for k, lab in enumerate(settings):
        ax = axes[k // cols][k % cols]
        top = blended_transform_factory(ax.transData, ax.transAxes)
        tuned = [(v, info) for v, info in summary["settings"][lab]["variants"].items() if len(info["lr_scores"]) >= 2]
        finite = [y for _, info in tuned for y in info["lr_scores"].values() if y is not None and np.isfinite(y)]
        positive = [y for y in finite if y > 0]
        # losses spanning decades on a log axis (one scale for the whole grid); exact zeros (a fitted
        # training set) drawn at the floor
        log_y = grid_log and bool(positive)
        floor = max(min(positive), LOG_FLOOR) if log_y else 0.0
        best = {}
        for v, info in tuned:
            ok = [y for y in info["lr_scores"].values() if y is not None and np.isfinite(y)]
            best[v] = (min(ok) if mode == "min" else max(ok)) if ok else np.nan
        # drawn last-on-top by rank, hollow markers larger the lower the curve lies (one style per method)
        sign = 1.0 if mode == "max" else -1.0
        order = sorted(best, key=lambda v: (bool(np.isfinite(best[v])), sign * best[v] if np.isfinite(best[v]) else 0.0))
        styles = stacked_styles(order, variants)
        for v, info in tuned:
            style = styles[v]
            lrs = sorted((float(x), y) for x, y in info["lr_scores"].items())
            xs = [x for x, _ in lrs]
            floored = floored or (log_y and any(y is not None and y < floor for _, y in lrs))
            ys = [np.nan if y is None else (max(y, floor) if log_y else y) for _, y in lrs]
            ax.plot(xs, ys, label=v, **style)
            bad = [x for x, y in lrs if y is None]
            if bad:
                any_bad = True
                ax.plot(bad, [1.03] * len(bad), "x", color=style["color"], transform=top, clip_on=False)
            ax.axvline(info["selected_lr"], color=style["color"], lw=0.6, ls=":", zorder=2)
        ax.set_xscale("log")
        if log_y:
            log_scale(ax)
            cap = float(np.median(positive)) * 1e4  # blown-up finite losses would squash the rest
            if max(positive) > cap:
                capped = True
                ax.set_ylim(top=cap)
        ax.set_title(lab, fontsize=9)
        ax.set_xlabel("learning rate", fontsize=8)
        ax.set_ylabel(f"final {metric_label(metric)} ({mode})", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.grid(True, alpha=0.3)
    for k in range(len(settings), rows * cols):
        axes[k // cols][k % cols].axis("off")
    handles, labels = [], []
    for ax in axes.flat:  # one legend for the grid, outside the data, every variant once
        for h, lab in zip(*ax.get_legend_handles_labels(), strict=True):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    order_v = sorted(range(len(labels)), key=lambda i: variants.index(labels[i]))
    fig.legend([handles[i] for i in order_v], [labels[i] for i in order_v], loc="outside right center",
               fontsize=7, frameon=False)
    fig.suptitle(short_title(execution, width=int(13 * width), what="lr tuning"), fontsize=10)
    notes = ["score of each lr: the selection metric's final value, mean over the tune seeds",
             "dotted vertical line: the selected lr"]
    if any_bad:
        notes.append("x above the frame: a tune run diverged")
    if floored:
        notes.append(f"log axes: scores below {LOG_FLOOR:g} (or the panel's smallest positive score) drawn at it")
    if capped:
        notes.append("y axis cut at 1e4 x the median score (blown-up losses above it)")
    fig.supxlabel(caption(execution, summary, int(15 * width), extra=notes), fontsize=7)
    quick_stamp(fig, execution.quick)
    paths = save_figure(fig, out_dir, f"{recipe.name}_lr", dpi=110)
    plt.close(fig)
    return paths


def plot_dissection(execution: Execution, summary: dict[str, Any], out_dir: str | os.PathLike[str], *,
                    eta2: str = "eta2_median", rho: str = "rho", measured: str = "gamma_measured",
                    ideal: str = "gamma_ideal") -> list[Path]:
    """The dissection figure of a hooked recipe (``<recipe>_dissection.png`` / ``.pdf``).

    Three panels over the settings, one bar per variant in its fixed colour (:func:`method_styles`):
    the noise-to-signal ratio eta^2 (median over coordinates, log axis), the sign agreement
    rho = P[sign g_i = sign grad_i] (0.5: a coin flip), and the variance-adaptation factor gamma of the
    step, measured (bar) against the ideal one of the variant's kind of direction (black tick):
    1 / (1 + eta^2) for a gradient, 2 rho - 1 for a sign (Balles & Hennig 2018, lemma 1). Each bar is the
    summary's hook metric (``eta2``, ``rho``, ``measured``, ``ideal``: the names the recipe's hook records),
    the mean over the second half of each hooked run and over its seeds. Returns no files when no variant
    recorded them.
    """
    plt = pyplot()
    labels = list(summary["settings"])
    variants = list(dict.fromkeys(v for lab in labels for v in summary["settings"][lab]["variants"]))

    def value(lab: str, v: str, metric: str) -> float:
        d = summary["settings"][lab]["variants"].get(v, {}).get("dissection", {}).get(metric, {})
        return float(d["mean"]) if d.get("mean") is not None else math.nan

    shown = [v for v in variants if any(np.isfinite(value(lab, v, m)) for lab in labels for m in (eta2, rho, measured))]
    if not shown:
        return []
    styles = method_styles(variants)
    width_in = max(7.0, 0.75 * len(labels) * max(1, len(shown)) / 4 + 2.5)
    fig, axes = plt.subplots(3, 1, figsize=(width_in, 7.2), sharex=True, layout="constrained")
    x = np.arange(len(labels))
    bar = 0.8 / len(shown)
    floored = zero = False
    for i, v in enumerate(shown):
        color = styles[v]["color"]
        pos = x + (i - (len(shown) - 1) / 2) * bar
        e2 = np.array([value(lab, v, eta2) for lab in labels])
        zero = zero or bool(np.any(e2 == 0))
        floored = floored or bool(np.any((e2 > 0) & (e2 < LOG_FLOOR)))
        axes[0].bar(pos, np.where(e2 > 0, np.maximum(e2, LOG_FLOOR), np.nan), bar, color=color, label=v)
        axes[1].bar(pos, [value(lab, v, rho) for lab in labels], bar, color=color)
        axes[2].bar(pos, [value(lab, v, measured) for lab in labels], bar, color=color, alpha=0.85)
        axes[2].plot(pos, [value(lab, v, ideal) for lab in labels], ls="", marker="_", color="k",
                     ms=max(4.0, 48 * bar * width_in / len(labels)), mew=2.0, zorder=5)
    log_scale(axes[0])
    axes[0].set_ylabel("eta^2 (median)", fontsize=8)
    axes[1].axhline(0.5, color="k", lw=0.8, ls="--")
    axes[1].set_ylim(0.4, 1.02)
    axes[1].set_ylabel("sign agreement rho", fontsize=8)
    axes[2].set_ylim(0.0, 1.05)
    axes[2].set_ylabel("gamma", fontsize=8)
    axes[2].set_xticks(x, labels, rotation=30, ha="right", fontsize=7)
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.grid(True, axis="y", alpha=0.3)
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    handles, names = axes[0].get_legend_handles_labels()
    handles += [Patch(facecolor="0.5", edgecolor="0.5"), Line2D([], [], ls="", marker="_", color="k", ms=10, mew=2)]
    names += ["gamma measured (bar)", "gamma ideal of its kind"]
    fig.legend(handles, names, loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(short_title(execution, width=int(13 * width_in), what="dissection"), fontsize=10)
    notes = ["bars: mean over coordinates of the hooked runs, over the second half of each run, mean over seeds",
             "ideal gamma: 1/(1+eta^2) for gradient directions, 2 rho - 1 for sign directions",
             "dashed: rho = 0.5 (a coin flip)"]
    if zero:
        notes.append("eta^2 = 0 (no gradient noise): no bar")
    if floored:
        notes.append(f"eta^2 below {LOG_FLOOR:g} drawn at {LOG_FLOOR:g}")
    fig.supxlabel(caption(execution, summary, int(15 * width_in), extra=notes), fontsize=7)
    quick_stamp(fig, execution.quick)
    paths = save_figure(fig, out_dir, f"{execution.recipe.name}_dissection", dpi=110)
    plt.close(fig)
    return paths
