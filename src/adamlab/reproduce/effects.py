"""Effect sizes of the papers' claims, with a bootstrap interval over the seeds.

Every claim of a recipe is phrased so that one number, its *effect*, is positive when the paper is
right (e.g. log10(final loss of M-SGD / final loss of M-SSD), or a tolerance minus a distance). The
effect is a statistic of the per-seed final metrics; its 95% interval is the percentile bootstrap over
the seeds: resample the seeds (the rows of the sample matrix, all methods of one seed together, so
the comparison stays paired) B times with replacement, compute the statistic on each resample, and
take the 2.5% and 97.5% quantiles (the inverted empirical CDF, no interpolation). The claim *agrees*
when the interval excludes zero on the positive side (``low > 0``), *disagrees* when it excludes zero
on the negative side (``high < 0``), and is *not settled* at this budget when it contains zero; then
:func:`seeds_to_settle` says how many seeds would make the interval exclude zero if the effect and
the seed spread stayed as measured (the interval's width shrinks as 1/sqrt(n)).

A run that diverged counts as infinitely bad: its value is +inf (a metric to minimise) or -inf (to
maximise). An effect that depends on it is then infinite, and where two infinities meet (inf - inf)
it is undefined (nan), which never agrees.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

LEVEL = 0.95
RESAMPLES = 10_000
SEED = 0

Statistic = Callable[[np.ndarray], np.ndarray]
"""Maps samples of shape ``(B, n, ...)`` (B resamples of n seeds) to B values."""


def bootstrap_interval(
    samples: Any,
    statistic: Statistic,
    *,
    level: float = LEVEL,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float, float]:
    """``(estimate, low, high)``: the statistic and its percentile-bootstrap interval over the rows.

    With ``x`` the samples (row i = seed i), the estimate is ``statistic(x[None])``; for b = 1..B the
    resample is x[I_b] with I_b of n indices drawn uniformly with replacement (a NumPy generator
    seeded with ``seed``, so the result is reproducible); ``low`` and ``high`` are the
    ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of the B statistics (inverted CDF).

    Parameters
    ----------
    samples:
        Array of shape ``(n, ...)``, n >= 1 (one row per seed).
    statistic:
        Vectorised over the leading resample axis, e.g. ``lambda a: a.mean(axis=1)``.
    level:
        Confidence level in (0, 1).
    resamples:
        Number B of bootstrap resamples, >= 1.
    seed:
        Seed of the resampling.
    """
    x = np.asarray(samples, dtype=float)
    if x.ndim < 1 or x.shape[0] < 1:
        raise ValueError(f"samples must have at least one row (one per seed); got shape {x.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1); got {level}")
    if isinstance(resamples, bool) or int(resamples) != resamples or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1; got {resamples!r}")
    n = x.shape[0]
    with np.errstate(invalid="ignore", over="ignore"):
        estimate = float(np.asarray(statistic(x[None]), dtype=float).reshape(-1)[0])
        idx = np.random.default_rng(seed).integers(0, n, size=(int(resamples), n))
        boot = np.asarray(statistic(x[idx]), dtype=float).reshape(-1)
    if np.isnan(boot).any():
        return estimate, math.nan, math.nan
    low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return estimate, float(low), float(high)


@dataclass(frozen=True)
class Effect:
    """A claim's effect: ``estimate`` with its bootstrap interval ``[low, high]`` over ``n`` seeds.

    ``what`` says what the number is (positive = the paper's direction).
    """

    what: str
    estimate: float
    low: float
    high: float
    n: int
    level: float = LEVEL

    @property
    def agrees(self) -> bool:
        """The interval excludes zero on the claim's side (``low > 0``; nan never agrees)."""
        return bool(self.low > 0)

    @property
    def verdict(self) -> str:
        """``"agree"`` (``low > 0``), ``"disagree"`` (``high < 0``) or ``"not settled"`` (the interval
        contains zero, or is undefined)."""
        if self.low > 0:
            return "agree"
        if self.high < 0:
            return "disagree"
        return "not settled"

    def to_dict(self) -> dict[str, Any]:
        def num(x: float) -> float | str | None:
            if math.isnan(x):
                return None
            return x if math.isfinite(x) else ("inf" if x > 0 else "-inf")

        return {"what": self.what, "estimate": num(self.estimate), "low": num(self.low), "high": num(self.high),
                "level": self.level, "n": self.n}

    def __str__(self) -> str:
        if self.n <= 1 and self.low == self.high:
            return f"{self.what} = {self.estimate:+.3g} (one seed: no interval)"
        return (f"{self.what} = {self.estimate:+.3g}, {self.level:.0%} interval [{self.low:+.3g}, "
                f"{self.high:+.3g}] over {self.n} seeds")


def effect(what: str, samples: Any, statistic: Statistic, **options: Any) -> Effect:
    """:func:`bootstrap_interval` of ``statistic`` on ``samples`` as an :class:`Effect`."""
    x = np.asarray(samples, dtype=float)
    est, low, high = bootstrap_interval(x, statistic, **options)
    return Effect(what, est, low, high, int(x.shape[0]), float(options.get("level", LEVEL)))


def point_effect(what: str, value: float) -> Effect:
    """An effect measured once (no seeds to resample, e.g. a count on the tuning seed)."""
    return Effect(what, float(value), float(value), float(value), 1)


def seeds_to_settle(estimate: float, low: float, high: float, n: int) -> int | None:
    """Seeds that would make a 95% interval of half-width ``(high - low) / 2`` over ``n`` seeds
    exclude zero, if the effect ``estimate`` and the seed spread stayed as measured.

    The half-width w_n of a bootstrap interval of a mean-like statistic scales as 1/sqrt(n), so
    w_m = w_n sqrt(n / m) < |estimate| for m > n (w_n / |estimate|)^2. Returns that m (at least
    n + 1), or None when the estimate is zero or a value is not finite (no number of seeds settles it).
    """
    if not all(math.isfinite(x) for x in (estimate, low, high)) or estimate == 0 or n < 1:
        return None
    half = (high - low) / 2.0
    return max(n + 1, math.floor(n * (half / abs(estimate)) ** 2) + 1)
