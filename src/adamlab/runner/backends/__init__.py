"""Execution backends: who trains the runs of a sweep.

The contract
------------
A backend module ``adamlab.runner.backends.<name>`` defines ``make_backend(**options) -> Backend``.
A :class:`Backend` has a ``name`` and one method::

    backend.run(configs: Sequence[RunConfig], context: RunContext) -> Iterator[RunResult]

- It yields exactly one :class:`~adamlab.runs.result.RunResult` per config, in any order, as soon
  as each run ends, so the caller can commit it to the store at once (a crash loses only the runs in
  flight). Backends never write to the store themselves.
- A run's own exception becomes a result with status ``"failed"`` and ``error`` set (use
  :func:`failed_result`); it must not stop the other runs.
- It calls ``context.start(configs)`` just before runs begin (``on_start_many`` for a whole block,
  else ``on_start`` per config).
- It may stream a run's metrics into ``context.metrics_sink`` while the run is in progress
  (:mod:`adamlab.runner.loop`); the result then holds only the rest, and the store joins them on commit.
- It may also define ``run_blocks(configs, context) -> Iterator[list[RunResult]]``: results that the
  caller commits together, in one transaction (:func:`result_batches`).
- It honours ``context.hooks``, ``context.checkpoint_path(config)``/``context.checkpoint_every``
  and ``context.progress`` where it can, trains on ``context.device`` (None: the CPU), and builds problems
  with ``context.problem_for(config)`` (which puts them on that device).
  ``RunConfig`` is plain data (``to_dict``/``from_dict``), so it can cross process boundaries.

``serial`` (this process, one run after another) is built in; ``vmap`` and ``ray`` are separate
modules. :func:`get_backend` finds every module in this package that defines ``make_backend``
(helper modules without it are not listed).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import traceback
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import torch

from adamlab.problems import Problem
from adamlab.runner.hooks import RunHook
from adamlab.runner.loop import MetricSink, default_chunk
from adamlab.runs.config import RunConfig, problem_key  # noqa: F401  (re-exported)
from adamlab.runs.result import RunResult, RunStatus, utcnow


@dataclass
class RunContext:
    """What a backend needs besides the configs.

    Attributes
    ----------
    hooks:
        Hooks for every run (their names are already part of each config).
    checkpoint_dir, checkpoint_every:
        Checkpoint every ``checkpoint_every`` steps into ``checkpoint_dir/<run_id>.pt`` (None: never).
    checkpoint_seconds:
        Also checkpoint once this many seconds of a run's (or a batched block's) work passed since its
        last checkpoint (the sweep's default: :data:`adamlab.runner.loop.DEFAULT_CHECKPOINT_SECONDS`).
    progress:
        Show per-run progress bars.
    on_start:
        Called with a config just before its run starts (the sweep marks it ``running``).
    on_start_many:
        Called with the configs of a block just before it starts (one store transaction); when None,
        ``on_start`` is called per config.
    problems:
        Problem instances already built, by :func:`problem_key` (a local cache).
    metrics_sink, chunk:
        Where runs stream their metrics while in progress (the results store), once more than ``chunk``
        eval-point records are held (see :mod:`adamlab.runner.loop`; default ``$ADAMLAB_METRIC_CHUNK`` or
        100,000); no sink: results hold all metrics.
    device:
        Where the runs train (a device from :func:`adamlab.runs.device.parse_device`; None: the CPU).
    """

    hooks: Sequence[RunHook] = ()
    checkpoint_dir: Path | None = None
    checkpoint_every: int | None = None
    progress: bool = False
    on_start: Callable[[RunConfig], None] | None = None
    problems: dict[str, Problem] = field(default_factory=dict)
    on_start_many: Callable[[Sequence[RunConfig]], None] | None = None
    metrics_sink: MetricSink | None = None
    chunk: int = field(default_factory=default_chunk)
    device: torch.device | None = None
    checkpoint_seconds: float | None = None

    def start(self, configs: Sequence[RunConfig]) -> None:
        """Announce that ``configs`` start now (``on_start_many``, else ``on_start`` per config)."""
        if self.on_start_many is not None:
            self.on_start_many(list(configs))
        elif self.on_start is not None:
            for config in configs:
                self.on_start(config)

    def checkpoint_path(self, config: RunConfig) -> Path | None:
        if self.checkpoint_dir is None or (self.checkpoint_every is None and self.checkpoint_seconds is None):
            return None
        return Path(self.checkpoint_dir) / f"{config.run_id}.pt"

    def block_checkpoint_path(self, name: str) -> Path | None:
        """Where a batched block named ``name`` (a hash of its runs) keeps its checkpoint, or None."""
        if self.checkpoint_dir is None or (self.checkpoint_every is None and self.checkpoint_seconds is None):
            return None
        return Path(self.checkpoint_dir) / f"block-{name}.pt"

    def problem_for(self, config: RunConfig) -> Problem:
        """The problem instance for ``config`` (built once per name + options)."""
        from adamlab.runner.train import build_problem

        key = problem_key(config.problem, config.problem_options)
        if key not in self.problems:
            self.problems[key] = build_problem(config.problem, dict(config.problem_options))
        return self.problems[key].set_device(self.device if self.device is not None else torch.device("cpu"))


@runtime_checkable
class Backend(Protocol):
    """Runs a list of configs and streams their results back (see the module docstring)."""

    name: str

    def run(self, configs: Sequence[RunConfig], context: RunContext) -> Iterator[RunResult]: ...


def result_batches(backend: Backend, configs: Sequence[RunConfig], context: RunContext) -> Iterator[list[RunResult]]:
    """The backend's results in commit units: its ``run_blocks`` lists where it has them, else one by one."""
    blocks = getattr(backend, "run_blocks", None)
    if blocks is not None:
        yield from blocks(configs, context)
        return
    for result in backend.run(configs, context):
        yield [result]


def failed_result(config: RunConfig, err: BaseException, started_at: str | None = None) -> RunResult:
    """A ``failed`` result whose ``error`` is the exception's type, message and last frame."""
    frames = traceback.extract_tb(err.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return RunResult(config, RunStatus.FAILED, error=f"{type(err).__name__}: {err}{where}",
                     started_at=started_at, finished_at=utcnow())


def names() -> list[str]:
    """Names of the available backends: modules in this package that define ``make_backend``.

    Helper modules (without ``make_backend``) are not backends. The check reads the source, so it
    imports nothing (a backend's optional dependency, e.g. Ray, is only needed when it is used).
    """
    out = []
    for m in pkgutil.iter_modules(__path__):
        if m.name.startswith("_"):
            continue
        spec = importlib.util.find_spec(f"{__name__}.{m.name}")
        origin = getattr(spec, "origin", None)
        try:
            source = Path(origin).read_text(encoding="utf-8") if origin else ""
        except OSError:
            continue
        if "def make_backend(" in source:
            out.append(m.name)
    return sorted(out)


def get_backend(name: str, **options: Any) -> Backend:
    """Build backend ``name`` with ``options``. Unknown names raise ``ValueError`` listing the known ones."""
    known = names()
    if name not in known:
        raise ValueError(f"unknown backend {name!r}; known backends: {', '.join(known)}")
    module = importlib.import_module(f"{__name__}.{name}")
    return module.make_backend(**options)
