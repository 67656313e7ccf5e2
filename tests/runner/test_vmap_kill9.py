"""kill -9 in the middle of a vmap sweep: blocks commit whole, nothing is lost or duplicated, the rerun completes."""

import os
import sqlite3
from pathlib import Path

import pytest

from adamlab.runner import Store, expand_grid, sweep
from tests.runner import runner_tiny_problem as tiny
from tests.runner.kill9 import kill9_after

HERE = Path(__file__).parent
GRID = dict(optimizers=["sgd", "adam"], lr_grid=[0.003, 0.01, 0.03, 0.1], seeds=2, budget=800)
SCRIPT = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import runner_tiny_problem
runner_tiny_problem.ensure_registered()
from adamlab.runner import sweep
sweep(runner_tiny_problem.NAME, store=sys.argv[1], quiet=True, eval_every=100, backend="vmap", **{GRID!r})
"""


@pytest.mark.slow
@pytest.mark.skipif(os.name != "posix", reason="SIGKILL needs POSIX")
def test_kill9_mid_vmap_sweep_loses_nothing(store_path):
    store_path.parent.mkdir(parents=True)
    kill9_after(SCRIPT, store_path, finished=1, timeout=300)
    configs = expand_grid(tiny.NAME, eval_every=100, **GRID)
    with Store(store_path) as db:
        finished = {r["run_id"]: r for r in db.runs() if r["status"] == "finished"}
        finished_metrics = {k: db.metrics(k) for k in finished}
    assert len(finished) % 8 == 0 and 8 <= len(finished) < len(configs)  # whole blocks of 4 lrs x 2 seeds
    for series in finished_metrics.values():
        assert series["test_loss"][0] == list(range(0, 801, 100))
    rep = sweep(tiny.NAME, store=store_path, quiet=True, eval_every=100, backend="vmap", **GRID)
    assert rep.skipped == len(finished) and rep.finished == len(configs) - len(finished)
    con = sqlite3.connect(store_path)
    try:
        assert con.execute("SELECT COUNT(*) FROM runs WHERE status='finished'").fetchone()[0] == len(configs)
        dupes = con.execute("SELECT COUNT(*) FROM (SELECT run_id, step, name FROM metrics "
                            "GROUP BY run_id, step, name HAVING COUNT(*) > 1)").fetchone()[0]
        assert dupes == 0
        assert con.execute("SELECT COUNT(*) FROM metrics_staging").fetchone()[0] == 0
    finally:
        con.close()
    with Store(store_path) as db:
        for k in finished:  # finished runs were not redone
            assert db.metrics(k) == finished_metrics[k]
