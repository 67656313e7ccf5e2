"""IMDB: tokenizer, binary bag of words, tarball and folder forms, the processed cache."""

from __future__ import annotations

import numpy as np
import pytest

from adamlab.data import DataIntegrityError, imdb_vocabulary, load
from adamlab.data import imdb as imdb_mod
from adamlab.data.testing import imdb_reviews, imdb_vocab_text, write_imdb_folder


def test_tokenizer_rules():
    text = "Don't miss it!<br /><br />A LOW-budget, so-called film:) Clichés? 'quoted' snake_case"
    assert imdb_mod.tokenize(text) == [
        "don't", "miss", "it", "!", "a", "low-budget", "so-called", "film", ":)", "clichés", "?",
        "quoted", "snake", "case",
    ]  # fmt: skip


def _expected(split: str, vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Independent reference: word sets by plain string splitting of the fixture's clean texts."""
    vocab = imdb_vocab_text().split()[:vocab_size]
    rows = sorted(imdb_reviews()[split], key=lambda r: (r[0] == "pos", int(r[1].split("_")[0])))
    x = np.zeros((len(rows), vocab_size), np.uint8)
    for i, (_, _, text) in enumerate(rows):
        clean = text.lower().replace("<br />", " ").replace(".", " ").replace("!", " ! ")
        words = set(clean.split())
        for j, w in enumerate(vocab):
            x[i, j] = w in words
    y = np.array([1 if r[0] == "pos" else 0 for r in rows], np.int64)
    return x, y


@pytest.mark.parametrize("split", ["train", "test"])
def test_tarball_bag_of_words(tiny_root, split):
    x, y = load("imdb", split, root=tiny_root)
    ex, ey = _expected(split, 10000)
    assert str(x.dtype) == "torch.uint8" and str(y.dtype) == "torch.int64"
    assert tuple(x.shape) == (len(ey), 10000)  # padded to vocab_size
    np.testing.assert_array_equal(x.numpy(), ex)
    np.testing.assert_array_equal(y.numpy(), ey)
    assert x[:, len(imdb_vocab_text().split()) :].sum() == 0
    assert y.sum() * 2 == len(y)  # balanced


def test_vocab_size_truncates_and_validates(tiny_root):
    x, _ = load("imdb", "train", root=tiny_root, vocab_size=5)
    np.testing.assert_array_equal(x.numpy(), _expected("train", 5)[0])
    assert imdb_vocabulary(tiny_root, vocab_size=3) == ["the", "movie", "film"]
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="vocab_size must be an int >= 1"):
            load("imdb", "train", root=tiny_root, vocab_size=bad)


def test_folder_form_equals_tarball(tiny_root, tmp_path):
    from adamlab.data.registry import Checksum, override_checksums

    root = tmp_path / "folder_root"
    write_imdb_folder(root)
    import hashlib

    sha = hashlib.sha256((root / "imdb/MANIFEST.md5").read_bytes()).hexdigest()
    with override_checksums({"imdb/MANIFEST.md5": Checksum("sha256", sha)}):
        x, y = load("imdb", "test", root=root)
        ex, ey = _expected("test", 10000)
        np.testing.assert_array_equal(x.numpy(), ex)
        np.testing.assert_array_equal(y.numpy(), ey)
        # A review edited after the manifest was written is caught, naming both MD5s.
        review = next((root / "imdb/aclImdb/train/neg").glob("*.txt"))
        review.write_text("changed")
        with pytest.raises(DataIntegrityError, match=r"expected md5:[0-9a-f]{32}, found md5:"):
            load("imdb", "train", root=root)
        review.unlink()
        with pytest.raises(DataIntegrityError, match="1 review files missing"):
            load("imdb", "train", root=root)


def test_processed_cache_is_used(tiny_root, monkeypatch):
    x1, y1 = load("imdb", "train", root=tiny_root)

    def fail(*a, **k):
        raise AssertionError("the cached matrix should have been used")

    monkeypatch.setattr(imdb_mod, "build", fail)
    x2, y2 = load("imdb", "test", root=tiny_root)  # both splits were cached by the first load
    x3, _ = load("imdb", "train", root=tiny_root)
    assert x3.equal(x1) and x2.shape[1] == 10000
    files = list((imdb_mod.cache_dir() / "imdb").rglob("*.npy"))
    assert len(files) == 4
    with pytest.raises(AssertionError):  # another vocab_size is another cache entry
        load("imdb", "train", root=tiny_root, vocab_size=7)


def test_cache_never_written_into_data_root(tiny_root):
    before = sorted(p.relative_to(tiny_root) for p in tiny_root.rglob("*"))
    load("imdb", "train", root=tiny_root)
    load("tolstoi", "train", root=tiny_root)
    assert sorted(p.relative_to(tiny_root) for p in tiny_root.rglob("*")) == before


def test_corrupt_cache_is_rebuilt(tiny_root):
    x1, _ = load("imdb", "train", root=tiny_root)
    for f in (imdb_mod.cache_dir() / "imdb").rglob("train-inputs-packed.npy"):
        f.write_bytes(b"garbage")
    x2, _ = load("imdb", "train", root=tiny_root)
    assert x2.equal(x1)


def test_missing_vocab_in_archive(tmp_path):
    items = iter([("review", "train", "pos/1", "good"), ("review", "test", "neg/2", "bad")])
    with pytest.raises(DataIntegrityError, match="imdb.vocab"):
        imdb_mod.collect(items, tmp_path, "imdb/x.tar.gz")
