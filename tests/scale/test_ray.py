"""The ray backend: a small sweep on a local Ray with 2 CPUs gives the serial backend's results."""

from __future__ import annotations

import builtins
import importlib.util
import math
import os
import sys

import pytest

from adamlab.runner import Store, sweep
from adamlab.runner.backends import get_backend

PROBLEM = ("quadratic.noisy", {"d": 10})

#: Set by ``make test`` (CI): a missing Ray, or one that cannot start, fails instead of skipping.
REQUIRE_RAY = os.environ.get("ADAMLAB_REQUIRE_RAY", "") not in ("", "0")


def _skip_or_fail(reason: str) -> None:
    if REQUIRE_RAY:
        pytest.fail(f"ADAMLAB_REQUIRE_RAY is set but {reason}")
    pytest.skip(reason)


def _series(store: Store, run_id: str) -> dict[tuple[int, str], float]:
    return {(step, name): value for name, (steps, values) in store.metrics(run_id).items()
            for step, value in zip(steps, values, strict=True) if name != "wall_time"}


def test_missing_ray_gives_install_hint(monkeypatch):
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    with pytest.raises(ValueError, match=r"pip install 'adamlab\[ray\]'"):
        get_backend("ray")


def test_ray_cli_error_is_exit_2(monkeypatch, capsys, tmp_path):
    """``adamlab sweep --backend ray`` without Ray: one clear line, exit 2 (when the sweep command exists)."""
    from adamlab import cli

    parser = cli.build_parser()
    try:
        parser.parse_args(["sweep", "--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    if "--backend" not in out:
        pytest.skip("the sweep command (adamlab.commands.runner) has no --backend option yet")
    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    monkeypatch.delitem(sys.modules, "ray", raising=False)
    code = cli.main(["sweep", "quadratic.noisy", "--optimizers", "sgd", "--lr-grid", "0.1", "--steps", "2",
                     "--store", str(tmp_path / "s.sqlite"), "--backend", "ray", "--address", "auto", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "adamlab[ray]" in err


@pytest.mark.slow
def test_ray_local_sweep_matches_serial_and_resumes(tmp_path):
    if importlib.util.find_spec("ray") is None:
        _skip_or_fail("Ray is not installed (pip install 'adamlab[ray]')")
    serial = Store(tmp_path / "serial.sqlite")
    ref = sweep(PROBLEM, ["msvag", "adam"], [1e-2, 1e-1], [0], 15, serial, "serial", quiet=True, eval_every=5)
    store = Store(tmp_path / "ray.sqlite")
    import ray

    try:  # the first sweep starts (and stops) its own local Ray with 2 CPUs
        first = sweep(PROBLEM, ["msvag"], [1e-2, 1e-1], [0], 15, store, "ray", quiet=True, eval_every=5,
                      backend_options={"num_cpus": 2})
    except Exception as err:  # Ray installed but cannot start here (sandbox, no shared memory, ...)
        _skip_or_fail(f"a local Ray could not start: {type(err).__name__}: {err}")
    assert first.finished == 2 and first.failed == 0, first.errors
    assert not ray.is_initialized()  # the backend shut down the Ray it started
    # resume: the msvag runs are skipped, the adam runs go out as one vectorised block
    again = sweep(PROBLEM, ["msvag", "adam"], [1e-2, 1e-1], [0], 15, store, "ray", quiet=True, eval_every=5,
                  backend_options={"num_cpus": 2, "vmap": True})
    assert again.skipped == 2 and again.finished == 2, again.errors
    for run_id in ref.run_ids:
        a, b = _series(serial, run_id), _series(store, run_id)
        assert a.keys() == b.keys()
        for key in a:
            assert math.isclose(a[key], b[key], rel_tol=1e-4, abs_tol=1e-6), (run_id, key)
