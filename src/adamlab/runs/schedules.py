"""Learning-rate schedules: a multiplicative factor on the base learning rate at step t.

These are not optimizer update rules (those live in :mod:`adamlab.functional`); they only set
``param_group["lr"] = base_lr * factor(t)`` before optimizer step ``t = 1, 2, ...``.

- ``constant``: factor(t) = 1.
- ``inv_sqrt``: factor(t) = 1 / sqrt(t), the alpha_t = alpha / sqrt(t) of Kingma & Ba (2015), sec. 6.1.
- ``step``: factor(t) = gamma ** floor((t - 1) / every) (step decay: multiply by ``gamma`` every
  ``every`` steps, so steps 1..every use the base rate).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SCHEDULES: tuple[str, ...] = ("constant", "inv_sqrt", "step")

#: Step decay defaults: multiply by 0.1 at every third of the budget.
DEFAULT_STEP_GAMMA = 0.1
DEFAULT_STEP_FRACTION = 3


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule.

    Parameters
    ----------
    name:
        One of ``"constant"``, ``"inv_sqrt"`` or ``"step"``.
    gamma:
        Step decay factor, 0 < gamma <= 1 (``step`` only).
    every:
        Step decay period in steps, >= 1 (``step`` only).
    """

    name: str = "constant"
    gamma: float | None = None
    every: int | None = None

    def __post_init__(self) -> None:
        if self.name not in SCHEDULES:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}; got {self.name!r}")
        if self.name == "step":
            if self.gamma is None or not (0.0 < float(self.gamma) <= 1.0):
                raise ValueError(f"schedule gamma must be in (0, 1]; got {self.gamma!r}")
            if self.every is None or int(self.every) < 1:
                raise ValueError(f"schedule every must be an integer >= 1; got {self.every!r}")
        elif self.gamma is not None or self.every is not None:
            raise ValueError(f"schedule {self.name!r} takes no gamma or every (only 'step' does)")

    def factor(self, t: int) -> float:
        """Multiplier of the base learning rate at optimizer step ``t`` (1-based).

        Equations: constant 1; inv_sqrt 1/sqrt(t); step gamma**floor((t-1)/every).
        """
        if t < 1:
            raise ValueError(f"step t must be >= 1; got {t}")
        if self.name == "constant":
            return 1.0
        if self.name == "inv_sqrt":
            return 1.0 / math.sqrt(t)
        assert self.gamma is not None and self.every is not None
        return float(self.gamma) ** ((t - 1) // int(self.every))

    def to_dict(self) -> dict[str, Any]:
        """JSON form (used in run configs and their hash)."""
        out: dict[str, Any] = {"name": self.name}
        if self.name == "step":
            out.update(gamma=float(self.gamma), every=int(self.every))  # type: ignore[arg-type]
        return out


def make_schedule(spec: str | Mapping[str, Any] | Schedule | None, *, default: str = "constant",
                  steps: int = 1) -> Schedule:
    """Build a :class:`Schedule` from a name, a dict, or ``None`` (use ``default``).

    A ``step`` schedule without ``gamma``/``every`` gets gamma = 0.1 and every = steps // 3
    (at least 1), i.e. two decays within the budget.
    """
    if isinstance(spec, Schedule):
        return spec
    if spec is None:
        spec = default
    params: dict[str, Any] = {"name": spec} if isinstance(spec, str) else dict(spec)
    name = params.get("name", "constant")
    if name == "step":
        params.setdefault("gamma", DEFAULT_STEP_GAMMA)
        params.setdefault("every", max(1, steps // DEFAULT_STEP_FRACTION))
    unknown = set(params) - {"name", "gamma", "every"}
    if unknown:
        raise ValueError(f"schedule takes only name, gamma, every; got {sorted(unknown)}")
    return Schedule(**params)
