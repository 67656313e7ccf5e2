"""A batched (vmap) block interrupted mid-run resumes from its checkpoint and ends bit-identical.

Also: Ctrl-C / SIGTERM release the sweep's claims and say what was kept; "resumed at step N".
"""

from __future__ import annotations

import inspect
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from adamlab.runner import Store, sweep
from adamlab.runner.backends import vmap_optim
from adamlab.runner.loop import DEFAULT_CHECKPOINT_SECONDS, CheckpointPolicy
from tests.runner import runner_tiny_problem as tiny

HERE = Path(__file__).parent
GRID = dict(optimizers=["adam"], lr_grid=[0.003, 0.01, 0.03], seeds=2, budget=60, eval_every=10)


def _metrics(path: Path) -> dict[str, dict[str, list[float]]]:
    """Every run's metrics except ``wall_time`` (the clock): run id -> name -> values by step."""
    with Store(path) as db:
        out = {}
        for row in db.runs():
            series = db.metrics(row["run_id"])
            out[row["run_id"]] = {name: pair for name, pair in series.items() if name != "wall_time"}
            assert row["status"] == "finished"
        return out


def _statuses(path: Path) -> list[str]:
    with Store(path) as db:
        return sorted(r["status"] for r in db.runs())


class _Interrupt:
    """Patch ``StackedOptimizer.step`` to raise KeyboardInterrupt at a given step and count steps."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, at: int | None) -> None:
        self.at, self.calls = at, 0
        original = vmap_optim.StackedOptimizer.step

        def step(opt, grads):
            self.calls += 1  # the block's steps, plus 2 of the throwaway trial (StackedOptimizer.trial)
            if self.at is not None and opt.step_count + 1 == self.at:
                raise KeyboardInterrupt
            return original(opt, grads)

        monkeypatch.setattr(vmap_optim.StackedOptimizer, "step", step)


def test_interrupted_block_resumes_from_checkpoint_bit_identical(tmp_path, monkeypatch, capsys):
    reference = tmp_path / "ref.sqlite"
    sweep(tiny.NAME, store=reference, quiet=True, backend="vmap", **GRID)

    store = tmp_path / "interrupted.sqlite"
    _Interrupt(monkeypatch, at=33)
    with pytest.raises(KeyboardInterrupt):
        sweep(tiny.NAME, store=store, quiet=True, backend="vmap", checkpoint_every=15, **GRID)
    err = capsys.readouterr().err
    assert "interrupted: 0 of 6 runs are done" in err and "6 runs in progress were released" in err
    assert "run the same command again to resume" in err
    assert _statuses(store) == ["pending"] * 6  # claims released, not left "running"
    files = list(Path(str(store) + ".checkpoints").glob("block-*.pt"))
    assert len(files) == 1  # one checkpoint for the whole block

    monkeypatch.undo()
    counter = _Interrupt(monkeypatch, at=None)
    rep = sweep(tiny.NAME, store=store, quiet=False, backend="vmap", checkpoint_every=15, **GRID)
    assert rep.finished == 6
    assert counter.calls == 2 + 60 - 30  # the trial's 2, then continued from the checkpoint at step 30, not from step 0
    assert "resumed at step 30 of 60" in capsys.readouterr().err
    assert not files[0].exists()  # removed when the block ended
    assert _metrics(store) == _metrics(reference)  # bit-identical, every metric at every step


def test_block_checkpoint_by_time_by_default(tmp_path, monkeypatch):
    """Without --checkpoint-every, a block is checkpointed once it has worked checkpoint_seconds."""
    store = tmp_path / "s.sqlite"
    _Interrupt(monkeypatch, at=25)
    with pytest.raises(KeyboardInterrupt):
        sweep(tiny.NAME, store=store, quiet=True, backend="vmap", checkpoint_seconds=1e-9, **GRID)
    assert len(list(Path(str(store) + ".checkpoints").glob("block-*.pt"))) == 1
    assert inspect.signature(sweep).parameters["checkpoint_seconds"].default == DEFAULT_CHECKPOINT_SECONDS <= 300


def test_checkpoint_policy():
    policy = CheckpointPolicy(10, None, 30)
    assert [s for s in range(1, 31) if policy.due(s)] == [10, 20]  # never at the last step
    assert not CheckpointPolicy(None, None, 30).enabled
    timed = CheckpointPolicy(None, 3600.0, 30)
    assert not timed.due(5)
    timed.last -= 3601
    assert timed.due(5)
    timed.saved()
    assert not timed.due(6)
    with pytest.raises(ValueError, match="checkpoint_every"):
        CheckpointPolicy(0, None, 30)
    with pytest.raises(ValueError, match="checkpoint_seconds"):
        CheckpointPolicy(None, 0.0, 30)


SCRIPT = f"""
import sys
sys.path.insert(0, {str(HERE)!r})
import runner_tiny_problem
runner_tiny_problem.ensure_registered()
from adamlab.runner import sweep
sweep(runner_tiny_problem.NAME, store=sys.argv[1], quiet=False, backend="vmap", checkpoint_every=500,
      optimizers=["adam"], lr_grid=[0.003, 0.01], seeds=1, budget=2_000_000, eval_every=100_000)
"""


@pytest.mark.skipif(os.name != "posix", reason="SIGTERM needs POSIX")
def test_sigterm_releases_claims_and_says_what_was_kept(tmp_path):
    store = tmp_path / "s.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(store)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "CI": "1"})
    try:
        deadline = time.monotonic() + 120
        while not list(Path(str(store) + ".checkpoints").glob("block-*.pt")):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no checkpoint was written"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert "2 runs in progress were released" in err and "resume there" in err
    assert _statuses(store) == ["pending", "pending"]


def test_serial_run_says_resumed_at_step(tmp_path, monkeypatch, capsys):
    from adamlab.runner import loop

    store = tmp_path / "s.sqlite"
    grid = dict(GRID, lr_grid=[0.01], seeds=1)

    def stop(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(loop.CheckpointPolicy, "saved", stop)  # interrupted right after the first checkpoint
    with pytest.raises(KeyboardInterrupt):
        sweep(tiny.NAME, store=store, quiet=True, backend="serial", checkpoint_every=15, **grid)
    assert "1 runs in progress were released" in capsys.readouterr().err
    monkeypatch.undo()
    sweep(tiny.NAME, store=store, quiet=False, backend="serial", checkpoint_every=15, **grid)
    assert "resumed at step 15 of 60" in capsys.readouterr().err
    reference = tmp_path / "ref.sqlite"
    sweep(tiny.NAME, store=reference, quiet=True, backend="serial", **grid)
    assert _metrics(store) == _metrics(reference)
