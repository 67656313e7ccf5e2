"""The monitor's row statistics (dissect/summary.py) against NumPy on hand-built values: ties, infinite
eta^2, dead coordinates, odd and even counts, rows of different lengths, empty rows."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from adamlab.dissect.stats import stats_from_moments
from adamlab.dissect.summary import summarise


def _average_ranks(x: np.ndarray) -> np.ndarray:
    """scipy.stats.rankdata(method='average') - 1, by an explicit loop."""
    out = np.empty(len(x))
    for i, v in enumerate(x):
        out[i] = np.sum(x < v) + 0.5 * (np.sum(x == v) - 1)
    return out


def _reference(mean: np.ndarray, var: np.ndarray, measured: np.ndarray) -> dict[str, float]:
    live = (mean != 0) | (var != 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        eta2 = np.where(var == 0, 0.0, var / mean**2)
    ideal = 1 / (1 + eta2)
    ok = live & np.isfinite(measured)
    out = {"eta2_median": np.median(eta2[live]) if live.any() else math.nan,
           "gamma_grad_ideal_median": np.median(ideal[live]) if live.any() else math.nan,
           "frac_zero_grad": 1 - live.mean()}
    if ok.sum():
        out["gamma_measured_median"] = np.median(measured[ok])
        out["gamma_abs_error_median"] = np.median(np.abs(measured - ideal)[ok])
    if ok.sum() >= 2 and np.ptp(measured[ok]) > 0 and np.ptp(ideal[ok]) > 0:
        out["gamma_corr"] = np.corrcoef(measured[ok], ideal[ok])[0, 1]
        ra, rb = _average_ranks(measured[ok]), _average_ranks(ideal[ok])
        if np.ptp(ra) > 0 and np.ptp(rb) > 0:
            out["gamma_rank_corr"] = np.corrcoef(ra, rb)[0, 1]
    return out


def _summary(mean: np.ndarray, var: np.ndarray, measured: np.ndarray, split: int) -> dict[str, float]:
    names = {"a": slice(0, split), "b": slice(split, None)}
    stats = stats_from_moments({k: torch.from_numpy(mean[s]) for k, s in names.items()},
                               {k: torch.from_numpy(var[s]) for k, s in names.items()}, 8, 1)
    exact = {k: torch.tensor([float(mean[s].size), float(np.sum((mean[s] == 0) & (var[s] == 0))), 0.0, math.nan],
                             dtype=torch.float64) for k, s in names.items()}
    return summarise(stats, {"A": ["a"], "B": ["b"]}, measured={k: torch.from_numpy(measured[s])
                                                                  for k, s in names.items()},
                     kinds={"a": "grad", "b": "grad"}, exact=exact)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_rows_match_numpy(data):
    n = data.draw(st.integers(2, 40))
    split = data.draw(st.integers(1, n - 1))
    # few distinct values, so ties, dead coordinates (0, 0) and infinite eta^2 (0, v > 0) are common
    mean = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.5, -1.0, 2.0]), min_size=n, max_size=n)))
    var = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.25, 1.0]), min_size=n, max_size=n)))
    measured = np.array(data.draw(st.lists(st.sampled_from([0.1, 0.5, 0.9, 1.0]), min_size=n, max_size=n)))
    got = _summary(mean, var, measured, split)
    for suffix, part in (("", slice(None)), ("/A", slice(0, split)), ("/B", slice(split, None))):
        want = _reference(mean[part], var[part], measured[part])
        for key, value in want.items():
            assert got[key + suffix] == pytest.approx(value, rel=1e-12, abs=1e-12, nan_ok=True), key + suffix


def test_all_dead_row_is_nan_not_an_error():
    mean = np.array([0.0, 0.0, 1.0, 2.0])
    var = np.array([0.0, 0.0, 1.0, 0.5])
    got = _summary(mean, var, np.array([0.3, 0.3, 0.2, 0.4]), 2)
    assert math.isnan(got["eta2_median/A"]) and math.isnan(got["gamma_measured_median/A"])
    assert got["frac_zero_grad/A"] == 1.0 and got["frac_zero_grad"] == 0.5
    assert got["eta2_median/B"] == pytest.approx(np.median([1.0, 0.125]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_nonzero_counts_are_exact_in_chunks_and_count_nan(monkeypatch, dtype):
    import adamlab.dissect.monitor as monitor

    monkeypatch.setattr(monitor, "_EXACT_FLOAT32", 7)  # force several chunks and a short last one
    g = torch.Generator().manual_seed(0)
    values = [torch.rand(5, 9, generator=g).to(dtype), torch.zeros(0, dtype=dtype), torch.rand(3, generator=g).to(dtype)]
    values[0][values[0] < 0.4] = 0
    values[2][1] = float("nan")
    want = [float(torch.count_nonzero(v)) for v in values]
    nan_sums = torch.tensor([False, False, True])  # the third one's gradient sum is NaN: recounted
    assert monitor._nonzero_counts(values, recount=nan_sums).tolist() == want
    assert monitor._nonzero_counts(values[:2], recount=nan_sums[:2]).tolist() == want[:2]


def test_nonzero_counts_reuse_their_scratch_and_stay_exact():
    """The sign buffers kept between records are reused when the shapes match and replaced when not;
    the counts stay those of ``count_nonzero`` each time."""
    import adamlab.dissect.monitor as monitor

    g = torch.Generator().manual_seed(1)
    scratch: dict[int, torch.Tensor] = {}
    for shapes in ([(4, 6), (5,)], [(4, 6), (5,)], [(3, 2), (5,)]):
        values = [torch.rand(s, generator=g) for s in shapes]
        for v in values:
            v[v < 0.5] = 0
        before = dict(scratch)
        counts = monitor._nonzero_counts(values, recount=torch.tensor([False, False]), scratch=scratch)
        assert counts.tolist() == [float(torch.count_nonzero(v)) for v in values]
        assert all(scratch[i].numel() == v.numel() for i, v in enumerate(values))
        if shapes == [(4, 6), (5,)] and before:
            assert all(scratch[i] is before[i] for i in before)  # reused, not reallocated
