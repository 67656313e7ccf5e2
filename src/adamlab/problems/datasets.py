"""Lazy, per-process cached access to ``adamlab.data`` and the seeded batch streams built on it.

Datasets are loaded at first use and kept in memory for the life of the process, keyed by
dataset, split and data root, so many problems and runs share one copy. They stay in their
storage dtype (``uint8`` pixels or bags of words, ``int64`` ids); problems convert each batch.

On an accelerator (:func:`on_device`) a split is copied to the device once when it fits in
:data:`DEVICE_FRACTION` of the device's free memory (MNIST-sized sets do), and batches are then sliced
there; a split that does not fit stays in host memory and each raw batch is copied to the device before
it is converted, so the numbers are the same either way.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator

import torch
from torch import Tensor

_CACHE: dict[tuple[str, str, str], tuple[Tensor, Tensor]] = {}
_DEVICE_CACHE: dict[tuple[int, int, str], tuple[Tensor, Tensor, Tensor, Tensor]] = {}
_LOCK = threading.Lock()

#: A split is held on an accelerator when it needs at most this fraction of the device's free memory.
DEVICE_FRACTION = 0.25


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
    """Forget every cached dataset (frees their memory), on the host and on devices."""
    with _LOCK:
        _CACHE.clear()
        _DEVICE_CACHE.clear()


def fits_on(device: torch.device, nbytes: int) -> bool:
    """Whether ``nbytes`` fit in :data:`DEVICE_FRACTION` of ``device``'s free memory (always on the CPU)."""
    if device.type == "cpu":
        return True
    try:
        if device.type == "cuda":
            free = torch.cuda.mem_get_info(device)[0]
        elif device.type == "mps":
            free = int(torch.mps.recommended_max_memory()) - int(torch.mps.driver_allocated_memory())
        else:
            return False
    except (RuntimeError, AttributeError):
        return False
    return nbytes <= DEVICE_FRACTION * free


def on_device(inputs: Tensor, targets: Tensor, device: torch.device) -> tuple[Tensor, Tensor]:
    """``(inputs, targets)`` held on ``device`` when they fit (:func:`fits_on`), else unchanged.

    The copy is made once per process and device (keyed by the tensors themselves), so every problem and
    run on that device shares it. On the CPU the tensors are returned as they are.
    """
    device = torch.device(device)
    if device.type == "cpu" or (inputs.device == device and targets.device == device):
        return inputs, targets
    key = (id(inputs), id(targets), str(device))
    with _LOCK:
        hit = _DEVICE_CACHE.get(key)
        if hit is not None and hit[0] is inputs and hit[1] is targets:
            return hit[2], hit[3]
        nbytes = inputs.numel() * inputs.element_size() + targets.numel() * targets.element_size()
        if not fits_on(device, nbytes):
            return inputs, targets
        moved = (inputs.to(device), targets.to(device))
        _DEVICE_CACHE[key] = (inputs, targets, *moved)  # the originals keep the ids valid
        return moved


def shuffled_batches(
    inputs: Tensor,
    targets: Tensor,
    batch_size: int,
    seed: int,
    transform: Callable[[Tensor], Tensor] = lambda x: x,
    device: torch.device | str | None = None,
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
    device:
        Where the batches are yielded (None: where ``inputs`` are). Data already there are sliced there;
        otherwise each raw batch is copied there before ``transform``.

    Notes
    -----
    Once per epoch a ``torch.Generator`` seeded with ``seed`` draws a permutation, the data are
    gathered into one contiguous shuffled copy, and consecutive slices of ``batch_size`` rows
    are yielded (the last incomplete batch of an epoch is dropped, as ``drop_last=True`` does).
    A ``batch_size`` larger than the data set yields the whole (shuffled) set each step. The
    permutation is drawn on the CPU on every device, so every device reads the same batches.
    """
    n = int(inputs.shape[0])
    if n == 0:
        raise ValueError("cannot draw batches from an empty data set")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    bs = min(batch_size, n)
    gen = torch.Generator().manual_seed(int(seed))
    target = inputs.device if device is None else torch.device(device)
    while True:
        perm = torch.randperm(n, generator=gen).to(inputs.device)
        xs = inputs.index_select(0, perm)
        ys = targets.index_select(0, perm)
        for start in range(0, n - bs + 1, bs):
            yield transform(xs[start : start + bs].to(target)), ys[start : start + bs].to(target)


def fixed_subset(n: int, size: int, seed: int = 0) -> Tensor:
    """Indices of a fixed random subset of ``min(size, n)`` of ``range(n)`` (sorted, seeded)."""
    if size >= n:
        return torch.arange(n)
    gen = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=gen)[:size].sort().values
