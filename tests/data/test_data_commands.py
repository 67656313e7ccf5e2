"""`adamlab data verify|fetch` through adamlab.cli.main: output and exit codes."""

from __future__ import annotations

import hashlib
import json

import pytest

from adamlab.cli import main

REL = "fashion_mnist/t10k-images-idx3-ubyte.gz"


def test_verify_ok(tiny_root, capsys):
    assert main(["data", "verify", "--root", str(tiny_root)]) == 0
    out = capsys.readouterr().out
    assert "BAD" not in out and "mnist/train-images-idx3-ubyte.gz" in out and " ok " in out


def test_verify_bad_exit_1_with_hashes(tiny_root, capsys):
    p = tiny_root / REL
    good = hashlib.sha256(p.read_bytes()).hexdigest()
    p.write_bytes(p.read_bytes()[:-5])
    bad = hashlib.sha256(p.read_bytes()).hexdigest()
    assert main(["data", "verify", "fashion_mnist", "mnist", "--root", str(tiny_root)]) == 1
    out = capsys.readouterr().out
    assert "BAD" in out and good in out and bad in out and "adamlab data fetch fashion_mnist" in out


def test_verify_missing_is_not_an_error(tmp_path, capsys):
    assert main(["data", "verify", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "missing" in out and "cifar10/cifar-10-binary.tar.gz" in out


def test_verify_uses_env_root(tiny_root, monkeypatch, capsys):
    monkeypatch.setenv("ADAMLAB_DATA", str(tiny_root))
    assert main(["data", "verify", "tolstoi"]) == 0
    assert "tolstoi/war-and-peace.txt" in capsys.readouterr().out


def test_bad_name_exit_2(tmp_path, capsys):
    assert main(["data", "verify", "svhn", "--root", str(tmp_path)]) == 2
    assert "NAME must be one of" in capsys.readouterr().err


def test_fetch_failure_exit_1(tmp_path, monkeypatch, capsys):
    import adamlab.data.fetch as fetch_mod

    def opener(url):
        raise OSError("offline")

    monkeypatch.setattr(fetch_mod, "_default_opener", opener)
    assert main(["data", "fetch", "tolstoi", "--root", str(tmp_path), "--quiet"]) == 1
    assert "offline" in capsys.readouterr().err
    assert not (tmp_path / "tolstoi" / "war-and-peace.txt").exists()


def test_fetch_present_exit_0(tiny_root, capsys):
    assert main(["data", "fetch", "mnist", "cifar100", "--root", str(tiny_root), "--quiet"]) == 0
    assert "mnist: ok" in capsys.readouterr().out


@pytest.mark.parametrize("action", ["fetch", "verify"])
def test_help_has_examples(action, capsys):
    with pytest.raises(SystemExit) as info:
        main(["data", action, "--help"])
    assert info.value.code == 0
    assert f"adamlab data {action}" in capsys.readouterr().out


def _one_line(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


def test_verify_nonexistent_root_exit_2(tmp_path, capsys):
    missing = tmp_path / "nonexistent"
    assert main(["data", "verify", "--root", str(missing)]) == 2
    line = _one_line(capsys)
    assert line.startswith("adamlab data: error: --root") and str(missing) in line and "does not exist" in line


def test_verify_env_root_that_does_not_exist_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAMLAB_DATA", str(tmp_path / "nowhere"))
    assert main(["data", "verify", "mnist"]) == 2
    assert "$ADAMLAB_DATA" in _one_line(capsys)


@pytest.mark.parametrize("command", ["verify", "fetch"])
def test_root_that_is_a_file_exit_2(tmp_path, capsys, command):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", command, "tolstoi", "--root", str(blocker)]) == 2
    line = _one_line(capsys)
    assert str(blocker) in line and "is not a folder" in line


def test_fetch_root_under_a_file_exit_2_naming_the_path(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["data", "fetch", "tolstoi", "--root", str(blocker / "sub"), "--quiet"]) == 2
    line = _one_line(capsys)
    assert line.startswith("adamlab data: error:") and str(blocker) in line


def test_verify_rehash_catches_a_same_size_same_mtime_edit(tiny_root, capsys):
    import os

    p = tiny_root / REL
    assert main(["data", "verify", "fashion_mnist", "--root", str(tiny_root)]) == 0
    st = p.stat()
    data = bytearray(p.read_bytes())
    data[-3] ^= 1
    p.write_bytes(bytes(data))
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert main(["data", "verify", "fashion_mnist", "--root", str(tiny_root)]) == 0  # the cache trusts it
    capsys.readouterr()
    assert main(["data", "verify", "fashion_mnist", "--root", str(tiny_root), "--rehash"]) == 1
    assert "BAD" in capsys.readouterr().out
    assert main(["data", "verify", "fashion_mnist", "--root", str(tiny_root)]) == 1  # and the cache knows now


def test_malformed_cache_does_not_break_verify(tiny_root, capsys):
    from adamlab.data import integrity

    cache = integrity._cache_path()
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({str((tiny_root / REL).resolve()): 5}))
    assert main(["data", "verify", "fashion_mnist", "--root", str(tiny_root)]) == 0
