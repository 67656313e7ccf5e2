"""A recipe's figure: learning curves per setting, one line per variant at its selected lr.

Each line is the mean over the final seeds with a min-max band (the runner's plotting convention).
The title states the recipe, its protocol (grid, seeds, budget) and selection rule; a quick run is
marked "QUICK" in red on the figure. Files are written atomically as PNG and PDF.
"""

from __future__ import annotations

import math
import os
import tempfile
import textwrap
from pathlib import Path
from typing import Any

import numpy as np

from adamlab.reproduce.engine import Execution

_LABELS = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "train_accuracy": "train accuracy",
    "test_accuracy": "test accuracy",
    "test_error": "test error",
    "train_error": "train error",
    "loss": "loss",
}


def save_figure(fig: Any, out_dir: str | os.PathLike[str], stem: str, dpi: int = 110) -> list[Path]:
    """Write ``stem.png`` and ``stem.pdf`` into ``out_dir`` atomically; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for ext in ("png", "pdf"):
        path = out / f"{stem}.{ext}"
        fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f".{ext}", dir=out)
        os.close(fd)
        try:
            fig.savefig(tmp, format=ext, dpi=dpi, bbox_inches="tight")
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        paths.append(path)
    return paths


def _curves(db: Any, run_ids: list[str], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps (union) and a [runs, steps] array (NaN where a run has no value)."""
    series = [db.metrics(i).get(metric, ([], [])) for i in run_ids]
    steps = sorted({s for st, _ in series for s in st})
    index = {s: k for k, s in enumerate(steps)}
    arr = np.full((len(series), len(steps)), np.nan)
    for r, (st, vals) in enumerate(series):
        for s, v in zip(st, vals, strict=True):
            arr[r, index[s]] = v
    return np.asarray(steps, dtype=float), arr


#: Losses are drawn on a log axis when they span more than this factor (values below LOG_FLOOR clipped).
LOG_RANGE = 20.0
LOG_FLOOR = 1e-12


def _wide_range(db: Any, entries: list[Any], metric: str) -> bool:
    vals = np.concatenate([_curves(db, e.final_ids, metric)[1].ravel() for e in entries] or [np.zeros(0)])
    vals = vals[np.isfinite(vals)]
    if vals.size == 0 or (vals < 0).any():
        return False
    return bool(vals.max() / max(vals.min(), LOG_FLOOR) > LOG_RANGE)


def header(execution: Execution, summary: dict[str, Any], width: int = 110) -> str:
    """Figure title: recipe, protocol, selection rule, and QUICK where it applies."""
    quick = "QUICK (reduced budget) -- " if execution.quick else ""
    lines = [execution.recipe.title, f"{quick}{summary['protocol']['description']}",
             f"selection: {summary['selection']}; lines: mean over seeds, band: min-max"]
    return "\n".join(textwrap.fill(line, width) for line in lines)


def plot_recipe(execution: Execution, summary: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """The recipe's learning-curve figure (``<recipe>.png`` / ``.pdf``)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from adamlab.runner import Store

    recipe = execution.recipe
    metrics = list(recipe.plot_metrics) or [recipe.metrics[0]]
    settings = list(dict.fromkeys(r.setting.label for r in execution.runs))
    variants = list(dict.fromkeys(r.variant.label for r in execution.runs))
    cmap = plt.get_cmap("tab10")
    colors = {v: cmap(i % 10) for i, v in enumerate(variants)}
    panels: list[tuple[str, str]]
    if len(metrics) == 1:
        cols = min(recipe.figure_cols, len(settings))
        rows = math.ceil(len(settings) / cols)
        panels = [(s, metrics[0]) for s in settings]
    else:
        rows, cols = len(metrics), len(settings)
        panels = [(s, m) for m in metrics for s in settings]
    width = max(3.6 * cols, 7.5)
    fig, axes = plt.subplots(rows, cols, figsize=(width, 2.8 * rows + 1.0), squeeze=False)
    with Store(execution.store) as db:
        for k, (setting, metric) in enumerate(panels):
            ax = axes[k // cols][k % cols]
            log_scale = "loss" in metric and _wide_range(db, [r for r in execution.runs
                                                             if r.setting.label == setting], metric)
            for entry in (r for r in execution.runs if r.setting.label == setting):
                steps, arr = _curves(db, entry.final_ids, metric)
                if steps.size == 0:
                    continue
                with np.errstate(all="ignore"):
                    mean = np.nanmean(arr, axis=0)
                    lo, hi = np.nanmin(arr, axis=0), np.nanmax(arr, axis=0)
                info = summary["settings"][setting]["variants"][entry.variant.label]
                label = f"{entry.variant.label} (lr {entry.selected_lr:.2g})"
                if info["n_diverged"]:
                    label += " [diverged]"
                color = colors[entry.variant.label]
                if log_scale:
                    mean, lo, hi = (np.maximum(a, LOG_FLOOR) for a in (mean, lo, hi))
                ax.plot(steps, mean, color=color, lw=1.4, label=label)
                if arr.shape[0] > 1:
                    ax.fill_between(steps, lo, hi, color=color, alpha=0.2, lw=0)
            if log_scale:
                ax.set_yscale("log")
            ax.set_title(setting if len(metrics) == 1 or k < cols else "", fontsize=9)
            ax.set_xlabel("step", fontsize=8)
            ax.set_ylabel(_LABELS.get(metric, metric), fontsize=8)
            ax.tick_params(labelsize=7)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=6, loc="best")
        for k in range(len(panels), rows * cols):
            axes[k // cols][k % cols].axis("off")
    fig.suptitle(header(execution, summary, width=int(18 * width)), fontsize=8)
    if execution.quick:
        fig.text(0.99, 0.01, "QUICK", color="red", fontsize=14, ha="right", va="bottom", alpha=0.6,
                 fontweight="bold")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / (2.8 * rows + 1.0)))
    paths = save_figure(fig, out_dir, recipe.name)
    plt.close(fig)
    return paths
