"""``load(name, split)``: verified files in, tensors out."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch

import adamlab.data.cifar as cifar
import adamlab.data.imdb as imdb
import adamlab.data.tolstoi as tolstoi
from adamlab.data.idx import read_idx_pair
from adamlab.data.integrity import Resolved, resolve
from adamlab.data.registry import NAMES, TOLSTOI_SHA256

SPLITS = ("train", "test")
_IDX_PREFIX = {"train": "train", "test": "t10k"}
_OPTIONS: dict[str, tuple[str, ...]] = {"imdb": ("vocab_size",), "cifar100": ("label",)}

PathLike = str | os.PathLike[str]


def _check_args(name: str, split: str, options: dict[str, Any]) -> None:
    if name not in NAMES:
        raise ValueError(f"name must be one of {', '.join(NAMES)}; got {name!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be 'train' or 'test'; got {split!r}")
    allowed = _OPTIONS.get(name, ())
    for key in options:
        if key not in allowed:
            raise ValueError(
                f"{key!r} is not an option of {name!r} (allowed: {', '.join(allowed) or 'none'})"
            )


def load(
    name: str, split: str, root: PathLike | None = None, **options: Any
) -> tuple[torch.Tensor, torch.Tensor]:
    """Load one split of a dataset from its original files, verified against known checksums.

    Parameters
    ----------
    name:
        ``mnist``, ``fashion_mnist``, ``imdb``, ``cifar10``, ``cifar100`` or ``tolstoi``.
    split:
        ``"train"`` or ``"test"``.
    root:
        Data root; default ``$ADAMLAB_DATA``, else ``~/.cache/adamlab``. Never written to.
    **options:
        ``imdb``: ``vocab_size`` (int >= 1, default 10000). ``cifar100``: ``label`` =
        ``"fine"`` (default, 100 classes) or ``"coarse"`` (20).

    Returns
    -------
    tuple of torch.Tensor
        - mnist, fashion_mnist: uint8 ``[N, 28, 28]``, int64 ``[N]`` (10 classes).
        - cifar10, cifar100: uint8 ``[N, 3, 32, 32]`` (channels R, G, B), int64 ``[N]``.
        - imdb: uint8 ``[N, vocab_size]`` binary bag of words, int64 ``[N]`` (1 = positive);
          see :mod:`adamlab.data.imdb` for the exact vocabulary, tokenizer and order.
        - tolstoi: int64 ``[T-1]`` character ids of the split and int64 ``[T-1]`` targets, the
          same stream shifted by one (``inputs[i + 1] == targets[i]``); see
          :mod:`adamlab.data.tolstoi` and :func:`tolstoi_vocabulary`.

    Raises
    ------
    DataNotFoundError
        A needed file is missing (subclass of ``FileNotFoundError``).
    DataIntegrityError
        A file's checksum or format is wrong (subclass of ``ValueError``).
    ValueError
        Unknown name, split or option.
    """
    _check_args(name, split, options)
    if name in ("mnist", "fashion_mnist"):
        res = resolve(name, root)
        p = _IDX_PREFIX[split]
        x, y = read_idx_pair(
            res.path(f"{name}/{p}-images-idx3-ubyte.gz"), res.path(f"{name}/{p}-labels-idx1-ubyte.gz"), name
        )
        return torch.from_numpy(x.copy()), torch.from_numpy(y)
    if name in ("cifar10", "cifar100"):
        label = options.get("label", "fine")
        if label not in ("fine", "coarse"):
            raise ValueError(f"label must be 'fine' or 'coarse'; got {label!r}")
        res = resolve(name, root)
        f = res.variant.files[0]
        from_tarball = res.variant.name == "tarball"
        source = res.path(f.relpath) if from_tarball else res.path(f.relpath).parent
        x, y = cifar.read_cifar(source, split, name == "cifar100", from_tarball, name, label)
        return torch.from_numpy(np.ascontiguousarray(x)), torch.from_numpy(y)
    if name == "imdb":
        vocab_size = options.get("vocab_size", 10000)
        if isinstance(vocab_size, bool) or not isinstance(vocab_size, (int, np.integer)) or vocab_size < 1:
            raise ValueError(f"vocab_size must be an int >= 1; got {vocab_size!r}")
        x, y = _load_imdb(resolve(name, root), split, int(vocab_size))
        return torch.from_numpy(x), torch.from_numpy(y)
    res = resolve("tolstoi", root)
    ids, _ = _tolstoi_ids(res)
    inputs, targets = tolstoi.split_stream(ids, split)
    return torch.from_numpy(inputs.copy()), torch.from_numpy(targets.copy())


def _imdb_source(res: Resolved) -> tuple[Any, bool, str, str]:
    """(path, from_tarball, relpath, content digest) of the resolved IMDB form."""
    if res.variant.name == "folder":
        return res.path("imdb/aclImdb"), False, "imdb/aclImdb", res.found("imdb/MANIFEST.md5")
    rel = res.variant.files[0].relpath
    return res.path(rel), True, rel, res.found(rel)


def _load_imdb(res: Resolved, split: str, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    source, from_tarball, rel, digest = _imdb_source(res)
    key = imdb.cache_key(digest, vocab_size)
    cached = imdb.load_cached(key, split, vocab_size)
    if cached is not None:
        return cached
    both = imdb.build(source, from_tarball, rel, vocab_size)
    for s, (x, y) in both.items():
        imdb.store_cached(key, s, x, y)
    return both[split]


def _tolstoi_ids(res: Resolved) -> tuple[np.ndarray, list[str]]:
    rel = "tolstoi/war-and-peace.txt"
    trim = res.found(rel) == f"sha256:{TOLSTOI_SHA256}"
    text, vocab = tolstoi.prepare(res.path(rel), trim)
    return tolstoi.encode(text, vocab), vocab


def tolstoi_vocabulary(root: PathLike | None = None) -> list[str]:
    """The fixed character vocabulary of ``tolstoi``: position = character id.

    Characters of the whole prepared text by decreasing frequency, ties by first occurrence
    (DeepOBS); 83 characters for the real book. See :mod:`adamlab.data.tolstoi`.
    """
    res = resolve("tolstoi", root)
    rel = "tolstoi/war-and-peace.txt"
    _, vocab = tolstoi.prepare(res.path(rel), res.found(rel) == f"sha256:{TOLSTOI_SHA256}")
    return vocab


def imdb_vocabulary(root: PathLike | None = None, vocab_size: int = 10000) -> list[str]:
    """The words of the ``imdb`` features, column ``j`` = word ``j`` (at most ``vocab_size``)."""
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"vocab_size must be an int >= 1; got {vocab_size!r}")
    source, from_tarball, rel, _ = _imdb_source(resolve("imdb", root))
    return imdb.read_vocabulary(source, from_tarball, rel)[:vocab_size]
