"""Every adamlab optimizer, built by one factory per case, for the generic (torch-style) checks.

The cases are derived from the registry (:mod:`adamlab.optim.registry`), so a newly registered
optimizer is covered by every generic check without editing the tests; ``TemporalAveraging`` (a
wrapper, not in the registry) is added around Adam and around SGD with momentum.
``test_every_public_class_is_covered`` fails when a public class is in neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

import adamlab.optim as O
from adamlab.optim import registry

#: Learning rates that make a 20-step descent on the small test problems visible and stable.
_LR = {"sgd": 0.02, "momentum": 0.01, "nesterov": 0.01, "adagrad": 0.05, "rmsprop": 0.005}


def _registry_case(name: str) -> Callable[..., torch.optim.Optimizer]:
    def make(params: Any, **kw: Any) -> torch.optim.Optimizer:
        return registry.make_optimizer(name, params, **{"lr": _LR.get(name, 0.01), **kw})

    return make


CASES: dict[str, Callable[..., torch.optim.Optimizer]] = {name: _registry_case(name) for name in registry.names()}
CASES["averaging(adam)"] = lambda ps, **kw: O.TemporalAveraging(O.Adam(ps, **{"lr": 0.01, **kw}), beta=0.9)
CASES["averaging(momentum)"] = lambda ps, **kw: O.TemporalAveraging(
    O.SGD(ps, **{"lr": 0.01, "momentum": 0.9, **kw}), beta=0.9)

NAMES = sorted(CASES)


def class_of(name: str) -> str:
    """The adamlab class a case exercises (for per-class reports)."""
    if name.startswith("averaging("):
        return "TemporalAveraging"
    return registry.optimizer_class(name).__name__


def inner(opt: torch.optim.Optimizer) -> torch.optim.Optimizer:
    """The optimizer that owns the update state (looks through TemporalAveraging)."""
    return getattr(opt, "optimizer", opt)


def has_weight_decay(opt: torch.optim.Optimizer) -> bool:
    return any(g.get("weight_decay", 0) != 0 for g in opt.param_groups)
