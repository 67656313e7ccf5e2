"""Slow checks on the real datasets (``-m slow``): the problems learn from the actual files.

They read ``$ADAMLAB_REAL_DATA`` (else ``../shared/data`` next to the repository) and skip when
the files are not there. Nothing is downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

import adamlab.problems as problems
from adamlab.problems.datasets import clear_cache

REAL = Path(os.environ.get("ADAMLAB_REAL_DATA", Path(__file__).resolve().parents[2] / ".." / "shared" / "data"))

pytestmark = pytest.mark.slow


def need(*folders: str) -> str:
    for folder in folders:
        if not (REAL / folder).is_dir():
            pytest.skip(f"real data folder {REAL / folder} not present")
    return str(REAL)


def train(problem, steps: int, lr: float, seed: int = 0) -> dict[str, float]:
    torch.manual_seed(seed)
    model = problem.make_model(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    stream = problem.train_batches(seed)
    for _ in range(steps):
        opt.zero_grad()
        problem.loss(model, next(stream)).backward()
        opt.step()
    return problem.evaluate(model)


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def test_real_mnist_logreg_learns() -> None:
    p = problems.get("mnist.logreg", root=need("mnist"))
    assert p.steps_per_epoch == 468
    x, y = p.data("train")
    assert x.shape == (60_000, 28, 28) and int(y.max()) == 9
    metrics = train(p, steps=468, lr=1e-3)
    assert metrics["test_accuracy"] > 0.88, metrics


def test_real_fmnist_cnn_learns() -> None:
    p = problems.get("fmnist.cnn", root=need("fashion_mnist"), eval_size=2000)
    metrics = train(p, steps=150, lr=1e-3)
    assert metrics["test_accuracy"] > 0.7, metrics


def test_real_imdb_bow_logreg_learns() -> None:
    p = problems.get("imdb.bow_logreg", root=need("imdb"), eval_size=5000)
    assert p.steps_per_epoch == 195
    metrics = train(p, steps=195, lr=1e-3)
    assert metrics["test_accuracy"] > 0.8, metrics


def test_real_tolstoi_char_rnn_trains() -> None:
    p = problems.get("tolstoi.char_rnn", root=need("tolstoi"), eval_size=500)
    assert p.steps_per_epoch == 1045  # DeepOBS: 1,045 training batches of 50 x 50
    assert p.vocab_size() == 83
    metrics = train(p, steps=100, lr=2e-3)
    assert metrics["test_loss"] < 3.3, metrics  # uniform over 83 characters would be 4.42
