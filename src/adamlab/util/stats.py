"""The one summary-statistics convention over seeds.

Mean and sample standard deviation (``ddof = 1``) of the finite values. With a single value the
standard deviation is **undefined and reported as NaN** (never 0: one seed says nothing about the
spread); with none, mean and standard deviation are NaN. Every table, figure and summary uses this.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Summary:
    """``n`` finite values, their ``mean``, sample ``sd`` (NaN for n < 2), ``min`` and ``max``."""

    n: int
    mean: float
    sd: float
    min: float
    max: float


def summarize(values: Iterable[float | None]) -> Summary:
    """Summarise the finite numbers among ``values`` (``None``, NaN and inf are left out)."""
    xs = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    n = len(xs)
    if n == 0:
        return Summary(0, math.nan, math.nan, math.nan, math.nan)
    mean = math.fsum(xs) / n
    sd = math.sqrt(math.fsum((x - mean) ** 2 for x in xs) / (n - 1)) if n > 1 else math.nan
    return Summary(n, mean, sd, min(xs), max(xs))


def sample_sd(values: Iterable[float | None]) -> float:
    """The sample standard deviation of the finite values (NaN for fewer than two)."""
    return summarize(values).sd
