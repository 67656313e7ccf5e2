"""Reliability regression tests (issue 23): the tiny registered problem and a store path, as in tests/runner."""

from tests.runner.conftest import _tiny_registered, store_path  # noqa: F401  (fixtures)
