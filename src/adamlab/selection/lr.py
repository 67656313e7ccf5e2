"""Learning-rate selection from stored results: the one criterion parse, score and tie-break.

The papers' tuning protocol (Kingma & Ba 2015; Balles & Hennig 2018; DeepOBS) ranks the learning rates
of a grid by a *criterion*: the final value of a metric, mean over seeds; an lr where any seed diverged,
failed or lacks the metric ranks last; ties go to the smaller lr. :class:`Criterion` parses it,
:func:`lr_score` scores one lr, :func:`best_lr` breaks ties. :func:`select_best` (per problem and
optimizer) and :func:`select_lr` (all given runs pooled, e.g. data draws of a recipe) only differ in
how they group runs; both read the values with :func:`final_values`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from adamlab.runs.config import problem_key
from adamlab.runs.result import RunStatus
from adamlab.store import Store, borrowed


@dataclass(frozen=True)
class Criterion:
    """Rank learning rates by the final value of ``metric``, mean over seeds, ``mode`` min or max."""

    metric: str = "train_loss"
    mode: str = "min"

    def __post_init__(self) -> None:
        if self.mode not in ("min", "max"):
            raise ValueError(f"criterion mode must be 'min' or 'max'; got {self.mode!r}")

    @classmethod
    def parse(cls, spec: str | Criterion) -> Criterion:
        """``"min:train_loss"``, ``"max:test_accuracy"``, or a bare metric name (``*accuracy`` -> max)."""
        if isinstance(spec, Criterion):
            return spec
        if ":" in spec:
            mode, metric = spec.split(":", 1)
            return cls(metric, mode)
        metric = spec.removeprefix("final_")
        return cls(metric, "max" if "accuracy" in metric else "min")

    def __str__(self) -> str:
        return f"{'lowest' if self.mode == 'min' else 'highest'} final {self.metric}, mean over seeds"

    def describe(self, over: str = "the tune seeds") -> str:
        """The whole selection rule in words (the rule of :func:`lr_score` and :func:`best_lr`)."""
        return (f"lr with the {'lowest' if self.mode == 'min' else 'highest'} final {self.metric}, mean over "
                f"{over} (an lr where a run diverged, failed or lacks the metric ranks last; ties go to the "
                "smaller lr)")


def lr_score(values: Sequence[float | None]) -> float:
    """Score of one lr: the mean of its runs' final values; ``nan`` (ranked last) when any is missing.

    A run that diverged, failed or lacks the metric contributes ``None``; a non-finite value counts
    as missing too. No runs at all also gives ``nan``.
    """
    ok = [float(v) for v in values if v is not None and math.isfinite(v)]
    return sum(ok) / len(ok) if ok and len(ok) == len(values) else math.nan


def best_lr(scores: Mapping[float, float], criterion: str | Criterion) -> float:
    """The lr with the best score by ``criterion``; ``nan`` scores rank last; ties go to the smaller lr."""
    if not scores:
        raise ValueError("scores must hold at least one learning rate")
    sign = 1.0 if Criterion.parse(criterion).mode == "min" else -1.0

    def key(lr: float) -> tuple[bool, float, float]:
        s = scores[lr]
        return (math.isnan(s), 0.0 if math.isnan(s) else sign * s, lr)

    return min(scores, key=key)


def rank_lrs(values_by_lr: Mapping[float, Sequence[float | None]],
             criterion: str | Criterion) -> tuple[float, dict[float, float]]:
    """``(best lr, {lr: score})`` for the final values of the runs at each lr (:func:`lr_score`,
    :func:`best_lr`)."""
    scores = {float(lr): lr_score(vals) for lr, vals in sorted(values_by_lr.items())}
    return best_lr(scores, criterion), scores


def final_values(db: Store, rows: Sequence[Mapping[str, Any]], metric: str) -> list[float | None]:
    """The final ``metric`` of each store row (``db.runs()``); ``None`` unless the row's status is
    finished (read with the store's :meth:`~adamlab.store.Store.final_metrics`, in one go)."""
    finished = [r["run_id"] for r in rows if r["status"] == RunStatus.FINISHED]
    finals = db.final_metrics(finished, [metric])
    return [finals[r["run_id"]].get(metric) if r["status"] == RunStatus.FINISHED else None for r in rows]


def _rows(db: Store, run_ids: Sequence[str] | None, problem: str | None = None) -> list[dict[str, Any]]:
    rows = db.runs(problem=problem)
    if run_ids is not None:  # a filter of the whole list keeps the store's order of runs
        wanted = set(run_ids)
        rows = [r for r in rows if r["run_id"] in wanted]
    return [r for r in rows if r["lr"] is not None]


@dataclass
class Selection:
    """The best lr of one (problem, optimizer) and the scores of every lr (``nan`` = ranked last)."""

    problem: str
    problem_options: dict[str, Any]
    optimizer: str
    best_lr: float
    score: float
    scores: dict[float, float]


def select_best(
    store: Store | str | os.PathLike[str],
    criterion: str | Criterion = "min:train_loss",
    *,
    run_ids: Sequence[str] | None = None,
    problem: str | None = None,
) -> dict[tuple[str, str], Selection]:
    """Best lr per (problem, optimizer) among ``run_ids`` (default: all runs in the store).

    Keys are ``(problem_key(problem, options), optimizer)``
    (:func:`adamlab.runs.config.problem_key`): runs of one problem with different options are
    ranked separately.
    """
    crit = Criterion.parse(criterion)
    with borrowed(store) as db:
        groups: dict[tuple[str, str], dict[float, list[float | None]]] = {}
        first: dict[tuple[str, str], dict[str, Any]] = {}
        rows = _rows(db, run_ids, problem)
        for r, value in zip(rows, final_values(db, rows, crit.metric), strict=True):
            key = (problem_key(r["problem"], r["problem_options"]), r["optimizer"])
            first.setdefault(key, r)
            groups.setdefault(key, {}).setdefault(float(r["lr"]), []).append(value)
    out = {}
    for key, by_lr in groups.items():
        best, scores = rank_lrs(by_lr, crit)
        row = first[key]
        out[key] = Selection(row["problem"], dict(row["problem_options"]), key[1], best, scores[best], scores)
    return out


def select_lr(
    store: Store | str | os.PathLike[str],
    run_ids: Sequence[str],
    criterion: str | Criterion = "min:train_loss",
) -> tuple[float, dict[float, float]]:
    """The same rule as :func:`select_best` over all of ``run_ids`` pooled into one group.

    For runs that belong together although their problem options differ, e.g. the data draws
    (``Protocol.replicate_option``) of a recipe, averaged like seeds. Returns ``(best_lr, {lr: score})``.
    """
    crit = Criterion.parse(criterion)
    with borrowed(store) as db:
        status = db.statuses(run_ids)  # indexed look-ups: no scan of the whole store per call
        rows = [{"run_id": i, "status": status[i], "lr": db.config(i).lr} for i in dict.fromkeys(run_ids)
                if i in status]
        by_lr: dict[float, list[float | None]] = {}
        for r, value in zip(rows, final_values(db, rows, crit.metric), strict=True):
            if r["lr"] is not None:
                by_lr.setdefault(float(r["lr"]), []).append(value)
    if not by_lr:
        raise ValueError("select_lr needs at least one run with a learning rate among run_ids")
    return rank_lrs(by_lr, crit)


