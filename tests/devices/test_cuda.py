"""Runs on a GPU (skipped without CUDA; ``benchmarks/gpu_check.sh`` runs them on a GPU node) and on MPS."""

from __future__ import annotations

import math

import pytest
import torch

from adamlab import problems
from adamlab.runner.sweep import sweep
from adamlab.runner.train import execute
from adamlab.runs.config import make_config
from adamlab.runs.device import set_deterministic
from adamlab.store import Store
from tests.devices.conftest import has_mps

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def _finals(path):
    with Store(path) as db:
        return {r["run_id"]: (r["status"], r["execution"]) for r in db.runs()}


@cuda
@pytest.mark.parametrize("backend", ["serial", "vmap"])
def test_a_sweep_on_cuda_records_the_gpu_and_agrees_with_the_cpu(tmp_path, backend):
    kw = dict(quiet=True, eval_every=5)
    sweep("quadratic.noisy", ["adam", "msvag"], [1e-2, 1e-1], 2, 20, tmp_path / "c.sqlite", backend, **kw)
    sweep("quadratic.noisy", ["adam", "msvag"], [1e-2, 1e-1], 2, 20, tmp_path / "g.sqlite", backend,
          device="cuda", **kw)
    finals = _finals(tmp_path / "g.sqlite")
    assert finals.keys() == _finals(tmp_path / "c.sqlite").keys()  # same run ids
    for status, execution in finals.values():
        assert status == "finished" and execution["device_type"] == "cuda"
        assert execution["device_name"] == torch.cuda.get_device_name() and execution["cuda"] == torch.version.cuda
        assert execution["backend"] == backend
    with Store(tmp_path / "c.sqlite") as c, Store(tmp_path / "g.sqlite") as g:
        for run_id in finals:
            a, b = c.final_metric(run_id, "train_loss"), g.final_metric(run_id, "train_loss")
            assert math.isclose(a, b, rel_tol=1e-3, abs_tol=1e-6), (run_id, a, b)


@cuda
@pytest.mark.parametrize("backend", ["serial", "vmap"])
def test_data_problems_train_on_cuda_with_the_data_there(tiny_data_root, tmp_path, backend):
    problem = problems.get("mnist.mlp", eval_size=16)
    rep = sweep(problem, ["adam"], [1e-3, 1e-2], 2, 6, tmp_path / "g.sqlite", backend, quiet=True,
                batch_size=8, eval_every=3, device="cuda")
    assert rep.finished == 4
    assert problem.device.type == "cuda" and problem.data("train")[0].device.type == "cuda"


@cuda
@pytest.mark.parametrize(("first", "then"), [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_moves_between_cpu_and_gpu(tiny_data_root, tmp_path, first, then):
    problem = problems.get("mnist.mlp", eval_size=16)
    config = make_config(problem, "adam", {"lr": 1e-2}, 0, 8, batch_size=8, eval_every=2)
    path = tmp_path / "run.pt"
    execute(config, problem, checkpoint_path=path, checkpoint_every=2, stop_after=4, device=first)
    raw = torch.load(path, weights_only=True)
    assert all(t.device.type == "cpu" for t in raw["model"].values())
    resumed = execute(config, problem, checkpoint_path=path, checkpoint_every=2, device=then)
    assert resumed.status == "finished" and [r["step"] for r in resumed.records] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert not path.exists()


@cuda
def test_deterministic_cuda_runs_repeat_bit_for_bit(tiny_data_root):
    set_deterministic(True)
    problem = problems.get("fmnist.cnn", eval_size=16)
    config = make_config(problem, "adam", {"lr": 1e-3}, 0, 6, batch_size=8, eval_every=3)
    a = execute(config, problem, device="cuda")
    b = execute(config, problem, device="cuda")
    assert [r["train_loss"] for r in a.records] == [r["train_loss"] for r in b.records]
    assert a.execution["deterministic"] is True


@cuda
def test_a_resumed_sweep_on_the_gpu_skips_cpu_runs(tmp_path):
    path = tmp_path / "s.sqlite"
    sweep("quadratic.noisy", ["adam"], [1e-2, 1e-1], 2, 6, path, quiet=True)
    again = sweep("quadratic.noisy", ["adam"], [1e-2, 1e-1], 2, 6, path, quiet=True, device="cuda")
    assert again.skipped == 4 and again.ran == 0


@pytest.mark.skipif(not has_mps(), reason="needs an Apple MPS device")
def test_a_run_on_mps(tmp_path):
    rep = sweep("quadratic.noisy", ["adam"], [1e-2], 1, 10, tmp_path / "m.sqlite", quiet=True, device="mps")
    assert rep.finished == 1
    (status, execution), = _finals(tmp_path / "m.sqlite").values()
    assert execution["device"] == "mps"
