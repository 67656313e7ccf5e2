"""Concurrent sweeps on one store: claims are atomic, final runs are never changed, dead claims are taken over.

The multi-process tests start real ``python`` subprocesses on one SQLite file (the tiny problem,
runs of a fraction of a second), as two users starting overlapping sweeps would.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adamlab.runner import Store, expand_grid, sweep
from adamlab.runs.result import RunResult, RunStatus
from tests.runner import runner_tiny_problem as tiny

HERE = Path(__file__).parent
posix_only = pytest.mark.skipif(os.name != "posix", reason="needs POSIX processes and signals")

# A sweep in a subprocess: argv = store, JSON of sweep kwargs, optional go-file to wait for.
SCRIPT = f"""
import json, os, sys, time
sys.path.insert(0, {str(HERE)!r})
import runner_tiny_problem
runner_tiny_problem.ensure_registered()
from adamlab.runner import sweep
kw = json.loads(sys.argv[2])
print("ready", flush=True)
if len(sys.argv) > 3:
    while not os.path.exists(sys.argv[3]):
        time.sleep(0.005)
rep = sweep(runner_tiny_problem.NAME, store=sys.argv[1], quiet=True, **kw)
print(json.dumps(dict(ran=rep.ran, finished=rep.finished, skipped=rep.skipped,
                      elsewhere=getattr(rep, "elsewhere", None),
                      failed=rep.failed, total=rep.total)), flush=True)
"""


def _start(store, kw, go=None):
    argv = [sys.executable, "-c", SCRIPT, str(store), json.dumps(kw)] + ([str(go)] if go else [])
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env={**os.environ, "CI": "1"})
    assert proc.stdout.readline().strip() == "ready"
    return proc


def _report(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return json.loads(out.strip().splitlines()[-1])


def _row(path, run_id):
    """The run's row (None while the store or the row does not exist yet) and its number of metric rows."""
    if not Path(path).exists():
        return None, 0
    con = sqlite3.connect(path, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        row = con.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        n = con.execute("SELECT COUNT(*) FROM metrics WHERE run_id=?", (run_id,)).fetchone()[0]
        return (dict(row) if row else None), n
    except sqlite3.OperationalError:  # the tables are being created
        return None, 0
    finally:
        con.close()


def _wait_for(cond, what, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def _set_owner(path, run_id, pid, host, heartbeat):
    con = sqlite3.connect(path)
    con.execute("UPDATE runs SET status='running', owner_pid=?, owner_host=?, heartbeat=? WHERE run_id=?",
                (pid, host, heartbeat, run_id))
    con.commit()
    con.close()


# -- one process: the store's rules -------------------------------------------------------------------


def test_claim_never_demotes_a_finished_run(store_path):
    """The issue's bug: mark_running set 'running' on a run another process had finished."""
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 20)
    sweep(tiny.NAME, ["sgd"], [0.1], 1, 20, store_path, quiet=True)
    with Store(store_path) as db:
        before = db.runs()[0]
        metrics = db.metrics(config.run_id)
        assert db.mark_running(config) is False
        assert db.claim(config) is False
        after = db.runs()[0]
        assert (after["status"], after["attempts"], after["started_at"]) == (
            "finished", before["attempts"], before["started_at"])
        assert db.metrics(config.run_id) == metrics


def test_record_never_overwrites_a_final_status(store_path):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 20)
    sweep(tiny.NAME, ["sgd"], [0.1], 1, 20, store_path, quiet=True)
    with Store(store_path) as db:
        metrics = db.metrics(config.run_id)
        late = RunResult(config, RunStatus.FAILED, error="RuntimeError: too late")
        assert db.record(late) is False
        other = RunResult(config, RunStatus.FINISHED, records=[{"step": 0.0, "train_loss": 123.0}])
        assert db.record(other) is False
        (row,) = db.runs()
        assert (row["status"], row["error"]) == ("finished", None)
        assert db.metrics(config.run_id) == metrics


@posix_only
def test_live_claim_is_refused_dead_claim_is_taken_over(store_path):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 20)
    host = socket.gethostname()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store(store_path) as db:
            db.plan([config])
            _set_owner(store_path, config.run_id, sleeper.pid, host, time.time())
            assert db.classify([config]).busy == [config]
            assert db.claim(config) is False  # a live process on this host holds it
            assert _row(store_path, config.run_id)[0]["owner_pid"] == sleeper.pid
            sleeper.kill()
            sleeper.wait()
            assert db.claim(config) is True  # its process died: taken over at once
            row = _row(store_path, config.run_id)[0]
            assert (row["status"], row["owner_pid"], row["owner_host"]) == ("running", os.getpid(), host)
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
            sleeper.wait()


@posix_only
def test_zombie_owner_counts_as_dead(store_path):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 20)
    if not os.path.exists("/proc/self/stat"):
        pytest.skip("needs /proc")
    proc = subprocess.Popen([sys.executable, "-c", "pass"])

    def zombie():
        with open(f"/proc/{proc.pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] == "Z"

    _wait_for(zombie, "a zombie", timeout=30)  # exited, not reaped yet
    try:
        with Store(store_path) as db:
            db.plan([config])
            _set_owner(store_path, config.run_id, proc.pid, socket.gethostname(), time.time())
            assert db.claim(config) is True
    finally:
        proc.wait()


def test_other_host_claim_is_taken_over_only_when_its_heartbeat_is_stale(store_path):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 20)
    with Store(store_path, claim_timeout=60.0) as db:
        db.plan([config])
        _set_owner(store_path, config.run_id, 1, "some-other-host", time.time() - 30)
        assert db.claim(config) is False
        _set_owner(store_path, config.run_id, 1, "some-other-host", time.time() - 61)
        assert db.claim(config) is True


def test_heartbeat_keeps_a_claim_alive(store_path):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 20)
    with Store(store_path, claim_timeout=1.0, heartbeat_every=0.05) as db:
        assert db.claim(config)
        first = _row(store_path, config.run_id)[0]["heartbeat"]
        with db.keep_alive():
            _wait_for(lambda: _row(store_path, config.run_id)[0]["heartbeat"] > first, "a heartbeat", 30)
        assert db.release([config.run_id]) == 1
        assert _row(store_path, config.run_id)[0]["status"] == "pending"


def test_a_sweep_releases_its_claims_when_interrupted(store_path, monkeypatch):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("adamlab.runner.train.execute", interrupt)
    with pytest.raises(KeyboardInterrupt):
        sweep(tiny.NAME, ["sgd"], [0.1], 2, 20, store_path, quiet=True)
    with Store(store_path) as db:
        assert set(db.statuses().values()) == {"pending"}


# -- several processes ---------------------------------------------------------------------------------


def _shared_grid_run(store_path, n_procs, tmp_path):
    kw = dict(optimizers=["sgd", "adam", "msvag"], lr_grid=[0.01, 0.03], seeds=1, budget=300, eval_every=100)
    go = tmp_path / "go"
    procs = [_start(store_path, kw, go) for _ in range(n_procs)]
    go.touch()
    reports = [_report(p) for p in procs]
    total = 6
    con = sqlite3.connect(store_path)
    rows = con.execute("SELECT status, attempts FROM runs").fetchall()
    con.close()
    assert len(rows) == total
    assert all(status == "finished" for status, _ in rows)
    assert [a for _, a in rows] == [1] * total, "a run was trained more than once"
    assert sum(r["ran"] for r in reports) == total
    for r in reports:  # every sweep returns with its whole grid done, by itself or the others
        assert r["ran"] + r["skipped"] == total and r["failed"] == 0
    return reports


@posix_only
def test_two_processes_share_one_grid(store_path, tmp_path):
    store_path.parent.mkdir(parents=True)
    _shared_grid_run(store_path, 2, tmp_path)


@posix_only
@pytest.mark.slow
def test_four_processes_share_one_grid(store_path, tmp_path):
    store_path.parent.mkdir(parents=True)
    _shared_grid_run(store_path, 4, tmp_path)


def _running_of(path, pid, but):
    con = sqlite3.connect(path, timeout=30)
    try:
        return [r for (r,) in con.execute("SELECT run_id FROM runs WHERE status='running' AND owner_pid=?",
                                            (pid,)) if r != but]
    except sqlite3.OperationalError:
        return []
    finally:
        con.close()


@posix_only
def test_overlapping_sweep_killed_leaves_the_finished_run_alone(store_path, tmp_path):
    """The issue's scenario: sweep A trains sgd; sweep B (msvag, sgd, adam) starts while A runs, and is
    killed with SIGKILL later on.

    Before the fix B trained A's sgd run again (mark_running demoted it to 'running', attempts 2) and the
    kill left it so. Now B never touches it: we kill -9 B the moment the row changes, or else while B
    trains a run of its own after A has finished; the finished row keeps its status, attempts and
    metric rows, and a rerun completes the grid without training it again.
    """
    store_path.parent.mkdir(parents=True)
    lrs = [0.01, 0.02, 0.03, 0.05]
    common = dict(seeds=1, budget=1500, eval_every=500)
    (sgd,) = expand_grid(tiny.NAME, ["sgd"], [0.01], 1, 1500, eval_every=500)
    go = tmp_path / "go"
    b = _start(store_path, dict(optimizers=["msvag", "sgd", "adam"], lr_grid=lrs, **common), go)  # waits
    a = _start(store_path, dict(optimizers=["sgd"], lr_grid=[0.01], **common))
    try:
        _wait_for(lambda: (_row(store_path, sgd.run_id)[0] or {}).get("status") == "running", "A's claim")
        go.touch()  # B starts while A trains sgd
        assert _report(a)["finished"] == 1
        done_row, n_metrics = _row(store_path, sgd.run_id)
        assert done_row["status"] == "finished" and n_metrics > 0

        def changed():
            row, n = _row(store_path, sgd.run_id)
            return (row["status"], row["attempts"], n) != ("finished", done_row["attempts"], n_metrics)

        _wait_for(lambda: changed() or _running_of(store_path, b.pid, sgd.run_id) or b.poll() is not None,
                  "B to train a run of its own", timeout=240)
        assert b.poll() is None, "B ended before it could be killed"
        os.kill(b.pid, signal.SIGKILL)
        b.wait(timeout=30)
        row, n = _row(store_path, sgd.run_id)
        assert (row["status"], row["attempts"], row["finished_at"], n) == (
            "finished", 1, done_row["finished_at"], n_metrics)
    finally:
        for p in (a, b):
            if p.poll() is None:
                p.kill()
                p.wait()
    rep = sweep(tiny.NAME, ["msvag", "sgd", "adam"], lrs, store=store_path, quiet=True, **common)
    assert rep.finished + rep.skipped == 12
    row, n = _row(store_path, sgd.run_id)
    assert (row["status"], row["attempts"], row["finished_at"], n) == (
        "finished", 1, done_row["finished_at"], n_metrics)


@posix_only
@pytest.mark.slow
def test_waiting_sweep_takes_over_when_the_owner_is_killed(store_path):
    """B waits for the run A holds; kill -9 A, and B takes the run over and finishes it."""
    store_path.parent.mkdir(parents=True)
    kw = dict(optimizers=["sgd"], lr_grid=[0.01], seeds=1, budget=200000, eval_every=1000)
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.01], 1, 200000, eval_every=1000)
    a = _start(store_path, kw)
    try:
        _wait_for(lambda: (_row(store_path, config.run_id)[0] or {}).get("status") == "running", "A's claim")
        b = _start(store_path, dict(kw, budget=200000))
        try:
            time.sleep(1.0)  # B has found the run held and waits
            assert _row(store_path, config.run_id)[0]["owner_pid"] == a.pid
            os.kill(a.pid, signal.SIGKILL)
            a.wait(timeout=30)
            _wait_for(lambda: _row(store_path, config.run_id)[0]["owner_pid"] == b.pid, "B's takeover", 60)
            b.kill()  # B has shown it took over; no need to train 200k steps
            b.wait(timeout=30)
        finally:
            if b.poll() is None:
                b.kill()
                b.wait()
        row = _row(store_path, config.run_id)[0]
        assert (row["status"], row["attempts"]) == ("running", 2)
    finally:
        if a.poll() is None:
            a.kill()
            a.wait()
