"""Checksums: corrupted, truncated and missing files give named errors; the check is cached."""

from __future__ import annotations

import hashlib
import json
import os
import shutil

import pytest

from adamlab.data import DataIntegrityError, DataNotFoundError, check_dataset, load
from adamlab.data import integrity as integ
from adamlab.data.registry import DATASETS, Checksum, expected_checksum, override_checksums, without_overrides

REL = "mnist/train-labels-idx1-ubyte.gz"


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_corrupted_copy_names_file_path_and_both_hashes(tiny_root):
    good = _sha(tiny_root / REL)
    p = tiny_root / REL
    data = bytearray(p.read_bytes())
    data[20] ^= 0xFF
    p.write_bytes(bytes(data))
    bad = _sha(p)
    with pytest.raises(DataIntegrityError) as info:
        load("mnist", "train", root=tiny_root)
    err = info.value
    msg = str(err)
    assert isinstance(err, ValueError)
    assert err.dataset == "mnist" and err.file == REL and err.path == p
    assert f"sha256:{good}" in msg and f"sha256:{bad}" in msg and str(p) in msg
    assert "adamlab data fetch mnist" in msg
    assert err.expected == f"sha256:{good}" and err.found == f"sha256:{bad}"


def test_truncated_copy_raises(tiny_root):
    p = tiny_root / "tolstoi" / "war-and-peace.txt"
    good = _sha(p)
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(DataIntegrityError, match=good) as info:
        load("tolstoi", "train", root=tiny_root)
    assert info.value.found == f"sha256:{_sha(p)}"


def test_real_checksum_rejects_fixture(tiny_root):
    """Outside the tiny_datasets context the built-in SHA-256 applies again."""
    with without_overrides(), pytest.raises(DataIntegrityError, match="440fcabf73cc546fa21475e81ea3702"):
        load("mnist", "train", root=tiny_root)
    assert load("mnist", "train", root=tiny_root)[0].shape[0] == 64  # restored afterwards


def test_missing_file_raises_not_found(tiny_root):
    (tiny_root / REL).unlink()
    with pytest.raises(DataNotFoundError) as info:
        load("mnist", "test", root=tiny_root)
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.file == REL and err.path == tiny_root / REL
    assert "adamlab data fetch mnist" in str(err) and str(tiny_root / REL) in str(err)
    assert "sha256:" in str(err)


def test_missing_dataset_lists_accepted_forms(tmp_path):
    with pytest.raises(DataNotFoundError, match="aclImdb_v1.tar.gz") as info:
        load("imdb", "train", root=tmp_path)
    assert "imdb/MANIFEST.md5 + imdb/aclImdb" in str(info.value)


def test_default_root_is_env(tiny_root, monkeypatch):
    monkeypatch.setenv("ADAMLAB_DATA", str(tiny_root))
    assert load("mnist", "test")[0].shape[0] == 32


def test_second_check_does_not_rehash(tiny_root, monkeypatch):
    calls = []
    real = integ.hash_file

    def counting(path, algorithm):
        calls.append(path)
        return real(path, algorithm)

    monkeypatch.setattr(integ, "hash_file", counting)
    load("mnist", "test", root=tiny_root)
    assert len(calls) == 4  # the four IDX files, hashed once each
    load("mnist", "test", root=tiny_root)
    load("mnist", "train", root=tiny_root)
    assert len(calls) == 4
    cache = integ._cache_path()
    assert cache.is_file() and str((tiny_root / REL).resolve()) in cache.read_text()
    # A modified file (new mtime / size) is hashed again and rejected.
    p = tiny_root / REL
    p.write_bytes(p.read_bytes() + b"x")
    with pytest.raises(DataIntegrityError):
        load("mnist", "train", root=tiny_root)
    assert len(calls) == 5


def test_cache_never_trusts_a_changed_expectation(tiny_root):
    load("mnist", "test", root=tiny_root)
    with override_checksums({REL: Checksum("sha256", "0" * 64)}), pytest.raises(DataIntegrityError):
        load("mnist", "test", root=tiny_root)


def test_same_size_same_mtime_edit_is_trusted_by_design(tiny_root):
    """Documents the cache key: (path, size, mtime_ns). A forged mtime defeats it, as with make."""
    p = tiny_root / REL
    load("mnist", "test", root=tiny_root)
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[-3] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    load("mnist", "test", root=tiny_root)  # no error: the cached digest is reused
    (integ._cache_path()).unlink()
    with pytest.raises(DataIntegrityError):
        load("mnist", "test", root=tiny_root)


def test_md5_checksums_are_checked(tmp_path):
    p = tmp_path / "cifar10" / "cifar-10-binary.tar.gz"
    p.parent.mkdir(parents=True)
    p.write_bytes(b"not the cifar tarball")
    with pytest.raises(DataIntegrityError, match="md5:c32a1d4ab5d03f1284b67883e8d87530") as info:
        load("cifar10", "train", root=tmp_path)
    assert info.value.found == "md5:" + hashlib.md5(b"not the cifar tarball").hexdigest()


def test_extracted_cifar_without_checksum_checks_size(tiny_root):
    # Without the fixture's override, an extracted batch is checked by its exact official size.
    spec = DATASETS["cifar10"].variant("folder").files[0]
    with without_overrides():
        assert expected_checksum(spec) is None
        st = integ.check_file("cifar10", spec, tiny_root)
    assert st.status == "BAD" and "30730000" in st.expected and "size 36876 bytes" == st.found


def test_check_dataset_reports_without_raising(tiny_root):
    shutil.rmtree(tiny_root / "fashion_mnist")
    assert {s.status for s in check_dataset("fashion_mnist", tiny_root)} == {"missing"}
    (tiny_root / REL).write_bytes(b"junk")
    statuses = {s.relpath: s.status for s in check_dataset("mnist", tiny_root)}
    assert statuses[REL] == "BAD" and statuses["mnist/t10k-labels-idx1-ubyte.gz"] == "ok"


def test_bad_arguments(tiny_root):
    with pytest.raises(ValueError, match="name must be one of"):
        load("svhn", "train", root=tiny_root)
    with pytest.raises(ValueError, match="split must be"):
        load("mnist", "valid", root=tiny_root)
    with pytest.raises(ValueError, match="'vocab_size' is not an option of 'mnist'"):
        load("mnist", "train", root=tiny_root, vocab_size=3)


def test_bad_form_falls_back_to_a_valid_one(tmp_path):
    """A corrupted preferred IMDB tarball next to a valid official one: warn, use the valid one."""
    from adamlab.data.integrity import DataWarning
    from adamlab.data.testing import write_imdb_tarball

    write_imdb_tarball(tmp_path / "imdb/aclImdb_v1.tar.gz")
    (tmp_path / "imdb/aclImdb_v1_text_no_unsup.tar.gz").write_bytes(b"broken")
    md5 = hashlib.md5((tmp_path / "imdb/aclImdb_v1.tar.gz").read_bytes()).hexdigest()
    with override_checksums({"imdb/aclImdb_v1.tar.gz": Checksum("md5", md5)}):
        with pytest.warns(DataWarning, match="aclImdb_v1_text_no_unsup.tar.gz"):
            x, y = load("imdb", "train", root=tmp_path)
        assert x.shape == (24, 10000)
    with pytest.raises(DataIntegrityError, match="aclImdb_v1_text_no_unsup.tar.gz"):
        load("imdb", "train", root=tmp_path)  # without the override no form is valid


def _bad_cache_texts(key, st):
    """Cache files a user, a crash or another version could leave (issue 15.4)."""
    k = json.dumps(key)
    same = f'"size": {st.st_size}, "mtime_ns": {st.st_mtime_ns}'  # matches the file: the digest is trusted
    return [
        "{" + k + ": 5}",  # the example: an entry that is not an object
        "{" + k + ": {" + same + ', "sha256": 7}}',  # a digest of the wrong type ...
        "{" + k + ": {" + same + ', "sha256": "not hex"}}',  # ... or not a digest
        "{" + k + ': {"size": "64", "mtime_ns": 1.5, "sha256": "00"}}',
        "{" + k + ': {"size": 1, "mtime_ns": 1, "nosuchhash": "ab"}}',
        '{"folder:/x": {"fingerprint": 3}, ' + k + ': []}',
        "[1, 2, 3]",
        "{broken json",
        "",
        '"a string"',
        "\udcff",
    ]


@pytest.mark.parametrize("index", range(11))
def test_malformed_cache_is_ignored_and_rewritten(tiny_root, index):
    key = str((tiny_root / REL).resolve())
    cache = integ._cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(_bad_cache_texts(key, (tiny_root / REL).stat())[index], encoding="utf-8",
                     errors="surrogateescape")
    x, y = load("mnist", "train", root=tiny_root)  # no AttributeError / TypeError
    assert x.shape[0] == 64
    data = json.loads(cache.read_text())
    assert isinstance(data[key], dict) and data[key]["sha256"] == _sha(tiny_root / REL)
    assert all(integ._valid_entry(k, v) for k, v in data.items())


def test_a_forged_cache_digest_of_the_right_shape_is_still_compared(tiny_root):
    """A well-formed entry is trusted for (size, mtime) -- but never against the expected checksum."""
    p = tiny_root / REL
    st = p.stat()
    cache = integ._cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({str(p.resolve()): {"size": st.st_size, "mtime_ns": st.st_mtime_ns,
                                                    "sha256": "0" * 64}}))
    with pytest.raises(DataIntegrityError):
        load("mnist", "train", root=tiny_root)
    assert integ.check_dataset("mnist", tiny_root, rehash=True)[0].status == "ok"


def test_rehash_ignores_the_cache(tiny_root, monkeypatch):
    calls = []
    real = integ.hash_file
    monkeypatch.setattr(integ, "hash_file", lambda path, algorithm: calls.append(path) or real(path, algorithm))
    integ.check_dataset("mnist", tiny_root)
    n = len(calls)
    integ.check_dataset("mnist", tiny_root)
    assert len(calls) == n
    integ.check_dataset("mnist", tiny_root, rehash=True)
    assert len(calls) == 2 * n
    integ.check_dataset("imdb", tiny_root)  # the folder form: fingerprint cached, then rehash reads again
    m = len(calls)
    integ.check_dataset("imdb", tiny_root)
    assert len(calls) == m
    integ.check_dataset("imdb", tiny_root, rehash=True)
    assert len(calls) > m
