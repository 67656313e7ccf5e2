"""What every claim check shares: the :class:`Record` it returns and what theory predicts, read from the optimizer.

Theory lives on each optimizer class, as its ``theory`` table (the keys: :mod:`adamlab.optim.theory`),
evaluated on the param group the optimizer was built with. The checks ask the optimizer through
:func:`theory_fact` and :func:`predicted`; none of them compares optimizer names.
"""

from __future__ import annotations

import contextvars
import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch

DTYPE = torch.float64

_DEVICE: contextvars.ContextVar[torch.device | None] = contextvars.ContextVar("adamlab_claims_device",
                                                                              default=None)


def claims_device(dtype: torch.dtype = DTYPE) -> torch.device:
    """Where the checks run their optimizers now (:func:`on_device`; the CPU by default). A device without
    ``dtype`` (MPS has no float64) gives the CPU."""
    device = _DEVICE.get()
    if device is None or (device.type == "mps" and dtype == torch.float64):
        return torch.device("cpu")
    return device


@contextmanager
def on_device(device: torch.device | str) -> Iterator[None]:
    """Within the block, the checks step their optimizers on ``device`` (``adamlab verify --device``); the
    measurements are read back to the CPU."""
    token = _DEVICE.set(torch.device(device))
    try:
        yield
    finally:
        _DEVICE.reset(token)


@dataclass
class Record:
    """One measured property of one optimizer.

    ``holds`` is True when the measurement matches theory (present where predicted, absent where not);
    None where theory makes no prediction for this optimizer.
    """

    optimizer: str
    property: str
    measured: float
    expected: str
    holds: bool | None
    details: str
    has_property: bool
    theory: bool | None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if not math.isfinite(out["measured"]):
            out["measured"] = str(out["measured"])  # JSON has no inf/nan
        return out

    @property
    def must_hold_failed(self) -> bool:
        """Theory says the optimizer has the property, and the measurement says it does not."""
        return bool(self.theory) and not self.has_property


def make_record(optimizer: str, prop: str, measured: float, has: bool, theory: bool | None, expected: str,
                details: str) -> Record:
    """A :class:`Record`; ``holds`` is whether the measurement agrees with ``theory`` (None: no prediction)."""
    holds = None if theory is None else bool(has) == bool(theory)
    return Record(optimizer, prop, float(measured), expected, holds, details, bool(has), theory)


def theory_fact(optimizer: torch.optim.Optimizer, key: str) -> Any:
    """``key`` of the optimizer's class's ``theory`` table, evaluated on its first param group; None if absent.

    Looks through a wrapper that keeps the real optimizer as ``.optimizer`` (``TemporalAveraging``).
    """
    inner = getattr(optimizer, "optimizer", optimizer)
    value = getattr(type(inner), "theory", {}).get(key)
    return value(inner.param_groups[0]) if callable(value) else value


def known(name: str) -> bool:
    """Whether ``name`` is a registered optimizer."""
    from adamlab.optim.registry import names

    return name in names()


def probe(name: str) -> torch.optim.Optimizer:
    """Registry optimizer ``name`` (its presets over the class defaults) on one dummy parameter."""
    from adamlab.optim.registry import make_optimizer

    return make_optimizer(name, [torch.zeros(1, dtype=DTYPE, requires_grad=True)], lr=1e-3)


def predicted(name: str, prop: str) -> bool | None:
    """What theory predicts for registry optimizer ``name`` and property ``prop``; None: no prediction.

    Read from the class's ``theory`` table, evaluated on the param group the registry builds for
    ``name``. Unknown names, and properties a class does not list, make no prediction.
    """
    if not known(name):
        return None
    claim = theory_fact(probe(name), prop)
    return None if claim is None else bool(claim)
