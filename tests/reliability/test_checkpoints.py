"""Items 1 and 4 of issue 23: a checkpoint is never resumed without the metric rows it depends on, and
one that does not belong to the run (another optimizer, other hyperparameters, forged counters or
records, NaN parameters, bad fields, an absurd data position) is discarded with one warning; the run
then starts over and finishes with the same metrics as a clean run."""

from __future__ import annotations

import sqlite3

import pytest
import torch

from adamlab.optim.registry import make_optimizer
from adamlab.runner import Store, expand_grid
from adamlab.runner.checkpoint import CheckpointWarning, load_checkpoint, save_checkpoint
from adamlab.runner.train import build_problem, execute
from tests.runner import runner_tiny_problem as tiny


def _config(optimizer="adam", steps=40, eval_every=2):
    (config,) = expand_grid(tiny.NAME, [optimizer], [0.05], 1, steps, eval_every=eval_every)
    return config


def _rows(store_path, run_id):
    con = sqlite3.connect(store_path)
    try:
        rows = con.execute("SELECT step, name, value FROM metrics WHERE run_id=? AND name != 'wall_time'",
                           (run_id,)).fetchall()
    finally:
        con.close()
    return {(s, n): v for s, n, v in rows}


def _expected(result):
    return {(int(r["step"]), n): v for r in result.records for n, v in r.items() if n not in ("step", "wall_time")}


def _strip(records):
    return [{k: v for k, v in r.items() if k != "wall_time"} for r in records]


def test_an_attempt_without_checkpoints_in_between_loses_no_metrics(store_path, tmp_path):
    """Item 1: attempt 1 checkpoints and dies; attempt 2 (no checkpoints) starts over, discards every
    staged row and dies; attempt 3 must not resume attempt 1's checkpoint without those rows."""
    config = _config()
    reference = execute(config)
    ckpt = tmp_path / "run.pt"
    with Store(store_path) as db:
        db.plan([config])
        execute(config, sink=db, chunk=1, checkpoint_path=ckpt, checkpoint_every=10, stop_after=25)
        assert ckpt.exists()
        execute(config, sink=db, chunk=1, stop_after=5)  # attempt 2: start over, no checkpoint
        with pytest.warns(CheckpointWarning, match="metrics it depends on are gone"):
            result = execute(config, sink=db, chunk=1, checkpoint_path=ckpt, checkpoint_every=10)
        assert db.record(result)
    assert _rows(store_path, config.run_id) == _expected(reference)
    assert not ckpt.exists()


def _saved(tmp_path, config, stop_after=25, every=10):
    path = tmp_path / f"{config.run_id}.pt"
    execute(config, checkpoint_path=path, checkpoint_every=every, stop_after=stop_after)
    payload = load_checkpoint(path, config.run_id)
    assert payload is not None and payload["step"] == 20
    return path, payload


def _foreign_optimizer_state(name):
    def forge(config, payload):
        problem = build_problem(tiny.NAME)
        model = problem.make_model(config.seed)
        opt = make_optimizer(name, model.parameters(), lr=0.05)
        for p in model.parameters():
            p.grad = torch.ones_like(p)
        for _ in range(20):
            opt.step()
        payload["optimizer"] = opt.state_dict()
    return forge


def _set(key, value):
    def forge(config, payload):
        payload[key] = value
    return forge


def _betas(config, payload):
    payload["optimizer"]["param_groups"][0]["betas"] = (5.0, 5.0)


def _other_valid_betas(config, payload):
    payload["optimizer"]["param_groups"][0]["betas"] = (0.5, 0.9)


def _nan_parameters(config, payload):
    name = next(iter(payload["model"]))
    payload["model"][name] = torch.full_like(payload["model"][name], float("nan"))


def _forged_records(config, payload):
    payload["records"] = [{"step": 0.0, "train_loss": -42.0}, {"step": 35.0, "train_loss": -42.0}]


def _forged_step(config, payload):
    payload["step"] = payload["batches_consumed"] = 38


def _bad_rng(config, payload):
    payload["rng"] = {"torch": torch.zeros(3, dtype=torch.uint8)}


def _bad_loss_n(config, payload):
    payload["loss_n"] = "many"


FORGERIES = {
    "sgd-state": _foreign_optimizer_state("sgd"),
    "msvag-state": _foreign_optimizer_state("msvag"),
    "betas-5-5": _betas,
    "other-betas": _other_valid_betas,
    "nan-parameters": _nan_parameters,
    "forged-records": _forged_records,
    "forged-step": _forged_step,
    "huge-batches-consumed": _set("batches_consumed", 10**12),
    "bad-rng": _bad_rng,
    "bad-loss-n": _bad_loss_n,
    "other-optimizer-class": _set("optimizer_class", "SGD"),
}


@pytest.mark.parametrize("forge", list(FORGERIES))
def test_a_checkpoint_that_is_not_the_runs_is_discarded_with_one_warning(tmp_path, forge):
    config = _config()
    reference = execute(config)
    path, payload = _saved(tmp_path, config)
    payload.pop("format")
    FORGERIES[forge](config, payload)
    save_checkpoint(path, payload)
    with pytest.warns(CheckpointWarning) as caught:
        result = execute(config, checkpoint_path=path, checkpoint_every=10)
    messages = [str(w.message) for w in caught if issubclass(w.category, CheckpointWarning)]
    assert len(messages) == 1 and "\n" not in messages[0] and str(path) in messages[0], messages
    assert result.status == "finished"
    assert _strip(result.records) == _strip(reference.records)
    assert not path.exists()


@pytest.mark.parametrize("optimizer", ["adam", "sgd", "msvag", "adagrad", "rmsprop", "adamax", "ndadam"])
def test_a_genuine_checkpoint_still_resumes_bit_for_bit(tmp_path, optimizer):
    config = _config(optimizer)
    reference = execute(config)
    path, _ = _saved(tmp_path, config)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", CheckpointWarning)
        result = execute(config, checkpoint_path=path, checkpoint_every=10)
    assert _strip(result.records) == _strip(reference.records)
