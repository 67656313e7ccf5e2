"""``device="cpu"`` (``--device cpu``) is the default, bit for bit, on both backends, with and without noise."""

from __future__ import annotations

import pytest
import torch

from adamlab import cli
from adamlab.runner.sweep import sweep
from adamlab.store import Store


def _metrics(path):
    with Store(path) as db:
        return sorted((r, s, n, v) for r, s, n, v in db.metric_rows() if n != "wall_time")


def _sweep(path, problem, backend, device, **kw):
    kwargs = {} if device == "default" else {"device": device}
    rep = sweep(problem, ["adam", "sgd"], [1e-2, 1e-1], 2, kw.pop("steps", 6), path, backend, quiet=True,
                **kw, **kwargs)
    assert rep.failed == 0
    return _metrics(path)


@pytest.mark.parametrize("backend", ["serial", "vmap"])
@pytest.mark.parametrize("problem", ["quadratic.noisy", "leastsquares.wilson"])
def test_explicit_cpu_equals_the_default_synthetic(tmp_path, backend, problem):
    default = _sweep(tmp_path / "a.sqlite", problem, backend, "default", eval_every=2)
    explicit = _sweep(tmp_path / "b.sqlite", problem, backend, "cpu", eval_every=2)
    auto_or_cpu = _sweep(tmp_path / "c.sqlite", problem, backend, torch.device("cpu"), eval_every=2)
    assert default and default == explicit == auto_or_cpu


@pytest.mark.parametrize("backend", ["serial", "vmap"])
@pytest.mark.parametrize("problem", [("mnist.mlp", {"eval_size": 16}), ("fmnist.cnn", {"eval_size": 16})])
def test_explicit_cpu_equals_the_default_on_data_with_dropout(tiny_data_root, tmp_path, backend, problem):
    default = _sweep(tmp_path / "a.sqlite", problem, backend, "default", batch_size=8, eval_every=3)
    explicit = _sweep(tmp_path / "b.sqlite", problem, backend, "cpu", batch_size=8, eval_every=3)
    assert default and default == explicit


def test_cli_device_cpu_equals_the_default(tmp_path, capsys):
    args = ["run", "quadratic.noisy", "--optimizer", "adam", "--lr", "0.01", "--steps", "8", "--seeds", "2", "-q"]
    assert cli.main([*args, "--store", str(tmp_path / "a.sqlite")]) == 0
    assert cli.main([*args, "--store", str(tmp_path / "b.sqlite"), "--device", "cpu"]) == 0
    assert _metrics(tmp_path / "a.sqlite") == _metrics(tmp_path / "b.sqlite")


def test_a_cpu_run_records_its_execution_as_before(tmp_path):
    sweep("quadratic.noisy", ["adam"], [1e-2], 1, 4, tmp_path / "s.sqlite", "serial", quiet=True, device="cpu")
    sweep("quadratic.noisy", ["adam"], [1e-2], 1, 4, tmp_path / "v.sqlite", "vmap", quiet=True, device="cpu")
    with Store(tmp_path / "s.sqlite") as db:
        assert [r["execution"] for r in db.runs()] == [{"backend": "serial", "block_size": 1}]
    with Store(tmp_path / "v.sqlite") as db:
        assert [r["execution"] for r in db.runs()] == [{"backend": "vmap", "block_size": 1}]


def test_deterministic_cpu_runs_are_recorded_and_equal(tmp_path):
    from adamlab.runs.device import set_deterministic

    plain = _sweep(tmp_path / "a.sqlite", "quadratic.noisy", "serial", "cpu", eval_every=2)
    set_deterministic(True)
    det = _sweep(tmp_path / "b.sqlite", "quadratic.noisy", "serial", "cpu", eval_every=2)
    assert plain == det
    with Store(tmp_path / "b.sqlite") as db:
        records = [r["execution"] for r in db.runs()]
    assert all(r["device"] == "cpu" and r["deterministic"] is True for r in records)
