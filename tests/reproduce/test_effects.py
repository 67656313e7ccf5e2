"""The bootstrap interval of the claims' effects: hand computations, an exact enumeration, a known
distribution, seeded resampling, and the verdict rule (agree = the interval excludes zero)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from adamlab.reproduce.effects import Effect, bootstrap_interval, effect, point_effect


def _mean(a):
    return a.mean(axis=1)


def test_two_values_by_hand():
    """x = (0, 1): the resampled mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4, so the 2.5% and
    97.5% quantiles are 0 and 1 (each tail atom has probability 1/4 > 2.5%)."""
    est, low, high = bootstrap_interval([0.0, 1.0], _mean)
    assert (est, low, high) == (0.5, 0.0, 1.0)
    # an 40% interval: P(mean <= 0) = 1/4 < 0.3 and P(mean <= 1/2) = 3/4 >= 0.7, so both quantiles are 1/2
    assert bootstrap_interval([0.0, 1.0], _mean, level=0.4)[1:] == (0.5, 0.5)


def test_constant_samples_give_a_point_interval():
    assert bootstrap_interval([2.0, 2.0, 2.0], _mean) == (2.0, 2.0, 2.0)
    assert bootstrap_interval([3.0], _mean) == (3.0, 3.0, 3.0)


def test_matches_the_exact_bootstrap_distribution():
    """n = 5: all 5^5 equally likely resamples enumerated; the inverted-CDF quantiles of their means
    against the Monte Carlo interval (200,000 resamples): equal up to one atom of the distribution."""
    x = np.array([0.3, 1.1, 2.0, 4.2, 7.5])
    means = np.sort([x[list(idx)].mean() for idx in itertools.product(range(5), repeat=5)])
    exact_low, exact_high = np.quantile(means, [0.025, 0.975], method="inverted_cdf")
    est, low, high = bootstrap_interval(x, _mean, resamples=200_000, seed=3)
    assert est == pytest.approx(x.mean())
    step = 0.1 / 5  # the atoms of the mean are spaced by multiples of min gap / n; allow a small slack
    assert low == pytest.approx(exact_low, abs=step) and high == pytest.approx(exact_high, abs=step)


def test_mean_interval_of_a_normal_sample_matches_normal_theory():
    """For n = 400 draws, the bootstrap interval of the mean is mean +- 1.96 s sqrt((n-1)/n) / sqrt(n)
    (the bootstrap's plug-in standard error) to within a few per cent of its width."""
    rng = np.random.default_rng(123)
    x = rng.normal(2.0, 3.0, size=400)
    est, low, high = bootstrap_interval(x, _mean, resamples=20_000, seed=1)
    se = x.std(ddof=0) / math.sqrt(x.size)
    assert est == pytest.approx(x.mean())
    assert low == pytest.approx(x.mean() - 1.959964 * se, abs=0.06 * 1.96 * se)
    assert high == pytest.approx(x.mean() + 1.959964 * se, abs=0.06 * 1.96 * se)


def test_resampling_is_seeded_and_rows_stay_together():
    x = np.array([[1.0, 0.0], [2.0, 0.5], [4.0, 1.5], [3.0, 1.0]])

    def paired(a):  # mean of column 0 - mean of column 1: the rows (seeds) are resampled together
        return a[..., 0].mean(axis=1) - a[..., 1].mean(axis=1)

    assert bootstrap_interval(x, paired, seed=7) == bootstrap_interval(x, paired, seed=7)
    y = np.random.default_rng(0).normal(size=30)  # continuous: another seed moves the interval
    assert bootstrap_interval(y, _mean, resamples=500, seed=7) != bootstrap_interval(y, _mean, resamples=500, seed=8)
    # paired differences are 1, 1.5, 2.5, 2: every resample's mean lies in [1, 2.5]
    _, low, high = bootstrap_interval(x, paired)
    assert 1.0 <= low <= high <= 2.5


def test_infinite_and_undefined_values():
    """A diverged run is +-inf: an effect through it is infinite; inf - inf is undefined (no interval)."""
    est, low, high = bootstrap_interval([1.0, math.inf, 2.0], _mean)
    assert est == math.inf and high == math.inf and low >= 1.0
    x = np.array([[math.inf, math.inf], [1.0, 0.0]])
    _, low, high = bootstrap_interval(x, lambda a: a[..., 0].mean(axis=1) - a[..., 1].mean(axis=1))
    assert math.isnan(low) and math.isnan(high)
    assert not Effect("d", math.nan, low, high, 2).agrees


def test_invalid_arguments():
    with pytest.raises(ValueError, match="samples"):
        bootstrap_interval([], _mean)
    with pytest.raises(ValueError, match="level"):
        bootstrap_interval([1.0], _mean, level=1.0)
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_interval([1.0], _mean, resamples=0)


def test_effect_agrees_when_the_interval_excludes_zero():
    assert effect("d", [0.5, 0.6, 0.7], _mean).agrees
    assert not effect("d", [-0.1, 0.6, 0.7], _mean).agrees  # the interval reaches below zero
    assert not effect("d", [-0.5, -0.6], _mean).agrees
    assert point_effect("count", 2).agrees and not point_effect("count", 0).agrees
    e = effect("d", [0.5, 0.6, 0.7], _mean)
    d = e.to_dict()
    assert d["what"] == "d" and d["n"] == 3 and d["low"] <= d["estimate"] <= d["high"] and d["level"] == 0.95
    assert "95% interval" in str(e) and "3 seeds" in str(e)
    assert Effect("d", math.inf, 1.0, math.inf, 3).to_dict()["high"] == "inf"
