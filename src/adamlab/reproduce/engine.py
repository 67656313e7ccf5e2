"""Run a recipe: tune each (setting, variant) on the lr grid, rerun the best lr on the seeds.

Runs go through :func:`adamlab.runner.sweep`, so they land in a results store and are skipped when
already there (a rerun of a recipe resumes). The selection rule is the runner's (final value of the
criterion's metric, mean over the tune seeds; an lr where a seed diverged ranks last; ties go to the
smaller lr), applied by :func:`select_lr` to the pooled tune runs, so that data draws
(``Protocol.replicate_option``) are averaged like seeds.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adamlab.reproduce.base import Protocol, Recipe, Setting, Variant
from adamlab.runner.result import RunStatus


@dataclass
class VariantRuns:
    """Run ids of one (setting, variant): the tuning sweep and the final reruns."""

    setting: Setting
    variant: Variant
    selected_lr: float
    tune_ids: list[str] = field(default_factory=list)
    final_ids: list[str] = field(default_factory=list)
    lr_scores: dict[float, float] = field(default_factory=dict)


@dataclass
class Execution:
    """Everything a recipe run produced (before summarising)."""

    recipe: Recipe
    quick: bool
    protocol: Protocol
    store: Path
    runs: list[VariantRuns]
    wall_time: float


def check_data(recipe: Recipe) -> None:
    """Load the training split of every dataset the recipe needs (cached for the runs).

    Raises
    ------
    FileNotFoundError
        ``adamlab.data``'s one-line "file missing" error (the CLI turns it into exit code 2).
    """
    from adamlab.problems.datasets import load_cached

    for name in recipe.datasets:
        load_cached(name, "train")


def select_lr(db: Any, run_ids: list[str], criterion: str) -> tuple[float, dict[float, float]]:
    """The runner's selection rule over ``run_ids`` pooled (all seeds and data draws together).

    Score of an lr: the mean final value of the criterion's metric over its runs, NaN (ranked last)
    when any of them diverged, failed or lacks the metric; the best score wins, ties go to the
    smaller lr. Returns ``(best_lr, {lr: score})``.
    """
    from adamlab.runner import Criterion

    crit = Criterion.parse(criterion)
    status = db.statuses(run_ids)
    by_lr: dict[float, list[float | None]] = {}
    for run_id in run_ids:
        lr = db.config(run_id).lr
        value = db.final_metric(run_id, crit.metric) if status.get(run_id) == RunStatus.FINISHED else None
        by_lr.setdefault(float(lr), []).append(value)
    scores: dict[float, float] = {}
    for lr, values in sorted(by_lr.items()):
        ok = [v for v in values if v is not None and math.isfinite(v)]
        scores[lr] = sum(ok) / len(ok) if ok and len(ok) == len(values) else math.nan
    sign = 1.0 if crit.mode == "min" else -1.0
    best = min(scores, key=lambda lr: (math.isnan(scores[lr]), 0.0 if math.isnan(scores[lr]) else
                                       sign * scores[lr], lr))
    return best, scores


def _instances(setting: Setting, protocol: Protocol, replicates: list[int]) -> list[Any]:
    from adamlab import problems

    options = {**dict(setting.options), **dict(protocol.problem_options)}
    if protocol.replicate_option is None:
        return [problems.get(setting.problem, **options)]
    return [problems.get(setting.problem, **{**options, protocol.replicate_option: int(s)}) for s in replicates]


def execute(
    recipe: Recipe,
    *,
    quick: bool,
    store: str | os.PathLike[str],
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> Execution:
    """Run ``recipe`` (its quick or full protocol) into ``store`` and return the run ids.

    Parameters
    ----------
    recipe:
        The recipe.
    quick:
        Use ``recipe.quick`` instead of ``recipe.full``.
    store:
        Path of the SQLite results store (created if missing; finished runs are reused).
    quiet:
        No progress bars.
    log:
        Where progress lines go.
    """
    from adamlab.runner import Store, sweep

    t0 = time.perf_counter()
    protocol = recipe.protocol(quick)
    check_data(recipe)
    replicated = protocol.replicate_option is not None
    out: list[VariantRuns] = []
    db = Store(store)
    try:
        for setting in recipe.settings_for(quick):
            tune_inst = _instances(setting, protocol, list(protocol.tune_seeds))
            final_inst = _instances(setting, protocol, list(protocol.seeds))
            hooks = []
            if recipe.hook is not None and protocol.hook_every:
                hooks = [recipe.hook(final_inst[0], protocol.hook_every)]
            tune_seeds = [0] if replicated else list(protocol.tune_seeds)
            final_seeds = [0] if replicated else list(protocol.seeds)
            common: dict[str, Any] = dict(batch_size=protocol.batch_size, eval_every=protocol.eval_every,
                                          hooks=hooks, quiet=quiet)
            for variant in recipe.variants_for(quick):
                entry = VariantRuns(setting, variant, selected_lr=float(variant.lr or 0.0))
                if variant.lr is None:
                    rep = sweep(tune_inst, [variant.optimizer], list(protocol.lr_grid), tune_seeds,
                                protocol.steps, db, hparams=dict(variant.hparams), **common)
                    entry.selected_lr, entry.lr_scores = select_lr(db, rep.run_ids, recipe.criterion)
                    entry.tune_ids = list(rep.run_ids)
                rep = sweep(final_inst, [variant.optimizer], [entry.selected_lr], final_seeds, protocol.steps,
                            db, hparams=dict(variant.hparams), **common)
                entry.final_ids = list(rep.run_ids)
                out.append(entry)
                log(f"  {setting.label:<28} {variant.label:<22} lr={entry.selected_lr:<10.4g} "
                    f"({time.perf_counter() - t0:6.1f} s)")
    finally:
        db.close()
    return Execution(recipe, quick, protocol, Path(store), out, time.perf_counter() - t0)
