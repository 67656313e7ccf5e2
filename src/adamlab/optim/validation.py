"""Hyperparameter checks shared by the optimizer classes. Each raises ValueError naming the parameter."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

NONFINITE_POLICIES = ("propagate", "skip", "raise")


class _Required:
    """The default of a hyperparameter without a default (``lr`` of the sign/variance family).

    Like ``torch.optim``'s old ``required``: the value may instead be given in every param group.
    A single instance, kept by ``copy``/``pickle``.
    """

    def __repr__(self) -> str:
        return "<required parameter>"

    def __reduce__(self) -> str:
        return "REQUIRED"

    def __deepcopy__(self, memo: dict[int, Any]) -> _Required:
        return self


#: Marks a hyperparameter that has no default (must be given to the constructor or to every group).
REQUIRED = _Required()


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
    if lr is REQUIRED:
        raise ValueError("lr is required (this optimizer has no default learning rate): pass lr=... "
                         "or give an 'lr' in every param group")
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


# Uniform ``check(name, value)`` forms, the ``check`` of a :class:`adamlab.optim.hyper.Hyper`
# (collected in ``AdamlabOptimizer.hyperparameter_checks``, run on every param group).
def learning_rate(name: str, value: Any) -> None:
    check_lr(value)


def nonnegative(name: str, value: Any) -> None:
    check_nonnegative(name, value)


def decay_rate(name: str, value: Any) -> None:
    check_unit_interval(name, value)


def closed_decay_rate(name: str, value: Any) -> None:
    check_unit_interval(name, value, closed=True)


def beta_pair(name: str, value: Any) -> None:
    check_betas(value)


def one_of(*choices: Any) -> Callable[[str, Any], None]:
    """A check that ``value`` is one of ``choices``."""

    def check(name: str, value: Any) -> None:
        check_choice(name, value, choices)

    return check


def optional_bool(name: str, value: Any) -> None:
    """``None`` (automatic), ``True`` or ``False``; nothing else (not 0/1, not strings)."""
    if not (value is None or isinstance(value, bool)):
        raise ValueError(f"Invalid {name}={value!r}: must be None, True or False")


def boolean(name: str, value: Any) -> None:
    """A switch: exactly ``True`` or ``False`` (``1``, ``"no"``, ``None`` are refused, never read as truthy)."""
    if not isinstance(value, bool):
        raise ValueError(f"Invalid {name}={value!r}: must be True or False")


def optional_decay_rate(name: str, value: Any) -> None:
    """None, or a decay rate in [0, 1) (a bool is refused: it is not a rate)."""
    if value is not None:
        check_unit_interval(name, value)


def check_params_dtype(owner: str, params: Any) -> None:
    """Floating-point or complex parameters only (``torch.optim`` cannot update integer tensors either)."""
    for i, p in enumerate(params):
        if not (p.is_floating_point() or p.is_complex()):
            raise ValueError(f"{owner}: parameter #{i} has dtype {p.dtype}; optimizers update floating-point "
                             "or complex tensors only")
