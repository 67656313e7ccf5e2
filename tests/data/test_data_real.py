"""Real files from $ADAMLAB_REAL_DATA or /work/shared/data (slow; skipped where absent)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from adamlab.data import load, tolstoi_vocabulary

REAL = Path(os.environ.get("ADAMLAB_REAL_DATA", "/work/shared/data"))
pytestmark = pytest.mark.slow


def _need(rel: str) -> None:
    if not (REAL / rel).exists():
        pytest.skip(f"{REAL / rel} not present")


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_idx_datasets(name):
    _need(f"{name}/train-images-idx3-ubyte.gz")
    x, y = load(name, "train", root=REAL)
    assert tuple(x.shape) == (60000, 28, 28) and tuple(y.shape) == (60000,)
    assert y.bincount().numel() == 10 and int(y.bincount().min()) > 5000
    x, y = load(name, "test", root=REAL)
    assert tuple(x.shape) == (10000, 28, 28) and set(y.tolist()) == set(range(10))


def test_imdb():
    _need("imdb/aclImdb_v1_text_no_unsup.tar.gz")
    for split in ("train", "test"):
        x, y = load("imdb", split, root=REAL)
        assert tuple(x.shape) == (25000, 10000) and y.bincount().tolist() == [12500, 12500]
        assert set(x.unique().tolist()) == {0, 1}
    # Every review contains "the" or at least some top word; the mean review has > 100 distinct words.
    assert float(x.sum(1).float().mean()) > 100


def test_tolstoi():
    _need("tolstoi/war-and-peace.txt")
    x, y = load("tolstoi", "train", root=REAL)
    xt, yt = load("tolstoi", "test", root=REAL)
    assert x.numel() == 2612948 - 1 and xt.numel() == 653237 - 1  # DeepOBS's test size 653,237
    vocab = tolstoi_vocabulary(REAL)
    assert len(vocab) == 83 and vocab[0] == " "
    assert "".join(vocab[int(i)] for i in x[:13]) == "WAR AND PEACE"
