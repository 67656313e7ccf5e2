"""Issue 23 item 3: a processed cache is tied to its source's checksum and verified before use."""

from __future__ import annotations

import numpy as np

from adamlab.data import imdb as imdb_mod
from adamlab.data import load


def test_an_edited_processed_cache_is_rebuilt_not_trusted(tiny_root):
    """Flipped labels in ``train-targets.npy`` under ``ADAMLAB_CACHE`` were used as they were (a
    wrong result under the clean run's id)."""
    x1, y1 = load("imdb", "train", root=tiny_root)
    (targets,) = (imdb_mod.cache_dir() / "imdb").rglob("train-targets.npy")
    flipped = 1 - np.load(targets)
    with open(targets, "wb") as fh:
        np.save(fh, flipped)
    x2, y2 = load("imdb", "train", root=tiny_root)
    assert y2.equal(y1) and x2.equal(x1)
    assert np.array_equal(np.load(targets), y1.numpy())  # rebuilt in place


def test_a_cache_entry_without_its_manifest_is_rebuilt(tiny_root, monkeypatch):
    load("imdb", "train", root=tiny_root)
    for manifest in (imdb_mod.cache_dir() / "imdb").rglob("*-manifest.json"):
        manifest.unlink()
    built = []
    real = imdb_mod.build
    monkeypatch.setattr(imdb_mod, "build", lambda *a, **k: built.append(1) or real(*a, **k))
    load("imdb", "train", root=tiny_root)
    assert built == [1]
