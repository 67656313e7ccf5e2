"""Validation of problem options: each check raises ``ValueError`` naming the option and its range."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any


def check_int(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high]`` (``high=None``: unbounded), else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if value < low or (high is not None and value > high):
        bound = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {bound}, got {value}")
    return value


def check_float(
    name: str,
    value: Any,
    *,
    low: float,
    high: float = math.inf,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Return ``value`` as a finite float in the given interval, else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    v = float(value)
    below = v <= low if low_open else v < low
    above = v >= high if high_open else v > high
    if math.isnan(v) or below or above or math.isinf(v):
        interval = f"{'(' if low_open else '['}{low}, {high}{')' if high_open or math.isinf(high) else ']'}"
        raise ValueError(f"{name} must be a finite number in {interval}, got {value!r}")
    return v


def check_choice(name: str, value: Any, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``, else raise ValueError listing them."""
    allowed = tuple(choices)
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


#: The most elements (float64: 8 bytes each, 1 GiB in all) one array a problem builds may hold.
MAX_ELEMENTS = 2**27


class SizeError(ValueError):
    """Options that make a problem too large to build (refused before anything is allocated)."""


def check_elements(what: str, elements: int, *, limit: int = MAX_ELEMENTS) -> None:
    """Raise ``ValueError`` (naming ``what``, e.g. ``"d=20000: Q is 20000 x 20000"``) before allocating an
    array of more than ``limit`` elements."""
    if elements > limit:
        raise SizeError(f"{what} = {elements:.3g} elements ({elements * 8 / 2**30:.3g} GiB as float64), more "
                         f"than the {limit} ({limit * 8 / 2**30:.3g} GiB) a problem may build; use smaller options")
