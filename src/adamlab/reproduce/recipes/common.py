"""Claim checks shared by the recipes: effects of the per-seed final metrics in a summary.

Each check returns a :class:`~adamlab.reproduce.base.Verdict`: an effect (positive = the paper's
direction) with its bootstrap 95% interval over the seeds (:mod:`adamlab.reproduce.effects`), and a
sentence of the means. :func:`samples` builds the matrix the bootstrap resamples (one row per seed,
one column per (setting, method)); :func:`means_effect` turns a function of the column means into an
effect, so a claim only states what it compares.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from adamlab.reproduce.base import Verdict
from adamlab.reproduce.effects import Effect, effect
from adamlab.reproduce.summary import mean_of

Check = Callable[[dict[str, Any]], Verdict]
Column = tuple[str, str]  # (setting label, variant label)

#: Values at or below this count as this value before the log10 of a claim's effect (a loss of exactly 0).
#: It is not the figures' floor (:data:`adamlab.plotting.LOG_FLOOR`, 1e-12, a display clip): this one
#: enters the recorded effect sizes and verdicts (docs/results.md; e.g. a noise-free quadratic's loss
#: goes far below 1e-12), so it keeps its value.
EFFECT_LOG_FLOOR = 1e-30


def per_seed(summary: dict[str, Any], setting: str, variant: str, metric: str, mode: str) -> dict[int, float]:
    """``{seed: final metric}`` of one method; a diverged or failed run is the worst value (+inf for a
    metric to minimise, -inf to maximise)."""
    v = summary["settings"][setting]["variants"][variant]
    worst = math.inf if mode == "min" else -math.inf
    values = v["per_seed"][metric]
    return {int(s): (worst if x is None or not math.isfinite(x) else float(x))
            for s, x in zip(v["seeds"], values, strict=True)}


def samples(summary: dict[str, Any], columns: Sequence[Column], metric: str, mode: str, *,
            log10: bool = False) -> np.ndarray:
    """Matrix ``[seed, column]`` of the final ``metric`` on the seeds all columns share (sorted).

    ``log10``: the values' log10 (floored at :data:`EFFECT_LOG_FLOOR`; infinities stay infinite).
    """
    per = [per_seed(summary, s, v, metric, mode) for s, v in columns]
    seeds = sorted(set.intersection(*(set(p) for p in per))) if per else []
    if not seeds:
        raise ValueError(f"no seed shared by {list(columns)}")
    x = np.array([[p[s] for p in per] for s in seeds], dtype=float)
    if log10:
        with np.errstate(invalid="ignore"):
            x = np.where(np.isinf(x), x, np.log10(np.maximum(x, EFFECT_LOG_FLOOR)))
    return x


def means_effect(what: str, summary: dict[str, Any], columns: Sequence[Column], metric: str, mode: str,
                 combine: Callable[[np.ndarray], np.ndarray], *, log10: bool = False) -> Effect:
    """The effect ``combine(column means)``: ``combine`` maps means of shape ``(B, k)`` (k columns, in
    the order of ``columns``) to B values; the bootstrap resamples the seeds (rows) of :func:`samples`."""
    x = samples(summary, columns, metric, mode, log10=log10)

    def statistic(a: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.asarray(combine(a.mean(axis=1)), dtype=float)

    return effect(what, x, statistic)


def _fmt(summary: dict[str, Any], setting: str, variants: Sequence[str], metric: str) -> str:
    return ", ".join(f"{v} {mean_of(summary, setting, v, metric):.4g}" for v in variants)


def _oriented(means: np.ndarray, mode: str) -> np.ndarray:
    """Larger is better: ``-means`` for a metric to minimise."""
    return -means if mode == "min" else means


def group_wins(setting: str, winners: Sequence[str], losers: Sequence[str], metric: str, mode: str) -> Check:
    """The best of ``winners`` beats the best of ``losers`` on the mean final ``metric``.

    Effect: (best loser's mean - best winner's mean) for a metric to minimise, the reverse to maximise
    (in the metric's units; the best of each group is chosen again on every resample).
    """
    columns = [(setting, v) for v in (*winners, *losers)]
    k = len(winners)

    def combine(m: np.ndarray) -> np.ndarray:
        o = _oriented(m, mode)
        return o[:, :k].max(axis=1) - o[:, k:].max(axis=1)

    def check(summary: dict[str, Any]) -> Verdict:
        if mode == "min":
            what = f"lowest mean {metric} of {'/'.join(losers)} - lowest of {'/'.join(winners)}"
        else:
            what = f"highest mean {metric} of {'/'.join(winners)} - highest of {'/'.join(losers)}"
        eff = means_effect(what, summary, columns, metric, mode, combine)
        text = f"final {metric} (mean over seeds): {_fmt(summary, setting, [*winners, *losers], metric)}"
        return Verdict(eff, text)

    return check


def as_good_as(setting: str, target: str, others: Sequence[str], metric: str, mode: str,
               rel_tol: float = 0.05) -> Check:
    """``target``'s mean final ``metric`` is at least as good as every other's, up to ``rel_tol``.

    Effect (decades): min over the others of log10(other / target) + log10(1 + rel_tol) for a metric to
    minimise; min of log10(target / other) - log10(1 - rel_tol) to maximise. Positive: ``target`` is
    within the tolerance of, or better than, every other method.
    """
    columns = [(setting, target), *((setting, o) for o in others)]
    margin = math.log10(1 + rel_tol) if mode == "min" else -math.log10(1 - rel_tol)

    def combine(m: np.ndarray) -> np.ndarray:
        gap = m[:, 1:] - m[:, :1] if mode == "min" else m[:, :1] - m[:, 1:]
        return gap.min(axis=1) + margin

    def check(summary: dict[str, Any]) -> Verdict:
        ratio = f"log10({'other' if mode == 'min' else target} / {target if mode == 'min' else 'other'})"
        what = (f"min over {', '.join(others)} of {ratio} of the final {metric} "
                f"{'+' if mode == 'min' else '-'} log10({1 + rel_tol if mode == 'min' else 1 - rel_tol:g})")
        eff = means_effect(what, summary, columns, metric, mode, combine, log10=True)
        text = (f"final {metric} (mean over seeds): {_fmt(summary, setting, [target, *others], metric)} "
                f"(tolerance {rel_tol:.0%})")
        return Verdict(eff, text)

    return check
