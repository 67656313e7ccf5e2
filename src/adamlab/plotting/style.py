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


#: Fixed tab10 colour index, line style and marker of the methods adamlab knows, so that a method
#: looks the same in every panel and figure (M-SVAG is always green). The 2x2 grid of Balles & Hennig
#: and Adam, often drawn together, have five different colours and four line styles.
METHOD_STYLES: Mapping[str, tuple[int, str, str]] = {
    "msgd": (0, "-", "o"), "mssd": (1, "--", "s"), "msvag": (2, "-.", "^"), "mssdva": (3, ":", "D"),
    "adam": (4, "-", "v"), "sgd": (7, "--", "x"), "momentum": (5, "-.", "P"), "nesterov": (5, ":", "*"),
    "adagrad": (6, "--", "<"), "rmsprop": (8, "-.", ">"), "amsgrad": (9, ":", "h"), "adamw": (9, "-", "p"),
    "adamax": (8, "--", "d"), "adam-nobc": (1, "-", "X"), "ssd": (1, "-.", "1"), "svag": (2, ":", "2"),
}
#: Markers of methods outside :data:`METHOD_STYLES`, chosen by a stable hash of the name.
MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "x", "P", "*", "<", ">", "h", "p")


def _stable(name: str) -> int:
    import hashlib

    return int(hashlib.sha256(name.encode()).hexdigest()[:8], 16)


def _base(name: str) -> tuple[int, str, str]:
    """The fixed style of ``name``: its own, that of the optimizer it starts with (``adam (bc)`` is
    Adam's), or one from a stable hash of the name (the same in every figure)."""
    key = name.lower()
    if key in METHOD_STYLES:
        return METHOD_STYLES[key]
    for known in sorted(METHOD_STYLES, key=len, reverse=True):
        if key.startswith(known):
            color, _, marker = METHOD_STYLES[known]
            h = _stable(name)
            return color, LINESTYLES[h % len(LINESTYLES)], MARKERS[h % len(MARKERS)]
    h = _stable(name)
    return h % 10, LINESTYLES[(h // 10) % len(LINESTYLES)], MARKERS[(h // 40) % len(MARKERS)]


def method_styles(names: Sequence[str]) -> dict[str, dict[str, Any]]:
    """``{name: {"color", "linestyle", "marker"}}``: each method's fixed style (:func:`_base`), except
    that inside one figure no two names share a colour (a later name whose colour is taken gets the
    first free one of ``tab10``, then ``tab20``)."""
    import matplotlib

    tab10, tab20 = matplotlib.colormaps["tab10"], matplotlib.colormaps["tab20"]
    palette = [tab10(i) for i in range(10)] + [tab20(i) for i in range(1, 20, 2)]
    used: set[int] = set()
    out = {}
    for name in dict.fromkeys(names):
        index, linestyle, marker = _base(name)
        if index in used:
            index = next((i for i in range(len(palette)) if i not in used), index)
        used.add(index)
        out[name] = {"color": palette[index % len(palette)], "linestyle": linestyle, "marker": marker}
    return out


def method_colors(names: Sequence[str]) -> dict[str, Any]:
    """One colour per name: the method's fixed colour (:func:`method_styles`), distinct within ``names``."""
    return {name: style["color"] for name, style in method_styles(names).items()}


def method_linestyles(names: Sequence[str]) -> dict[str, str]:
    """The method's fixed line style (:func:`method_styles`), so that curves on top of each other stay visible."""
    return {name: style["linestyle"] for name, style in method_styles(names).items()}


def method_markers(names: Sequence[str]) -> dict[str, str]:
    """The method's fixed marker (:func:`method_styles`)."""
    return {name: style["marker"] for name, style in method_styles(names).items()}


def stacked_styles(order: Sequence[str], names: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Plot keywords for curves that may lie on each other, drawn last-on-top by rank.

    ``order`` lists the names from the worst (drawn first, at the bottom) to the best (drawn last, on
    top). Each name keeps its fixed colour, line style and marker (:func:`method_styles` of ``names``, by
    default ``sorted(order)``, so that a name's style does not depend on its rank); markers are hollow, and both
    marker size and line width shrink with rank k (bottom k = 0 of n):

        markersize = 3.5 + 1.2 (n - 1 - k),   linewidth = 1.2 + 0.3 (n - 1 - k),   zorder = 3 + k

    so that a curve hidden under another still shows as a wider line and a ring around the markers of
    the curves on top of it. Returns ``{name: {color, linestyle, marker, markersize, markerfacecolor,
    markeredgewidth, linewidth, zorder}}``, ready for ``ax.plot(..., **style)``.
    """
    ranked = list(dict.fromkeys(order))
    base = method_styles([*names, *ranked] if names is not None else sorted(ranked))
    n = len(ranked)
    out: dict[str, dict[str, Any]] = {}
    for k, name in enumerate(ranked):
        below = n - 1 - k
        out[name] = {"color": base[name]["color"], "linestyle": base[name]["linestyle"],
                     "marker": base[name]["marker"], "markersize": 3.5 + 1.2 * below, "markerfacecolor": "none",
                     "markeredgewidth": 1.1, "linewidth": 1.2 + 0.3 * below, "zorder": 3 + k}
    return out



def draw_stacked_curves(ax: Any, curves: Sequence[tuple[Any, ...]], order: Sequence[str],
                        names: Sequence[str] | None = None) -> None:
    """Plot seed-averaged curves that may lie on each other with :func:`stacked_styles` of ``order``.

    ``curves`` holds ``(final, name, label, xs, mean, lo, hi, n_seeds)`` in legend order. Each curve
    gets its stacked style, markers at about 8 points, staggered by rank so that markers of curves on
    top of each other do not coincide, and a min-max band over its seeds when it has more than one.
    """
    styles = stacked_styles(order, names)
    for _, name, label, xs, mean, lo, hi, n in curves:
        style = styles[name]
        rank = style["zorder"] - 3
        every = max(1, len(xs) // 8)
        ax.plot(xs, mean, markevery=(rank % every, every), label=label, **style)
        if n > 1:
            ax.fill_between(xs, lo, hi, color=style["color"], alpha=0.15, lw=0, zorder=1)

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


def log_scale(ax: Any, axis: str = "y") -> None:
    """Put ``ax``'s ``axis`` ("x" or "y") on a log scale whose tick labels stay plain numbers ("1.05",
    not matplotlib's "1.05x10^0") when the view spans less than a decade; wider views keep matplotlib's
    labels (powers of ten)."""
    import matplotlib.ticker as mticker

    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis

    class PlainWhenNarrow(mticker.Formatter):
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def set_axis(self, axis: Any) -> None:
            super().set_axis(axis)
            self.inner.set_axis(axis)

        def set_locs(self, locs: Any) -> None:
            super().set_locs(locs)
            self.inner.set_locs(locs)

        def __call__(self, x: float, pos: int | None = None) -> str:
            low, high = sorted(self.axis.get_view_interval())
            if low > 0 and high < 10 * low:
                return f"{x:.3g}"
            return self.inner(x, pos)

    target.set_major_formatter(PlainWhenNarrow(target.get_major_formatter()))
    target.set_minor_formatter(PlainWhenNarrow(target.get_minor_formatter()))
