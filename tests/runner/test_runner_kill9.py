"""kill -9 in the middle of a sweep loses no finished run, duplicates none, and the rerun completes it."""

import os
import signal
import sqlite3
from pathlib import Path

import pytest

from adamlab.runner import Store, expand_grid, sweep
from adamlab.runner.train import execute
from tests.runner import runner_tiny_problem as tiny
from tests.runner.kill9 import kill9_after

HERE = Path(__file__).parent
GRID = dict(optimizers=["sgd", "adam", "msvag"], lr_grid=[0.003, 0.01, 0.03, 0.1], seeds=2, budget=300)
SCRIPT = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import runner_tiny_problem
runner_tiny_problem.ensure_registered()
from adamlab.runner import sweep
sweep(runner_tiny_problem.NAME, store=sys.argv[1], quiet=True, checkpoint_every=25, eval_every=50, **{GRID!r})
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGKILL needs POSIX")
def test_kill9_mid_sweep_loses_nothing(store_path):
    store_path.parent.mkdir(parents=True)
    proc = kill9_after(SCRIPT, store_path, finished=5, timeout=120)
    assert proc.returncode == -signal.SIGKILL

    configs = expand_grid(tiny.NAME, eval_every=50, **GRID)
    total = len(configs)
    with Store(store_path) as db:
        before = {r["run_id"]: r for r in db.runs()}
        finished = {k: r for k, r in before.items() if r["status"] == "finished"}
        interrupted = [k for k, r in before.items() if r["status"] == "running"]
        finished_metrics = {k: db.metrics(k) for k in finished}
    assert 5 <= len(finished) < total
    for series in finished_metrics.values():  # complete: eval points 0, 50, ..., 300
        assert series["test_loss"][0] == [0, 50, 100, 150, 200, 250, 300]
        assert series["train_loss"][0] == [50, 100, 150, 200, 250, 300]

    rep = sweep(tiny.NAME, store=store_path, quiet=True, checkpoint_every=25, eval_every=50, **GRID)
    assert rep.skipped == len(finished)
    assert rep.finished == total - len(finished)

    con = sqlite3.connect(store_path)
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == total
    assert con.execute("SELECT COUNT(*) FROM runs WHERE status='finished'").fetchone()[0] == total
    dupes = con.execute("SELECT COUNT(*) FROM (SELECT run_id, step, name FROM metrics "
                        "GROUP BY run_id, step, name HAVING COUNT(*) > 1)").fetchone()[0]
    assert dupes == 0
    con.close()
    with Store(store_path) as db:
        after = {r["run_id"]: r for r in db.runs()}
        for k, r in finished.items():  # finished runs were not redone
            assert (after[k]["attempts"], after[k]["finished_at"]) == (r["attempts"], r["finished_at"])
            assert db.metrics(k) == finished_metrics[k]
        by_id = {c.run_id: c for c in configs}
        for k in interrupted:  # a run resumed from its checkpoint ends where an uninterrupted one does
            fresh = execute(by_id[k])
            got = db.metrics(k)
            assert got["train_loss"][1] == pytest.approx(fresh.series("train_loss")[1], rel=0, abs=0)
            assert after[k]["attempts"] == 2
