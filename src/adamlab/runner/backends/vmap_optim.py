"""K optimizers stepping stacked parameters with ONE call of their functional rule.

No update equation lives here. Each run gets its own ``adamlab.optim`` object (built by
:func:`adamlab.optim.registry.make_optimizer` on a dummy parameter, so its hyperparameters are
validated exactly as in the serial backend). At every step each run's
``optimizer.rule_kwargs(group, step)`` gives that run's keyword arguments (learning rate after the
schedule, bias corrections, rho, ...: the host-side ``*_coefficients`` helpers of
:mod:`adamlab.functional`). Keyword arguments equal in every run are passed as they are; those that
differ are stacked into a tensor that broadcasts along the run axis of the stacked parameter
(shape ``[1, .., K, .., 1]``). Then ``type(optimizer).rule`` -- the same function the serial
optimizer calls -- runs once over each stacked tensor, and its outputs are copied in place.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor


class NotVectorizable(Exception):
    """A block of runs cannot be trained together; the message says why (the backend runs them serially)."""


def _same(values: Sequence[Any]) -> bool:
    first = values[0]
    return all(type(v) is type(first) and v == first for v in values[1:])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


class StackedOptimizer:
    """The optimizers of K runs, stepping stacked parameter tensors together.

    Parameters
    ----------
    name:
        Registry short name (``"adam"``, ``"msvag"``, ...), the same for every run.
    hparams:
        One keyword dict per run (they override the registry presets, as in the serial backend).
    dtype, device:
        Of the stacked parameters (the per-run hyperparameter tensors use them too).

    Raises
    ------
    NotVectorizable
        When the optimizer is not an ``adamlab.optim`` class with a functional rule, or the runs'
        optimizers need different state tensors (e.g. ``amsgrad`` on in some runs only).
    """

    def __init__(self, name: str, hparams: Sequence[Mapping[str, Any]], dtype: torch.dtype,
                 device: torch.device, *, compiled: bool = False) -> None:
        from adamlab.optim.base import AdamlabOptimizer
        from adamlab.optim.registry import make_optimizer

        if not hparams:
            raise ValueError("hparams must hold at least one run")
        dummy = [torch.zeros(2, dtype=dtype, device=device) for _ in hparams]
        self.optimizers = [make_optimizer(name, [p], **dict(hp)) for p, hp in zip(dummy, hparams, strict=True)]
        first = self.optimizers[0]
        if not isinstance(first, AdamlabOptimizer) or getattr(type(first), "rule", None) is None:
            raise NotVectorizable(f"optimizer {name!r} has no functional rule in adamlab.functional")
        if any(len(o.param_groups) != 1 for o in self.optimizers):
            raise NotVectorizable(f"optimizer {name!r} uses several parameter groups")
        self.rule = type(first).rule
        self.groups = [o.param_groups[0] for o in self.optimizers]
        self.slots = first.state_slots(self.groups[0])
        if any(o.state_slots(g) != self.slots for o, g in zip(self.optimizers, self.groups, strict=True)):
            raise NotVectorizable(f"the runs of optimizer {name!r} need different state tensors "
                                  "(a switch such as amsgrad or momentum=0 differs)")
        self.base_lrs = [float(g["lr"]) for g in self.groups]
        self.dtype, self.device = dtype, device
        self.k = len(self.optimizers)
        #: Step with the rule compiled into one in-place kernel per stacked tensor
        #: (:func:`adamlab.optim.fast.stacked_step`); falls back to eager, with one warning, on failure.
        self.compiled = bool(compiled)
        self.step_count = 0
        self._params: list[tuple[Tensor, int]] = []
        self._states: list[list[Tensor | None]] = []

    # -- setup ----------------------------------------------------------------------------------
    def add_param(self, param: Tensor, run_axis: int) -> None:
        """Register a stacked parameter whose dimension ``run_axis`` has size K (one slice per run)."""
        if param.shape[run_axis] != self.k:
            raise ValueError(f"run_axis {run_axis} of a parameter of shape {tuple(param.shape)} must have size {self.k}")
        self._params.append((param, run_axis))
        states: list[Tensor | None] = []
        for slot in self.slots:
            if slot is None:
                states.append(None)
                continue
            pieces = [
                opt.initial_state(slot, param.detach().select(run_axis, k), group)
                for k, (opt, group) in enumerate(zip(self.optimizers, self.groups, strict=True))
            ]
            states.append(torch.stack(pieces, dim=run_axis).contiguous())
        self._states.append(states)

    def lrs(self) -> list[float]:
        """Each run's current learning rate (``param_groups[0]["lr"]``, after the schedule)."""
        return [float(g["lr"]) for g in self.groups]

    # -- the step -------------------------------------------------------------------------------
    def set_lr_factor(self, factor: float) -> None:
        """Set every run's lr to ``base_lr * factor`` (what the serial loop does before each step)."""
        for group, lr0 in zip(self.groups, self.base_lrs, strict=True):
            group["lr"] = lr0 * factor

    def stacked_kwargs(self, step: int, as_tensors: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The rule's keyword arguments of all runs at ``step``: shared values, or ``[K]`` tensors
        (always tensors for the names in ``as_tensors``)."""
        per_run = [opt.rule_kwargs(g, step) for opt, g in zip(self.optimizers, self.groups, strict=True)]
        keys = per_run[0].keys()
        out: dict[str, Any] = {}
        for key in keys:
            values = [kw[key] for kw in per_run]
            if _same(values) and not (key in as_tensors and _is_number(values[0])):
                out[key] = values[0]
            elif all(_is_number(v) for v in values):
                out[key] = torch.tensor([float(v) for v in values], dtype=self.dtype, device=self.device)
            else:
                raise NotVectorizable(f"optimizer setting {key!r} differs across runs ({values[:3]}...) "
                                      "and is not a number")
        return out

    @staticmethod
    def _along(value: Any, ndim: int, run_axis: int) -> Any:
        if not isinstance(value, Tensor) or value.dim() != 1:
            return value
        shape = [1] * ndim
        shape[run_axis] = value.shape[0]
        return value.view(shape)

    @torch.no_grad()
    def step(self, grads: Sequence[Tensor]) -> None:
        """One optimizer step of every run; ``grads[i]`` is the gradient of the i-th added parameter."""
        self.step_count += 1
        if self.compiled:
            from adamlab.optim.fast import STEP_SCALARS

            kwargs = self.stacked_kwargs(self.step_count, STEP_SCALARS)
            if self._compiled_step(grads, kwargs):
                return
        kwargs = self.stacked_kwargs(self.step_count)
        for (param, axis), grad, states in zip(self._params, grads, self._states, strict=True):
            kw = {k: self._along(v, param.dim(), axis) for k, v in kwargs.items()}
            try:
                new_param, *new_states = self.rule(param.detach(), grad, *states, **kw)
            except RuntimeError as err:
                if "ambiguous" in str(err):  # Python control flow on a per-run setting
                    raise NotVectorizable(f"the update rule branches on a setting that differs across runs: {err}") from err
                raise
            for old, new in zip(states, new_states, strict=True):
                if old is not None:
                    old.copy_(new)
            param.detach().copy_(new_param)

    def _compiled_step(self, grads: Sequence[Tensor], kwargs: dict[str, Any]) -> bool:
        """All stacked tensors through the compiled kernel; False (nothing changed) when it cannot run.

        The kernels come from the package's one builder (:func:`adamlab.optim.fast.stacked_step`).
        """
        from adamlab.optim import fast

        names = tuple(sorted(k for k, v in kwargs.items() if isinstance(v, Tensor)))
        static = tuple(sorted((k, v) for k, v in kwargs.items() if k not in names))
        ok, reason = fast.compile_available(self.device)
        if not ok:
            fast.warn_fallback(reason)
            self.compiled = False
            return False
        values = [kwargs[n] for n in names]
        for index, ((param, axis), grad, states) in enumerate(zip(self._params, grads, self._states, strict=True)):
            if not fast.stacked_step(self.rule, static, names, param, grad, states, values, axis):
                if index > 0:  # earlier tensors were already updated: never step them twice
                    raise RuntimeError("the compiled stacked step failed after updating some tensors")
                self.compiled = False
                return False
        return True

    def trial(self) -> None:
        """Two steps on a throwaway stacked tensor: raises :class:`NotVectorizable` before real work."""
        probe = StackedOptimizer.__new__(StackedOptimizer)
        probe.__dict__.update(self.__dict__)
        probe._params, probe._states, probe.step_count = [], [], 0
        probe.compiled = False  # the eager rule shows the same branching, without a compile
        saved = [dict(g) for g in self.groups]
        try:
            param = torch.linspace(-1.0, 1.0, 2 * self.k, dtype=self.dtype, device=self.device).view(self.k, 2)
            probe.add_param(param, 0)
            for _ in range(2):
                probe.step([param * 0.5 + 0.1])
        finally:
            for group, old in zip(self.groups, saved, strict=True):
                group.update(old)
