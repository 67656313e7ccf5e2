"""K optimizers stepping stacked parameters with ONE call of their functional rule.

No update equation lives here. Each run gets its own ``adamlab.optim`` object (built by
:func:`adamlab.optim.registry.make_optimizer` on a dummy parameter, so its hyperparameters are
validated exactly as in the serial backend). Their param groups are merged once into ONE *stacked
group*: a setting equal in every run keeps its value, a number that differs becomes a float64 tensor
over the run axis ``[K]`` (a tuple such as ``betas`` element by element). At every step the stacked
group's ``lr`` is the base learning rates times the schedule's factor (one tensor operation), and ONE
call of ``optimizer.rule_kwargs(stacked_group, step)`` -- the method the serial optimizer calls, with
the host-side ``*_coefficients`` helpers of :mod:`adamlab.functional`, which accept tensors -- gives
every run's per-step scalars (bias corrections, rho, ...) as ``[K]`` tensors. No Python loop over the
runs happens inside the step loop. Tensors are reshaped to broadcast along the run axis of each
stacked parameter (``[1, .., K, .., 1]``), and ``type(optimizer).rule`` -- the same function the serial
optimizer calls -- runs once over each stacked tensor; its outputs are copied in place.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from adamlab.functional.common import step_scalars


class NotVectorizable(Exception):
    """A block of runs cannot be trained together; the message says why (the backend runs them serially)."""


def _same(values: Sequence[Any]) -> bool:
    first = values[0]
    return all(type(v) is type(first) and v == first for v in values[1:])


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _stack_values(key: str, values: Sequence[Any]) -> Any:
    """One setting of K runs: the shared value, a float64 ``[K]`` tensor of numbers, or a tuple of those."""
    if _same(values):
        return values[0]
    if all(_is_number(v) for v in values):
        return torch.tensor([float(v) for v in values], dtype=torch.float64)
    if all(isinstance(v, tuple) for v in values) and len({len(v) for v in values}) == 1:
        return tuple(_stack_values(key, column) for column in zip(*values, strict=True))
    raise NotVectorizable(f"optimizer setting {key!r} differs across runs ({list(values[:3])}...) "
                          "and is not a number")


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
        #: The K runs' settings as one param group: shared values, or float64 ``[K]`` tensors.
        self.stacked_group = {key: _stack_values(key, [g[key] for g in self.groups])
                              for key in self.groups[0] if key != "params"}
        lr = self.stacked_group["lr"]
        self.base_lr: Tensor | float = lr.clone() if isinstance(lr, Tensor) else float(lr)
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

    def state_tensors(self) -> list[list[Tensor | None]]:
        """The stacked state tensors, one list (one entry per slot) per added parameter (for checkpoints)."""
        return self._states

    def lrs(self) -> list[float]:
        """Each run's current learning rate (after the schedule), as the serial loop records it."""
        lr = self.stacked_group["lr"]
        return lr.tolist() if isinstance(lr, Tensor) else [float(lr)] * self.k

    # -- the step -------------------------------------------------------------------------------
    def set_lr_factor(self, factor: float) -> None:
        """Set every run's lr to ``base_lr * factor`` (what the serial loop does before each step)."""
        self.stacked_group["lr"] = self.base_lr * factor

    def stacked_kwargs(self, step: int, as_tensors: frozenset[str] = frozenset()) -> dict[str, Any]:
        """The rule's keyword arguments of all runs at ``step``, from ONE ``rule_kwargs`` call on the
        stacked group: shared values as they are, per-run ones as ``[K]`` tensors of the parameters'
        dtype (always tensors for the names in ``as_tensors``)."""
        kwargs = self.optimizers[0].rule_kwargs(self.stacked_group, step)
        out: dict[str, Any] = {}
        for key, value in kwargs.items():
            if isinstance(value, Tensor):
                out[key] = value.to(device=self.device, dtype=self.dtype)
            elif key in as_tensors and _is_number(value):
                out[key] = torch.full((self.k,), float(value), dtype=self.dtype, device=self.device)
            else:
                out[key] = value
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
            # The rule's own per-step scalars go into the kernel as tensors even where every run has
            # the same value: baked in as constants, each new value would compile a new kernel.
            kwargs = self.stacked_kwargs(self.step_count, step_scalars(self.rule))
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
        saved = dict(self.stacked_group)
        try:
            param = torch.linspace(-1.0, 1.0, 2 * self.k, dtype=self.dtype, device=self.device).view(self.k, 2)
            probe.add_param(param, 0)
            for _ in range(2):
                probe.step([param * 0.5 + 0.1])
        finally:
            self.stacked_group.clear()
            self.stacked_group.update(saved)
