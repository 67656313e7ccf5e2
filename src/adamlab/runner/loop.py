"""The training-loop core: eval points, records, epochs and the divergence policy, for K >= 1 runs.

One implementation serves the serial loop (:func:`adamlab.runner.train.execute`, K = 1) and the batched
one (:func:`adamlab.runner.backends.vmap_train.train_block`, K runs that share steps, batch size, eval
cadence and schedule). The loops only compute losses, gradients and metrics; this core decides what is
recorded and when a run stops.

Metrics at each eval point (every ``eval_every`` steps, at step 0 and after the last step): ``step``,
``epoch`` (when the problem has epochs), ``batch_loss`` (mean training loss over the mini-batches since
the previous eval point), the problem's ``evaluate`` metrics, ``train_loss`` (the problem's own when
``evaluate`` gives one, else ``batch_loss``), ``lr`` (after the schedule) and ``wall_time`` (seconds
since the run started).

Divergence policy: if a training loss (or an ``evaluate`` metric) is not finite, the run stops and is
marked ``"diverged"``; ``diverged_step`` is the step at which it happened, and every metric recorded
before it (all finite) is kept, plus ``batch_loss`` since the last eval point when there is one.

Streaming: with a ``sink`` (the results store), the records are handed to ``sink.stage`` at an eval
point once more than ``chunk`` eval-point records are held (over all K runs), so memory stays bounded
however long the run; the store moves them into its ``metrics`` table only with the run's final
commit (see :mod:`adamlab.store.core`).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from adamlab.runs.config import RunConfig
from adamlab.runs.result import RunResult, RunStatus, utcnow
from adamlab.runs.schedules import Schedule

#: Eval-point records (summed over the runs of a loop) held in memory before they are staged: about
#: 125 MB at ~1.25 KB per record. A block of 640 runs x 100 eval points (64,000) is not staged at all.
DEFAULT_CHUNK = 100_000
#: Environment override of the chunk a sweep uses (``ADAMLAB_METRIC_CHUNK=100``).
CHUNK_ENV = "ADAMLAB_METRIC_CHUNK"


def default_chunk() -> int:
    """:data:`DEFAULT_CHUNK`, or the integer >= 1 in ``$ADAMLAB_METRIC_CHUNK``."""
    value = os.environ.get(CHUNK_ENV)
    if value is None:
        return DEFAULT_CHUNK
    try:
        chunk = int(value)
    except ValueError:
        chunk = 0
    if chunk < 1:
        raise ValueError(f"{CHUNK_ENV} must be an integer >= 1; got {value!r}")
    return chunk


#: Without ``checkpoint_every``, a run (or a batched block) in a sweep is checkpointed once this many
#: seconds of its work have passed since it started or was last checkpointed, so an interrupted sweep
#: loses at most this much work per run in flight. Checkpoints never change a result (a resumed run
#: ends bit-identical), so writing them by the clock keeps "same program, same bits".
DEFAULT_CHECKPOINT_SECONDS = 180.0


class CheckpointPolicy:
    """When a run in progress is checkpointed: every ``every`` steps, and (``seconds``) once that many
    seconds have passed since the last checkpoint or the start; never at or after the last step.

    Parameters
    ----------
    every:
        Steps between checkpoints, or None.
    seconds:
        Seconds of work between checkpoints, or None.
    steps:
        The run's length (no checkpoint at step ``steps``: the run ends there).
    """

    def __init__(self, every: int | None, seconds: float | None, steps: int) -> None:
        if every is not None and (isinstance(every, bool) or int(every) != every or every < 1):
            raise ValueError(f"checkpoint_every must be an integer >= 1; got {every!r}")
        if seconds is not None and not float(seconds) > 0:
            raise ValueError(f"checkpoint_seconds must be a number > 0; got {seconds!r}")
        self.every = None if every is None else int(every)
        self.seconds = None if seconds is None else float(seconds)
        self.steps = int(steps)
        self.last = time.perf_counter()

    @property
    def enabled(self) -> bool:
        return self.every is not None or self.seconds is not None

    def due(self, step: int) -> bool:
        """Whether to checkpoint after ``step``."""
        if step >= self.steps:
            return False
        if self.every is not None and step % self.every == 0:
            return True
        return self.seconds is not None and time.perf_counter() - self.last >= self.seconds

    def saved(self) -> None:
        """A checkpoint was just written: the clock starts again."""
        self.last = time.perf_counter()


class MetricSink(Protocol):
    """Where a run in progress streams its metrics (:class:`adamlab.store.core.Store` is one)."""

    def stage(self, rows: Iterable[tuple[str, int, str, float]]) -> None: ...

    def discard_staged(self, run_ids: Sequence[str], after_step: int | None = None) -> None: ...


class LoopCore:
    """Records and statuses of K runs trained in lockstep (see the module docstring).

    Parameters
    ----------
    configs:
        The K runs; they share ``steps``, ``batch_size``, ``eval_every`` and ``schedule``.
    n_train:
        Training-set size (for ``epoch``), or None for a synthetic stream.
    sink, chunk:
        Stream records to ``sink`` once more than ``chunk`` eval-point records are held.
    """

    def __init__(self, configs: Sequence[RunConfig], n_train: int | None, *, sink: MetricSink | None = None,
                 chunk: int = DEFAULT_CHUNK, started_at: str | None = None, elapsed: float = 0.0) -> None:
        first = configs[0]
        for c in configs[1:]:
            if (c.steps, c.batch_size, c.eval_every, dict(c.schedule)) != (
                    first.steps, first.batch_size, first.eval_every, dict(first.schedule)):
                raise ValueError("runs trained together must share steps, batch size, eval cadence and schedule")
        if int(chunk) < 1:
            raise ValueError(f"chunk must be an integer >= 1; got {chunk!r}")
        self.configs = list(configs)
        self.k = len(self.configs)
        self.steps, self.batch_size, self.eval_every = first.steps, first.batch_size, first.eval_every
        self.schedule = Schedule(**first.schedule)
        self.n_train = n_train
        self.sink, self.chunk = sink, int(chunk)
        self.records: list[dict[int, dict[str, float]]] = [{} for _ in range(self.k)]
        self.status = [RunStatus.FINISHED] * self.k
        self.diverged_step: list[int | None] = [None] * self.k
        self.active = [True] * self.k
        self.loss_sum = torch.zeros(self.k, dtype=torch.float64)
        self.loss_n = 0
        self.started_at = started_at or utcnow()
        self.t0 = time.perf_counter() - elapsed
        self._held = 0  # eval-point records held since the last flush

    # -- cadence ------------------------------------------------------------------------------------
    def lr_factor(self, t: int) -> float:
        """The schedule's factor of the base learning rate at step ``t`` (1-based)."""
        return self.schedule.factor(t)

    def is_eval_step(self, step: int) -> bool:
        return step % self.eval_every == 0 or step == self.steps

    def epoch(self, at: int) -> dict[str, float]:
        # a batch larger than the training set is the whole set: one epoch per step
        return {} if self.n_train is None else {"epoch": at * min(self.batch_size, self.n_train) / self.n_train}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    @property
    def any_active(self) -> bool:
        return any(self.active)

    # -- records ------------------------------------------------------------------------------------
    def record(self, run: int, at: int, values: Mapping[str, float]) -> None:
        rec = self.records[run].setdefault(at, {"step": float(at)})
        rec.update({key: float(v) for key, v in values.items()})

    def eval_point(self, at: int, metrics: Sequence[Mapping[str, float]] | Mapping[str, Sequence[float]],
                   lrs: Sequence[float]) -> list[int]:
        """Record the eval point at step ``at`` for every active run; return the runs that diverged here.

        ``metrics``: one dict per run (``{}`` for inactive runs), or one sequence of K values per name.
        """
        if isinstance(metrics, Mapping):  # columns: finiteness checked as one tensor operation per name
            names = list(metrics)
            tensors = [v.detach().cpu() if isinstance(v, Tensor) else torch.tensor(list(v), dtype=torch.float64)
                       for v in metrics.values()]  # a block's metrics may live on its device
            columns = [t.tolist() for t in tensors]
            good = torch.stack([torch.isfinite(t) for t in tensors]).all(0).tolist() if tensors else [True] * self.k
            per_run: list[Mapping[str, float]] | None = None
        else:
            per_run = list(metrics)
        mean = (self.loss_sum / self.loss_n).tolist() if self.loss_n else None
        epoch = self.epoch(at)
        wall = self.elapsed()
        lr_values = list(lrs)
        ended = []
        for run in range(self.k):
            if not self.active[run]:
                continue
            if per_run is None and good[run]:  # the fast path of a batched block
                point = dict(zip(names, [col[run] for col in columns], strict=True))
                ok = True
            else:
                values = per_run[run] if per_run is not None else {n: col[run] for n, col in zip(names, columns,
                                                                                               strict=True)}
                point = {key: float(v) for key, v in values.items() if math.isfinite(v)}
                ok = len(point) == len(values)
            point.update(epoch)
            point["lr"] = float(lr_values[run])
            if mean is not None:
                point["batch_loss"] = mean[run]
                point.setdefault("train_loss", mean[run])
            point["wall_time"] = wall
            records = self.records[run]
            if at in records:
                records[at].update(point)
            else:
                point["step"] = float(at)
                records[at] = point
            self._held += 1
            if not ok:
                self._diverge(run, at)
                ended.append(run)
        self.loss_sum.zero_()
        self.loss_n = 0
        if self.sink is not None and self._held > self.chunk:
            self.flush()
        return ended

    def check_losses(self, t: int, values: Tensor | float) -> tuple[list[int], Tensor | None]:
        """The training losses of step ``t`` (``[K]`` float64, or a float for K = 1): mark the runs whose
        loss is not finite as diverged at ``t`` (recording ``batch_loss`` since the last eval point at the
        previous step). Returns those runs and the finite mask (None when all are finite)."""
        if not isinstance(values, Tensor):
            if math.isfinite(values):
                return [], None
            values = torch.tensor([values], dtype=torch.float64)
        finite = torch.isfinite(values)
        if bool(finite.all()):
            return [], None
        ended = []
        for run in (~finite).nonzero().flatten().tolist():
            if self.active[run]:
                if self.loss_n:
                    self.record(run, t - 1, {**self.epoch(t - 1),
                                             "batch_loss": float(self.loss_sum[run]) / self.loss_n})
                self._diverge(run, t)
                ended.append(run)
        return ended, finite

    def add_losses(self, values: Tensor | float, finite: Tensor | None = None) -> None:
        """Add step losses to the running sums behind ``batch_loss`` (non-finite ones count as 0)."""
        if finite is not None:
            values = torch.where(finite, values, torch.zeros_like(values))  # type: ignore[arg-type]
        self.loss_sum += values
        self.loss_n += 1

    def _diverge(self, run: int, at: int) -> None:
        self.status[run], self.diverged_step[run] = RunStatus.DIVERGED, at
        self.active[run] = False

    # -- streaming ------------------------------------------------------------------------------------
    def begin(self, after_step: int | None = None) -> None:
        """A new attempt of these runs: drop what an earlier attempt staged (after ``after_step`` only,
        when resuming from a checkpoint taken there)."""
        if self.sink is not None:
            self.sink.discard_staged([c.run_id for c in self.configs], after_step)

    def flush(self) -> None:
        """Hand every held record to the sink and forget it."""
        if self.sink is None:
            return
        rows = []
        for config, records in zip(self.configs, self.records, strict=True):
            run_id = config.run_id
            for step, rec in records.items():
                rows.extend((run_id, step, name, value) for name, value in rec.items()
                            if name != "step" and math.isfinite(value))
            records.clear()
        if rows:
            self.sink.stage(rows)
        self._held = 0

    # -- results --------------------------------------------------------------------------------------
    def sorted_records(self, run: int) -> list[dict[str, float]]:
        return [self.records[run][s] for s in sorted(self.records[run])]

    def result(self, run: int, *, execution: dict[str, Any] | None = None) -> RunResult:
        """Run ``run``'s result with the records still held (the rest are staged in the sink)."""
        self.active[run] = False
        return RunResult(self.configs[run], self.status[run], self.sorted_records(run),
                         diverged_step=self.diverged_step[run], wall_time=self.elapsed(),
                         started_at=self.started_at, finished_at=utcnow(),
                         execution=None if execution is None else dict(execution))
