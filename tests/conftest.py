"""Shared fixtures. Tests never touch the network or the real data directory."""

from __future__ import annotations

import os

import pytest
import torch

# Two cores on CI: keep torch from oversubscribing when pytest-xdist is not used.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# fused=None switches a small group to the compiled kernel after a fixed 100 steps; tests that train
# longer would each compile kernels (seconds each on 2 cores). The fast path has its own tests
# (tests/optim/test_fast*.py, tests/scale/test_fsdp2.py), which set this themselves; a CI job can
# run everything on the real default by setting ADAMLAB_FUSED_AFTER_STEPS=100.
os.environ.setdefault("ADAMLAB_FUSED_AFTER_STEPS", str(10**9))


@pytest.fixture(autouse=True)
def _isolated_dirs(tmp_path_factory, monkeypatch):
    """Point every adamlab directory at a temporary place, so no test reads ~/.cache or ../shared."""
    base = tmp_path_factory.mktemp("adamlab_home")
    monkeypatch.setenv("ADAMLAB_DATA", str(base / "data"))
    monkeypatch.setenv("ADAMLAB_CACHE", str(base / "cache"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    yield


@pytest.fixture
def tiny_data_root(tmp_path, monkeypatch):
    """A data root holding tiny files in each dataset's real format (written by adamlab.data.testing)."""
    from adamlab.data.testing import tiny_datasets

    with tiny_datasets(tmp_path / "data") as root:
        monkeypatch.setenv("ADAMLAB_DATA", str(root))
        yield root
