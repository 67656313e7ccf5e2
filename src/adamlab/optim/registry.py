"""Optimizers by short name, for the runner and the CLI.

``make_optimizer("msvag", model.parameters(), lr=0.1)`` builds ``adamlab.optim.MSVAG``.
Each entry is a class plus preset keyword arguments; user hyperparameters override presets. A class is
named by its name in :mod:`adamlab.optim` (which exports every optimizer class of the package) or by a
``"module:Class"`` path; :func:`register` adds an entry (e.g. for an optimizer defined elsewhere).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import Any

import torch

# name -> (class name in adamlab.optim or "module:Class", preset kwargs, one-line description)
_ENTRIES: dict[str, tuple[str, dict[str, Any], str]] = {
    "sgd": ("SGD", {}, "plain SGD"),
    "momentum": ("SGD", {"momentum": 0.9}, "SGD with heavy-ball momentum 0.9"),
    "nesterov": ("SGD", {"momentum": 0.9, "nesterov": True}, "SGD with Nesterov momentum 0.9"),
    "adagrad": ("Adagrad", {}, "AdaGrad"),
    "rmsprop": ("RMSprop", {}, "RMSProp"),
    "adam": ("Adam", {}, "Adam (Kingma & Ba)"),
    "amsgrad": ("Adam", {"amsgrad": True}, "Adam with the AMSGrad max"),
    "adamw": ("Adam", {"decoupled_weight_decay": True, "weight_decay": 1e-2}, "Adam, decoupled weight decay"),
    "adam-nobc": ("Adam", {"bias_correction": False}, "Adam without bias correction"),
    "adamax": ("Adamax", {}, "AdaMax (Adam paper sec. 7.1)"),
    "ssd": ("SSD", {}, "stochastic sign descent"),
    "msgd": ("Dissected", {"direction": "grad", "variance_adaptation": False}, "momentum SGD (EMA form)"),
    "mssd": ("MSSD", {}, "momentum sign descent"),
    "svag": ("SVAG", {}, "variance-adapted SGD"),
    "msvag": ("MSVAG", {}, "momentum variance-adapted SGD (Balles & Hennig)"),
    "mssdva": ("MSSDVA", {}, "momentum sign descent with variance adaptation"),
    "ndadam": ("NDAdam", {}, "ND-Adam: unit-norm weight vectors, one second moment per vector (Zhang et al.)"),
}


def names() -> list[str]:
    """Known optimizer names."""
    return list(_ENTRIES)


def describe(name: str) -> str:
    return _ENTRIES[_check(name)][2]


def presets(name: str) -> dict[str, Any]:
    """The preset keyword arguments of ``name`` (a copy)."""
    return dict(_ENTRIES[_check(name)][1])


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    target = _ENTRIES[_check(name)][0]
    module, _, attr = target.rpartition(":")
    return getattr(importlib.import_module(module or "adamlab.optim"), attr)


def register(name: str, cls: type[torch.optim.Optimizer] | str, presets: dict[str, Any] | None = None,
             description: str = "") -> None:
    """Add optimizer ``name``: ``cls`` (a class, or ``"module:Class"``) with ``presets``.

    Raises ``ValueError`` if the name is taken (names are case-insensitive).
    """
    key = name.lower()
    if key in _ENTRIES:
        raise ValueError(f"optimizer name {name!r} is already registered")
    target = cls if isinstance(cls, str) else f"{cls.__module__}:{cls.__qualname__}"
    _ENTRIES[key] = (target, dict(presets or {}), description)


def unregister(name: str) -> None:
    """Remove optimizer ``name`` (for tests that register their own)."""
    del _ENTRIES[_check(name)]


def make_optimizer(name: str, params: Iterable[Any], **hparams: Any) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over ``params``; ``hparams`` override its presets."""
    return optimizer_class(name)(params, **{**presets(name), **hparams})


def _check(name: str) -> str:
    key = name.lower()
    if key not in _ENTRIES:
        raise ValueError(f"unknown optimizer {name!r}; known optimizers: {', '.join(_ENTRIES)}")
    return key
