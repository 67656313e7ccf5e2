"""Claim checks shared by the recipes (comparisons of mean final metrics in a summary)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from adamlab.reproduce.summary import mean_of

Check = Callable[[dict[str, Any]], tuple[bool, str]]


def _better(a: float, b: float, mode: str) -> bool:
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a < b if mode == "min" else a > b


def _best(summary: dict[str, Any], setting: str, group: Sequence[str], metric: str, mode: str) -> tuple[str, float]:
    vals = {v: mean_of(summary, setting, v, metric) for v in group}
    best = group[0]
    for v in group[1:]:
        if _better(vals[v], vals[best], mode):
            best = v
    return best, vals[best]


def _fmt(summary: dict[str, Any], setting: str, variants: Sequence[str], metric: str) -> str:
    return ", ".join(f"{v} {mean_of(summary, setting, v, metric):.4g}" for v in variants)


def group_wins(setting: str, winners: Sequence[str], losers: Sequence[str], metric: str, mode: str) -> Check:
    """The best of ``winners`` beats the best of ``losers`` on the mean final ``metric``."""

    def check(summary: dict[str, Any]) -> tuple[bool, str]:
        bw, vw = _best(summary, setting, winners, metric, mode)
        bl, vl = _best(summary, setting, losers, metric, mode)
        text = (f"final {metric} (mean over seeds): {_fmt(summary, setting, list(winners) + list(losers), metric)}; "
                f"best of {'/'.join(winners)}: {bw}, best of {'/'.join(losers)}: {bl}")
        return _better(vw, vl, mode), text

    return check


def as_good_as(setting: str, target: str, others: Sequence[str], metric: str, mode: str,
               rel_tol: float = 0.05) -> Check:
    """``target``'s mean final ``metric`` is at least as good as every other's, up to ``rel_tol``."""

    def check(summary: dict[str, Any]) -> tuple[bool, str]:
        t = mean_of(summary, setting, target, metric)
        ok = not math.isnan(t)
        for o in others:
            v = mean_of(summary, setting, o, metric)
            if math.isnan(v):
                continue
            ok = ok and (t <= v * (1 + rel_tol) if mode == "min" else t >= v * (1 - rel_tol))
        return ok, (f"final {metric} (mean over seeds): {_fmt(summary, setting, [target, *others], metric)} "
                    f"(tolerance {rel_tol:.0%})")

    return check
