"""A checkpoint that loads but does not fit the run (right run_id, wrong shapes) is discarded with a
warning naming the file, and the run starts over; it never makes the run fail."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from adamlab.optim.registry import make_optimizer
from adamlab.runner import make_config, sweep
from adamlab.runner.checkpoint import save_checkpoint
from adamlab.runner.train import build_problem, execute
from tests.runner import runner_tiny_problem as tiny


def _payload(config, model, optimizer, step=20):
    return {"run_id": config.run_id, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
            "rng": {"torch": torch.get_rng_state()}, "batches_consumed": step, "step": step, "loss_sum": 0.0,
            "loss_n": 0, "elapsed": 0.0, "records": [], "started_at": "2026-01-01T00:00:00+00:00"}


def _strip(records):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records]


def _stepped(model, optimizer):
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    optimizer.step()


def _wrong_model(config):
    """Right run_id, wrong shapes: a model with 3 inputs instead of 5 (as after a problem change)."""
    model = nn.Sequential(nn.Dropout(0.0), nn.Linear(3, 1))
    opt = make_optimizer(config.optimizer, model.parameters(), lr=0.1)
    _stepped(model, opt)
    return _payload(config, model, opt)


def _wrong_optimizer_state(config):
    """Model fits, but the optimizer state has other shapes (exp_avg of a 3-vector)."""
    problem = build_problem(tiny.NAME)
    model = problem.make_model(config.seed)
    opt = make_optimizer(config.optimizer, model.parameters(), lr=0.1)
    _stepped(model, opt)
    state = opt.state_dict()
    for s in state["state"].values():
        for k, v in s.items():
            if isinstance(v, torch.Tensor) and v.dim() > 0:
                s[k] = torch.zeros(3)
    return {**_payload(config, model, opt), "optimizer": state}


def _missing_fields(config):
    problem = build_problem(tiny.NAME)
    model = problem.make_model(config.seed)
    opt = make_optimizer(config.optimizer, model.parameters(), lr=0.1)
    payload = _payload(config, model, opt)
    del payload["records"]
    return payload


@pytest.mark.parametrize("make", [_wrong_model, _wrong_optimizer_state, _missing_fields])
def test_checkpoint_that_does_not_fit_is_discarded_and_the_run_starts_over(tmp_path, make):
    problem = build_problem(tiny.NAME)
    config = make_config(problem, "adam", {"lr": 0.05}, 3, 30, eval_every=10)
    fresh = execute(config, problem)
    path = tmp_path / "ck" / f"{config.run_id}.pt"
    save_checkpoint(path, make(config))
    with pytest.warns(UserWarning, match="checkpoint .*" + path.name + ".* discarded: .*starts over") as info:
        result = execute(config, problem, checkpoint_path=path, checkpoint_every=7)
    assert str(path) in str(info[0].message)
    assert result.status == "finished"
    assert _strip(result.records) == _strip(fresh.records)  # from step 0, as if there were no file
    assert not path.exists()


def test_sweep_with_a_bad_checkpoint_finishes_instead_of_failing(store_path):
    problem = build_problem(tiny.NAME)
    config = make_config(problem, "adam", {"lr": 0.05}, 0, 20)
    path = store_path.parent / (store_path.name + ".checkpoints") / f"{config.run_id}.pt"
    save_checkpoint(path, _wrong_model(config))
    with pytest.warns(UserWarning, match=path.name):
        rep = sweep(tiny.NAME, ["adam"], [0.05], 1, 20, store_path, quiet=True, checkpoint_every=5)
    assert (rep.finished, rep.failed) == (1, 0)


def test_unreadable_checkpoint_warns_and_is_removed(tmp_path):
    problem = build_problem(tiny.NAME)
    config = make_config(problem, "sgd", {"lr": 0.05}, 0, 20)
    path = tmp_path / f"{config.run_id}.pt"
    path.write_bytes(b"torn write")
    with pytest.warns(UserWarning, match="unreadable"):
        assert execute(config, problem, checkpoint_path=path, checkpoint_every=5).status == "finished"
    assert not path.exists()
