"""Fixtures for the adamlab.data tests: tiny files in the real formats."""

from __future__ import annotations

from pathlib import Path

import pytest

from adamlab.data.testing import tiny_datasets


@pytest.fixture
def tiny_root(tmp_path: Path):
    """A data root with every dataset in tiny form, accepted by the integrity check."""
    with tiny_datasets(tmp_path / "root") as root:
        yield root
