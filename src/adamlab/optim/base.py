"""The machinery every adamlab optimizer shares: state, param groups, dispatch to a functional rule.

A subclass names its functional rule, the state tensors that rule takes, and the keyword arguments
of one step. This base class does the rest: closures, None and sparse grads, lazy state, step counters,
the non-finite gradient policy, and running the rule per tensor (``foreach=False``), over the whole
group at once (``foreach=True``), or as a compiled in-place kernel made from the same rule
(``fused=True``, see :mod:`adamlab.optim.fast`). The math is never here: it is in :mod:`adamlab.functional`.

Path choice per parameter group:

- ``fused=True``: the compiled kernel (falls back to foreach, with one warning, where it cannot compile);
- ``fused=False``: the reference path chosen by ``foreach`` (PyTorch's default: per tensor on CPU);
- ``fused=None`` (default) and ``foreach=None``: the compiled kernel when the group has at least
  :func:`adamlab.optim.fast.min_numel` elements (1M by default) and a compiler is available; a smaller
  group starts on the reference path and switches once that has cost about one compile
  (:func:`adamlab.optim.fast.use_compiled`). An explicit ``foreach=True/False`` with ``fused=None``
  means the reference path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer

from adamlab.functional.tensorlist import TensorList, copy_into
from adamlab.optim import fast, validation
from adamlab.optim.validation import NONFINITE_POLICIES, check_choice

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]


class AdamlabOptimizer(Optimizer):
    """Base class: a ``torch.optim.Optimizer`` whose update is one function of ``adamlab.functional``.

    Non-finite gradients (``nonfinite=``): ``"propagate"`` (default, like ``torch.optim``: NaN or inf
    in a gradient reaches the parameters and state; no extra pass over the gradients), ``"skip"``
    (if any gradient of the step has a NaN or inf, the whole step is skipped -- parameters, state and
    step counters are left as they were -- and ``skipped_steps`` is incremented), or ``"raise"``
    (``FloatingPointError`` naming the parameter). ``skip`` and ``raise`` cost one read of the
    gradients and one host synchronisation per step.
    """

    #: The functional rule ``rule(param, grad, *state, **kwargs) -> (param, *state)``.
    rule: Callable[..., tuple[Any, ...]]

    #: ``{hyperparameter: check(name, value)}``, run on every param group (defaults and per-group
    #: overrides alike); a check raises ``ValueError`` naming the parameter and its allowed range.
    hyperparameter_checks: ClassVar[dict[str, Callable[[str, Any], None]]] = {}

    def __init__(self, params: ParamsT, defaults: dict[str, Any], *, nonfinite: str = "propagate") -> None:
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        defaults.setdefault("foreach", None)
        defaults.setdefault("fused", None)
        super().__init__(params, defaults)
        self.nonfinite = nonfinite
        self.skipped_steps = 0

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (its missing hyperparameters taken from the defaults) and validate it."""
        super().add_param_group(param_group)
        try:
            self.validate_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()  # a rejected group leaves the optimizer as it was
            raise

    def validate_group(self, group: dict[str, Any]) -> None:
        """Run :attr:`hyperparameter_checks` (and the ``foreach``/``fused`` checks) on one group."""
        for name in ("foreach", "fused"):
            validation.optional_bool(name, group.get(name))
        for name, check in self.hyperparameter_checks.items():
            check(name, group[name])

    # -- what a subclass provides ---------------------------------------------------------------
    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        """State names for the rule's positional state arguments; None where the rule gets None."""
        return ()

    def initial_state(self, name: str, param: Tensor, group: dict[str, Any]) -> Tensor:
        """A fresh state tensor (zeros by default)."""
        return torch.zeros_like(param, memory_format=torch.preserve_format)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """Keyword arguments of the rule for a group at (1-based) step ``step``."""
        raise NotImplementedError

    # -- the step ---------------------------------------------------------------------------------
    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        work = [(group, *self._params_with_grad(group)) for group in self.param_groups]
        if self.nonfinite != "propagate" and not self._grads_finite(work):
            self.skipped_steps += 1
            return loss
        for group, params, grads in work:
            if params:
                self._step_group(group, params, grads)
        return loss

    def _params_with_grad(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        params, grads = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients; use dense gradients "
                    "(e.g. nn.Embedding(sparse=False)) or torch.optim.SparseAdam"
                )
            if p.is_complex():
                raise RuntimeError(f"{type(self).__name__} does not support complex parameters")
            params.append(p)
            grads.append(p.grad)
        return params, grads

    def _grads_finite(self, work: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]) -> bool:
        grads = [g for _, _, gs in work for g in gs]
        if not grads:
            return True
        flags = torch.stack([g.isfinite().all() for g in grads])
        if bool(flags.all()):
            return True
        if self.nonfinite == "raise":
            bad = int((~flags).nonzero()[0])
            shape = tuple(grads[bad].shape)
            raise FloatingPointError(
                f"{type(self).__name__}: non-finite gradient in parameter #{bad} (shape {shape}); "
                "nonfinite='raise'"
            )
        return False

    def _step_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        slots = self.state_slots(group)
        buckets: dict[tuple[int, torch.device, torch.dtype], list[int]] = {}
        for i, p in enumerate(params):
            state = self.state[p]
            if not state:
                state["step"] = 0
            for name in slots:
                if name is not None and name not in state:
                    state[name] = self.initial_state(name, p, group)
            state["step"] += 1
            buckets.setdefault((state["step"], p.device, p.dtype), []).append(i)
        compiled = self._use_compiled(group, params)
        foreach = None  # decided when the reference path has work (never, on a fully compiled step)
        start = 0.0 if compiled else time.perf_counter()
        for (step, _, _), index in buckets.items():
            kwargs = self.rule_kwargs(group, step)
            if compiled:
                left = fast.fast_step(
                    type(self).rule,
                    [params[i] for i in index],
                    [grads[i] for i in index],
                    [None if n is None else [self.state[params[i]][n] for i in index] for n in slots],
                    kwargs,
                    owner=(self, group),
                )
                index = [index[j] for j in left]
            if not index:
                continue
            if foreach is None:
                foreach = self._use_foreach(group, params) or (group.get("fused") is True and not compiled)
            if foreach:
                self._apply(
                    TensorList(params[i] for i in index),
                    TensorList(grads[i] for i in index),
                    [None if n is None else TensorList(self.state[params[i]][n] for i in index) for n in slots],
                    kwargs,
                )
            else:
                for i in index:
                    state = self.state[params[i]]
                    self._apply(params[i], grads[i], [None if n is None else state[n] for n in slots], kwargs)
        if not compiled:  # fused=None: the reference path's time counts towards compiling (fast.use_compiled)
            fast.note_eager(self, group, time.perf_counter() - start)

    def _apply(self, param: Any, grad: Any, states: list[Any], kwargs: dict[str, Any]) -> None:
        new_param, *new_states = type(self).rule(param, grad, *states, **kwargs)
        for old, new in zip(states, new_states, strict=True):
            if old is not None:
                copy_into(old, new)
        copy_into(param, new_param)

    def _use_compiled(self, group: dict[str, Any], params: list[Tensor]) -> bool:
        """Whether this group steps with the compiled kernel (the policy: :func:`adamlab.optim.fast.use_compiled`)."""
        return fast.use_compiled(self, group, params)

    @staticmethod
    def _use_foreach(group: dict[str, Any], params: list[Tensor]) -> bool:
        foreach = group.get("foreach")
        if foreach is None:  # PyTorch's default: multi-tensor kernels on accelerators, per tensor on CPU
            return all(p.device.type != "cpu" for p in params)
        return bool(foreach)
