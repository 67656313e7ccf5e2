"""Device test fixtures: leave torch's global determinism settings as each test found them."""

from __future__ import annotations

import os

import pytest
import torch


@pytest.fixture(autouse=True)
def _restore_determinism(monkeypatch):
    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", os.environ.get("CUBLAS_WORKSPACE_CONFIG", ""))
    if not os.environ["CUBLAS_WORKSPACE_CONFIG"]:
        monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    enabled = torch.are_deterministic_algorithms_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    yield
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn


def has_cuda() -> bool:
    return torch.cuda.is_available()


def has_mps() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())
