"""Issue 24, deliverables 2 and 3: progress inside runs carries the run's AND the whole job's ETA on every
backend (serial, vmap, ray), every backend checkpoints by time by default (the Ray worker too), and a
sweep leaves no empty checkpoint folder."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from adamlab import cli
from adamlab.runner import Store, progress, sweep
from adamlab.runner.backends import RunContext
from adamlab.runner.backends import ray as ray_backend
from adamlab.runner.sweep import expand_grid, run_configs

SWEEP = ["sweep", "quadratic.noisy", "--option", "d=10", "--optimizers", "sgd,adam", "--lr-grid", "0.01,0.1,1",
         "--steps", "30"]
RUNS = 6


def _job_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if " | job: " in line]


@pytest.mark.parametrize("backend", ["serial", "vmap"])
def test_run_lines_carry_run_and_job_eta_off_a_terminal(tmp_path, capsys, monkeypatch, backend):
    monkeypatch.setattr(progress, "RUN_LINE_INTERVAL", 0.0)  # a line per step: the runs here are short
    code = cli.main([*SWEEP, "--store", str(tmp_path / "s.sqlite"), "--backend", backend])
    assert code == 0
    err = capsys.readouterr().err
    assert "\r" not in err and "\x1b[" not in err
    lines = _job_lines(err)
    assert lines, err
    run_part, job_part = lines[0].split(" | job: ")
    assert " steps, " in run_part and ", eta " in run_part  # the run's (or the block's) own ETA
    assert job_part.startswith(f"0/{RUNS} runs, ") and ", eta " in job_part  # the whole job's
    if backend == "vmap":  # one block of all six runs: its steps count six times into the job
        assert run_part.startswith("sgd x3: ") or run_part.startswith("adam x3: ")
    # later lines of the job know runs are done
    assert any(line.split(" | job: ")[1].startswith(f"3/{RUNS} runs") for line in lines), err


def test_job_spans_tuning_and_reruns_in_the_sweep_lines(tmp_path, capsys):
    """``sweep --rerun-seeds``: the job is the tuning sweep plus the reruns (sized by the plan before the
    reruns' lr is known), and the sweeps' own lines say where the job is."""
    code = cli.main([*SWEEP, "--store", str(tmp_path / "s.sqlite"), "--rerun-seeds", "2"])
    assert code == 0
    err = capsys.readouterr().err
    sweep_lines = [line for line in err.splitlines() if line.startswith("sweep: ") and " | job: " in line]
    assert sweep_lines, err
    assert all(f"/{RUNS + 2 * 2} runs" in line.split(" | job: ")[1] for line in sweep_lines)


def test_job_eta_from_plan_then_from_rate(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    job = progress.Job(planned_runs=4, planned_steps=400, planned_seconds=40.0)
    job.add([("a", 100), ("b", 100)])  # the first phase; the rest only planned
    assert job.total_runs == 4 and job.total_steps == 400
    assert job.eta() == pytest.approx(40.0)  # nothing trained: the plan's estimate
    job.finish(["a"])  # done before (skipped): its steps are no longer left, and not part of the rate
    assert job.eta() == pytest.approx(30.0)
    job.advance(1, 50)
    clock[0] += 10.0  # 50 steps in 10 s: 5 steps/s; 400 - 100 - 50 = 250 steps left
    assert job.eta() == pytest.approx(50.0)
    assert job.line() == "job: 1/4 runs, 10.0 s, eta 50.0 s"
    job.close_bar(1)
    job.finish(["b"])
    assert job.steps_left() == 200 and job.eta() == pytest.approx(40.0)
    job.add([("c", 100), ("d", 100)])  # the second phase
    job.finish(["c", "d"], trained=[100, 100])  # runs no bar counted (Ray): their steps make the rate
    assert job.eta() == 0.0 and job.trained == 250


def test_job_scope_outermost_wins():
    with progress.job_scope(10, 1000) as outer:
        with progress.job_scope() as inner:
            assert inner is outer and progress.current_job() is outer
    assert progress.current_job() is None


# -- the Ray backend: progress lines while it waits, and the worker's time-based checkpoints --------


class _Ref:
    def __init__(self, value) -> None:
        self.value = value


class _FakeRay:
    """Enough of ``ray`` for :class:`RayBackend.run`: tasks run when submitted; ``wait`` first times
    out ``idle`` times (a task still in flight), then returns one ready task."""

    def __init__(self, idle: int) -> None:
        self.idle, self.calls = idle, []

    def is_initialized(self) -> bool:
        return True

    def remote(self, **_resources):
        def wrap(fn):
            def submit(*args):
                self.calls.append(args)
                return _Ref(fn(*args))
            return SimpleNamespace(remote=submit)
        return wrap

    def wait(self, refs, num_returns=1, timeout=None):
        assert timeout is not None  # the driver looks up between waits, to print progress
        if self.idle:
            self.idle -= 1
            return [], refs
        return refs[:1], refs[1:]

    def get(self, ref):
        return ref.value


def _ray(idle: int) -> ray_backend.RayBackend:
    backend = object.__new__(ray_backend.RayBackend)
    backend.ray, backend.address, backend.num_cpus, backend.vmap, backend.threads = _FakeRay(idle), None, None, False, 1
    return backend


def test_ray_prints_task_and_job_eta_while_waiting(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(progress, "RUN_LINE_INTERVAL", 0.0)
    monkeypatch.setattr(ray_backend, "WAIT_SECONDS", 0.0)
    backend = _ray(idle=2)
    import sys

    monkeypatch.setattr(sys.modules["adamlab.runner.sweep"], "get_backend", lambda name, **options: backend)
    configs = expand_grid(("quadratic.noisy", {"d": 5}), ["sgd"], [0.1], 2, 10)
    rep = run_configs(configs, Store(tmp_path / "s.sqlite"), "ray", quiet=False)
    assert rep.finished == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("ray: ")]
    assert len(lines) == 2
    assert lines[0].startswith("ray: 2 tasks (2 runs) in flight, the oldest for ")
    assert " | job: 0/2 runs, " in lines[0]
    # the sweep counted the Ray runs' steps when they ended: the job's rate comes from them
    assert "eta ~" not in lines[0]  # no run has finished yet: no estimate of a task's time


def test_ray_worker_checkpoints_by_time(tmp_path, monkeypatch):
    """The Ray task gets the sweep's checkpoint folder and checkpoint_seconds (default 180 s in a sweep)
    and its worker checkpoints by the clock like the serial and vmap backends."""
    import adamlab.runner.train as train

    saved = []
    real = train.save_checkpoint
    monkeypatch.setattr(train, "save_checkpoint", lambda path, payload: (saved.append(payload["step"]),
                                                                        real(path, payload)))
    monkeypatch.setattr(ray_backend, "WAIT_SECONDS", 0.0)
    backend = _ray(idle=0)
    configs = expand_grid(("quadratic.noisy", {"d": 5}), ["sgd"], [0.1], 1, 20)
    context = RunContext(checkpoint_dir=tmp_path / "ck", checkpoint_seconds=1e-9)
    results = list(backend.run(configs, context))
    assert [r.status for r in results] == ["finished"]
    args = backend.ray.calls[0]
    assert args[1] == str(tmp_path / "ck") and args[2] is None and args[3] == 1e-9
    assert saved == list(range(1, 20))  # due after every step: the clock says so
    # the sweep's default reaches the worker
    context = RunContext(checkpoint_dir=tmp_path / "ck", checkpoint_seconds=180.0)
    list(_ray(idle=0).run(configs, context))


def test_ray_worker_vmap_block_checkpoints_by_time(tmp_path, monkeypatch):
    import adamlab.runner.backends.vmap_train as vmap_train

    saved = []
    real = vmap_train.save_checkpoint
    monkeypatch.setattr(vmap_train, "save_checkpoint", lambda path, payload: (saved.append(path), real(path, payload)))
    configs = expand_grid(("quadratic.noisy", {"d": 5}), ["sgd"], [0.1, 0.01], 1, 5)
    out = ray_backend.run_on_worker([c.to_dict() for c in configs], str(tmp_path / "ck"), None, 1e-9, True, 1)
    assert [o["status"] for o in out] == ["finished", "finished"]
    assert saved and all(str(p).startswith(str(tmp_path / "ck" / "block-")) for p in saved)


# -- no empty checkpoint folder --------------------------------------------------------------------


def test_sweep_leaves_no_empty_checkpoint_folder(tmp_path):
    store = tmp_path / "s.sqlite"
    sweep(("quadratic.noisy", {"d": 5}), ["sgd"], [0.1], 1, 10, store, quiet=True, checkpoint_every=3)
    assert not (tmp_path / "s.sqlite.checkpoints").exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("s.sqlite-")) == ["s.sqlite"]


def test_interrupted_sweep_keeps_its_checkpoints(tmp_path, monkeypatch):
    """A folder that holds a checkpoint stays (the rerun resumes from it)."""
    import adamlab.runner.train as train

    real = train.save_checkpoint

    def save_then_stop(path, payload):
        real(path, payload)
        raise KeyboardInterrupt

    monkeypatch.setattr(train, "save_checkpoint", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        sweep(("quadratic.noisy", {"d": 5}), ["sgd"], [0.1], 1, 10, tmp_path / "s.sqlite", quiet=True,
              checkpoint_every=3)
    assert [p.suffix for p in (tmp_path / "s.sqlite.checkpoints").iterdir()] == [".pt"]


