import torch

from adamlab.runner import make_config, sweep
from adamlab.runner.checkpoint import load_checkpoint
from adamlab.runner.train import build_problem, execute
from tests.runner import runner_tiny_problem as tiny


def _final_params(config, problem, **kw):
    captured = {}

    class Capture:
        every = config.steps
        name = "capture"

        def __call__(self, step, model, optimizer, problem, batch):
            captured["params"] = [p.detach().clone() for p in model.parameters()]
            captured["state"] = optimizer.state_dict()
            return {}

    res = execute(config, problem, hooks=[Capture()], **kw)
    return res, captured


def test_checkpoint_resume_bit_for_bit(tmp_path):
    problem = build_problem(tiny.NAME, {"dropout": 0.2})  # dropout: the RNG state must be restored too
    config = make_config(problem, "adam", {"lr": 0.05}, 7, 40, eval_every=10)
    full, ref = _final_params(config, problem)

    path = tmp_path / "ck" / "run.pt"
    partial = execute(config, problem, checkpoint_path=path, checkpoint_every=5, stop_after=23)
    assert partial.status == "running"
    ck = load_checkpoint(path, config.run_id)
    assert ck is not None and ck["step"] == 20
    assert load_checkpoint(path, "someoneelse") is None

    resumed, got = _final_params(config, problem, checkpoint_path=path, checkpoint_every=5)
    assert resumed.status == "finished"
    assert not path.exists()  # removed when the run ends
    for a, b in zip(ref["params"], got["params"], strict=True):
        assert torch.equal(a, b)
    strip = lambda recs: [{k: v for k, v in r.items() if k != "wall_time"} for r in recs]  # noqa: E731
    assert strip(resumed.records) == strip(full.records)


def test_checkpoint_without_resume_changes_nothing(tmp_path):
    problem = build_problem(tiny.NAME)
    config = make_config(problem, "msvag", {"lr": 0.05}, 1, 30)
    a = execute(config, problem)
    b = execute(config, problem, checkpoint_path=tmp_path / "c.pt", checkpoint_every=7)
    assert a.series("train_loss") == b.series("train_loss")


def test_corrupt_checkpoint_ignored(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(b"not a checkpoint")
    assert load_checkpoint(path, "x") is None


def test_sweep_with_checkpoints(store_path):
    rep = sweep(tiny.NAME, ["sgd"], [0.1], 1, 20, store_path, quiet=True, checkpoint_every=5)
    assert rep.finished == 1
    ck_dir = store_path.parent / (store_path.name + ".checkpoints")
    assert not list(ck_dir.glob("*.pt"))
