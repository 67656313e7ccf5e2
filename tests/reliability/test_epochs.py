"""Item 14 of issue 23: the ``epoch`` metric and an epoch budget when the batch is larger than the
training set (each step then sees the whole set: one epoch per step)."""

from __future__ import annotations

import pytest

from adamlab.data.testing import tiny_datasets
from adamlab.runner.train import build_problem, run
from adamlab.runs.config import Budget, make_config


@pytest.fixture
def tiny_data(tmp_path, monkeypatch):
    with tiny_datasets(tmp_path / "root") as root:
        monkeypatch.setenv("ADAMLAB_DATA", str(root))
        yield root


def test_epoch_metric_with_a_batch_larger_than_the_data_set(tiny_data):
    result = run("mnist.logreg", "sgd", {"lr": 0.1}, 0, 3, batch_size=1000, eval_every=1)
    assert [r["epoch"] for r in result.records] == [0.0, 1.0, 2.0, 3.0]


def test_epoch_budget_with_a_batch_larger_than_the_data_set(tiny_data):
    problem = build_problem("mnist.logreg")
    assert make_config(problem, "sgd", {"lr": 0.1}, 0, Budget(epochs=2), batch_size=1000).steps == 2
