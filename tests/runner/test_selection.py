"""The one learning-rate selection rule (score, tie-break, parse) and the one problem key."""

from __future__ import annotations

import math

import pytest

from adamlab.runner import Criterion, Store, problem_key, select_best, select_lr, sweep, tune_and_rerun
from adamlab.runs.config import problem_name_and_options
from adamlab.selection.lr import best_lr, lr_score, rank_lrs
from tests.runner import runner_tiny_problem as tiny


def test_lr_score_is_the_mean_or_nan_when_any_run_is_missing():
    assert lr_score([1.0, 2.0, 4.0]) == pytest.approx(7 / 3)
    assert math.isnan(lr_score([1.0, None]))  # a diverged / failed run
    assert math.isnan(lr_score([1.0, math.inf]))
    assert math.isnan(lr_score([]))


def test_best_lr_tie_break_and_nan_last():
    assert best_lr({0.1: 1.0, 0.01: 1.0, 1.0: 2.0}, "min:train_loss") == 0.01  # tie: smaller lr
    assert best_lr({0.1: 1.0, 0.01: 1.0, 1.0: 2.0}, "max:test_accuracy") == 1.0
    assert best_lr({0.1: math.nan, 1.0: 5.0}, "min:x") == 1.0
    assert best_lr({0.1: math.nan, 1.0: math.nan}, "min:x") == 0.1  # all last: the smaller lr
    best, scores = rank_lrs({1.0: [3.0, 1.0], 0.1: [2.0, None]}, Criterion("train_loss", "min"))
    assert best == 1.0 and scores[1.0] == 2.0 and math.isnan(scores[0.1])
    with pytest.raises(ValueError, match="scores"):
        best_lr({}, "min:x")


def test_criterion_describe_states_the_rule():
    text = Criterion.parse("max:test_accuracy").describe()
    assert "highest final test_accuracy" in text and "ties go to the smaller lr" in text
    assert Criterion.parse("test_error") == Criterion("test_error", "min")


def test_select_lr_pools_runs_that_select_best_keeps_apart(store_path):
    """Two problem instances (like a recipe's data draws): select_best ranks them apart, select_lr
    averages them, with the same score and tie-break."""
    problems = [(tiny.NAME, {"dropout": 0.0}), (tiny.NAME, {"dropout": 0.5})]
    rep = sweep(problems, ["sgd"], [0.001, 0.05], 1, 20, store_path, quiet=True)
    per_problem = select_best(store_path, run_ids=rep.run_ids)
    assert len(per_problem) == 2
    best, scores = select_lr(store_path, rep.run_ids, "min:train_loss")
    for lr in (0.001, 0.05):
        expected = sum(sel.scores[lr] for sel in per_problem.values()) / 2
        assert scores[lr] == pytest.approx(expected)
    assert best == min(scores, key=lambda lr: (scores[lr], lr))
    with Store(store_path) as db, pytest.raises(ValueError, match="at least one run"):
        select_lr(db, [], "min:train_loss")


def test_problem_key_of_an_instance_equals_that_of_its_stored_runs(store_path):
    """Options that canonicalise differently (0.1 + 0.2 is stored as 0.3) give one key."""
    from adamlab import problems

    instance = problems.get(tiny.NAME, dropout=0.1 + 0.2)
    sweep(instance, ["sgd"], [0.01], 1, 10, store_path, quiet=True)
    with Store(store_path) as db:
        (row,) = db.runs()
    assert problem_key(*problem_name_and_options(instance)) == problem_key(row["problem"], row["problem_options"])
    (key,) = select_best(store_path)
    assert key == (problem_key(tiny.NAME, {"dropout": 0.3}), "sgd")


def test_tune_and_rerun_reruns_a_problem_with_non_canonical_options(store_path):
    """Fails on the old code: its two keys disagreed, so the rerun of such a problem was silently skipped."""
    rep = tune_and_rerun((tiny.NAME, {"dropout": 0.1 + 0.2}), ["sgd"], [0.001, 0.05], tune_seeds=1,
                         rerun_seeds=3, budget=20, store=store_path, quiet=True)
    assert len(rep.selections) == 1
    assert rep.rerun.total == 3 and len(rep.rerun.run_ids) == 3
