"""Temporal averaging of the parameters (Kingma & Ba 2015, sec. 7.2)."""

from __future__ import annotations

from typing import Any, TypeVar

from adamlab.functional.common import ema

T = TypeVar("T")

__all__ = ["debiased_average", "temporal_average"]


def temporal_average(average: T, param: T, *, beta: Any) -> T:
    r""":math:`\bar\theta_t = \beta \bar\theta_{t-1} + (1 - \beta)\theta_t` (with :math:`\bar\theta_0 = 0`)."""
    return ema(average, param, beta)


def debiased_average(average: T, bias_correction: Any) -> T:
    r"""The bias-corrected estimate :math:`\hat\theta_t = \bar\theta_t / (1 - \beta^t)`."""
    return average / bias_correction
