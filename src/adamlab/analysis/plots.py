"""Figures from a results store: learning curves and learning-rate sensitivity (PNG and PDF).

- :func:`plot_curves`: loss and accuracy against steps (or epochs), one line per optimizer at its best
  learning rate (by a :class:`~adamlab.selection.lr.Criterion`), the mean over seeds with a min-max band.
- :func:`plot_lr_sensitivity`: the final metric against the learning rate (log x), mean over seeds with a
  min-max band; learning rates where a seed diverged are crosses at the top of the panel.

Titles name the problem (and options) and the protocol (batch size, steps, schedule, seeds).
A store given as a path is opened read-only, so figures can be made from a store on a read-only
file system. Runs and curves are read with the store's queries (:meth:`~adamlab.store.Store.runs`,
:meth:`~adamlab.store.Store.curves`); the figure set-up, colours, labels and the saver are those of
:mod:`adamlab.plotting` (``save_figure`` is re-exported here).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from adamlab.plotting import (
    FONT_RC,
    LOG_RANGE,
    draw_stacked_curves,
    log_scale,
    metric_label,
    pyplot,
    save_figure,
    seed_band,
    stacked_styles,
)
from adamlab.runs.config import problem_key
from adamlab.runs.result import RunStatus
from adamlab.selection.lr import Criterion, select_best
from adamlab.store import Store, borrowed
from adamlab.util.stats import summarize

__all__ = [
    "CURVE_METRICS", "FONT_RC", "OFF_SCALE", "CriterionWarning", "ProblemRuns", "best_lrs", "draw_curves",
    "draw_lr_sensitivity", "has_lr_grid", "load_problem_runs", "marker_legend_entries", "plot_curves",
    "plot_lr_sensitivity", "plot_store", "reading", "save_figure",
]

#: Metrics drawn by :func:`plot_curves`, in panel order, when present.
CURVE_METRICS: tuple[str, ...] = ("train_loss", "test_loss", "train_accuracy", "test_accuracy")

#: In lr-sensitivity plots, final losses above this multiple of the initial loss are drawn as
#: triangles on the top frame (they blew up without becoming non-finite).
OFF_SCALE = 10.0

@dataclass
class _Run:
    run_id: str
    optimizer: str
    lr: float | None
    seed: int
    status: str
    row: dict[str, Any]
    metrics: dict[str, tuple[list[int], list[float]]] = field(default_factory=dict)


@dataclass
class ProblemRuns:
    """All runs of one problem (name + options) in a store."""

    problem: str
    options: dict[str, Any]
    runs: list[_Run]

    @property
    def label(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in sorted(self.options.items()))
        return f"{self.problem} ({opts})" if opts else self.problem

    @property
    def slug(self) -> str:
        """File-name stem: the problem name plus the options (``d-10``), or a hash of them when they are long."""
        base = self.problem.replace("/", "_")
        if not self.options:
            return base
        opts = "_".join(f"{k}-{v}" for k, v in sorted(self.options.items()))
        opts = "".join(c if c.isalnum() or c in "-_." else "-" for c in opts)
        if len(opts) <= SLUG_OPTIONS:
            return f"{base}_{opts}"
        import hashlib  # long option sets: a short, stable tag instead of a 90-character name

        return f"{base}_{hashlib.sha256(opts.encode()).hexdigest()[:8]}"

    def protocol(self, seeds: Mapping[str, int] | None = None) -> str:
        """``batch 8, 1000 steps, constant lr, 3 seeds`` (ranges when runs differ).

        The seeds come from the data: ``seeds`` (``{optimizer: number of seeds}``, e.g. those at each
        optimizer's best lr) when given, else the distinct seeds of each (optimizer, lr). When they differ,
        the text says so: ``seeds: adam 3, msgd 2`` or ``1-3 seeds per (optimizer, lr)``.
        """
        rows = [r.row for r in self.runs]

        def values(key: str) -> str:
            vals = sorted({row[key] for row in rows})
            return str(vals[0]) if len(vals) == 1 else f"{vals[0]}-{vals[-1]}"

        schedules = sorted({json.loads(json.dumps(row["schedule"]))["name"] for row in rows})
        return f"batch {values('batch_size')}, {values('steps')} steps, {'/'.join(schedules)} lr, {self.seeds_text(seeds)}"

    def seeds_text(self, seeds: Mapping[str, int] | None = None) -> str:
        """How many seeds, from the data (see :meth:`protocol`)."""
        if seeds is not None:
            counts = sorted(set(seeds.values()))
            if len(counts) > 1:
                return "seeds: " + ", ".join(f"{o} {n}" for o, n in sorted(seeds.items()))
        else:
            per: dict[tuple[str, float | None], set[int]] = {}
            for r in self.runs:
                per.setdefault((r.optimizer, r.lr), set()).add(r.seed)
            counts = sorted({len(v) for v in per.values()})
            if len(counts) > 1:
                return f"{counts[0]}-{counts[-1]} seeds per (optimizer, lr)"
        n = counts[0] if counts else 0
        return f"{n} seed{'s' if n != 1 else ''}"


#: Longest option tag spelled out in a file name; longer ones become an 8-character hash (the figure's
#: title still lists every option).
SLUG_OPTIONS = 32


@contextlib.contextmanager
def reading(store: Store | str | os.PathLike[str]) -> Iterator[Store]:
    """``store`` itself, or the store at that path opened read-only (closed afterwards):
    :func:`adamlab.store.borrowed` with ``readonly=True, must_exist=True``.

    Raises ``FileNotFoundError`` if ``store`` is a path that does not exist.
    """
    with borrowed(store, readonly=True, must_exist=True) as db:
        yield db


def load_problem_runs(store: Store | str | os.PathLike[str], problem: str | None = None) -> list[ProblemRuns]:
    """Read the runs (and their metrics) of ``problem`` (all problems if None), grouped by problem + options.

    Raises ``FileNotFoundError`` if ``store`` is a path that does not exist.
    """
    with reading(store) as db:
        rows = [row for row in db.runs(problem=problem) if RunStatus(row["status"]).done]
        curves = db.curves([row["run_id"] for row in rows])
    groups: dict[str, ProblemRuns] = {}
    for row in rows:
        key = problem_key(row["problem"], row["problem_options"])
        grp = groups.setdefault(key, ProblemRuns(row["problem"], dict(row["problem_options"]), []))
        grp.runs.append(_Run(row["run_id"], row["optimizer"], row["lr"], int(row["seed"]), RunStatus(row["status"]),
                             row, curves[row["run_id"]]))
    return [groups[k] for k in sorted(groups)]


def _stack(runs: Sequence[_Run], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps (union) and a [seeds, steps] array with NaN where a run has no value."""
    steps = sorted({s for r in runs for s in r.metrics.get(metric, ([], []))[0]})
    index = {s: i for i, s in enumerate(steps)}
    out = np.full((len(runs), len(steps)), np.nan)
    for i, r in enumerate(runs):
        for s, v in zip(*r.metrics.get(metric, ([], [])), strict=True):
            out[i, index[s]] = v
    return np.asarray(steps, dtype=float), out


def _epochs_per_step(runs: Sequence[_Run]) -> float | None:
    for r in runs:
        steps, epochs = r.metrics.get("epoch", ([], []))
        for s, e in zip(steps, epochs, strict=True):
            if s > 0:
                return e / s
    return None


def _off_scale_cap(runs: Sequence[_Run], metric: str) -> float | None:
    """For losses: ``OFF_SCALE`` times the largest initial (step 0) value, else None."""
    if "loss" not in metric:
        return None
    initial = [r.metrics[metric][1][0] for r in runs if metric in r.metrics and r.metrics[metric][0][:1] == [0]]
    if not initial or max(initial) <= 0:
        return None
    return OFF_SCALE * max(initial)


def _use_log(values: np.ndarray, metric: str) -> bool:
    finite = values[np.isfinite(values)]
    return "loss" in metric and finite.size > 0 and bool((finite > 0).all()) and \
        finite.max() / finite.min() > LOG_RANGE


def best_lrs(store: Store | str | os.PathLike[str], grp: ProblemRuns,
             criterion: str | Criterion = "min:train_loss") -> dict[str, float]:
    """Best lr per optimizer among the runs of ``grp`` (see :func:`select_best`)."""
    ids = [r.run_id for r in grp.runs]
    return {opt: sel.best_lr for (_, opt), sel in select_best(store, criterion, run_ids=ids).items()}


def draw_curves(ax: Any, grp: ProblemRuns, metric: str, best: dict[str, float], *,
                epochs_per_step: float | None = None) -> None:
    """Draw ``metric`` against steps (or epochs) on ``ax``: per optimizer at ``best[opt]``, the mean over
    seeds and a min-max band."""
    optimizers = sorted({r.optimizer for r in grp.runs})
    all_vals = []
    drawn = []
    for opt in optimizers:
        runs = [r for r in grp.runs if r.optimizer == opt and (opt not in best or r.lr == best[opt])]
        steps, vals = _stack(runs, metric)
        if steps.size == 0:
            continue
        mean, lo, hi = seed_band(vals)
        xs = steps * epochs_per_step if epochs_per_step is not None else steps
        lr = runs[0].lr
        label = f"{opt} (lr={lr:.3g})" if lr is not None else opt
        if any(r.status is RunStatus.DIVERGED for r in runs):
            label += " [diverged]"
        final = mean[np.isfinite(mean)]
        drawn.append((float(final[-1]) if final.size else math.inf, opt, label, xs, mean, lo, hi, len(runs)))
        all_vals.append(vals)
    # drawn last-on-top by rank (the best final value on top), hollow markers larger the lower the curve
    # lies, at staggered points, so that curves lying on each other stay visible
    mode = _metric_mode(metric)
    draw_stacked_curves(ax, drawn, _rank_order({d[1]: d[0] for d in drawn}, mode), optimizers)
    if all_vals and _use_log(np.concatenate([v.ravel() for v in all_vals]), metric):
        log_scale(ax)
    ax.set_xlabel("epoch" if epochs_per_step is not None else "step")
    ax.set_ylabel(metric_label(metric))
    ax.grid(True, alpha=0.3)


def _metric_mode(metric: str) -> str:
    """``"max"`` for accuracies (higher is better), else ``"min"``."""
    return "max" if "accuracy" in metric else "min"


def _rank_order(best: dict[str, float], mode: str) -> list[str]:
    """Names from the worst to the best ``best`` value (non-finite ones first): the drawing order."""
    sign = 1.0 if mode == "max" else -1.0
    return sorted(best, key=lambda o: (math.isfinite(best[o]), sign * best[o] if math.isfinite(best[o]) else 0.0, o))


def draw_lr_sensitivity(ax: Any, grp: ProblemRuns, metric: str, mode: str | None = None) -> tuple[bool, bool]:
    """Draw the final ``metric`` against lr on ``ax``; returns (any diverged, any off scale).

    Each optimizer has its fixed colour, line style and marker; curves are drawn last-on-top by rank
    (the best value over lrs, ``mode`` ``"min"`` or ``"max"``, by default ``"max"`` for accuracies) with
    hollow markers that are larger the lower the curve lies (:func:`adamlab.plotting.stacked_styles`),
    so that curves on top of each other stay distinguishable.
    """
    from matplotlib.transforms import blended_transform_factory

    mode = mode or _metric_mode(metric)
    lrs_per_opt: dict[str, set[float]] = {}
    for r in grp.runs:
        if r.lr is not None:
            lrs_per_opt.setdefault(r.optimizer, set()).add(r.lr)
    optimizers = sorted({r.optimizer for r in grp.runs})
    top = blended_transform_factory(ax.transData, ax.transAxes)
    finals: list[float] = []
    cap = _off_scale_cap(grp.runs, metric)
    any_diverged = any_off = False
    drawn: dict[str, tuple[list[float], list[float], list[float], list[float], list[float], list[float]]] = {}
    for opt in sorted(lrs_per_opt):
        lrs = sorted(lrs_per_opt[opt])
        mean, lo, hi, crosses, off = [], [], [], [], []
        for lr in lrs:
            runs = [r for r in grp.runs if r.optimizer == opt and r.lr == lr]
            vals = [r.metrics[metric][1][-1] for r in runs if r.status is RunStatus.FINISHED and metric in r.metrics]
            if any(r.status is RunStatus.DIVERGED for r in runs):
                crosses.append(lr)
            ok = len(vals) == len(runs) and vals
            m = summarize(vals).mean if ok else math.nan
            if cap is not None and m > cap:  # blew up without overflowing: off the scale
                off.append(lr)
                m = math.nan
            mean.append(m)
            lo.append(min(vals) if ok and not math.isnan(m) else math.nan)
            hi.append(min(max(vals), cap or math.inf) if ok and not math.isnan(m) else math.nan)
            finals += [v for v in vals if cap is None or v <= cap]
        drawn[opt] = (lrs, mean, lo, hi, crosses, off)
    best = {}
    for opt, (_, mean, *_rest) in drawn.items():
        finite = [m for m in mean if math.isfinite(m)]
        best[opt] = (min(finite) if mode == "min" else max(finite)) if finite else math.nan
    styles = stacked_styles(_rank_order(best, mode), optimizers)
    for opt, (lrs, mean, lo, hi, crosses, off) in drawn.items():
        style = styles[opt]
        ax.plot(lrs, mean, label=opt, **style)
        ax.fill_between(lrs, lo, hi, color=style["color"], alpha=0.15, lw=0, zorder=1)
        if off:
            any_off = True
            ax.plot(off, [1.0] * len(off), "^", color=style["color"], ms=7, transform=top, clip_on=False)
        if crosses:
            any_diverged = True
            # just above the frame, so crosses never hide data points
            ax.plot(crosses, [1.035] * len(crosses), "x", color=style["color"], ms=7, mew=2,
                    transform=top, clip_on=False)
    ax.set_xscale("log")
    if _use_log(np.asarray(finals, dtype=float), metric):
        log_scale(ax)
    ax.set_xlabel("learning rate")
    ax.set_ylabel(f"final {metric_label(metric)}")
    ax.grid(True, alpha=0.3)
    return any_diverged, any_off


def marker_legend_entries(any_diverged: bool, any_off: bool) -> tuple[list[Any], list[str]]:
    """Legend handles for the diverged / off-scale markers of :func:`draw_lr_sensitivity`."""
    from matplotlib.lines import Line2D

    handles, labels = [], []
    if any_diverged:
        handles.append(Line2D([], [], ls="", marker="x", color="0.3", mew=2))
        labels.append("diverged (non-finite)")
    if any_off:
        handles.append(Line2D([], [], ls="", marker="^", color="0.3"))
        labels.append(f"> {OFF_SCALE:g}x initial value")
    return handles, labels


def has_lr_grid(grp: ProblemRuns) -> bool:
    """True when some optimizer of ``grp`` was run at two or more learning rates."""
    lrs: dict[str, set[float]] = {}
    for r in grp.runs:
        if r.lr is not None:
            lrs.setdefault(r.optimizer, set()).add(r.lr)
    return bool(lrs) and max(len(v) for v in lrs.values()) >= 2


#: Width and height (inches) of one panel of :func:`plot_curves` / :func:`plot_lr_sensitivity`, and the
#: width kept for the legend on the right.
PANEL_SIZE = (3.6, 3.0)
LEGEND_WIDTH = 2.0


def panel_figsize(panels: int, rows: int = 1) -> tuple[float, float]:
    """The figure size for ``panels`` panels in a row (``rows`` rows), a legend on the right, a title
    above and a caption below: the canvas grows with the panels instead of being fixed."""
    cols = math.ceil(panels / rows)
    return PANEL_SIZE[0] * cols + LEGEND_WIDTH, PANEL_SIZE[1] * rows + 1.1


def finish_figure(fig: Any, title: str, caption: str, handles: Sequence[Any], labels: Sequence[str]) -> None:
    """A short title (at most two lines), the details as a caption under the panels, and one legend
    outside the data, to the right of the panels (the figure must use ``layout="constrained"``)."""
    import textwrap

    width_in = fig.get_size_inches()[0]
    lines = textwrap.wrap(title, max(30, int(13 * width_in)))
    fig.suptitle("\n".join(lines[:2]) + (" ..." if len(lines) > 2 else ""), fontsize=9)
    fig.supxlabel("\n".join(textwrap.wrap(caption, max(40, int(15 * width_in)))), fontsize=7)
    if handles:
        fig.legend(handles, labels, loc="outside right center", fontsize=7, frameon=False)


def plot_curves(
    store: Store | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    problem: str | None = None,
    criterion: str | Criterion = "min:train_loss",
    x: str = "auto",
    metrics: Sequence[str] = CURVE_METRICS,
    stem: str | None = None,
) -> list[Path]:
    """Learning curves per problem: mean over seeds and min-max band, one line per optimizer.

    Each optimizer is drawn at its best learning rate by ``criterion`` (see :func:`select_best`); a
    ``CriterionWarning`` says when no finished run of a problem has the criterion's metric (then
    every lr ranks alike and the smallest is drawn).
    ``x`` is ``"step"``, ``"epoch"`` or ``"auto"`` (epochs when the problem has them).
    Returns the written files (PNG and PDF per problem).
    """
    if x not in ("auto", "step", "epoch"):
        raise ValueError(f"x must be 'auto', 'step' or 'epoch'; got {x!r}")
    with reading(store) as db:
        return _plot_curves(db, out_dir, problem, Criterion.parse(criterion), x, metrics, stem)


class CriterionWarning(UserWarning):
    """The criterion's metric is not recorded for the runs it should rank."""


def _warn_missing_metric(grp: ProblemRuns, crit: Criterion) -> None:
    finished = [r for r in grp.runs if r.status is RunStatus.FINISHED]
    if finished and not any(crit.metric in r.metrics for r in finished):
        names = sorted({m for r in finished for m in r.metrics})
        warnings.warn(f"criterion metric {crit.metric!r} is not recorded for {grp.label} (metrics there: "
                      f"{', '.join(names)}); every lr ranks alike, the smallest is drawn",
                      CriterionWarning, stacklevel=3)


def _plot_curves(store: Store, out_dir: str | os.PathLike[str], problem: str | None, crit: Criterion, x: str,
                 metrics: Sequence[str], stem: str | None) -> list[Path]:
    plt = pyplot()

    written: list[Path] = []
    for grp in load_problem_runs(store, problem):
        present = [m for m in metrics if any(m in r.metrics for r in grp.runs)]
        if not present:
            continue
        _warn_missing_metric(grp, crit)
        best = best_lrs(store, grp, crit)
        eps = _epochs_per_step(grp.runs)
        if x == "epoch" and eps is None:
            raise ValueError(f"problem {grp.label} has no epochs; use x='step'")
        fig, axes = plt.subplots(1, len(present), figsize=panel_figsize(len(present)), squeeze=False,
                                 layout="constrained")
        for ax, metric in zip(axes[0], present, strict=True):
            draw_curves(ax, grp, metric, best, epochs_per_step=eps if x != "step" else None)
        handles, labels = axes[0][0].get_legend_handles_labels()
        at_best = {o: len({r.seed for r in grp.runs if r.optimizer == o and (o not in best or r.lr == best[o])})
                   for o in {r.optimizer for r in grp.runs}}
        finish_figure(fig, grp.label, f"{grp.protocol(at_best)}; lines: mean over seeds at each optimizer's best lr by "
                      f"{crit}, band: min-max over seeds", handles, labels)
        written += save_figure(fig, Path(out_dir), stem or f"{grp.slug}_curves")
        plt.close(fig)
    return written


def plot_lr_sensitivity(
    store: Store | str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    problem: str | None = None,
    metrics: Sequence[str] = ("train_loss", "test_accuracy"),
    stem: str | None = None,
) -> list[Path]:
    """Final metric against learning rate (log x), per optimizer; diverged lrs are crosses at the top.

    Problems with a single learning rate per optimizer get no sensitivity plot.
    """
    plt = pyplot()

    written: list[Path] = []
    with reading(store) as db:
        groups = load_problem_runs(db, problem)
    for grp in groups:
        present = [m for m in metrics if any(m in r.metrics for r in grp.runs)]
        if not present or not has_lr_grid(grp):
            continue
        fig, axes = plt.subplots(1, len(present), figsize=panel_figsize(len(present)), squeeze=False,
                                 layout="constrained")
        any_diverged = any_off = False
        for ax, metric in zip(axes[0], present, strict=True):
            d, o = draw_lr_sensitivity(ax, grp, metric)
            any_diverged, any_off = any_diverged or d, any_off or o
        handles, labels = axes[0][0].get_legend_handles_labels()
        extra_h, extra_l = marker_legend_entries(any_diverged, any_off)
        note = "; x above the frame: a seed diverged" if any_diverged else ""
        finish_figure(fig, f"{grp.label}: lr sensitivity", f"{grp.protocol()}; lines: final value, mean over "
                      f"seeds, band: min-max over seeds{note}", handles + extra_h, labels + extra_l)
        written += save_figure(fig, Path(out_dir), stem or f"{grp.slug}_lr_sensitivity")
        plt.close(fig)
    return written


def plot_store(store: Store | str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
               problem: str | None = None, criterion: str | Criterion = "min:train_loss") -> list[Path]:
    """All figures for a store: curves and (where there is an lr grid) lr sensitivity, per problem."""
    with reading(store) as db:
        return (plot_curves(db, out_dir, problem=problem, criterion=criterion)
                + plot_lr_sensitivity(db, out_dir, problem=problem))
