"""What ``load_state_dict`` of an adamlab optimizer accepts: its own method's state, valid hyperparameters.

``torch.optim.Optimizer.load_state_dict`` only checks the number and sizes of the parameter groups, so
an SGD state dict loaded into Adam silently mixes two methods (the groups keep SGD's keys, the missing
Adam keys take the defaults, Adam's moments start from zero) and a loaded ``betas=(2, -1)`` is never
validated. :func:`check_loadable` runs before anything is loaded and raises ``ValueError`` (one line,
naming the optimizer and the group) when

- a param group holds a hyperparameter the optimizer does not have (after the optimizer's own
  upgrade of older layouts): the state of another method;
- a param group fixes a preset hyperparameter to another value (M-SVAG state into M-SSD);
- a param state holds a tensor the optimizer's rule does not keep (``momentum_buffer`` in Adam);
- a hyperparameter fails the check the constructor runs (same message and allowed range).

A state dict of the same method from ``torch.optim`` (``torch.optim.Adam`` into ``adamlab.optim.Adam``)
still loads: torch's generic keys (``capturable``, ``foreach``, ``fused``, ``differentiable``,
``maximize``, ``param_names``, and ``initial_lr`` of an lr scheduler) are accepted, and a missing key gets the default.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch.optim import Optimizer

__all__ = ["GENERIC_GROUP_KEYS", "check_loadable"]

#: Param-group keys every torch optimizer may carry, whatever its method.
GENERIC_GROUP_KEYS: frozenset[str] = frozenset(
    {"params", "param_names", "lr", "initial_lr", "capturable", "foreach", "fused", "differentiable",
               "maximize"})


def _refuse(owner: str, what: str) -> ValueError:
    return ValueError(f"cannot load this state dict into {owner}: {what}")


def check_loadable(optimizer: Optimizer, state_dict: Any) -> None:
    """Raise ``ValueError`` if ``state_dict`` is not a state of ``optimizer``'s method with valid
    hyperparameters (see the module docstring); changes nothing.

    Parameters
    ----------
    optimizer:
        An :class:`adamlab.optim.base.AdamlabOptimizer` (it provides ``upgrade_group``,
        ``validate_group``, ``state_slots`` and ``preset``).
    state_dict:
        What ``optimizer.load_state_dict`` was given.
    """
    owner = type(optimizer).__name__
    if not isinstance(state_dict, Mapping) or not isinstance(state_dict.get("param_groups"), list) \
            or not isinstance(state_dict.get("state"), Mapping):
        raise _refuse(owner, "it is not a state dict (a mapping with 'state' and 'param_groups')")
    allowed = set(optimizer.defaults) | GENERIC_GROUP_KEYS | set(getattr(optimizer, "renamed", {}))
    preset: Mapping[str, Any] = getattr(optimizer, "preset", {})
    slots_of: dict[Any, set[str]] = {}
    for index, saved in enumerate(state_dict["param_groups"]):
        if not isinstance(saved, Mapping) or not isinstance(saved.get("params"), list):
            raise _refuse(owner, f"param group {index} is not a mapping with a 'params' list")
        group = dict(saved)
        optimizer.upgrade_group(group)  # type: ignore[attr-defined]
        foreign = sorted(str(k) for k in set(group) - allowed)
        if foreign:
            raise _refuse(owner, f"param group {index} has hyperparameters {owner} does not have "
                                 f"({', '.join(foreign)}): it is the state of another optimizer")
        for key, value in optimizer.defaults.items():
            group.setdefault(key, value)
        for key, value in preset.items():
            if group.get(key) != value:
                raise _refuse(owner, f"param group {index} has {key}={group.get(key)!r}, "
                                     f"{owner} is defined by {key}={value!r}")
        try:
            optimizer.validate_group(group)  # type: ignore[attr-defined]
        except (ValueError, TypeError) as err:
            raise _refuse(owner, f"param group {index}: {err}") from None
        slots = {s for s in optimizer.state_slots(group) if s} | {"step"}  # type: ignore[attr-defined]
        for pid in saved["params"]:
            slots_of[pid] = slots
    for pid, param_state in state_dict["state"].items():
        if not isinstance(param_state, Mapping):
            raise _refuse(owner, f"the state of parameter {pid!r} is not a mapping")
        if pid not in slots_of:
            raise _refuse(owner, f"it holds state for parameter {pid!r}, which no param group lists")
        foreign = sorted(str(k) for k in set(param_state) - slots_of[pid])
        if foreign:
            raise _refuse(owner, f"the state of parameter {pid!r} holds {', '.join(foreign)}, which {owner} "
                                 "does not keep: it is the state of another optimizer")
