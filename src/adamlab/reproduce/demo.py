"""``adamlab demo``: the 2x2 grid of Balles & Hennig (M-SGD, M-SSD, M-SVAG, M-SSD-VA) plus Adam on two
built-in problems, with no downloads, in well under two minutes on two CPU cores.

1. ``quadratic.noisy``, ill-conditioned and axis-aligned, noise nu = 4 (Balles & Hennig 2018, sec. 3):
   the sign-based methods (M-SSD, M-SSD-VA, Adam) should reach a lower loss than M-SGD and M-SVAG.
2. ``leastsquares.wilson`` (Wilson et al. 2017, sec. 3.3): every method fits the training set, but the
   sign-based ones (M-SSD, M-SSD-VA, Adam) predict +1 everywhere and sit at chance test accuracy while
   M-SGD and M-SVAG classify the test set correctly.

Protocol: each method's lr is tuned on a log grid (1e-5 ... 1, 11 values, one seed) by the stated criterion, then
the best lr is rerun with 3 seeds (the papers' protocol, :func:`adamlab.runner.sweep.tune_and_rerun`).
Results go to ``OUT/demo.sqlite`` (a rerun reuses them), the figure to ``OUT/demo.png`` and ``.pdf``.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adamlab.analysis.plots import (
    best_lrs,
    draw_curves,
    draw_lr_sensitivity,
    load_problem_runs,
    marker_legend_entries,
)
from adamlab.plotting import pyplot, save_figure
from adamlab.runner.sweep import tune_and_rerun
from adamlab.runs.config import problem_key
from adamlab.runs.parsing import parse_lr_grid
from adamlab.runs.result import RunStatus
from adamlab.selection.lr import Criterion
from adamlab.store import Store, borrowed
from adamlab.util.stats import summarize

METHODS: tuple[str, ...] = ("msgd", "mssd", "msvag", "mssdva", "adam")
LR_GRID = "1e-5:1e0:11"
TUNE_SEEDS = 1
RERUN_SEEDS = 3


@dataclass(frozen=True)
class DemoTask:
    """One problem of the demo and how it is tuned and shown."""

    title: str
    problem: str
    options: dict[str, Any]
    steps: int
    eval_every: int
    criterion: str
    columns: tuple[str, ...]
    show: str


TASKS: tuple[DemoTask, ...] = (
    DemoTask("noisy quadratic, ill-conditioned, axis-aligned, nu=4", "quadratic.noisy",
             {"spectrum": "ill", "rotation": "axis", "nu": 4.0}, 500, 10, "min:train_loss", ("train_loss",),
             "train_loss"),
    DemoTask("Wilson et al.'s separable least squares", "leastsquares.wilson", {}, 300, 10,
             "min:train_loss", ("train_loss", "test_accuracy"), "test_accuracy"),
)


@dataclass
class DemoResult:
    """What the demo printed and wrote."""

    table: str
    figures: list[Path] = field(default_factory=list)
    store: Path | None = None
    wall_time: float = 0.0
    runs_done: int = 0
    failed: int = 0


def _fmt(x: float | None) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return f"{x:.3g}" if abs(x) >= 1e-3 or x == 0 else f"{x:.2e}"


def run_demo(out: str | os.PathLike[str] = "results/demo", *, quiet: bool = False, fresh: bool = False) -> DemoResult:
    """Run the demo into ``out`` and return the summary table and figure paths."""
    t0 = time.perf_counter()
    out = Path(out)
    db_path = out / "demo.sqlite"
    if fresh:
        for suffix in ("", "-wal", "-shm"):
            Path(str(db_path) + suffix).unlink(missing_ok=True)
    grid = parse_lr_grid(LR_GRID)
    lines: list[str] = []
    result = DemoResult(table="", store=db_path)
    with borrowed(db_path) as db:
        for task in TASKS:
            rep = tune_and_rerun((task.problem, task.options), list(METHODS), grid, tune_seeds=TUNE_SEEDS,
                                 rerun_seeds=RERUN_SEEDS, budget=task.steps, store=db, criterion=task.criterion,
                                 eval_every=task.eval_every, quiet=quiet)
            result.runs_done += rep.tune.ran + rep.rerun.ran
            result.failed += rep.tune.failed + rep.rerun.failed
            lines += _task_table(db, task, rep.selections)
        result.figures = _figure(db, out)
    result.table = "\n".join(lines)
    result.wall_time = time.perf_counter() - t0
    return result


def _task_table(db: Store, task: DemoTask, selections: dict[tuple[str, str], Any]) -> list[str]:
    crit = Criterion.parse(task.criterion)
    head = f"{'method':<8} {'best lr':>8}" + "".join(f" {c + ' (mean [min, max])':>34}" for c in task.columns)
    lines = [f"{task.title} ({task.problem}): {task.steps} steps, lr tuned on {LR_GRID} by {crit}, "
             f"{RERUN_SEEDS} seeds", head, "-" * len(head)]
    for method in METHODS:
        sel = next((s for (_, opt), s in selections.items()
                    if opt == method and s.problem == task.problem), None)
        if sel is None:
            lines.append(f"{method:<8} {'-':>8}")
            continue
        pid = problem_key(sel.problem, sel.problem_options)
        runs = [r for r in db.run_table(problem=task.problem)
                if problem_key(r["problem"], r["problem_options"]) == pid and r["optimizer"] == method
                and r["lr"] == sel.best_lr and r["seed"] < RERUN_SEEDS and r["steps"] == task.steps]
        cells = []
        for col in task.columns:
            stats = summarize([r["final"].get(col) for r in runs if r["status"] == RunStatus.FINISHED])
            diverged = sum(r["status"] == RunStatus.DIVERGED for r in runs)
            if not stats.n:
                cell = "diverged" if diverged else "-"
            else:
                cell = f"{_fmt(stats.mean)} [{_fmt(stats.min)}, {_fmt(stats.max)}]"
                if diverged:
                    cell += f" ({diverged} diverged)"
            cells.append(f" {cell:>34}")
        lines.append(f"{method:<8} {_fmt(sel.best_lr):>8}" + "".join(cells))
    lines.append("")
    return lines


def _figure(db: Store, out: Path) -> list[Path]:
    plt = pyplot()

    fig, axes = plt.subplots(len(TASKS), 2, figsize=(10, 3.4 * len(TASKS) + 0.8), squeeze=False,
                             layout="constrained")
    crits = []
    for row, task in zip(axes, TASKS, strict=True):
        groups = [g for g in load_problem_runs(db, task.problem) if all(
            g.options.get(k) == v for k, v in task.options.items())]
        if not groups:
            continue
        grp = groups[0]
        grp.runs = [r for r in grp.runs if r.row["steps"] == task.steps]
        crit = Criterion.parse(task.criterion)
        crits.append(str(crit))
        metric = task.show
        final_runs = [r for r in grp.runs if r.seed < RERUN_SEEDS]
        best = best_lrs(db, grp, crit)
        draw_curves(row[0], type(grp)(grp.problem, grp.options, final_runs), metric, best)
        row[0].legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncols=3, frameon=False)
        row[0].set_title(f"{task.title}: at the best lr", fontsize=9)
        tune_runs = [r for r in grp.runs if r.seed < TUNE_SEEDS]
        d, o = draw_lr_sensitivity(row[1], type(grp)(grp.problem, grp.options, tune_runs), metric)
        row[1].set_title("the same problem: lr sensitivity", fontsize=9)
        handles, labels = row[1].get_legend_handles_labels()
        extra_h, extra_l = marker_legend_entries(d, o)
        row[1].legend(handles + extra_h, labels + extra_l, fontsize=7, loc="upper center",
                      bbox_to_anchor=(0.5, -0.2), ncols=4, frameon=False)
    fig.suptitle("adamlab demo: the 2x2 grid of Balles & Hennig (M-SGD, M-SSD, M-SVAG, M-SSD-VA) and Adam",
                 fontsize=10)
    fig.supxlabel(f"left: each method at its best lr by {' / '.join(dict.fromkeys(crits))} on the grid {LR_GRID}; "
                  f"lines: mean over {RERUN_SEEDS} seeds, band: min-max. right: final value against the lr, "
                  f"{TUNE_SEEDS} tuning seed{'s' if TUNE_SEEDS > 1 else ''}; curves drawn last-on-top by rank, "
                  "hollow markers larger the lower the curve lies", fontsize=7, wrap=True)
    paths = save_figure(fig, out, "demo")
    plt.close(fig)
    return paths
