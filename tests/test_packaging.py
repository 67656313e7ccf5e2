"""pyproject.toml: an SPDX licence string, so building the package gives no deprecation warning."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = ROOT / "pyproject.toml"

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    tomllib = pytest.importorskip("tomli")


def test_license_is_an_spdx_string_with_license_files():
    meta = tomllib.loads(PYPROJECT.read_text())
    project = meta["project"]
    assert project["license"] == "MIT"
    assert project["license-files"] == ["LICENSE"]
    assert (ROOT / "LICENSE").is_file()
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))
    # PEP 639 support arrived in setuptools 77
    assert "setuptools>=77" in meta["build-system"]["requires"]


def test_setuptools_reads_the_metadata_without_a_deprecation_warning(monkeypatch):
    setuptools = pytest.importorskip("setuptools")
    if int(setuptools.__version__.split(".")[0]) < 77:
        pytest.skip(f"setuptools {setuptools.__version__} predates PEP 639")
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    monkeypatch.chdir(ROOT)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        dist = apply_configuration(Distribution(), PYPROJECT)
    assert dist.metadata.license_expression == "MIT"
    assert "LICENSE" in [Path(p).name for p in dist.metadata.license_files]
