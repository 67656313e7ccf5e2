"""Reader for the IDX format of MNIST and Fashion-MNIST (gzip-compressed).

Format (LeCun et al., http://yann.lecun.com/exdb/mnist/): a 4-byte magic number
``0x00 0x00 <type> <ndim>`` with type ``0x08`` = unsigned byte, then ``ndim`` big-endian
uint32 dimensions, then ``prod(dims)`` data bytes. Images are ``0x00000803`` (N x 28 x 28),
labels ``0x00000801`` (N).
"""

from __future__ import annotations

import gzip
import math
import zlib
from pathlib import Path

import numpy as np

from adamlab.data.errors import DataFormatError

_UBYTE = 0x08


def read_idx_gz(path: Path, ndim: int, dataset: str = "idx", relpath: str | None = None) -> np.ndarray:
    """Read a gzip-compressed IDX file of unsigned bytes with ``ndim`` dimensions.

    Parameters
    ----------
    path:
        The ``*-ubyte.gz`` file.
    ndim:
        The number of dimensions the file must have (3 for images, 1 for labels).
    dataset, relpath:
        Used in error messages only.

    Returns
    -------
    numpy.ndarray
        uint8 array of the file's shape.

    Raises
    ------
    DataFormatError
        Not gzip, truncated stream, wrong magic number or type, wrong ``ndim``, or a data length
        that differs from the product of the dimensions.
    """
    rel = relpath or path.name
    try:
        with gzip.open(path, "rb") as fh:
            raw = fh.read()
    except (OSError, EOFError, zlib.error) as err:
        raise DataFormatError(dataset, rel, path, f"unreadable gzip stream ({err})") from err
    if len(raw) < 4:
        raise DataFormatError(dataset, rel, path, f"only {len(raw)} bytes, no IDX header")
    zero, dtype, nd = int.from_bytes(raw[:2], "big"), raw[2], raw[3]
    magic = int.from_bytes(raw[:4], "big")
    want_magic = (_UBYTE << 8) | ndim
    if zero != 0 or dtype != _UBYTE or nd != ndim:
        raise DataFormatError(dataset, rel, path, f"magic number 0x{magic:08x}, expected 0x{want_magic:08x}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataFormatError(dataset, rel, path, "truncated IDX header")
    dims = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    n = math.prod(dims)  # Python ints: a forged header cannot overflow int64 into a small product
    if len(raw) - header != n:
        raise DataFormatError(
            dataset, rel, path, f"{len(raw) - header} data bytes, dimensions {dims} need {n}"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


def read_idx_pair(
    images: Path, labels: Path, dataset: str, num_classes: int = 10, shape: tuple[int, int] = (28, 28)
) -> tuple[np.ndarray, np.ndarray]:
    """Read an images file and a labels file and check that they agree.

    Returns ``(uint8 [N, H, W], int64 [N])``; raises ``DataFormatError`` if the image size is not
    ``shape``, the counts differ, or a label is outside ``[0, num_classes)``.
    """
    x = read_idx_gz(images, 3, dataset, f"{dataset}/{images.name}")
    y = read_idx_gz(labels, 1, dataset, f"{dataset}/{labels.name}")
    if x.shape[1:] != shape:
        raise DataFormatError(
            dataset, f"{dataset}/{images.name}", images, f"image size {x.shape[1:]}, expected {shape}"
        )
    if x.shape[0] != y.shape[0]:
        raise DataFormatError(
            dataset, f"{dataset}/{labels.name}", labels, f"{y.shape[0]} labels for {x.shape[0]} images"
        )
    if y.size and int(y.max()) >= num_classes:
        raise DataFormatError(
            dataset, f"{dataset}/{labels.name}", labels, f"label {int(y.max())} outside [0, {num_classes})"
        )
    return x, y.astype(np.int64)
