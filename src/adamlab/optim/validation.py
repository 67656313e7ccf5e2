"""Hyperparameter checks shared by the optimizer classes. Each raises ValueError naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch

NONFINITE_POLICIES = ("propagate", "skip", "raise")


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise ValueError(f"{name} must be a scalar, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} must not be NaN")
    return value


def check_lr(lr: Any) -> None:
    """Learning rate: finite and >= 0."""
    value = _as_float("lr", lr)
    if not 0.0 <= value < math.inf:
        raise ValueError(f"Invalid learning rate lr={lr}: must be in [0, inf)")


def check_nonnegative(name: str, value: Any) -> None:
    """A finite value >= 0 (eps, weight_decay, momentum, lr_decay, ...)."""
    v = _as_float(name, value)
    if not 0.0 <= v < math.inf:
        raise ValueError(f"Invalid {name}={value}: must be in [0, inf)")


def check_unit_interval(name: str, value: Any, *, closed: bool = False) -> None:
    """A decay rate in [0, 1) (or [0, 1] when ``closed``)."""
    v = _as_float(name, value)
    ok = 0.0 <= v <= 1.0 if closed else 0.0 <= v < 1.0
    if not ok:
        interval = "[0, 1]" if closed else "[0, 1)"
        raise ValueError(f"Invalid {name}={value}: must be in {interval}")


def check_betas(betas: Sequence[Any]) -> None:
    """Adam-style ``betas=(beta1, beta2)``, each in [0, 1)."""
    if len(betas) != 2:
        raise ValueError(f"Invalid betas={betas!r}: must be a pair (beta1, beta2)")
    check_unit_interval("betas[0] (beta1)", betas[0])
    check_unit_interval("betas[1] (beta2)", betas[1])


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> None:
    if value not in choices:
        raise ValueError(f"Invalid {name}={value!r}: must be one of {', '.join(map(repr, choices))}")
