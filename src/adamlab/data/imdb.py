"""The Large Movie Review Dataset (Maas et al., ACL 2011) as a binary bag of words.

Input forms (see ``registry``): ``imdb/aclImdb_v1_text_no_unsup.tar.gz``, the official
``imdb/aclImdb_v1.tar.gz`` (its ``unsup`` reviews and ``.feat`` files are skipped), or an
extracted ``imdb/aclImdb/`` folder checked against ``imdb/MANIFEST.md5``. Tarballs are read
with :mod:`tarfile` streaming; nothing is extracted to disk.

Definition of the features (the Adam paper, sec. 6.1: "bag-of-words (BoW) feature vectors
including the first 10,000 most frequent words"):

- Vocabulary: the first ``vocab_size`` (default 10,000) lines of the dataset's own
  ``imdb.vocab``, which lists tokens by decreasing frequency; these are exactly the feature
  indices ``0 .. vocab_size-1`` of the dataset's ``labeledBow.feat`` files. If ``imdb.vocab`` has
  fewer lines (test fixtures) the remaining columns are all zero, so the width is always
  ``vocab_size``.
- Tokenizer (:func:`tokenize`): lowercase; replace HTML line breaks ``<br />`` (``<br>``,
  ``<br/>``) by a space; then take, left to right, the matches of
  ``[^\\W_]+(?:['-][^\\W_]+)*`` (runs of Unicode letters/digits, joined by inner apostrophes or
  hyphens: ``don't``, ``low-budget``), ``[!?]`` and the emoticons ``[:;]-?[()]``, the
  non-alphanumeric tokens that occur in the top 10,000 of ``imdb.vocab``. This approximates the
  tokenizer used to build ``imdb.vocab``, which is not published.
- Feature ``j`` of a review is 1 if vocabulary word ``j`` occurs in it, else 0 (binary, not counts).
- Order: label 0 (``neg``) before label 1 (``pos``), each by increasing review id (the number
  before ``_`` in ``<id>_<rating>.txt``). Targets are int64, 1 = positive.

Storage choice: a dense ``uint8`` matrix, 25,000 x 10,000 = 250 MB per split (a float32 copy
would be 1 GB; sparse tensors are slow to index per mini-batch). The matrix is cached bit-packed
(``np.packbits``, 31 MB per split) under ``$ADAMLAB_CACHE/imdb/<key>/``, keyed by the archive's
checksum, ``vocab_size`` and ``TOKENIZER_VERSION``, with a manifest of the files' sha256 that every
load verifies (a cache that fails it is rebuilt); loads use ``allow_pickle=False``.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from adamlab.data.errors import DataFormatError
from adamlab.data.paths import cache_dir
from adamlab.util.files import atomic_open, write_json

TOKENIZER_VERSION = 1
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)
_TOKEN = re.compile(r"[^\W_]+(?:['\-][^\W_]+)*|[!?]|[:;]-?[()]")
_MEMBER = re.compile(r"^(?:\./)?aclImdb/(train|test)/(pos|neg)/(\d+)_(\d+)\.txt$")
_VOCAB_MEMBER = re.compile(r"^(?:\./)?aclImdb/imdb\.vocab$")
LABELS = {"neg": 0, "pos": 1}

Review = tuple[int, int, str]  # (label, id, text)


def tokenize(text: str) -> list[str]:
    """Tokens of one review (see the module docstring for the exact rule)."""
    return _TOKEN.findall(_BR.sub(" ", text.lower()))


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8", errors="replace")


def iter_tarball(path: Path, relpath: str) -> Iterator[tuple[str, str, str, str]]:
    """Stream an aclImdb tarball, yielding ``(kind, split, key, text)``.

    ``("vocab", "", "", <imdb.vocab text>)`` once, and ``("review", split, "pos/<id>", text)``
    (or ``"neg/<id>"``) for every ``aclImdb/{train,test}/{pos,neg}/<id>_<rating>.txt``; all other
    members (``unsup``, ``.feat``, URLs) are skipped without being read.
    """
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for member in tar:
                if not member.isfile():
                    continue
                m = _MEMBER.match(member.name)
                if m is None and not _VOCAB_MEMBER.match(member.name):
                    continue
                fh = tar.extractfile(member)
                assert fh is not None
                text = _decode(fh.read())
                if m is None:
                    yield ("vocab", "", "", text)
                else:
                    yield ("review", m.group(1), f"{m.group(2)}/{m.group(3)}", text)
    except (tarfile.TarError, OSError, EOFError, zlib.error) as err:
        raise DataFormatError("imdb", relpath, path, f"unreadable tar.gz ({err})") from err


def iter_folder(folder: Path) -> Iterator[tuple[str, str, str, str]]:
    """Same as :func:`iter_tarball` for an extracted ``aclImdb/`` folder."""
    yield ("vocab", "", "", _decode((folder / "imdb.vocab").read_bytes()))
    for split in ("train", "test"):
        for label in ("pos", "neg"):
            for f in sorted((folder / split / label).glob("*_*.txt")):
                m = re.match(r"^(\d+)_(\d+)\.txt$", f.name)
                if m:
                    yield ("review", split, f"{label}/{m.group(1)}", _decode(f.read_bytes()))


def collect(
    items: Iterator[tuple[str, str, str, str]], source: Path, relpath: str
) -> tuple[list[str], dict[str, list[Review]]]:
    """Gather the vocabulary lines and each split's reviews, sorted by (label, id)."""
    vocab: list[str] | None = None
    reviews: dict[str, list[Review]] = {"train": [], "test": []}
    for kind, split, key, text in items:
        if kind == "vocab":
            vocab = [w.strip() for w in text.splitlines() if w.strip()]
        else:
            label, rid = key.split("/")
            reviews[split].append((LABELS[label], int(rid), text))
    if vocab is None:
        raise DataFormatError("imdb", relpath, source, "no aclImdb/imdb.vocab inside")
    for split, rows in reviews.items():
        if not rows:
            raise DataFormatError("imdb", relpath, source, f"no {split} reviews (aclImdb/{split}/pos|neg)")
        rows.sort(key=lambda r: (r[0], r[1]))
    return vocab, reviews


def bag_of_words(texts: list[str], vocab: list[str], vocab_size: int) -> np.ndarray:
    """Binary occurrence matrix uint8 [len(texts), vocab_size] over ``vocab[:vocab_size]``."""
    index = {w: i for i, w in enumerate(vocab[:vocab_size])}
    out = np.zeros((len(texts), vocab_size), dtype=np.uint8)
    for row, text in enumerate(texts):
        cols = {index[t] for t in tokenize(text) if t in index}
        if cols:
            out[row, np.fromiter(cols, dtype=np.int64, count=len(cols))] = 1
    return out


def cache_key(archive_digest: str, vocab_size: int) -> str:
    """Directory name of the processed cache for an archive checksum and vocabulary size."""
    h = hashlib.sha256(f"{archive_digest}|{vocab_size}|tok{TOKENIZER_VERSION}".encode()).hexdigest()
    return f"v{vocab_size}-{h[:20]}"


def _cache_files(key: str, split: str) -> tuple[Path, Path, Path]:
    d = cache_dir() / "imdb" / key
    return d / f"{split}-inputs-packed.npy", d / f"{split}-targets.npy", d / f"{split}-manifest.json"


def _npy_bytes(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=False)
    return buf.getvalue()


def load_cached(key: str, split: str, vocab_size: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The cached split, or None if absent, unreadable or not verified (then the caller rebuilds it).

    A cached split is used only when its manifest (written last) names this ``key`` -- the source
    archive's checksum, ``vocab_size`` and the tokenizer version -- and the sha256 of both ``.npy``
    files equals the manifest's: a cache edited, torn or copied from elsewhere is rebuilt, never
    trusted (flipped labels would otherwise give a wrong result under the clean run's id).
    """
    xp, yp, mp = _cache_files(key, split)
    try:
        manifest = json.loads(mp.read_text(encoding="utf-8"))
        xb, yb = xp.read_bytes(), yp.read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("key") != key \
            or manifest.get("inputs_sha256") != hashlib.sha256(xb).hexdigest() \
            or manifest.get("targets_sha256") != hashlib.sha256(yb).hexdigest():
        return None
    try:
        packed = np.load(io.BytesIO(xb), allow_pickle=False)
        y = np.load(io.BytesIO(yb), allow_pickle=False)
    except (OSError, ValueError):
        return None
    if packed.ndim != 2 or packed.shape[0] != y.shape[0] or packed.shape[1] * 8 < vocab_size:
        return None
    return np.unpackbits(packed, axis=1, count=vocab_size), y.astype(np.int64)


def store_cached(key: str, split: str, x: np.ndarray, y: np.ndarray) -> None:
    """Write one split's packed matrix and targets atomically, then their manifest (``key`` and the
    sha256 of both files; :func:`load_cached` verifies it)."""
    xp, yp, mp = _cache_files(key, split)
    xb, yb = _npy_bytes(np.packbits(x, axis=1)), _npy_bytes(y.astype(np.int64))
    try:
        mp.unlink(missing_ok=True)
        with atomic_open(xp, "wb", fsync=True) as fh:
            fh.write(xb)
        with atomic_open(yp, "wb", fsync=True) as fh:
            fh.write(yb)
        write_json(mp, {"key": key, "inputs_sha256": hashlib.sha256(xb).hexdigest(),
                        "targets_sha256": hashlib.sha256(yb).hexdigest()})
    except OSError:  # an unwritable cache only costs speed
        pass


def build(
    source: Path, from_tarball: bool, relpath: str, vocab_size: int
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Read every review once and build both splits' ``(inputs, targets)``."""
    items = iter_tarball(source, relpath) if from_tarball else iter_folder(source)
    vocab, reviews = collect(items, source, relpath)
    out = {}
    for split, rows in reviews.items():
        x = bag_of_words([r[2] for r in rows], vocab, vocab_size)
        y = np.array([r[0] for r in rows], dtype=np.int64)
        out[split] = (x, y)
    return out


def read_vocabulary(source: Path, from_tarball: bool, relpath: str) -> list[str]:
    """All lines of the dataset's ``imdb.vocab`` (stops reading the tarball once found)."""
    items = iter_tarball(source, relpath) if from_tarball else iter_folder(source)
    for kind, _, _, text in items:
        if kind == "vocab":
            return [w.strip() for w in text.splitlines() if w.strip()]
    raise DataFormatError("imdb", relpath, source, "no aclImdb/imdb.vocab inside")
