"""Lazy, per-process cached access to ``adamlab.data`` and the seeded batch streams built on it.

Datasets are loaded at first use and kept in memory for the life of the process, keyed by
dataset, split and data root, so many problems and runs share one copy. They stay in their
storage dtype (``uint8`` pixels or bags of words, ``int64`` ids); problems convert each batch.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

_CACHE: dict[tuple[str, str, str], tuple[Tensor, Tensor]] = {}
_LOCK = threading.Lock()


def _root_key(root: str | None) -> str:
    if root is not None:
        return os.path.abspath(os.path.expanduser(str(root)))
    env = os.environ.get("ADAMLAB_DATA")
    return os.path.abspath(env) if env else "<default>"


def load_cached(name: str, split: str, root: str | None = None) -> tuple[Tensor, Tensor]:
    """``adamlab.data.load(name, split, root)``, loaded once per process and data root."""
    key = (name, split, _root_key(root))
    with _LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            from adamlab.data import load

            hit = load(name, split, root=root)
            _CACHE[key] = hit
        return hit


def clear_cache() -> None:
    """Forget every cached dataset (frees their memory)."""
    with _LOCK:
        _CACHE.clear()


def shuffled_batches(
    inputs: Tensor,
    targets: Tensor,
    batch_size: int,
    seed: int,
    transform: Callable[[Tensor], Tensor] = lambda x: x,
) -> Iterator[tuple[Tensor, Tensor]]:
    """An endless stream of ``(transform(inputs_batch), targets_batch)``.

    Parameters
    ----------
    inputs, targets:
        The whole training split (first dimension = examples).
    batch_size:
        Examples per batch (>= 1).
    seed:
        Seeds the ``torch.Generator`` that draws every epoch's permutation.
    transform:
        Applied to each input batch (e.g. uint8 pixels -> floats in [0, 1]).

    Notes
    -----
    Once per epoch a ``torch.Generator`` seeded with ``seed`` draws a permutation, the data are
    gathered into one contiguous shuffled copy, and consecutive slices of ``batch_size`` rows
    are yielded (the last incomplete batch of an epoch is dropped, as ``drop_last=True`` does).
    A ``batch_size`` larger than the data set yields the whole (shuffled) set each step.
    """
    n = int(inputs.shape[0])
    if n == 0:
        raise ValueError("cannot draw batches from an empty data set")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bs = min(batch_size, n)
    gen = torch.Generator().manual_seed(int(seed))
    while True:
        perm = torch.randperm(n, generator=gen)
        xs = inputs.index_select(0, perm)
        ys = targets.index_select(0, perm)
        for start in range(0, n - bs + 1, bs):
            yield transform(xs[start : start + bs]), ys[start : start + bs]


def fixed_subset(n: int, size: int, seed: int = 0) -> Tensor:
    """Indices of a fixed random subset of ``min(size, n)`` of ``range(n)`` (sorted, seeded)."""
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:size].sort().values
