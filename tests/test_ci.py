"""CI wiring: `make test` (what .ci/run runs) installs the Ray and parquet extras and runs the Ray test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_make_test():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()]
    assert "make test" in lines


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_test_installs_ray_and_runs_the_local_ray_sweep(tmp_path):
    venv = tmp_path / "venv"  # a fresh clone has no venv: -n -B prints every step it would take
    out = subprocess.run(["make", "-n", "-B", "test", f"VENV={venv}"], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout.splitlines()
    torch_first = next(i for i, ln in enumerate(out) if 'pip install -q "torch==2.13.0"' in ln)
    extras = next(i for i, ln in enumerate(out) if "pip install" in ln and "ray" in ln and "parquet" in ln)
    assert torch_first < extras and "torch==2.13.0" in out[extras]  # torch pinned, so pip keeps the CPU wheel
    default = next(i for i, ln in enumerate(out) if ln.endswith("python -m pytest"))
    ray = next(i for i, ln in enumerate(out) if "tests/scale/test_ray.py" in ln)
    assert extras < default < ray
    assert "ADAMLAB_REQUIRE_RAY=1" in out[ray] and "-m slow" in out[ray]
    assert not venv.exists()


def test_ray_test_fails_instead_of_skipping_when_required(monkeypatch):
    from tests.scale import test_ray

    monkeypatch.setattr(test_ray, "REQUIRE_RAY", True)
    with pytest.raises(pytest.fail.Exception, match="ADAMLAB_REQUIRE_RAY is set but Ray is not installed"):
        test_ray._skip_or_fail("Ray is not installed")
    monkeypatch.setattr(test_ray, "REQUIRE_RAY", False)
    with pytest.raises(pytest.skip.Exception):
        test_ray._skip_or_fail("Ray is not installed")
