import sqlite3

import pandas as pd
import pytest

from adamlab.runner import (
    Criterion,
    Store,
    expand_grid,
    get_backend,
    problem_key,
    select_best,
    sweep,
    tune_and_rerun,
)
from adamlab.runs.result import RunResult
from tests.runner import runner_tiny_problem as tiny


def _sweep(store, **kw):
    args = dict(problems=tiny.NAME, optimizers=["sgd", "adam"], lr_grid=[0.01, 0.1], seeds=2, budget=20,
                store=store, quiet=True)
    args.update(kw)
    return sweep(**args)


def test_store_schema_readable_by_pandas(store_path):
    rep = _sweep(store_path)
    assert (rep.total, rep.finished, rep.skipped) == (8, 8, 0)
    con = sqlite3.connect(store_path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    runs = pd.read_sql("SELECT * FROM runs", con)
    metrics = pd.read_sql("SELECT * FROM metrics", con)
    assert len(runs) == 8 and set(runs.status) == {"finished"}
    for col in ("run_id", "problem", "optimizer", "hparams", "lr", "seed", "steps", "status", "wall_time",
                "created_at", "started_at", "finished_at", "adamlab_version", "torch_version", "python_version"):
        assert col in runs.columns
    assert list(metrics.columns) == ["run_id", "step", "name", "value"]
    assert not metrics.duplicated(["run_id", "step", "name"]).any()
    assert set(metrics.run_id) == set(runs.run_id)
    assert {"train_loss", "test_loss", "test_accuracy", "epoch", "wall_time"} <= set(metrics.name)
    assert sorted(runs.lr.unique()) == [0.01, 0.1]


def test_rerun_skips_finished(store_path):
    _sweep(store_path)
    with Store(store_path) as db:
        before = {r["run_id"]: (r["attempts"], r["finished_at"]) for r in db.runs()}
    rep = _sweep(store_path)
    assert (rep.skipped, rep.ran) == (8, 0)
    with Store(store_path) as db:
        assert {r["run_id"]: (r["attempts"], r["finished_at"]) for r in db.runs()} == before
    # a larger grid runs only the new configs
    rep = _sweep(store_path, seeds=3)
    assert (rep.total, rep.skipped, rep.finished) == (12, 8, 4)


def test_unfinished_runs_restart(store_path):
    configs = expand_grid(tiny.NAME, ["sgd"], [0.1], 2, 20)
    with Store(store_path) as db:
        db.plan(configs)
        db.mark_running(configs[0])  # as if killed while running
        assert db.statuses() == {configs[0].run_id: "running", configs[1].run_id: "pending"}
    rep = sweep(tiny.NAME, ["sgd"], [0.1], 2, 20, store_path, quiet=True)
    assert (rep.finished, rep.skipped) == (2, 0)
    with Store(store_path) as db:
        attempts = {r["run_id"]: r["attempts"] for r in db.runs()}
    assert attempts == {configs[0].run_id: 2, configs[1].run_id: 1}


def test_diverged_run_stored_and_sweep_goes_on(store_path):
    rep = sweep(tiny.NAME, ["sgd"], [0.05, 10.0], 1, 200, store_path, quiet=True)
    assert (rep.finished, rep.diverged) == (1, 1)
    with Store(store_path) as db:
        (row,) = db.runs(status=["diverged"])
        assert row["lr"] == 10.0 and row["diverged_step"] > 0
        assert db.metrics(row["run_id"])["train_loss"][1]  # last finite metrics kept
    rep = sweep(tiny.NAME, ["sgd"], [0.05, 10.0], 1, 200, store_path, quiet=True)
    assert rep.skipped == 2  # diverged is final: not redone


def test_failed_run_recorded_and_retried(store_path, monkeypatch):
    rep = sweep(tiny.NAME, ["sgd"], [0.1], 1, 10, store_path, quiet=True, hparams={"momentum": -1.0})
    assert rep.failed == 1 and rep.errors
    with Store(store_path) as db:
        (row,) = db.runs()
        assert row["status"] == "failed" and "momentum" in row["error"].lower()
    rep = sweep(tiny.NAME, ["sgd"], [0.1], 1, 10, store_path, quiet=True, hparams={"momentum": -1.0},
                retry_failed=False)
    assert rep.skipped == 1


def test_record_is_one_transaction(store_path):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 10)

    class Boom(RunResult):
        def long_rows(self):
            return [(0, "x", 1.0), (0, "x", 2.0)]  # duplicate key: the insert fails midway

    with Store(store_path) as db:
        db.mark_running(config)
        with pytest.raises(sqlite3.IntegrityError):
            db.record(Boom(config, "finished"))
        assert db.statuses() == {config.run_id: "running"}
        assert db.metrics(config.run_id) == {}


def test_select_best_ranks_diverged_last(store_path):
    sweep(tiny.NAME, ["sgd"], [0.001, 0.05, 10.0], 2, 100, store_path, quiet=True)
    (sel,) = select_best(store_path, "min:train_loss").values()
    assert sel.best_lr == 0.05
    assert sel.scores[10.0] != sel.scores[10.0]  # nan: diverged
    with Store(store_path) as db:
        ids = [r["run_id"] for r in db.runs() if r["lr"] == 0.05]
        expected = sum(db.final_metric(i, "train_loss") for i in ids) / 2
    assert sel.score == pytest.approx(expected)
    (sel,) = select_best(store_path, "max:test_accuracy").values()
    assert sel.best_lr in (0.001, 0.05)


def test_select_best_separates_problem_options(store_path):
    sweep([(tiny.NAME, {"dropout": 0.0}), (tiny.NAME, {"dropout": 0.5})], ["sgd"], [0.001, 0.05], 1, 20,
          store_path, quiet=True)
    sel = select_best(store_path)
    keys = [problem_key(tiny.NAME, {"dropout": 0.0}), problem_key(tiny.NAME, {"dropout": 0.5})]
    assert set(sel) == {(keys[0], "sgd"), (keys[1], "sgd")}
    assert sel[(keys[1], "sgd")].problem_options == {"dropout": 0.5}


def test_criterion_parse():
    assert Criterion.parse("final_test_accuracy") == Criterion("test_accuracy", "max")
    assert Criterion.parse("min:test_loss") == Criterion("test_loss", "min")
    with pytest.raises(ValueError, match="mode"):
        Criterion.parse("best:test_loss")


def test_tune_and_rerun(store_path):
    rep = tune_and_rerun(tiny.NAME, ["sgd", "adam"], [0.001, 0.05], tune_seeds=1, rerun_seeds=3, budget=30,
                         store=store_path, quiet=True)
    pid = problem_key(tiny.NAME, {"dropout": 0.0})
    assert set(rep.selections) == {(pid, "sgd"), (pid, "adam")}
    assert rep.tune.finished == 4
    # seed 0 of each best lr was already trained during tuning
    assert (rep.rerun.total, rep.rerun.skipped, rep.rerun.finished) == (6, 2, 4)
    with Store(store_path) as db:
        assert len(db.runs()) == 8


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown backend 'nosuch'; known backends: .*serial"):
        get_backend("nosuch")
    with pytest.raises(ValueError, match="takes no options"):
        get_backend("serial", workers=2)


def test_unwritable_store(tmp_path):
    with pytest.raises(ValueError, match="cannot open results store"):
        Store(tmp_path)  # a directory
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ValueError, match="cannot open results store"):
        Store(blocker / "sub" / "x.sqlite")


def test_invalid_sweep_arguments(store_path):
    with pytest.raises(ValueError, match="seeds"):
        sweep(tiny.NAME, ["sgd"], [0.1], 0, 5, store_path, quiet=True)
    with pytest.raises(ValueError, match="lr_grid"):
        sweep(tiny.NAME, ["sgd"], [-0.1], 1, 5, store_path, quiet=True)
    with pytest.raises(ValueError, match="unknown optimizer"):
        sweep(tiny.NAME, ["sgdd"], [0.1], 1, 5, store_path, quiet=True)


def test_backend_names_are_modules_with_make_backend():
    from adamlab.runner.backends import names

    known = names()
    assert "serial" in known
    assert all(not n.startswith("_") for n in known)
    import importlib.util

    for name in known:
        assert "def make_backend(" in open(importlib.util.find_spec(f"adamlab.runner.backends.{name}").origin).read()
