"""Kernel snapshots cannot crash a process: used only from a private folder, only where they match.

A snapshot's contents are executed (Inductor's wrapper code and its C++ extension), so its folder must
belong to the current user and be writable by nobody else; and it is used only where everything the
kernel depends on (torch version, device, dtype, layout, strides, tensor type) matches.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch

from adamlab.optim import fast
from adamlab.optim.registry import make_optimizer


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "snapshots"
    monkeypatch.setenv(fast.SNAPSHOT_ENV, str(path))
    fast.reset()
    yield path
    fast.reset()


def test_a_missing_folder_is_made_private(folder: Path) -> None:
    assert fast.usable_snapshot_dir() is None  # reading never creates it
    assert fast.usable_snapshot_dir(create=True) == str(folder)
    assert folder.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o775, 0o757])
def test_a_folder_others_can_write_is_not_used(folder: Path, mode: int) -> None:
    folder.mkdir()
    folder.chmod(mode)
    with pytest.warns(RuntimeWarning, match="is not private"):
        assert fast.usable_snapshot_dir(create=True) is None
    assert not fast._have_snapshots()


@pytest.mark.skipif(not hasattr(os, "getuid") or os.getuid() != 0, reason="needs root to chown")
def test_a_folder_of_another_user_is_not_used(folder: Path) -> None:
    folder.mkdir(mode=0o700)
    os.chown(folder, 12345, 12345)
    with pytest.warns(RuntimeWarning, match="is not private"):
        assert fast.usable_snapshot_dir() is None


def test_a_symlinked_folder_is_not_used(folder: Path, tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    folder.symlink_to(real)
    assert not fast.private_path(str(folder))


def test_identity_names_what_the_kernel_depends_on() -> None:
    from adamlab import functional as F

    key = fast.get_kernel(F.adam, (("beta1", 0.9),), ("lr",), (True, True), torch.float32, torch.device("cpu")).key
    identity = fast.snapshot_identity(key)
    assert identity["torch"] == torch.__version__
    for field, value in [("device", "cpu"), ("dtype", "torch.float32"), ("layout", "N"), ("strides", "contiguous"),
                         ("tensor_type", "torch.Tensor")]:
        assert identity[field] == value
    other = fast.get_kernel(F.adam, (("beta1", 0.9),), ("lr",), (True, True), torch.float64, torch.device("cpu")).key
    assert fast._snapshot_file(key, create=True) != fast._snapshot_file(other, create=True)


needs_compiler = pytest.mark.skipif(not fast.compile_available()[0], reason="no torch.compile toolchain here")


def _count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = fast._backend

    def counting(kernel: Any, options: dict[str, Any], reciprocal: bool, gm: Any, example_inputs: Any) -> Any:
        calls.append(1)
        return real(kernel, options, reciprocal, gm, example_inputs)

    monkeypatch.setattr(fast, "_backend", counting)
    return calls


def _steps() -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(9, 4, generator=gen).requires_grad_(True)]
    opt = make_optimizer("adam", params, lr=0.01, fused=True)
    for _ in range(2):
        params[0].grad = torch.randn(9, 4, generator=gen)
        opt.step()
    return [p.detach().clone() for p in params]


@pytest.mark.compile
@needs_compiler
def test_snapshot_used_only_when_private_and_matching(folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = _steps()
    (path,) = folder.glob("*.json")
    calls = _count_compiles(monkeypatch)

    fast.reset()
    assert all(torch.equal(a, b) for a, b in zip(_steps(), first, strict=True))
    assert not calls  # a private, matching snapshot: no compile

    folder.chmod(0o777)  # others could have replaced it: never executed
    fast.reset()
    with pytest.warns(RuntimeWarning, match="is not private"):
        got = _steps()
    assert len(calls) == 1 and all(torch.equal(a, b) for a, b in zip(got, first, strict=True))
    folder.chmod(0o700)

    data = json.loads(path.read_text())
    data["torch"] = "0.0.0-another"  # a snapshot of another torch: rebuilt, not executed
    path.write_text(json.dumps(data))
    fast.reset()
    got = _steps()
    assert len(calls) == 2 and all(torch.equal(a, b) for a, b in zip(got, first, strict=True))
    assert json.loads(path.read_text())["torch"] == torch.__version__  # and overwritten
