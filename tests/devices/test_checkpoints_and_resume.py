"""Checkpoints are device-neutral; a resumed sweep on another device does not redo the runs already done."""

from __future__ import annotations

import pytest
import torch

from adamlab import problems
from adamlab.runner import checkpoint as ckpt_mod
from adamlab.runner.sweep import sweep
from adamlab.runner.train import execute
from adamlab.runs import device as device_mod
from adamlab.runs.config import make_config
from adamlab.store import Store


def test_to_cpu_copies_every_nested_tensor_to_host_and_keeps_containers():
    t = torch.arange(3.0, requires_grad=True)
    out = ckpt_mod.to_cpu({"a": [t, (t, 1)], "b": {"c": t}, "n": 2, "s": "x"})
    assert isinstance(out["a"], list) and isinstance(out["a"][1], tuple)
    for x in (out["a"][0], out["a"][1][0], out["b"]["c"]):
        assert x.device.type == "cpu" and not x.requires_grad and torch.equal(x, t.detach())
    assert out["n"] == 2 and out["s"] == "x"


def test_save_checkpoint_writes_what_to_cpu_gives(tmp_path):
    """With a fake device tensor (a subclass whose ``cpu()`` is recognisable): the file holds host copies."""

    class OnDevice(torch.Tensor):
        def cpu(self, *args, **kwargs):
            return torch.full(self.shape, 7.0)

    path = tmp_path / "c.pt"
    ckpt_mod.save_checkpoint(path, {"run_id": "r", "optimizer": {"state": {0: {"exp_avg": torch.ones(2).as_subclass(OnDevice)}}}})
    raw = torch.load(path, weights_only=True)
    assert type(raw["optimizer"]["state"][0]["exp_avg"]) is torch.Tensor
    assert raw["optimizer"]["state"][0]["exp_avg"].tolist() == [7.0, 7.0]


def test_to_cpu_moves_tensors_off_a_device(monkeypatch):
    """With a fake device: what ``to_cpu`` saves is what ``Tensor.cpu`` gives, never the device tensor."""
    calls = []

    class OnDevice(torch.Tensor):
        def cpu(self, *args, **kwargs):
            calls.append(self)
            return torch.Tensor.cpu(self).as_subclass(torch.Tensor) * 0 + 7

    t = torch.ones(2).as_subclass(OnDevice)
    out = ckpt_mod.to_cpu({"state": {"exp_avg": t}})
    assert len(calls) == 1 and type(out["state"]["exp_avg"]) is torch.Tensor
    assert out["state"]["exp_avg"].tolist() == [7.0, 7.0]


@pytest.mark.filterwarnings("ignore:for theta. copying from a non-meta parameter")
def test_checkpoint_file_is_device_neutral_and_loads_onto_another_device(tmp_path):
    problem = problems.get("quadratic.noisy")
    config = make_config(problem, "adam", {"lr": 1e-2}, 0, 10, eval_every=2)
    path = tmp_path / "run.pt"
    execute(config, problem, checkpoint_path=path, checkpoint_every=2, stop_after=5, device="cpu")
    raw = torch.load(path, map_location=None, weights_only=True)  # no map_location: as saved
    tensors = [raw["model"][k] for k in raw["model"]]
    tensors += [v for s in raw["optimizer"]["state"].values() for v in s.values() if isinstance(v, torch.Tensor)]
    assert tensors and all(t.device.type == "cpu" for t in tensors)
    assert raw["noise_device"] == "cpu"
    # map_location onto the "meta" device (a stand-in for a GPU): the run's model and optimizer accept it
    payload = ckpt_mod.load_checkpoint(path, config.run_id)
    model = problem.make_model(0).to("meta")
    from adamlab.optim.registry import make_optimizer

    opt = make_optimizer("adam", model.parameters(), lr=1e-2)
    assert ckpt_mod.checkpoint_mismatch(payload, model, opt) is None
    model.load_state_dict(payload["model"])
    opt.load_state_dict(payload["optimizer"])
    state = next(iter(opt.state.values()))
    assert all(v.device.type == "meta" for k, v in state.items() if isinstance(v, torch.Tensor) and v.dim() > 0)


def test_a_checkpoint_from_another_device_resumes_here(tiny_data_root, tmp_path):
    """A checkpoint whose noise generator was a GPU's resumes on the CPU: same weights, optimizer state and
    data position; the noise continues from a generator seeded from the seed and the step (reproducibly)."""
    problem = problems.get("mnist.mlp", eval_size=16)
    config = make_config(problem, "adam", {"lr": 1e-2}, 0, 8, batch_size=8, eval_every=2)
    path = tmp_path / "run.pt"
    execute(config, problem, checkpoint_path=path, checkpoint_every=2, stop_after=4)
    payload = torch.load(path, weights_only=True)
    payload["noise_device"] = "cuda"  # as a GPU run writes it
    payload["noise"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state: no CPU generator takes it
    ckpt_mod.save_checkpoint(path, {k: v for k, v in payload.items() if k != "format"})
    saved = dict(payload)
    with _no_checkpoint_warning():  # the checkpoint is used, not discarded
        first = execute(config, problem, checkpoint_path=path, checkpoint_every=2)
    ckpt_mod.save_checkpoint(path, {k: v for k, v in saved.items() if k != "format"})
    second = execute(config, problem, checkpoint_path=path, checkpoint_every=2)
    assert first.status == "finished" and [r["step"] for r in first.records] == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert [r["train_loss"] for r in first.records] == [r["train_loss"] for r in second.records]
    reference = execute(config, problem)  # up to the checkpoint the records are the uninterrupted run's
    cut = [r for r in reference.records if r["step"] <= 4]
    assert [r["train_loss"] for r in first.records if r["step"] <= 4] == [r["train_loss"] for r in cut]


class _no_checkpoint_warning:
    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        warnings.simplefilter("error", ckpt_mod.CheckpointWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


def test_run_ids_do_not_depend_on_the_device(tmp_path):
    problem = problems.get("quadratic.noisy")
    config = make_config(problem, "adam", {"lr": 1e-2}, 0, 4)
    assert "device" not in config.to_dict() and "device" not in str(config.to_dict())


def test_a_resumed_sweep_on_another_device_skips_the_cpu_runs(tmp_path, monkeypatch):
    store = tmp_path / "s.sqlite"
    first = sweep("quadratic.noisy", ["adam", "sgd"], [1e-2, 1e-1], 2, 6, store, "vmap", quiet=True)
    assert first.finished == 8
    with Store(store) as db:
        before = sorted(db.metric_rows())

    def fake(spec=None):  # "cuda" is available now; any run trained would fail on the meta device
        return torch.device("meta") if spec == "cuda" else torch.device("cpu")

    monkeypatch.setattr(device_mod, "parse_device", fake)
    for backend in ("serial", "vmap"):
        again = sweep("quadratic.noisy", ["adam", "sgd"], [1e-2, 1e-1], 2, 6, store, backend, quiet=True,
                      device="cuda")
        assert again.skipped == 8 and again.ran == 0 and again.failed == 0
    with Store(store) as db:
        assert sorted(db.metric_rows()) == before


def test_a_sweep_on_a_missing_device_stops_before_the_store(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    store = tmp_path / "s.sqlite"
    with pytest.raises(device_mod.DeviceUnavailableError):
        sweep("quadratic.noisy", ["adam"], [1e-2], 1, 4, store, quiet=True, device="cuda")
    assert not store.exists()
