"""Fixtures for the problem tests: fake datasets in ``adamlab.data``'s output formats."""

from __future__ import annotations

import zlib

import pytest
import torch

from adamlab.problems.datasets import clear_cache

VOCAB = [chr(ord("a") + i) for i in range(26)] + [" ", ".", "\n"]

SHAPES = {  # name -> (n_train, n_test, per-example shape, classes)
    "mnist": (96, 40, (28, 28), 10),
    "fashion_mnist": (96, 40, (28, 28), 10),
    "cifar10": (48, 24, (3, 32, 32), 10),
    "cifar100": (48, 24, (3, 32, 32), 100),
}


def fake_load(name: str, split: str, root=None, **options):
    """Random tensors with the dtypes and shapes ``adamlab.data.load`` documents."""
    gen = torch.Generator().manual_seed(zlib.crc32(f"{name}/{split}".encode()))
    if name in SHAPES:
        n_train, n_test, shape, classes = SHAPES[name]
        n = n_train if split == "train" else n_test
        x = torch.randint(0, 256, (n, *shape), generator=gen, dtype=torch.uint8)
        return x, torch.randint(0, classes, (n,), generator=gen)
    if name == "imdb":
        n = 80 if split == "train" else 30
        x = (torch.rand(n, 10_000, generator=gen) < 0.01).to(torch.uint8)
        return x, torch.randint(0, 2, (n,), generator=gen)
    if name == "tolstoi":
        length = 50 * 40 if split == "train" else 50 * 12
        stream = torch.randint(0, len(VOCAB), (length + 1,), generator=gen)
        return stream[:-1].clone(), stream[1:].clone()
    raise ValueError(f"unknown dataset {name!r}")


@pytest.fixture
def fake_data(monkeypatch):
    """Route ``adamlab.data.load`` to :func:`fake_load`; yields the list of (name, split) loads."""
    import adamlab.data

    calls: list[tuple[str, str]] = []

    def load(name, split, root=None, **options):
        calls.append((name, split))
        return fake_load(name, split, root, **options)

    clear_cache()
    monkeypatch.setattr(adamlab.data, "load", load)
    monkeypatch.setattr(adamlab.data, "tolstoi_vocabulary", lambda root=None: list(VOCAB))
    yield calls
    clear_cache()
