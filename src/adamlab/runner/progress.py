"""Progress: one bar per sweep (runs done / total, ETA) and one per run (steps, loss), or log lines.

On a terminal (``sys.stderr.isatty()``) or in a notebook these are tqdm bars. Off a terminal (output redirected to a
file, a CI log, ``nohup``) redrawing bars would write a new line at every refresh, so instead:

- a sweep prints one line when it starts and one line per finished run
  (``sweep: 3/12 runs, 4.1 s, eta 12 s, finished=3 diverged=0 failed=0``);
- a run prints a periodic summary (``step 500/2000, loss=0.31, 30 s``) at most every
  :data:`RUN_LINE_INTERVAL` seconds, so short runs print nothing of their own.

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
from collections.abc import Iterator
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

    Call ``set_postfix_str`` before ``update`` so that a log line carries the latest counts.
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


def run_bar(total: int, *, quiet: bool, desc: str) -> Any:
    """Bar over the steps of one run (position 1, removed when done); off a terminal, periodic lines."""
    env = tqdm_env()
    if quiet or env.get("disable"):
        return _Null()
    if not _bars():
        return _RunLines(total, desc=desc, unit="step", interval=env.get("mininterval", RUN_LINE_INTERVAL))
    kwargs: dict[str, Any] = dict(total=total, desc=desc, unit="step", position=1, leave=False,
                                  dynamic_ncols=True, mininterval=0.2, file=sys.stderr)
    return tqdm(**{**kwargs, **env})


class _RunLines(LineProgress):
    """A run's periodic summary: nothing before ``interval`` seconds have passed, and no final line."""

    def __init__(self, total: int, *, desc: str, unit: str, interval: float) -> None:
        super().__init__(total, desc=desc, unit=unit, interval=interval)
        self._last_line = self.t0

    def update(self, n: int = 1) -> None:
        self.n += int(n)
        if self.n < self.total:
            self._emit()

    def close(self) -> None: ...


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
