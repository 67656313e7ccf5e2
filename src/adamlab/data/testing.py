"""Tiny datasets in the real file formats, for tests (never the network, never real data).

``with tiny_datasets(root) as root: ...`` writes, under ``root``, a few dozen examples of every
dataset in its original format and layout, and while the context is active makes the integrity
check accept exactly these files (their SHA-256s are registered as overrides, then restored).
Images carry a class-dependent bright patch plus noise, so tiny models can learn something.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from adamlab.data.registry import Checksum, override_checksums

N_TRAIN = 64
N_TEST = 32
CIFAR10_PER_BATCH = 12  # 5 batches -> 60 training records
N_IMDB = {"train": 12, "test": 8}  # per label
_TARBALL = "imdb/aclImdb_v1_text_no_unsup.tar.gz"

_POS = "great wonderful loved excellent best superb fun brilliant enjoyed amazing".split()
_NEG = "bad awful boring worst waste terrible poor dull hated stupid".split()
_COMMON = "the movie film a and of to is it this was plot acting story i".split()


def idx_bytes(array: np.ndarray) -> bytes:
    """Uncompressed IDX encoding of a uint8 array (magic 0x0000080N, big-endian dims, data)."""
    a = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, a.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in a.shape)
    return header + a.tobytes()


def write_idx_gz(path: Path, array: np.ndarray) -> None:
    """Write ``array`` as a gzip-compressed IDX file (mtime 0, so the bytes are reproducible)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        gz.write(idx_bytes(array))


def _images(rng: np.random.Generator, labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Noise images with a bright patch whose position encodes the label."""
    x = rng.integers(0, 64, size=(len(labels), *shape), dtype=np.uint8)
    h, w = shape[-2], shape[-1]
    for i, c in enumerate(labels):
        r, q = divmod(int(c) % 16, 4)
        x[i, ..., r * h // 4 : (r + 1) * h // 4, q * w // 4 : (q + 1) * w // 4] = 255
    return x


def _labels(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    return rng.permutation(np.arange(n) % k).astype(np.uint8)


def _write_mnist_like(root: Path, name: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for prefix, n in (("train", N_TRAIN), ("t10k", N_TEST)):
        y = _labels(rng, n, 10)
        write_idx_gz(root / name / f"{prefix}-images-idx3-ubyte.gz", _images(rng, y, (28, 28)))
        write_idx_gz(root / name / f"{prefix}-labels-idx1-ubyte.gz", y)


def cifar_records(rng: np.random.Generator, n: int, fine: bool) -> bytes:
    """``n`` CIFAR binary records: [label] or [coarse, fine] bytes, then 3072 pixel bytes."""
    k = 100 if fine else 10
    y = _labels(rng, n, k)
    x = _images(rng, y, (3, 32, 32)).reshape(n, -1)
    lab = np.stack([y // 5, y], axis=1) if fine else y[:, None]  # coarse = fine // 5 (tiny data only)
    return np.concatenate([lab.astype(np.uint8), x], axis=1).tobytes()


def _write_cifar(root: Path) -> None:
    rng = np.random.default_rng(3)
    d10 = root / "cifar10" / "cifar-10-batches-bin"
    d10.mkdir(parents=True, exist_ok=True)
    for i in range(1, 6):
        (d10 / f"data_batch_{i}.bin").write_bytes(cifar_records(rng, CIFAR10_PER_BATCH, False))
    (d10 / "test_batch.bin").write_bytes(cifar_records(rng, N_TEST // 2, False))
    d100 = root / "cifar100" / "cifar-100-binary"
    d100.mkdir(parents=True, exist_ok=True)
    (d100 / "train.bin").write_bytes(cifar_records(rng, N_TRAIN, True))
    (d100 / "test.bin").write_bytes(cifar_records(rng, N_TEST, True))


def imdb_reviews(seed: int = 4) -> dict[str, list[tuple[str, str, str]]]:
    """Tiny labelled reviews: split -> [(label, "<id>_<rating>.txt", text)]."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[tuple[str, str, str]]] = {}
    for split, n in N_IMDB.items():
        rows = []
        for label, words in (("pos", _POS), ("neg", _NEG)):
            for i in range(n):
                rating = int(rng.integers(7, 11)) if label == "pos" else int(rng.integers(1, 5))
                toks = list(rng.choice(_COMMON, 12)) + list(rng.choice(words, 4))
                rng.shuffle(toks)
                text = " ".join(toks).capitalize() + ".<br /><br />Don't miss it!"
                rows.append((label, f"{i}_{rating}.txt", text))
        out[split] = rows
    return out


def imdb_vocab_text() -> str:
    """A tiny ``imdb.vocab``: one token per line, most frequent first."""
    return "\n".join(_COMMON + ["!", "don't", "miss"] + _POS + _NEG) + "\n"


def write_imdb_tarball(path: Path, reviews: dict[str, list[tuple[str, str, str]]] | None = None) -> None:
    """Write an aclImdb tarball (``aclImdb/imdb.vocab``, ``aclImdb/{split}/{label}/*.txt``)."""
    reviews = imdb_reviews() if reviews is None else reviews
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.USTAR_FORMAT) as tar:

            def add(name: str, data: bytes) -> None:
                info = tarfile.TarInfo(name)
                info.size, info.mtime, info.mode = len(data), 0, 0o644
                tar.addfile(info, io.BytesIO(data))

            add("aclImdb/README", b"Tiny aclImdb fixture written by adamlab.data.testing\n")
            add("aclImdb/imdb.vocab", imdb_vocab_text().encode())
            for split, rows in reviews.items():
                for label, fname, text in rows:
                    add(f"aclImdb/{split}/{label}/{fname}", text.encode())


def write_imdb_folder(root: Path, reviews: dict[str, list[tuple[str, str, str]]] | None = None) -> None:
    """Write ``imdb/aclImdb/`` and ``imdb/MANIFEST.md5`` (md5sum format, as in shared/data)."""
    reviews = imdb_reviews() if reviews is None else reviews
    folder = root / "imdb" / "aclImdb"
    lines = []
    files = {"imdb.vocab": imdb_vocab_text().encode()}
    for split, rows in reviews.items():
        for label, fname, text in rows:
            files[f"{split}/{label}/{fname}"] = text.encode()
    for rel, data in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
        lines.append(f"{hashlib.md5(data).hexdigest()}  ./{rel}")
    (root / "imdb" / "MANIFEST.md5").write_text("\n".join(lines) + "\n")


def tolstoi_text(n_chars: int = 6000, seed: int = 5) -> str:
    """A tiny novel: BOM, CRLF line endings, a few non-ASCII letters."""
    rng = np.random.default_rng(seed)
    words = "prince natasha pierre andrew war peace moscow said the and of a to he she was é".split()
    lines, total = [], 0
    while total < n_chars:
        line = " ".join(rng.choice(words, 10)).capitalize() + rng.choice([".", ",", "!", "?"])
        lines.append(line)
        total += len(line) + 2
    return "\ufeff" + "\r\n".join(lines) + "\r\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@contextlib.contextmanager
def tiny_datasets(root: str | os.PathLike[str]) -> Iterator[Path]:
    """Write tiny copies of every dataset in its real format under ``root``; accept them meanwhile.

    Layout: ``mnist/`` and ``fashion_mnist/`` (the four IDX gzip files; 64 train, 32 test,
    10 classes), ``imdb/aclImdb_v1_text_no_unsup.tar.gz`` (24 train, 16 test reviews, balanced;
    a 38-word ``imdb.vocab``), ``cifar10/cifar-10-batches-bin/`` (5 x 12 train, 16 test records),
    ``cifar100/cifar-100-binary/`` (64 train, 32 test), ``tolstoi/war-and-peace.txt`` (about
    6,000 characters, BOM and CRLF).

    Yields
    ------
    pathlib.Path
        ``root``. On exit the registered checksums are restored; the files stay.
    """
    base = Path(root)
    base.mkdir(parents=True, exist_ok=True)
    _write_mnist_like(base, "mnist", 1)
    _write_mnist_like(base, "fashion_mnist", 2)
    _write_cifar(base)
    write_imdb_tarball(base / _TARBALL)
    (base / "tolstoi").mkdir(parents=True, exist_ok=True)
    (base / "tolstoi" / "war-and-peace.txt").write_bytes(tolstoi_text().encode("utf-8"))
    checksums = {
        p.relative_to(base).as_posix(): Checksum("sha256", _sha256(p))
        for d in ("mnist", "fashion_mnist", "cifar10", "cifar100", "imdb", "tolstoi")
        for p in sorted((base / d).rglob("*"))
        if p.is_file()
    }
    with override_checksums(checksums):
        yield base
