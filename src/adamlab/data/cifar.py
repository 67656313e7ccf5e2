"""Reader for the *binary* version of CIFAR-10 and CIFAR-100 (Krizhevsky 2009).

Only the binary release is read: the "python version" consists of pickles, and adamlab never
unpickles anything. The tarballs are read with :mod:`tarfile` streaming, no extraction.

Record layout (https://www.cs.toronto.edu/~kriz/cifar.html):

- CIFAR-10: 1 label byte (0-9), then 3072 pixel bytes (1024 red, 1024 green, 1024 blue, each
  row-major 32 x 32). ``data_batch_1..5.bin`` (10,000 records each) and ``test_batch.bin``.
- CIFAR-100: 1 coarse label byte (0-19), 1 fine label byte (0-99), then the same 3072 bytes.
  ``train.bin`` (50,000 records) and ``test.bin`` (10,000).
"""

from __future__ import annotations

import tarfile
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from adamlab.data.errors import DataFormatError

PIXELS = 3 * 32 * 32

CIFAR10_FILES = {"train": [f"data_batch_{i}.bin" for i in range(1, 6)], "test": ["test_batch.bin"]}
CIFAR100_FILES = {"train": ["train.bin"], "test": ["test.bin"]}
CIFAR10_DIR = "cifar-10-batches-bin"
CIFAR100_DIR = "cifar-100-binary"


def parse_records(
    raw: bytes, label_bytes: int, dataset: str, relpath: str, path: Path
) -> tuple[np.ndarray, np.ndarray]:
    """Split CIFAR binary records into ``(uint8 [N, 3, 32, 32], uint8 [N, label_bytes])``.

    Raises ``DataFormatError`` if the byte count is not a whole number of records.
    """
    record = label_bytes + PIXELS
    if len(raw) == 0 or len(raw) % record:
        raise DataFormatError(
            dataset, relpath, path, f"{len(raw)} bytes is not a whole number of {record}-byte records"
        )
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(-1, record)
    return arr[:, label_bytes:].reshape(-1, 3, 32, 32), arr[:, :label_bytes]


def _check_labels(labels: np.ndarray, limits: Sequence[int], dataset: str, relpath: str, path: Path) -> None:
    for col, limit in enumerate(limits):
        if labels.shape[0] and int(labels[:, col].max()) >= limit:
            raise DataFormatError(
                dataset, relpath, path, f"label {int(labels[:, col].max())} outside [0, {limit})"
            )


def _read_members(tar_path: Path, inner: list[str], dataset: str, relpath: str) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    try:
        with tarfile.open(tar_path, mode="r|gz") as tar:
            for member in tar:
                if member.isfile() and member.name in inner:
                    fh = tar.extractfile(member)
                    assert fh is not None
                    out[member.name] = fh.read()
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataFormatError(dataset, relpath, tar_path, f"unreadable tar.gz ({err})") from err
    missing = [n for n in inner if n not in out]
    if missing:
        raise DataFormatError(dataset, relpath, tar_path, f"archive lacks {missing[0]}")
    return out


def read_cifar(
    source: Path, split: str, coarse_fine: bool, from_tarball: bool, dataset: str, label: str = "fine"
) -> tuple[np.ndarray, np.ndarray]:
    """Read one split of CIFAR-10 (``coarse_fine=False``) or CIFAR-100 (``True``).

    Parameters
    ----------
    source:
        The tarball, or the folder holding the ``.bin`` files.
    split:
        ``"train"`` or ``"test"``.
    from_tarball:
        Whether ``source`` is the ``.tar.gz``.
    label:
        CIFAR-100 only: ``"fine"`` (100 classes) or ``"coarse"`` (20 superclasses).

    Returns
    -------
    tuple
        ``(uint8 [N, 3, 32, 32], int64 [N])``.
    """
    names = (CIFAR100_FILES if coarse_fine else CIFAR10_FILES)[split]
    folder = CIFAR100_DIR if coarse_fine else CIFAR10_DIR
    label_bytes = 2 if coarse_fine else 1
    limits = (20, 100) if coarse_fine else (10,)
    if from_tarball:
        relpath = f"{dataset}/{source.name}"
        inner = [f"{folder}/{n}" for n in names]
        blobs = _read_members(source, inner, dataset, relpath)
        parts = [(blobs[i], source, relpath) for i in inner]
    else:
        parts = [((source / n).read_bytes(), source / n, f"{dataset}/{folder}/{n}") for n in names]
    xs, ys = [], []
    for raw, path, relpath in parts:
        x, y = parse_records(raw, label_bytes, dataset, relpath, path)
        _check_labels(y, limits, dataset, relpath, path)
        xs.append(x)
        ys.append(y)
    x = np.concatenate(xs)
    y = np.concatenate(ys)
    col = 0 if not coarse_fine else (1 if label == "fine" else 0)
    return x, y[:, col].astype(np.int64)
