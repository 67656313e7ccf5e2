"""The tiny_datasets contract that problems tests rely on (via the tiny_data_root fixture)."""

from __future__ import annotations

import adamlab.data.registry as reg
from adamlab.data import load, names
from adamlab.data.testing import tiny_datasets

SHAPES = {
    "mnist": (28, 28),
    "fashion_mnist": (28, 28),
    "cifar10": (3, 32, 32),
    "cifar100": (3, 32, 32),
    "imdb": (10000,),
}


def test_every_dataset_loads_and_overrides_are_restored(tmp_path):
    before = dict(reg._OVERRIDES)
    with tiny_datasets(tmp_path / "r") as root:
        assert root == tmp_path / "r"
        for name in names():
            for split in ("train", "test"):
                x, y = load(name, split, root=root)
                assert x.shape[0] == y.shape[0] > 0
                if name in SHAPES:
                    assert tuple(x.shape[1:]) == SHAPES[name]
                    assert str(x.dtype) == "torch.uint8" and str(y.dtype) == "torch.int64"
    assert reg._OVERRIDES == before


def test_conftest_fixture(tiny_data_root):
    x, y = load("mnist", "train")  # via $ADAMLAB_DATA set by the fixture
    assert x.shape == (64, 28, 28) and int(y.max()) == 9


def test_tiny_images_are_learnable(tiny_root):
    """The class-dependent patch makes a nearest-mean classifier perfect on train."""
    x, y = load("mnist", "train", root=tiny_root)
    x = x.float().flatten(1)
    means = [x[y == c].mean(0) for c in range(10)]
    pred = [min(range(10), key=lambda c: float(((row - means[c]) ** 2).sum())) for row in x]
    assert pred == y.tolist()
