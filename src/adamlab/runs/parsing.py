"""Parsing command-line values: learning-rate grids and ``key=value`` options."""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

#: The most values a START:STOP:COUNT grid may have (refused before the grid is built).
MAX_GRID = 100_000


def parse_lr_grid(text: str) -> list[float]:
    """Parse ``"start:stop:count"`` (log-spaced, both ends included) or ``"a,b,c"`` (a list).

    ``"1e-3:1e0:4"`` -> ``[0.001, 0.01, 0.1, 1.0]``. A single value ``"0.1"`` is a one-point grid.
    Values are rounded to 12 significant digits. Raises ``ValueError`` naming the problem.
    """
    text = text.strip()
    if not text:
        raise ValueError("lr grid is empty; use START:STOP:COUNT (e.g. 1e-4:1e0:9) or a comma list")
    if ":" in text:
        parts = text.split(":")
        if len(parts) != 3:
            raise ValueError(f"lr grid {text!r} must be START:STOP:COUNT (e.g. 1e-4:1e0:9) or a comma list")
        try:
            start, stop, count = float(parts[0]), float(parts[1]), int(parts[2])
        except ValueError:
            raise ValueError(
                f"lr grid {text!r}: START and STOP must be numbers and COUNT an integer (e.g. 1e-4:1e0:9)"
            ) from None
        if not (start > 0 and stop > 0 and math.isfinite(start) and math.isfinite(stop)):
            raise ValueError(f"lr grid {text!r}: START and STOP must be finite and > 0 (log-spaced grid)")
        if count < 1:
            raise ValueError(f"lr grid {text!r}: COUNT must be >= 1")
        if count > MAX_GRID:
            raise ValueError(f"lr grid {text!r}: COUNT must be >= 1 and at most {MAX_GRID}")
        if count == 1 and start != stop:
            raise ValueError(f"lr grid {text!r}: COUNT 1 needs START == STOP")
        values = np.logspace(math.log10(start), math.log10(stop), count).tolist()
    else:
        try:
            values = [float(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise ValueError(f"lr grid {text!r} is not a comma list of numbers or START:STOP:COUNT") from None
        if not values:
            raise ValueError(f"lr grid {text!r} holds no values")
        if not all(v > 0 and math.isfinite(v) for v in values):
            raise ValueError(f"lr grid {text!r}: learning rates must be finite and > 0")
    return [float(f"{v:.12g}") for v in values]


def parse_value(text: str) -> Any:
    """A command-line value: JSON when it parses (numbers, true/false, null, lists), else the string.

    Booleans are ``true``/``false`` (any case) and nothing else: ``yes``, ``no``, ``on``, ``off`` stay
    strings and ``0``/``1`` numbers, which the optimizers refuse for a switch (``ValueError`` naming it;
    the CLI prints it as one line and exits 2), so ``--hparam maximize=no`` can never mean True.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError(f"value {_short(text)} is nested too deeply") from None
    except json.JSONDecodeError:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        if low in ("none", "null"):
            return None
        return text


def parse_assignments(items: list[str] | None, what: str = "option") -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; raises ``ValueError`` for an item without ``=``."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--{what} {item!r} must look like KEY=VALUE")
        try:
            parsed = parse_value(value.strip())
            check_integers(parsed)
        except ValueError as err:
            raise ValueError(f"--{what} {key.strip()}: {err}") from None
        out[key.strip()] = parsed
    return out


#: The largest integer a run config may hold: SQLite's INTEGER (a signed 64-bit integer).
MAX_INT = 2**63 - 1


def integer_range(low: int) -> str:
    """``"an integer in {low} .. 2**63 - 1"``: the allowed range of a count, with :data:`MAX_INT` written so
    that a reader sees it at once (not as its 19 digits)."""
    return f"an integer in {low} .. 2**63 - 1"

#: How deeply a command-line value may nest lists and objects.
MAX_DEPTH = 32


def _short(text: str) -> str:
    return repr(text) if len(text) <= 40 else f"{text[:20]!r}... ({len(text)} characters)"


def check_integers(value: Any, depth: int = 0) -> None:
    """Raise ``ValueError`` when ``value`` holds an integer beyond +-:data:`MAX_INT` (too large for
    SQLite and, past about 1.8e308, for a float) or nests deeper than :data:`MAX_DEPTH`."""
    if depth > MAX_DEPTH:
        raise ValueError(f"value is nested more than {MAX_DEPTH} levels deep")
    if isinstance(value, bool):
        return
    if isinstance(value, int) and abs(value) > MAX_INT:
        raise ValueError(f"integer {_short(str(value))} is too large (integers are at most 2**63 - 1 = "
                         f"{MAX_INT}; write a float such as 1e30 for a large number)")
    if isinstance(value, dict):
        for v in value.values():
            check_integers(v, depth + 1)
    elif isinstance(value, list):
        for v in value:
            check_integers(v, depth + 1)


def number_type(cast: Callable[[str], float], accept: Callable[[float], bool],
                wanted: str) -> Callable[[str], Any]:
    """An argparse ``type=``: ``cast(text)``, refused unless finite and ``accept(value)``.

    ``wanted`` words the allowed range for the one-line error, e.g. ``"an integer >= 1"``.
    """

    def parse(text: str) -> Any:
        try:
            value = cast(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}") from None
        if not ((isinstance(value, int) or math.isfinite(value)) and accept(value)):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


#: ``--steps``, ``--seeds``, ``--batch-size`` and the like (at most :data:`MAX_INT`: SQLite's INTEGER).
positive_int = number_type(int, lambda v: 1 <= v <= MAX_INT, integer_range(1))
#: ``--epochs``, ``--decay-gamma``.
positive_float = number_type(float, lambda v: v > 0, "a finite number > 0")
