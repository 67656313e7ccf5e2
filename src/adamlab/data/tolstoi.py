"""War and Peace as a character stream, prepared exactly as DeepOBS's ``tolstoi`` data set.

Source: DeepOBS ``deepobs/scripts/deepobs_prepare_data.sh`` and ``_tolstoi_preprocess.py``
(Schneider, Balles & Hennig 2019), which Dissecting Adam's problem P4 uses:

1. The text is the UTF-8 file ``tolstoi/war-and-peace.txt`` (Gutenberg eBook #2600). A leading
   BOM is stripped; CRLF line endings are kept (DeepOBS reads with ``codecs.open``, which does
   not translate newlines), so ``"\\r"`` is a character of the vocabulary.
2. For the known release (SHA-256 ``registry.TOLSTOI_SHA256``) the Gutenberg header, table of
   contents and licence are removed with DeepOBS's three ``sed`` deletions, applied in order:
   lines 1-29, then lines 5-775, then lines 63850-64207 (1-based, inclusive). Any other text
   (e.g. a test fixture) is used whole.
3. Vocabulary: the distinct characters of the whole (trimmed) text ordered by decreasing
   frequency, ties by first occurrence (DeepOBS: ``sorted(Counter(text).items(), key=-count)``).
   For the real book: 83 characters, id 0 = ``" "``.
4. Split: the first ``ceil(0.8 * n)`` characters are train, the rest test (DeepOBS
   ``test_size=0.2``). For the real book n = 3,266,185: train 2,612,948, test 653,237 characters
   (DeepOBS's documented test-set size).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from adamlab.data.errors import DataFormatError

#: DeepOBS's sed line deletions, applied in this order (1-based, inclusive ranges).
DEEPOBS_DELETIONS: tuple[tuple[int, int], ...] = ((1, 29), (5, 775), (63850, 64207))
TEST_FRACTION = 0.2


def read_utf8(path: Path, dataset: str = "tolstoi", relpath: str | None = None) -> str:
    """Decode a UTF-8 file strictly, without newline translation, dropping a leading BOM."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataFormatError(dataset, relpath or path.name, path, f"not UTF-8 ({err})") from err
    return text[1:] if text.startswith("\ufeff") else text


def deepobs_trim(text: str) -> str:
    """Apply DeepOBS's ``sed -i 'A,Bd'`` deletions (``DEEPOBS_DELETIONS``) to ``text``."""
    # Not str.splitlines: that also splits on "\r" and other separators; sed only on "\n".
    lines = [line + "\n" for line in text.split("\n")]
    lines[-1] = lines[-1][:-1]
    if lines[-1] == "":
        lines.pop()
    for first, last in DEEPOBS_DELETIONS:
        del lines[first - 1 : last]
    return "".join(lines)


def vocabulary(text: str) -> list[str]:
    """Distinct characters of ``text`` by decreasing count, ties broken by first occurrence."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    uniq, first, counts = np.unique(codes, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    return [chr(int(c)) for c in uniq[order]]


def encode(text: str, vocab: list[str]) -> np.ndarray:
    """Character ids (int64) of ``text`` under ``vocab``; ValueError for a character not in it."""
    codes = np.frombuffer(text.encode("utf-32-le"), dtype="<u4")
    vcodes = np.array([ord(c) for c in vocab], dtype=np.uint32)
    order = np.argsort(vcodes)
    pos = np.searchsorted(vcodes[order], codes)
    pos = np.minimum(pos, len(vcodes) - 1)
    ok = vcodes[order][pos] == codes
    if not ok.all():
        bad = chr(int(codes[~ok][0]))
        raise ValueError(f"character {bad!r} is not in the vocabulary")
    return order[pos].astype(np.int64)


def split_point(n: int) -> int:
    """Number of training characters: ``ceil((1 - 0.2) * n)`` in float64, as DeepOBS computes it."""
    return int(math.ceil((1.0 - TEST_FRACTION) * n))


def prepare(path: Path, trim: bool) -> tuple[str, list[str]]:
    """The prepared text and its vocabulary (see the module docstring)."""
    text = read_utf8(path, "tolstoi", "tolstoi/war-and-peace.txt")
    if trim:
        text = deepobs_trim(text)
    if len(text) < 2:
        raise DataFormatError("tolstoi", "tolstoi/war-and-peace.txt", path, "fewer than 2 characters")
    return text, vocabulary(text)


def split_stream(ids: np.ndarray, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(inputs, targets)`` of a split: the split's ids and the same ids shifted by one."""
    cut = split_point(ids.shape[0])
    part = ids[:cut] if split == "train" else ids[cut:]
    return part[:-1], part[1:]
