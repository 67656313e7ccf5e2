"""The outcome of one run: status, metrics per step, timings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import Enum
from typing import Any

from adamlab.runs.config import RunConfig


class RunStatus(str, Enum):
    """A run's state in the results store (a ``str`` subclass: it is stored and compared as its value).

    ``FINISHED`` and ``DIVERGED`` are final: a sweep skips them and never changes them again.
    ``RUNNING`` is a claim by a live process (or a crash, which a later sweep takes over), and
    ``FAILED`` (an exception) is retried by default.
    """

    PENDING = "pending"
    RUNNING = "running"
    FINISHED = "finished"
    DIVERGED = "diverged"
    FAILED = "failed"

    def __str__(self) -> str:
        return self.value

    @property
    def done(self) -> bool:
        """Final: the run is never trained again."""
        return self in DONE_STATUSES


#: The final states (a sweep skips runs in them).
DONE_STATUSES: frozenset[RunStatus] = frozenset({RunStatus.FINISHED, RunStatus.DIVERGED})


@dataclass
class RunResult:
    """One run's outcome.

    Attributes
    ----------
    config:
        The run's configuration (``config.run_id`` is its key).
    status:
        ``RunStatus.FINISHED``, ``DIVERGED`` (a non-finite loss; the run stopped, metrics up to then
        are kept) or ``FAILED`` (an exception; ``error`` says which). A plain string is converted.
    records:
        One dict per recorded step, each with ``"step"`` and metric names -> float (``epoch``,
        ``batch_loss`` = mean mini-batch loss since the previous eval point, the problem's ``evaluate``
        metrics, ``train_loss`` (the problem's, else ``batch_loss``), ``lr``, ``wall_time``, and hook
        metrics; see :mod:`adamlab.runner.train`). Sorted by step.
    diverged_step:
        The optimizer step whose loss was not finite (``None`` unless diverged).
    execution:
        How the run was trained, e.g. ``{"backend": "vmap", "block_size": 64}`` (stored in the runs
        table's ``execution`` column): batched runs agree with serial ones to rounding only.
    """

    config: RunConfig
    status: RunStatus
    records: list[dict[str, float]] = field(default_factory=list)
    diverged_step: int | None = None
    error: str | None = None
    wall_time: float = 0.0
    started_at: str | None = None
    finished_at: str | None = None
    execution: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        self.status = RunStatus(self.status)

    @property
    def run_id(self) -> str:
        return self.config.run_id

    def series(self, name: str) -> tuple[list[int], list[float]]:
        """Steps and values of metric ``name``."""
        steps, values = [], []
        for rec in self.records:
            if name in rec:
                steps.append(int(rec["step"]))
                values.append(float(rec[name]))
        return steps, values

    def final(self, name: str) -> float | None:
        """Last finite value of metric ``name`` (``None`` if never recorded)."""
        for rec in reversed(self.records):
            value = rec.get(name)
            if value is not None and math.isfinite(value):
                return float(value)
        return None

    def long_rows(self) -> list[tuple[int, str, float]]:
        """Metrics in long format ``(step, name, value)``, finite values only."""
        rows = []
        for rec in self.records:
            step = int(rec["step"])
            for name, value in rec.items():
                if name != "step" and value is not None and math.isfinite(float(value)):
                    rows.append((step, name, float(value)))
        return rows


def utcnow() -> str:
    """ISO-8601 UTC timestamp with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")
