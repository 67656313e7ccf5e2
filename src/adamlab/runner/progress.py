"""Progress: one bar per sweep (runs done / total, ETA) and one per run (steps, loss), or log lines.

On a terminal (``sys.stderr.isatty()``) or in a notebook these are tqdm bars. Off a terminal (output redirected to a
file, a CI log, ``nohup``) redrawing bars would write a new line at every refresh, so instead:

- a sweep prints one line when it starts and one line per finished run
  (``sweep: 3/12 runs, 4.1 s, eta 12 s, finished=3 diverged=0 failed=0``);
- a run prints a periodic summary at most every :data:`RUN_LINE_INTERVAL` seconds (so short runs print
  nothing of their own), with the run's ETA and the whole job's
  (``adam x12: 500/2000 steps, 30.0 s, eta 1.5 min, loss=0.31 | job: 3/44 runs, 4.1 min, eta 2.3 h``).

The job is the whole command (a ``sweep`` with its reruns, every phase of a ``reproduce``): :func:`job_scope`
opens it (the outermost call wins, so the sweeps inside one ``reproduce`` share one job), each sweep adds its
runs, and its ETA is the steps left over the steps per second trained so far in this job (finished runs and
runs in progress); before any step is done, the plan's calibrated estimate when one was given. A backend
without bars in this process (Ray) has the sweep print the job's line every :data:`RUN_LINE_INTERVAL`
seconds while it waits (:func:`job_line_due`). On a terminal the run's bar carries the job's ETA in its
postfix, refreshed at each eval point.

tqdm's ``TQDM_*`` environment variables are honoured in both modes, read when a bar is made (tqdm itself
reads them once, at import): ``TQDM_DISABLE=1`` silences everything, ``TQDM_MININTERVAL=S`` is the least
time between two refreshes (off a terminal: between two lines, the last line is always printed), and the
others (``TQDM_NCOLS``, ``TQDM_ASCII``, ``TQDM_COLOUR``, ...) are passed to the bars.
``quiet=True`` (the CLI's ``-q``) silences both modes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import warnings
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, TextIO

from tqdm.auto import tqdm

#: Off a terminal, the least time in seconds between two summary lines of one run.
RUN_LINE_INTERVAL = 30.0

#: The tqdm keyword arguments taken from ``TQDM_<NAME>`` environment variables, with their types.
_ENV_TYPES: dict[str, type] = {
    "disable": bool, "leave": bool, "dynamic_ncols": bool, "ascii": str, "colour": str, "bar_format": str,
    "mininterval": float, "maxinterval": float, "miniters": float, "smoothing": float, "delay": float,
    "ncols": int, "nrows": int, "position": int, "unit_scale": bool,
}
_FALSE = {"", "0", "false", "no", "off"}


def tqdm_env(environ: Any = None) -> dict[str, Any]:
    """The ``TQDM_*`` settings in ``environ`` (default ``os.environ``) as tqdm keyword arguments.

    Booleans are false for ``""``, ``0``, ``false``, ``no``, ``off`` (any case) and true otherwise;
    a value that does not parse as its number type raises ``ValueError`` naming the variable.
    """
    environ = os.environ if environ is None else environ
    out: dict[str, Any] = {}
    for key, typ in _ENV_TYPES.items():
        raw = environ.get(f"TQDM_{key.upper()}")
        if raw is None:
            continue
        if typ is bool:
            out[key] = raw.strip().lower() not in _FALSE
        elif typ is str:
            out[key] = raw
        else:
            try:
                out[key] = typ(raw)
            except ValueError:
                kind = "an integer" if typ is int else "a number"
                raise ValueError(f"TQDM_{key.upper()} must be {kind}, got {raw!r}") from None
    return out


def _is_tty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or not a real stream
        return False


def _bars() -> bool:
    """Redrawable bars: a terminal, or a notebook (where ``tqdm.auto`` is the widget bar)."""
    return _is_tty(sys.stderr) or tqdm.__module__.startswith("tqdm.notebook")



class Job:
    """Progress of the whole command: runs done and left, time spent, and the estimated time left.

    Parameters
    ----------
    planned_runs, planned_steps:
        The plan's size (all phases, runs already done included), a floor for what the sweeps add: the
        reruns of a tuning protocol are counted before their learning rate is known.
    planned_seconds:
        The plan's calibrated time for ``planned_steps``: the ETA before any step is trained.

    The ETA is ``steps left / rate``, ``rate = steps trained in this job / seconds since it began``
    (runs in progress count with the steps they did); before any step, ``planned_seconds`` scaled to the
    steps left. It reads the clock only to print: nothing a result depends on.
    """

    def __init__(self, planned_runs: int = 0, planned_steps: int = 0, planned_seconds: float | None = None) -> None:
        self.t0 = time.perf_counter()
        self.planned_runs, self.planned_steps = int(planned_runs), int(planned_steps)
        self.planned_seconds = planned_seconds
        self.steps: dict[str, int] = {}  # every run the sweeps of this job asked for -> its steps
        self.done: set[str] = set()  # finished here, skipped as done, or done by another process
        self.trained = 0  # steps trained in this job (bars' updates, plus runs without a bar when they end)
        self.tracked: set[str] = set()  # runs whose steps a bar in this process counts
        self._flight: dict[int, int] = {}  # open bar -> steps it advanced (times its runs)
        self._last_line = self.t0

    # -- what the sweeps tell it -------------------------------------------------------------------
    def add(self, runs: Iterable[tuple[str, int]]) -> None:
        """Runs (``(run_id, steps)``) that a sweep of this job will have done."""
        for run_id, steps in runs:
            self.steps.setdefault(run_id, int(steps))

    def finish(self, run_ids: Iterable[str], trained: Sequence[int] | None = None) -> None:
        """Runs that are done (``trained``: the steps each took here, for runs no bar counted)."""
        ids = list(run_ids)
        for i, run_id in enumerate(ids):
            if run_id in self.done:
                continue
            self.done.add(run_id)
            if trained is not None and run_id not in self.tracked:
                self.trained += int(trained[i])

    def advance(self, bar: int, steps: int) -> None:
        self.trained += steps
        self._flight[bar] = self._flight.get(bar, 0) + steps

    def close_bar(self, bar: int) -> None:
        self._flight.pop(bar, None)

    # -- what it says ------------------------------------------------------------------------------
    @property
    def total_runs(self) -> int:
        return max(self.planned_runs, len(self.steps))

    @property
    def total_steps(self) -> int:
        return max(self.planned_steps, sum(self.steps.values()))

    def steps_left(self) -> int:
        done = sum(self.steps[r] for r in self.done if r in self.steps)
        return max(0, self.total_steps - done - sum(self._flight.values()))

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def eta(self) -> float | None:
        """Seconds left (None: nothing to go on yet)."""
        left = self.steps_left()
        if left == 0:
            return 0.0
        if self.trained > 0:
            return left / (self.trained / max(self.elapsed(), 1e-9))
        if self.planned_seconds is not None and self.planned_steps > 0:
            return self.planned_seconds * left / self.planned_steps
        return None

    def line(self) -> str:
        """``job: 3/44 runs, 4.1 min, eta 2.3 h``."""
        eta = self.eta()
        text = f"job: {len(self.done)}/{self.total_runs} runs, {_seconds(self.elapsed())}"
        return text + (f", eta {_seconds(eta)}" if eta is not None else ", eta unknown")


_JOB: Job | None = None


def current_job() -> Job | None:
    """The job open in this process (:func:`job_scope`), or None."""
    return _JOB


@contextlib.contextmanager
def job_scope(planned_runs: int = 0, planned_steps: int = 0, planned_seconds: float | None = None) -> Iterator[Job]:
    """Open the command's job (see the module docstring); inside an open one, yield that one."""
    global _JOB
    if _JOB is not None:
        _JOB.planned_runs = max(_JOB.planned_runs, int(planned_runs))
        _JOB.planned_steps = max(_JOB.planned_steps, int(planned_steps))
        yield _JOB
        return
    _JOB = Job(planned_runs, planned_steps, planned_seconds)
    try:
        yield _JOB
    finally:
        _JOB = None


def job_line_due(*, quiet: bool) -> str | None:
    """The job's line when :data:`RUN_LINE_INTERVAL` seconds passed since the last one, else None
    (for a backend whose runs show no bars in this process, e.g. Ray's)."""
    job = _JOB
    if job is None or quiet or tqdm_env().get("disable"):
        return None
    now = time.perf_counter()
    if now - job._last_line < tqdm_env().get("mininterval", RUN_LINE_INTERVAL):
        return None
    job._last_line = now
    return job.line()


class _Null:
    """A do-nothing bar for ``quiet`` mode."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...
    def set_description_str(self, s: str = "", refresh: bool = True) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: Any) -> None: ...


def _seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h"


class LineProgress(_Null):
    """The bar's interface for logs: prints whole lines, at most one per ``interval`` seconds.

    ``every_update=True`` (a sweep) prints after every update that is due; the final count is always
    printed, once, when the total is reached or at ``close``.
    """

    def __init__(self, total: int, *, desc: str, unit: str, initial: int = 0, interval: float = 0.0,
                 stream: TextIO | None = None, header: bool = False) -> None:
        self.total, self.n, self.desc, self.unit = int(total), int(initial), desc, unit
        self.initial = int(initial)
        self.interval = float(interval)
        self.stream = stream if stream is not None else sys.stderr
        self.postfix = ""
        self.t0 = time.perf_counter()
        self._last_line = -float("inf") if header is False else self.t0
        self._printed_n: int | None = None
        if header:
            done = f" ({initial} already done)" if initial else ""
            self._write(f"{desc}: {total} {unit}s{done}")

    def _write(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def line(self) -> str:
        elapsed = time.perf_counter() - self.t0
        text = f"{self.desc}: {self.n}/{self.total} {self.unit}s, {_seconds(elapsed)}"
        ran = self.n - self.initial
        if 0 < ran and self.n < self.total:
            text += f", eta {_seconds(elapsed / ran * (self.total - self.n))}"
        return text + (f", {self.postfix}" if self.postfix else "")

    def _emit(self, force: bool = False) -> None:
        now = time.perf_counter()
        if self._printed_n == self.n:
            return
        if force or now - self._last_line >= self.interval:
            self._write(self.line())
            self._last_line, self._printed_n = now, self.n

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        self._emit(force=self.n >= self.total)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.postfix = s

    def set_description_str(self, s: str = "", refresh: bool = True) -> None:
        self.desc = s

    def close(self) -> None:
        if self.n > self.initial:
            self._emit(force=True)


def sweep_bar(total: int, *, quiet: bool, desc: str = "sweep", initial: int = 0) -> Any:
    """Bar over the runs of a sweep (position 0); ``initial`` runs were already done (no bar if all were).

    Call ``set_postfix_str`` before ``update`` so that a log line carries the latest counts (the sweep
    puts the job's line there when its job holds more than this sweep).
    """
    env = tqdm_env()
    if quiet or env.get("disable") or initial >= total:
        return _Null()
    if not _bars():
        return LineProgress(total, desc=desc, unit="run", initial=initial,
                            interval=env.get("mininterval", 0.0), header=True)
    kwargs: dict[str, Any] = dict(total=total, initial=initial, desc=desc, unit="run", position=0,
                                  dynamic_ncols=True, file=sys.stderr)
    return tqdm(**{**kwargs, **env})


def run_bar(total: int, *, quiet: bool, desc: str, initial: int = 0, runs: Sequence[str] = ()) -> Any:
    """Bar over the steps of one run or one batched block of ``runs`` (position 1, removed when done);
    off a terminal, periodic lines. ``initial``: steps done before (a resumed checkpoint).

    Inside a :func:`job_scope`, the bar counts its steps (times its runs) into the job and shows the job's
    line: appended to each log line, in the bar's postfix on a terminal.
    """
    env = tqdm_env()
    job = _JOB
    if job is not None:
        job.tracked.update(runs)
    if quiet or env.get("disable"):
        bar: Any = _Null()
    elif not _bars():
        bar = _RunLines(total, desc=desc, unit="step", interval=env.get("mininterval", RUN_LINE_INTERVAL),
                        initial=initial, job=job)
    else:
        kwargs: dict[str, Any] = dict(total=total, desc=desc, unit="step", position=1, leave=False, initial=initial,
                                      dynamic_ncols=True, mininterval=0.2, file=sys.stderr)
        bar = tqdm(**{**kwargs, **env})
        if job is not None:
            return _JobBar(bar, job, max(1, len(runs)), postfix=True)
    return bar if job is None else _JobBar(bar, job, max(1, len(runs)), postfix=False)


class _RunLines(LineProgress):
    """A run's periodic summary: nothing before ``interval`` seconds have passed, and no final line;
    with the job's line appended when there is a job."""

    def __init__(self, total: int, *, desc: str, unit: str, interval: float, initial: int = 0,
                 job: Job | None = None) -> None:
        super().__init__(total, desc=desc, unit=unit, interval=interval, initial=initial)
        self._last_line = self.t0
        self.job = job

    def line(self) -> str:
        text = super().line()
        return text if self.job is None else f"{text} | {self.job.line()}"

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self.n < self.total:
            self._emit()

    def close(self) -> None: ...


#: On a terminal, the least seconds between two refreshes of the job's line in a run's bar.
JOB_POSTFIX_INTERVAL = 5.0


class _JobBar:
    """A run's bar that also counts its steps (times ``weight`` runs) into the job; ``postfix``: show
    the job's line in the bar's postfix (a tqdm bar on a terminal)."""

    def __init__(self, bar: Any, job: Job, weight: int, *, postfix: bool) -> None:
        self.bar, self.job, self.weight, self.postfix = bar, job, int(weight), postfix
        self.own = ""
        self._shown = time.perf_counter()

    def _refresh(self) -> None:
        self._shown = time.perf_counter()
        text = f"{self.own} | {self.job.line()}" if self.own else self.job.line()
        self.bar.set_postfix_str(text, refresh=False)

    def update(self, n: int = 1) -> None:
        self.job.advance(id(self), int(n) * self.weight)
        if self.postfix and time.perf_counter() - self._shown >= JOB_POSTFIX_INTERVAL:
            self._refresh()
        self.bar.update(n)

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        self.own = s
        if self.postfix:
            self._refresh()
        else:
            self.bar.set_postfix_str(s, refresh=refresh)

    def set_description_str(self, s: str = "", refresh: bool = True) -> None:
        self.bar.set_description_str(s, refresh=refresh)

    def close(self) -> None:
        self.job.close_bar(id(self))
        self.bar.close()

    def __enter__(self) -> _JobBar:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def note(message: str, *, quiet: bool = False) -> None:
    """One line for the person at the terminal (``resumed at step 500``), printed above any bars."""
    if quiet or tqdm_env().get("disable"):
        return
    if _bars():
        tqdm.write(message, file=sys.stderr)
    else:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def one_line_warnings() -> Iterator[None]:
    """Inside, a warning prints as ONE line, ``warning: <message>`` (no file, line number or source
    line), above any bars: what a command-line user sees. Filters (``-W``, ``PYTHONWARNINGS``) apply."""
    def show(message: Any, category: type[Warning], filename: str, lineno: int, file: Any = None,
             line: str | None = None) -> None:
        text = " ".join(str(message).split())
        note(f"warning: {text}")

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield
