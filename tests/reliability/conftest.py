"""Reliability regression tests (issue 23): the tiny registered problem and a store path."""

from __future__ import annotations

import pytest

from tests.runner import runner_tiny_problem


@pytest.fixture(autouse=True)
def _tiny_registered():
    runner_tiny_problem.ensure_registered()
    yield
    from adamlab.problems.base import REGISTRY

    REGISTRY.entries.pop(runner_tiny_problem.NAME, None)


@pytest.fixture
def store_path(tmp_path):
    return tmp_path / "results" / "test.sqlite"
