"""The ``ray`` backend: every run (or every vectorised block of runs) is a Ray task.

Select it with ``sweep(..., backend="ray", backend_options={"address": ADDR})`` or
``adamlab sweep --backend ray [--address ADDR]``. Without an address it starts a local Ray with
``num_cpus=2`` (and shuts it down afterwards); with one it connects to that cluster (``"auto"``: the
cluster this machine belongs to). Ray is an optional dependency: ``pip install 'adamlab[ray]'``.

What crosses the wire is plain data: each task gets ``RunConfig.to_dict()`` and rebuilds the problem
from its registered name and options on the worker (so the problem must be registered, and the data
reachable there under ``$ADAMLAB_DATA``); it returns the result's fields as a dict. Results stream back
as tasks finish (``ray.wait``), and the sweep commits each one to the store at once, as with any
backend, so resume works the same: finished and diverged runs are skipped, the rest rerun -- from
their checkpoint when the checkpoint directory is shared with the workers (always the case on a local
Ray). Workers checkpoint as the other backends do: every ``checkpoint_every`` steps and, in a sweep, by
default once a run (a block, with ``vmap=True``) has worked a few minutes since its last checkpoint
(``checkpoint_seconds``, :data:`adamlab.runner.loop.DEFAULT_CHECKPOINT_SECONDS`).

Progress: the runs train in other processes, so their bars are not seen here; instead, while it waits,
the backend prints one line every :data:`adamlab.runner.progress.RUN_LINE_INTERVAL` seconds with the
tasks in flight, the oldest one's ETA (from the finished runs' time) and the whole job's ETA.

``vmap=True`` sends each block of :func:`adamlab.runner.backends.vmap.plan_blocks` as one task,
trained by the vmap backend on the worker (with its serial fallback).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from adamlab.runner.backends import RunContext, failed_result
from adamlab.runner.progress import job_line_due, note
from adamlab.runs.config import RunConfig
from adamlab.runs.result import RunResult

INSTALL_HINT = "the ray backend needs Ray, which is not installed; install it with: pip install 'adamlab[ray]'"
DEFAULT_LOCAL_CPUS = 2
#: Seconds between two looks at the tasks in flight (for the progress line) while the sweep waits.
WAIT_SECONDS = 5.0


class RayUnavailable(ValueError):
    """Ray is not installed (the CLI turns this into a one-line error with the install hint, exit 2)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise RayUnavailable(INSTALL_HINT) from err
    return ray


def _result_fields(result: RunResult) -> dict[str, Any]:
    return {"run_id": result.run_id, "status": result.status, "records": result.records,
            "diverged_step": result.diverged_step, "error": result.error, "wall_time": result.wall_time,
            "started_at": result.started_at, "finished_at": result.finished_at, "execution": result.execution}


def run_on_worker(config_dicts: list[dict[str, Any]], checkpoint_dir: str | None, checkpoint_every: int | None,
                  checkpoint_seconds: float | None, vmap: bool, threads: int,
                  device: str = "cpu") -> list[dict[str, Any]]:
    """The task body: train the configs here, on ``device``, and return their results as plain dicts.

    Checkpoints go to ``checkpoint_dir`` (None: none) every ``checkpoint_every`` steps and every
    ``checkpoint_seconds`` seconds of work, as in the driver's own backends (:class:`RunContext`).
    """
    import torch

    from adamlab.runner.backends.serial import SerialBackend
    from adamlab.runner.backends.vmap import VmapBackend

    torch.set_num_threads(max(1, threads))
    configs = [RunConfig.from_dict(d) for d in config_dicts]
    context = RunContext(checkpoint_dir=None if checkpoint_dir is None else Path(checkpoint_dir),
                         checkpoint_every=checkpoint_every, checkpoint_seconds=checkpoint_seconds,
                         device=torch.device(device))
    backend = VmapBackend() if vmap else SerialBackend()
    return [_result_fields(r) for r in backend.run(configs, context)]


def waiting_line(pending: dict[Any, list[RunConfig]], submitted: dict[Any, float], run_seconds: list[float],
                 now: float) -> str:
    """``ray: 3 tasks (6 runs) in flight, the oldest for 2.0 min, eta ~3.0 min`` (the oldest task's eta
    from the finished runs' mean time; none before a run finished)."""
    runs = sum(len(unit) for unit in pending.values())
    oldest = max((now - submitted[ref] for ref in pending), default=0.0)
    text = f"ray: {len(pending)} tasks ({runs} runs) in flight, the oldest for {_seconds(oldest)}"
    if run_seconds:
        typical = sum(run_seconds) / len(run_seconds)
        text += f", eta ~{_seconds(max(0.0, typical - oldest))}"
    return text


def _seconds(s: float) -> str:
    return f"{s:.1f} s" if s < 60 else (f"{s / 60:.1f} min" if s < 3600 else f"{s / 3600:.1f} h")


class RayBackend:
    """Submits runs to Ray and yields their results as they finish."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, vmap: bool = False,
                 threads_per_task: int = 1) -> None:
        self.ray = _import_ray()
        if num_cpus is not None and (isinstance(num_cpus, bool) or int(num_cpus) != num_cpus or num_cpus < 1):
            raise ValueError(f"num_cpus must be an integer >= 1; got {num_cpus!r}")
        if int(threads_per_task) < 1:
            raise ValueError(f"threads_per_task must be an integer >= 1; got {threads_per_task!r}")
        self.address = address or os.environ.get("RAY_ADDRESS") or None
        self.num_cpus = num_cpus
        self.vmap = bool(vmap)
        self.threads = int(threads_per_task)

    def _connect(self) -> bool:
        """Start or join Ray; True when this call started it (and so must shut it down)."""
        ray = self.ray
        if ray.is_initialized():
            return False
        if self.address is None:
            os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no network from tests or laptops
            ray.init(num_cpus=self.num_cpus or DEFAULT_LOCAL_CPUS, include_dashboard=False,
                     log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=self.address, log_to_driver=False, configure_logging=False)
        return True

    def _units(self, configs: Sequence[RunConfig]) -> list[list[RunConfig]]:
        if not self.vmap:
            return [[c] for c in configs]
        from adamlab.runner.backends.vmap import plan_blocks

        return plan_blocks(configs)

    def run(self, configs: Sequence[RunConfig], context: RunContext) -> Iterator[RunResult]:
        ray = self.ray
        started = self._connect()
        try:
            device = "cpu" if context.device is None else str(context.device)
            gpus = 0
            if device.startswith("cuda"):  # a CUDA task asks Ray for a GPU of its own, which it sees as "cuda"
                device, gpus = "cuda", 1
            task = ray.remote(num_cpus=self.threads, num_gpus=gpus)(run_on_worker)
            checkpoints = context.checkpoint_dir is not None and (
                context.checkpoint_every is not None or context.checkpoint_seconds is not None)
            checkpoint_dir = str(context.checkpoint_dir) if checkpoints else None
            pending: dict[Any, list[RunConfig]] = {}
            submitted: dict[Any, float] = {}
            for unit in self._units(configs):
                for config in unit:
                    if context.on_start is not None:
                        context.on_start(config)
                ref = task.remote([c.to_dict() for c in unit], checkpoint_dir, context.checkpoint_every,
                                  context.checkpoint_seconds, self.vmap, self.threads, device)
                pending[ref] = unit
                submitted[ref] = time.perf_counter()
            run_seconds: list[float] = []
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1, timeout=WAIT_SECONDS)
                if not ready:
                    job = job_line_due(quiet=not context.progress)
                    if job is not None:
                        note(f"{waiting_line(pending, submitted, run_seconds, time.perf_counter())} | {job}")
                    continue
                for ref in ready:
                    unit = pending.pop(ref)
                    for result in self._collect(ref, unit):
                        if result.wall_time:
                            run_seconds.append(float(result.wall_time))
                        yield result
        finally:
            if started:
                ray.shutdown()

    def _collect(self, ref: Any, unit: list[RunConfig]) -> Iterator[RunResult]:
        by_id = {c.run_id: c for c in unit}
        try:
            fields_list = self.ray.get(ref)
        except Exception as err:  # noqa: BLE001 - a lost worker fails its runs, not the sweep
            for config in unit:
                yield failed_result(config, err)
            return
        seen = set()
        for fields in fields_list:
            config = by_id[fields.pop("run_id")]
            seen.add(config.run_id)
            yield RunResult(config, **fields)
        for config in unit:
            if config.run_id not in seen:
                yield failed_result(config, RuntimeError("the Ray task returned no result for this run"))


def make_backend(**options: Any) -> RayBackend:
    """Build the Ray backend. Options: ``address`` (None: start a local Ray), ``num_cpus`` (local Ray,
    default 2), ``vmap`` (one task per vectorised block), ``threads_per_task`` (torch threads, default 1).

    Raises :class:`RayUnavailable` (a ``ValueError``) with the install hint when Ray is not installed.
    """
    unknown = sorted(set(options) - {"address", "num_cpus", "vmap", "threads_per_task"})
    if unknown:
        raise ValueError(f"the ray backend takes options address, num_cpus, vmap, threads_per_task; got {unknown}")
    return RayBackend(**options)
