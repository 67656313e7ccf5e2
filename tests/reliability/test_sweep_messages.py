"""Items 10 and 13 of issue 23 (sweep): an unwritable or full checkpoint folder is found when the
sweep starts, before any run trains; a checkpoint write that fails names its file; a sweep that
waits for runs another process holds says so."""

from __future__ import annotations

import errno
import os
import subprocess
import time

import pytest

from adamlab.runner import Store, expand_grid, sweep
from adamlab.runner.checkpoint import save_checkpoint
from tests.runner import runner_tiny_problem as tiny


def test_a_checkpoint_folder_that_cannot_be_created_stops_the_sweep_before_training(store_path):
    store_path.parent.mkdir(parents=True)
    blocker = store_path.parent / (store_path.name + ".checkpoints")
    blocker.write_text("a file where the folder should be")
    with pytest.raises(ValueError, match="checkpoint folder .*test.sqlite.checkpoints.* cannot be written"):
        sweep(tiny.NAME, ["sgd"], [0.1, 0.01], 1, 20, store_path, checkpoint_every=5, quiet=True)
    with Store(store_path, readonly=True) as db:
        assert all(r["status"] == "pending" for r in db.runs())


def test_a_full_checkpoint_folder_stops_the_sweep_before_training(store_path, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(ValueError, match="checkpoint folder .* cannot be written: No space left on device"):
        sweep(tiny.NAME, ["sgd"], [0.1], 1, 20, store_path, checkpoint_every=5, quiet=True)
    monkeypatch.undo()
    with Store(store_path, readonly=True) as db:
        assert all(r["status"] == "pending" for r in db.runs())


def test_a_failed_checkpoint_write_names_the_file(tmp_path, monkeypatch):
    import torch

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", full)
    path = tmp_path / "ck" / "run.pt"
    with pytest.raises(OSError, match=f"cannot write checkpoint .*{path.name}.*No space left"):
        save_checkpoint(path, {"run_id": "x"})


def test_a_waiting_sweep_says_what_it_waits_for(store_path, capfd):
    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.1], 1, 10)
    holder = subprocess.Popen(["sleep", "60"])
    try:
        with Store(store_path, claim_timeout=2.0, heartbeat_every=0.5) as db:
            db.plan([config])
            db._db.execute("UPDATE runs SET status='running', owner_pid=?, owner_host=?, heartbeat=?"
                           " WHERE run_id=?", (holder.pid, db.host, time.time(), config.run_id))
            rep = sweep(tiny.NAME, ["sgd"], [0.1], 1, 10, db, quiet=True)
        assert rep.finished == 1  # taken over once the heartbeat is older than claim_timeout
    finally:
        holder.kill()
        holder.wait()
    err = capfd.readouterr().err
    assert f"waiting for 1 run(s) held by another process (pid {holder.pid} on " in err, err
    assert "taken over if it dies or sends no heartbeat for 2 s" in err
