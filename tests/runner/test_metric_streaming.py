"""Issue 15.9: a run streams its metrics into the store in bounded chunks; its commit stays atomic."""

from __future__ import annotations

import sqlite3

import pytest

from adamlab.runner import Store, expand_grid, sweep
from adamlab.runner.backends import failed_result
from adamlab.runner.train import execute
from adamlab.runs.result import RunStatus
from tests.runner import runner_tiny_problem as tiny


def _config(steps: int = 40, eval_every: int = 2):
    (config,) = expand_grid(tiny.NAME, ["adam"], [0.05], 1, steps, eval_every=eval_every)
    return config


def _rows(store_path, run_id: str) -> dict[tuple[int, str], float]:
    con = sqlite3.connect(store_path)
    try:
        rows = con.execute("SELECT step, name, value FROM metrics WHERE run_id=? AND name != 'wall_time'",
                           (run_id,)).fetchall()
    finally:
        con.close()
    return {(s, n): v for s, n, v in rows}


class CountingStore(Store):
    """A store that remembers the largest chunk it was handed."""

    largest = 0
    stages = 0

    def stage(self, rows):
        rows = list(rows)
        type(self).largest = max(type(self).largest, len({(r[0], r[1]) for r in rows}))
        type(self).stages += 1
        super().stage(rows)


def test_streamed_run_stores_the_same_metrics_in_bounded_chunks(store_path):
    config = _config()
    reference = execute(config)  # no sink: every record in the result
    with CountingStore(store_path) as db:
        db.plan([config])
        result = execute(config, sink=db, chunk=3)
        assert CountingStore.stages >= 4 and CountingStore.largest <= 4  # at most chunk + 1 eval points
        assert len(result.records) <= 4  # the rest went to the store as the run went on
        assert db.staged_count(config.run_id) > 0
        assert _rows(store_path, config.run_id) == {}  # staged rows are not visible as metrics
        db.record(result)
        assert db.staged_count() == 0
    expected = {(int(r["step"]), n): v for r in reference.records for n, v in r.items()
                if n not in ("step", "wall_time")}
    assert _rows(store_path, config.run_id) == expected


def test_crashed_run_leaves_no_visible_metrics_and_the_retry_no_duplicates(store_path):
    config = _config()
    reference = execute(config)
    with Store(store_path) as db:
        db.plan([config])
        partial = execute(config, sink=db, chunk=1, stop_after=17)  # "killed" at step 17
        assert partial.status is RunStatus.RUNNING
        assert db.staged_count(config.run_id) > 0 and _rows(store_path, config.run_id) == {}
        result = execute(config, sink=db, chunk=1)  # the next attempt starts over
        db.record(result)
        assert db.staged_count() == 0
    expected = {(int(r["step"]), n): v for r in reference.records for n, v in r.items()
                if n not in ("step", "wall_time")}
    assert _rows(store_path, config.run_id) == expected


def test_checkpoint_resume_keeps_what_was_staged_before_the_checkpoint(store_path, tmp_path):
    config = _config()
    reference = execute(config)
    ckpt = tmp_path / "run.pt"
    with Store(store_path) as db:
        db.plan([config])
        execute(config, sink=db, chunk=1, checkpoint_path=ckpt, checkpoint_every=10, stop_after=25)
        assert ckpt.exists()
        result = execute(config, sink=db, chunk=1, checkpoint_path=ckpt, checkpoint_every=10)
        db.record(result)
    expected = {(int(r["step"]), n): v for r in reference.records for n, v in r.items()
                if n not in ("step", "wall_time")}
    assert _rows(store_path, config.run_id) == expected


def test_failed_run_drops_its_staged_rows(store_path):
    config = _config()
    with Store(store_path) as db:
        db.plan([config])
        execute(config, sink=db, chunk=1, stop_after=9)
        assert db.staged_count(config.run_id) > 0
        db.record(failed_result(config, RuntimeError("boom")))
        assert db.staged_count() == 0 and _rows(store_path, config.run_id) == {}


@pytest.mark.parametrize("backend", ["serial", "vmap"])
def test_sweep_streams_with_a_small_chunk(store_path, tmp_path, backend, monkeypatch):
    from adamlab.runner import loop

    grid = dict(optimizers=["adam"], lr_grid=[0.01, 0.05], seeds=2, budget=30, eval_every=3)
    ref = sweep(tiny.NAME, store=tmp_path / "ref.sqlite", quiet=True, backend=backend, **grid)
    monkeypatch.setenv(loop.CHUNK_ENV, "2")
    staged = []
    original = Store.stage
    monkeypatch.setattr(Store, "stage", lambda self, rows: (staged.append(1), original(self, rows))[1])
    rep = sweep(tiny.NAME, store=store_path, quiet=True, backend=backend, **grid)
    assert rep.finished == ref.finished == 4
    assert staged, "nothing was streamed"
    for run_id in rep.run_ids:
        assert _rows(store_path, run_id) == _rows(tmp_path / "ref.sqlite", run_id)
    with Store(store_path) as db:
        assert db.staged_count() == 0
