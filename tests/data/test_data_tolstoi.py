"""tolstoi: BOM, CRLF, DeepOBS's trimming, vocabulary order, 80/20 split, shifted targets."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from adamlab.data import DataIntegrityError, load, tolstoi_vocabulary
from adamlab.data import tolstoi as tol
from adamlab.data.testing import tolstoi_text


def test_stream_split_and_shift(tiny_root):
    text = tolstoi_text()[1:]  # BOM stripped; the fixture is not the known book, so no trimming
    vocab = tolstoi_vocabulary(tiny_root)
    ids = [vocab.index(c) for c in text]
    cut = math.ceil(0.8 * len(text))
    xtr, ytr = load("tolstoi", "train", root=tiny_root)
    xte, yte = load("tolstoi", "test", root=tiny_root)
    assert str(xtr.dtype) == "torch.int64" and xtr.ndim == 1
    assert xtr.tolist() == ids[: cut - 1] and ytr.tolist() == ids[1:cut]
    assert xte.tolist() == ids[cut:-1] and yte.tolist() == ids[cut + 1 :]
    assert xtr[1:].equal(ytr[:-1])


def test_vocabulary_is_deepobs_order(tiny_root):
    text = tolstoi_text()[1:]
    counts = Counter(text)  # insertion order = first occurrence
    expected = [c for c, _ in sorted(counts.items(), key=lambda kv: -kv[1])]
    vocab = tolstoi_vocabulary(tiny_root)
    assert vocab == expected
    assert "\ufeff" not in vocab and "\r" in vocab and "\n" in vocab and "é" in vocab


def test_vocabulary_ties_by_first_occurrence():
    assert tol.vocabulary("bbaacd\u00e9") == ["b", "a", "c", "d", "é"]


def test_encode_rejects_unknown_character():
    with pytest.raises(ValueError, match="'z' is not in the vocabulary"):
        tol.encode("abz", ["a", "b"])


def test_deepobs_trim_matches_sed_semantics():
    n = 64300
    text = "".join(f"line {i}\r\n" for i in range(1, n + 1))
    kept = list(range(1, n + 1))
    for first, last in ((1, 29), (5, 775), (63850, 64207)):  # sed -i 'A,Bd', applied in order
        kept = kept[: first - 1] + kept[last:]
    assert tol.deepobs_trim(text) == "".join(f"line {i}\r\n" for i in kept)
    assert kept[:5] == [30, 31, 32, 33, 805]


def test_split_point_is_deepobs_ceil():
    for n in (10, 11, 3266185, 7):
        assert tol.split_point(n) == int(np.ceil((1.0 - 0.2) * n))
    assert tol.split_point(3266185) == 3266185 - 653237


def test_invalid_utf8_raises(tiny_root):
    from adamlab.data.errors import DataFormatError

    p = tiny_root.parent / "bad.txt"
    p.write_bytes(b"abc\xff\xfe")
    with pytest.raises(DataFormatError, match="not UTF-8"):
        tol.read_utf8(p)
    assert issubclass(DataFormatError, DataIntegrityError)
