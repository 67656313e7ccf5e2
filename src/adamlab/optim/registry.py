"""Optimizers by short name, for the runner and the CLI.

``make_optimizer("msvag", model.parameters(), lr=0.1)`` builds ``adamlab.optim.MSVAG``.
Each entry is a class plus preset keyword arguments; user hyperparameters override presets.

The names live in one :class:`adamlab.util.registry.Registry` filled by the modules of this package:
each module declares its own names and presets next to its class (:func:`declare`), so a new optimizer
is a new module and there is no hand-kept table. A module of the package that fails to import is an
error naming it (:class:`adamlab.util.registry.RegistryImportError`). Code elsewhere (a test, a
plug-in) adds a name with :func:`register`: a class, or a ``"module:Class"`` path imported on first use.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from adamlab.util.registry import Registry


@dataclass(frozen=True)
class Entry:
    """An optimizer name: its class (or ``"module:Class"``), preset keyword arguments and a one-line description."""

    target: type[torch.optim.Optimizer] | str
    presets: dict[str, Any] = field(default_factory=dict)
    description: str = ""


#: Every optimizer name (case-insensitive), discovered from the modules of :mod:`adamlab.optim`.
OPTIMIZERS: Registry[Entry] = Registry("optimizer", package="adamlab.optim", normalize=str.lower)


def declare(name: str, cls: type[torch.optim.Optimizer] | str, presets: dict[str, Any] | None = None,
            description: str = "", *, order: float | None = None) -> None:
    """Register ``name`` from an optimizer's own module, at import (no discovery; see :func:`register`).

    ``order`` places the name in :func:`names` (and so in ``adamlab list --optimizers`` and the default
    order of ``adamlab verify``): the built-ins go from SGD to the adaptive methods to the dissected
    ones; a name without one comes after them.
    """
    OPTIMIZERS.add(name, Entry(cls, dict(presets or {}), description), order=order)


def names() -> list[str]:
    """Known optimizer names."""
    return OPTIMIZERS.names()


def describe(name: str) -> str:
    return OPTIMIZERS.get(name).description


def presets(name: str) -> dict[str, Any]:
    """The preset keyword arguments of ``name`` (a copy)."""
    return dict(OPTIMIZERS.get(name).presets)


def optimizer_class(name: str) -> type[torch.optim.Optimizer]:
    target = OPTIMIZERS.get(name).target
    if not isinstance(target, str):
        return target
    module, _, attr = target.rpartition(":")
    return getattr(importlib.import_module(module or "adamlab.optim"), attr)


def register(name: str, cls: type[torch.optim.Optimizer] | str, presets: dict[str, Any] | None = None,
             description: str = "") -> None:
    """Add optimizer ``name``: ``cls`` (a class, or ``"module:Class"``) with ``presets``.

    Raises ``ValueError`` if the name is taken (names are case-insensitive), built-in names included.
    """
    OPTIMIZERS.discover()
    declare(name, cls, presets, description)


def unregister(name: str) -> None:
    """Remove optimizer ``name`` (for tests that register their own)."""
    OPTIMIZERS.remove(name)


def make_optimizer(name: str, params: Iterable[Any], **hparams: Any) -> torch.optim.Optimizer:
    """Build optimizer ``name`` over ``params``; ``hparams`` override its presets."""
    return optimizer_class(name)(params, **{**presets(name), **hparams})


def optimizer_kwargs(hparams: Mapping[str, Any]) -> dict[str, Any]:
    """Hyperparameters as a run's config (JSON) or the command line holds them -> constructor keywords.

    JSON turns tuples (``betas``) into lists; the optimizers expect tuples.
    """
    return {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
