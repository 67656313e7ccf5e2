"""What each dataset consists of: its files under the root, their checksums and official URLs.

Checksums. SHA-256 for MNIST, Fashion-MNIST, the IMDB text tarball and War and Peace are the
ones in ``shared/data/SHA256SUMS`` (the MNIST and Fashion-MNIST files have the widely published
MD5s). CIFAR-10/100 and the official ``aclImdb_v1.tar.gz`` have only published MD5s, so those are
checked with MD5 (documented weaker check; MD5 still detects every accidental corruption). The
files *inside* the CIFAR tarballs have no published checksum: an extracted copy is checked by its
exact size and record structure only (keep the tarball for a full check). An extracted
``aclImdb/`` folder is checked file by file against the MD5s in ``imdb/MANIFEST.md5``, whose own
SHA-256 is known.

Layouts. A dataset may be accepted in several forms (``Variant``), tried in order; the first form
whose files are all present is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

# Every name `load` accepts, in display order.
NAMES: tuple[str, ...] = ("mnist", "fashion_mnist", "imdb", "cifar10", "cifar100", "tolstoi")

_MNIST_URLS = ("http://yann.lecun.com/exdb/mnist/", "https://ossci-datasets.s3.amazonaws.com/mnist/")
_FMNIST_URLS = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
_IDX_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@dataclass(frozen=True)
class Checksum:
    """An expected digest: ``algorithm`` is ``"sha256"`` or ``"md5"``."""

    algorithm: str
    hexdigest: str

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hexdigest}"


@dataclass(frozen=True)
class FileSpec:
    """One file (or, with ``manifest``, one folder) of a dataset.

    Attributes
    ----------
    relpath:
        Path relative to the data root, e.g. ``"mnist/train-images-idx3-ubyte.gz"``.
    checksum:
        The known digest, or None where none is published (then ``size`` is checked).
    size:
        Exact size in bytes, checked when there is no checksum.
    urls:
        Where ``adamlab data fetch`` downloads it from, tried in order.
    manifest:
        For a folder: the relpath of an MD5 manifest (``md5sum`` format) covering its files.
    """

    relpath: str
    checksum: Checksum | None = None
    size: int | None = None
    urls: tuple[str, ...] = ()
    manifest: str | None = None

    @property
    def name(self) -> str:
        return self.relpath.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Variant:
    """One accepted form of a dataset (``"tarball"``, ``"folder"``, ...)."""

    name: str
    files: tuple[FileSpec, ...]


@dataclass(frozen=True)
class DatasetSpec:
    """A dataset: its accepted forms in order of preference, and optional extra files."""

    name: str
    variants: tuple[Variant, ...]
    fetch_variant: str
    extras: tuple[FileSpec, ...] = field(default=())

    def variant(self, name: str) -> Variant:
        for v in self.variants:
            if v.name == name:
                return v
        raise KeyError(name)


def _sha(h: str) -> Checksum:
    return Checksum("sha256", h)


def _md5(h: str) -> Checksum:
    return Checksum("md5", h)


def _idx_dataset(name: str, sums: Mapping[str, str], urls: tuple[str, ...]) -> tuple[FileSpec, ...]:
    return tuple(FileSpec(f"{name}/{f}", _sha(sums[f]), urls=tuple(u + f for u in urls)) for f in _IDX_FILES)


_MNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
}
_FMNIST_SHA256 = {
    "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
    "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
    "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
    "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
}

#: SHA-256 of Project Gutenberg eBook #2600 as DeepOBS downloads it (UTF-8 with BOM, CRLF).
TOLSTOI_SHA256 = "3ed0f41cfdf660846878943bad5b9d575bcae1e4a92ee9a7f43d3c9dba2af344"

_CIFAR10_BATCH = 10000 * (1 + 3072)
_CIFAR100_RECORD = 2 + 3072

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        "mnist", (Variant("idx", _idx_dataset("mnist", _MNIST_SHA256, _MNIST_URLS)),), "idx"
    ),
    "fashion_mnist": DatasetSpec(
        "fashion_mnist",
        (Variant("idx", _idx_dataset("fashion_mnist", _FMNIST_SHA256, _FMNIST_URLS)),),
        "idx",
        extras=(
            FileSpec(
                "fashion_mnist/LICENSE",
                _sha("13ef4788476d292858fa60eb9a5f74aeca5c65770bc885ccaa05823a17ef7be1"),
            ),
        ),
    ),
    "imdb": DatasetSpec(
        "imdb",
        (
            Variant(
                "text-tarball",
                (
                    FileSpec(
                        "imdb/aclImdb_v1_text_no_unsup.tar.gz",
                        _sha("18e7a4c90bd41d9ce07da2f009f480b9a7b1db2a955b6fea6441f1f655350ae8"),
                    ),
                ),
            ),
            Variant(
                "official-tarball",
                (
                    FileSpec(
                        "imdb/aclImdb_v1.tar.gz",
                        _md5("7c2ac02c03563afcf9b574c7e56c153a"),
                        urls=("https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",),
                    ),
                ),
            ),
            Variant(
                "folder",
                (
                    FileSpec(
                        "imdb/MANIFEST.md5",
                        _sha("27cf89d5465a1df903b28a4e78d1734ee0800e20e49cbc1b35281dd20643eff9"),
                    ),
                    FileSpec("imdb/aclImdb", manifest="imdb/MANIFEST.md5"),
                ),
            ),
        ),
        "official-tarball",
        extras=(
            FileSpec("imdb/README", _sha("a69bd3b91235c7fa1d6aadab51e257b7fa3f7b68f32b607483a72bd67f95e557")),
            FileSpec(
                "imdb/imdb.vocab", _sha("01a13a306bd9e5a7826b8a0fc25a7a6017f143d86c1582f17857bb731fd252dc")
            ),
        ),
    ),
    "cifar10": DatasetSpec(
        "cifar10",
        (
            Variant(
                "tarball",
                (
                    FileSpec(
                        "cifar10/cifar-10-binary.tar.gz",
                        _md5("c32a1d4ab5d03f1284b67883e8d87530"),
                        urls=("https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",),
                    ),
                ),
            ),
            Variant(
                "folder",
                tuple(
                    FileSpec(f"cifar10/cifar-10-batches-bin/{f}", size=_CIFAR10_BATCH)
                    for f in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
                ),
            ),
        ),
        "tarball",
    ),
    "cifar100": DatasetSpec(
        "cifar100",
        (
            Variant(
                "tarball",
                (
                    FileSpec(
                        "cifar100/cifar-100-binary.tar.gz",
                        _md5("03b5dce01913d631647c71ecec9e9cb8"),
                        urls=("https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",),
                    ),
                ),
            ),
            Variant(
                "folder",
                (
                    FileSpec("cifar100/cifar-100-binary/train.bin", size=50000 * _CIFAR100_RECORD),
                    FileSpec("cifar100/cifar-100-binary/test.bin", size=10000 * _CIFAR100_RECORD),
                ),
            ),
        ),
        "tarball",
    ),
    "tolstoi": DatasetSpec(
        "tolstoi",
        (
            Variant(
                "text",
                (
                    FileSpec(
                        "tolstoi/war-and-peace.txt",
                        _sha(TOLSTOI_SHA256),
                        # The URL DeepOBS's deepobs_prepare_data.sh downloads (Gutenberg is geoblocked
                        # in some countries); the checksum guarantees it is the same file.
                        urls=(
                            "https://github.com/AllenDowney/fluent-python-notebooks/raw/master/"
                            "attic/sequences/war-and-peace.txt",
                        ),
                    ),
                ),
            ),
        ),
        "text",
    ),
}

# relpath -> checksum, consulted before the built-in ones (see ``override_checksums``).
_OVERRIDES: dict[str, Checksum] = {}


def get_spec(name: str) -> DatasetSpec:
    """The spec of dataset ``name``; ValueError naming the allowed names otherwise."""
    try:
        return DATASETS[name]
    except KeyError:
        raise ValueError(f"name must be one of {', '.join(NAMES)}; got {name!r}") from None


def expected_checksum(spec: FileSpec) -> Checksum | None:
    """The checksum a file must have: an active override, else the built-in one."""
    return _OVERRIDES.get(spec.relpath, spec.checksum)


@contextlib.contextmanager
def override_checksums(checksums: Mapping[str, Checksum]) -> Iterator[None]:
    """Temporarily accept other checksums for some files (keyed by relpath); restores on exit.

    Used by :func:`adamlab.data.testing.tiny_datasets` so that tiny fixture files pass the
    integrity check. Nests correctly.
    """
    saved = dict(_OVERRIDES)
    _OVERRIDES.update(checksums)
    try:
        yield
    finally:
        _OVERRIDES.clear()
        _OVERRIDES.update(saved)


@contextlib.contextmanager
def without_overrides() -> Iterator[None]:
    """Temporarily check against the built-in checksums only (e.g. inside ``tiny_datasets``)."""
    saved = dict(_OVERRIDES)
    _OVERRIDES.clear()
    try:
        yield
    finally:
        _OVERRIDES.clear()
        _OVERRIDES.update(saved)
