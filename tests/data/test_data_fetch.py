"""`fetch` downloads (here from file:// URLs), verifies, and renames atomically."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pytest

from adamlab.data import DataFetchError, load
from adamlab.data import registry as reg
from adamlab.data.fetch import fetch
from adamlab.data.registry import Checksum, override_checksums


def _point_at(monkeypatch, name: str, urls_for: dict[str, tuple[str, ...]]) -> None:
    """Replace the URLs of ``name``'s downloadable files (keyed by relpath)."""
    spec = reg.DATASETS[name]
    variants = tuple(
        dataclasses.replace(
            v, files=tuple(dataclasses.replace(f, urls=urls_for.get(f.relpath, f.urls)) for f in v.files)
        )
        for v in spec.variants
    )
    monkeypatch.setitem(reg.DATASETS, name, dataclasses.replace(spec, variants=variants))


def _checksums(src) -> dict[str, Checksum]:
    return {
        f"mnist/{p.name}": Checksum("sha256", hashlib.sha256(p.read_bytes()).hexdigest())
        for p in (src / "mnist").iterdir()
    }


def test_fetch_via_file_urls(tiny_root, tmp_path, monkeypatch):
    dest = tmp_path / "fresh"
    src = tiny_root / "mnist"
    urls = {f"mnist/{p.name}": ((src / p.name).as_uri(),) for p in src.iterdir()}
    _point_at(monkeypatch, "mnist", urls)
    statuses = fetch("mnist", dest, progress=False)
    assert [s.status for s in statuses] == ["ok"] * 4
    for p in src.iterdir():
        assert (dest / "mnist" / p.name).read_bytes() == p.read_bytes()
    assert not list((dest / "mnist").glob("*.part"))
    assert load("mnist", "test", root=dest)[0].shape == (32, 28, 28)


def test_fetch_skips_present_dataset(tiny_root, monkeypatch):
    def opener(url):
        raise AssertionError("nothing should be downloaded")

    statuses = fetch("mnist", tiny_root, opener=opener, progress=False)
    assert len(statuses) == 4


def test_wrong_bytes_never_land_and_next_url_is_tried(tiny_root, tmp_path, monkeypatch):
    rel = "mnist/t10k-labels-idx1-ubyte.gz"
    good = (tiny_root / rel).read_bytes()
    served = {"https://a.example/x": b"tampered", "https://b.example/x": good}
    opened = []

    def opener(url):
        opened.append(url)
        return io.BytesIO(served[url])

    _point_at(monkeypatch, "mnist", {rel: tuple(served)})
    dest = tmp_path / "d"
    from adamlab.data.fetch import download_file

    spec = next(f for f in reg.DATASETS["mnist"].variants[0].files if f.relpath == rel)
    download_file("mnist", spec, dest, opener=opener, progress=False)
    assert opened == list(served) and (dest / rel).read_bytes() == good

    _point_at(monkeypatch, "mnist", {rel: ("https://a.example/x",)})
    spec = next(f for f in reg.DATASETS["mnist"].variants[0].files if f.relpath == rel)
    (dest / rel).unlink()
    with pytest.raises(DataFetchError) as info:
        download_file("mnist", spec, dest, opener=opener, progress=False)
    msg = str(info.value)
    assert hashlib.sha256(good).hexdigest() in msg and hashlib.sha256(b"tampered").hexdigest() in msg
    assert not (dest / rel).exists() and not list((dest / "mnist").iterdir())


def test_network_error_is_reported(tmp_path, monkeypatch):
    rel = "tolstoi/war-and-peace.txt"
    _point_at(monkeypatch, "tolstoi", {rel: ((tmp_path / "nowhere.txt").as_uri(),)})
    with (
        override_checksums({rel: Checksum("sha256", "0" * 64)}),
        pytest.raises(DataFetchError, match="nowhere"),
    ):
        fetch("tolstoi", tmp_path / "root", progress=False)


def test_official_urls_are_registered():
    for name in reg.NAMES:
        spec = reg.DATASETS[name]
        files = spec.variant(spec.fetch_variant).files
        assert all(f.urls and f.urls[0].startswith(("http://", "https://")) for f in files), name
        assert all(reg.expected_checksum(f) is not None for f in files), name
