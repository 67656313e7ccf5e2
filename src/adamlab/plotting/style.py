"""The shared look of adamlab's figures: metric labels, method colours and line styles, the log floor,
the mean-and-band over seeds, and the QUICK stamp of reduced-budget runs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

#: Axis labels of the metrics adamlab records (any other metric is labelled by its name).
METRIC_LABELS: Mapping[str, str] = {
    "train_loss": "train loss",
    "test_loss": "test loss",
    "train_accuracy": "train accuracy",
    "test_accuracy": "test accuracy",
    "train_error": "train error",
    "test_error": "test error",
    "loss": "loss",
}

#: On a log axis, values below this are drawn at it (a loss of exactly 0 has no logarithm).
#: This is the floor of figures only; the claims' log10 effects use their own floor
#: (:data:`adamlab.reproduce.recipes.common.EFFECT_LOG_FLOOR`), which is part of their recorded numbers.
LOG_FLOOR = 1e-12

#: Losses are drawn on a log axis when their largest value is more than this many times the smallest.
LOG_RANGE = 20.0

#: Line styles cycled through by :func:`method_linestyles`.
LINESTYLES: tuple[str, ...] = ("-", "--", "-.", ":")

#: The colour map of :func:`method_colors`.
COLORMAP = "tab10"

#: The word stamped on figures of a reduced-budget (``--quick``) run, and the prefix of their titles.
QUICK = "QUICK"
QUICK_PREFIX = "QUICK (reduced budget) -- "


def metric_label(name: str) -> str:
    """The axis label of metric ``name`` (:data:`METRIC_LABELS`, else the name itself)."""
    return METRIC_LABELS.get(name, name)


def method_colors(names: Sequence[str]) -> dict[str, Any]:
    """One colour per name, in order (``tab10``, cycling after ten)."""
    import matplotlib

    cmap = matplotlib.colormaps[COLORMAP]
    return {name: cmap(i % 10) for i, name in enumerate(names)}


def method_linestyles(names: Sequence[str]) -> dict[str, str]:
    """One line style per name, in order, so that curves lying on top of each other stay visible."""
    return {name: LINESTYLES[i % len(LINESTYLES)] for i, name in enumerate(names)}


def seed_band(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean, min and max over seeds (axis 0) of a ``[seeds, points]`` array, NaN (no value) left out.

    A point without any value is NaN in all three.
    """
    values = np.asarray(values, dtype=float)
    ok = ~np.isnan(values)
    count = ok.sum(axis=0)
    filled = np.where(ok, values, 0.0)
    mean = np.where(count > 0, filled.sum(axis=0) / np.maximum(count, 1), np.nan)
    lo = np.where(count > 0, np.where(ok, values, np.inf).min(axis=0, initial=np.inf), np.nan)
    hi = np.where(count > 0, np.where(ok, values, -np.inf).max(axis=0, initial=-np.inf), np.nan)
    return mean, lo, hi


def quick_prefix(quick: bool) -> str:
    """:data:`QUICK_PREFIX` for a reduced-budget run, else ``""`` (titles start with it)."""
    return QUICK_PREFIX if quick else ""


def quick_stamp(fig: Any, quick: bool) -> None:
    """Stamp :data:`QUICK` in red in the lower right corner of ``fig`` when ``quick``."""
    if quick:
        fig.text(0.99, 0.01, QUICK, color="red", fontsize=14, ha="right", va="bottom", alpha=0.6,
                 fontweight="bold")
