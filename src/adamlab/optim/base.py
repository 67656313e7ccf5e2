"""The machinery every adamlab optimizer shares: state, param groups, dispatch to a functional rule.

A subclass names its functional rule, declares its hyperparameters once (``hypers``, a tuple of
:class:`adamlab.optim.hyper.Hyper`: the constructor, the param-group defaults, their validation and the
rule's keyword arguments are made from it), the state tensors the rule takes, and the per-step
coefficients of one step (``step_kwargs``). This base class does the rest: closures, None and sparse
grads, lazy state, step counters, the non-finite gradient policy, and running the rule per tensor
(``foreach=False``), over the whole group at once (``foreach=True``), or as a compiled in-place kernel
made from the same rule (``fused=True``, see :mod:`adamlab.optim.fast`). The math is never here: it is
in :mod:`adamlab.functional`.

Path choice per parameter group:

- ``fused=True``: the compiled kernel (falls back to foreach, with one warning, where it cannot compile);
- ``fused=False``: the reference path chosen by ``foreach`` (PyTorch's default: per tensor on CPU);
- ``fused=None`` (default) and ``foreach=None``: the compiled kernel when the group has at least
  :func:`adamlab.optim.fast.min_numel` elements (1M by default) and a compiler is available; a smaller
  group takes the reference path for its first :func:`adamlab.optim.fast.compile_after_steps` steps
  (10 by default, ``ADAMLAB_FUSED_AFTER_STEPS``) and the compiled kernel from then on
  (:func:`adamlab.optim.fast.use_compiled`). An explicit ``foreach=True/False`` with ``fused=None``
  means the reference path.

The choice is a pure function of what the program states (the flags, the tensors' sizes, dtypes,
devices and types, the step count, the environment), never of a measured time: every rank of a job
takes the same path, and a rerun is bit-identical on a busy and an idle machine. If the compiled path
fails, the tensors it wrote are restored before anything else happens and the group takes the
reference path for the rest of the run (one warning; :func:`adamlab.optim.fast.fast_step`).
Once a group's compiled step has been verified, its later steps take a fast lane
(:func:`adamlab.optim.fast.lane_step`): every input the full path decides on is checked before anything
is written, then one ``_foreach_add_`` of the step counters and one kernel call per tensor, bit for bit
the full path's step. A class that overrides the step machinery (``_step_group``, ``_init_group``, ...)
takes no lane; per-step hyperparameter updates belong in :meth:`AdamlabOptimizer.begin_group_step`.

Conventions shared with ``torch.optim`` (tested against it in ``tests/optim/test_torch_generic.py``):

- ``state["step"]`` is a 0-dim float tensor on the CPU (float32, float64 under a float64 default dtype),
  as in torch's optimizers, so that ``torch.compile`` of a whole training step does not guard on (and
  recompile for) its value. Old state dicts with an ``int`` step load and are converted; a param state
  without a step counter (``torch.optim.SGD`` keeps none) counts as one step taken. ``rule_kwargs``
  receives the step as a Python ``int`` (a tensor only while ``torch.compile`` traces the step). Lazy
  state is created in ``_init_group``, which ``torch.compile`` runs eagerly as for torch's optimizers:
  a compiled training step compiles 2 graphs in all, as with ``torch.optim.Adam``.
- State dicts from elsewhere (older adamlab versions, ``torch.optim``): a param group without a newer key
  gets the optimizer's default for it (``__setstate__``, which ``load_state_dict`` calls).
- ``copy.deepcopy`` and pickling keep ``nonfinite`` and ``skipped_steps``.
- ``differentiable=True``: the step runs with autograd on (per group), so the new parameters are a
  differentiable function of ``lr``, the betas (as tensors) and the old parameters (hypergradients,
  meta-learning). As in torch, the parameters must then be non-leaf tensors, and the foreach and
  compiled paths (which do not record a graph) are refused.
- Complex parameters are optimised as pairs of reals (``torch.view_as_real``), like torch.
- Sparse gradients: refused with a clear error unless a class sets :attr:`AdamlabOptimizer.sparse_grads`.
- Integer and bool parameters are refused at construction (``torch.optim`` fails at the first step).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.optimizer import _get_scalar_dtype

from adamlab.functional.tensorlist import TensorList, copy_into
from adamlab.optim import fast, hyper, validation
from adamlab.optim import state_dict as state_dict_checks
from adamlab.optim.hyper import OPTIONS, Hyper
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

    Under ``"propagate"`` every method lets a NaN gradient reach the parameter it belongs to, as
    ``torch.optim`` does, so a divergence check on the parameters sees it. For the sign methods this
    needs a NaN-propagating sign (:func:`adamlab.functional.common.nan_sign`): ``torch.sign(nan)`` is
    0, which used to freeze a coordinate of M-SSD and M-SSD-VA for good (its ``exp_avg`` NaN, its
    parameter finite and never moving again).
    """

    #: The functional rule ``rule(param, grad, *state, **kwargs) -> (param, *state)``.
    rule: Callable[..., tuple[Any, ...]]

    #: The hyperparameters, in constructor order, each written once (:mod:`adamlab.optim.hyper`). A class
    #: that declares them gets its ``__init__`` (unless it writes one), ``hyperparameter_checks`` and
    #: ``rule_kwargs`` from them.
    hypers: ClassVar[tuple[Hyper, ...]] = ()

    #: Hyperparameters a subclass fixes (a named corner of its parent's grid, such as ``MSVAG`` of
    #: ``Dissected``): left out of its constructor, refused there with a ``TypeError``, set in its groups.
    preset: ClassVar[dict[str, Any]] = {}

    #: Old constructor keywords still accepted, ``{old: new hyperparameter}`` (:meth:`renamed_value` warns).
    renamed: ClassVar[dict[str, str]] = {}

    #: The machinery's constructor keywords the class takes (after the hyperparameters; :data:`OPTIONS`).
    options: ClassVar[tuple[str, ...]] = tuple(OPTIONS)

    #: ``{hyperparameter: check(name, value)}``, run on every param group (defaults and per-group
    #: overrides alike); a check raises ``ValueError`` naming the parameter and its allowed range.
    #: Made from :attr:`hypers` when the class declares them.
    hyperparameter_checks: ClassVar[dict[str, Callable[[str, Any], None]]] = {}
    _passed: ClassVar[tuple[tuple[str, tuple[str, ...]], ...]] = ()  # (hyperparameter, unpacked names) the rule takes

    #: Sparse gradients: ``None`` (refused with a clear error), ``"dense"`` (the rule on the densified
    #: gradient: ``torch.optim.SGD``'s semantics, where untouched entries see a zero gradient) or
    #: ``"touched"`` (the rule on the touched entries only, the others and their state untouched:
    #: ``torch.optim.Adagrad``'s semantics).
    sparse_grads: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Make the constructor and the checks of a class from its :attr:`hypers` (see :mod:`adamlab.optim.hyper`)."""
        super().__init_subclass__(**kwargs)
        own = vars(cls)
        if "hypers" in own:
            cls.hyperparameter_checks = hyper.checks(cls.hypers)
            cls._passed = tuple((h.name, h.unpack) for h in cls.hypers if h.passed)
        if cls.hypers and "__init__" not in own and any(k in own for k in ("hypers", "preset", "renamed", "options")):
            cls.__init__ = hyper.constructor(cls, AdamlabOptimizer.__init__)  # type: ignore[method-assign]
        # The compiled path's fast lane (fast.lane_step) stands in for these methods: a class that
        # overrides one of them always takes the full path.
        cls._lanes = all(getattr(cls, name) is getattr(AdamlabOptimizer, name) for name in _LANE_BYPASSES)

    #: Whether this class may take the compiled path's fast lane (set per class; see ``__init_subclass__``).
    _lanes: ClassVar[bool] = True

    def __init__(self, params: ParamsT, defaults: dict[str, Any], *, nonfinite: str = "propagate") -> None:
        check_choice("nonfinite", nonfinite, NONFINITE_POLICIES)
        defaults.setdefault("foreach", None)
        defaults.setdefault("fused", None)
        defaults.setdefault("differentiable", False)
        self.nonfinite = nonfinite
        self.skipped_steps = 0
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group (its missing hyperparameters taken from the defaults) and validate it."""
        super().add_param_group(param_group)
        try:
            validation.check_params_dtype(type(self).__name__, self.param_groups[-1]["params"])
            self.validate_group(self.param_groups[-1])
        except ValueError:
            self.param_groups.pop()  # a rejected group leaves the optimizer as it was
            raise

    def validate_group(self, group: dict[str, Any]) -> None:
        """Run :attr:`hyperparameter_checks` (and the ``foreach``/``fused``/``differentiable`` checks) on one group."""
        for name in ("foreach", "fused"):
            validation.optional_bool(name, group.get(name))
        validation.boolean("differentiable", group.get("differentiable", False))
        if group.get("differentiable") and (group.get("foreach") or group.get("fused")):
            raise ValueError("Invalid differentiable=True with foreach=True or fused=True: the foreach and "
                             "compiled paths record no autograd graph; use foreach=False, fused=False")
        for name, check in self.hyperparameter_checks.items():
            check(name, group[name])

    # -- copies, pickles and state dicts from elsewhere ---------------------------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["nonfinite"] = self.nonfinite
        state["skipped_steps"] = self.skipped_steps
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """``torch.optim.Optimizer.load_state_dict``, after :func:`adamlab.optim.state_dict.check_loadable`
        (another method's state, or invalid hyperparameters, raise ``ValueError``; nothing is loaded)."""
        state_dict_checks.check_loadable(self, state_dict)
        super().load_state_dict(state_dict)

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Restore a pickle/copy, or the groups and state of ``load_state_dict``, upgrading old layouts."""
        super().__setstate__(state)
        self.__dict__.setdefault("nonfinite", "propagate")
        self.__dict__.setdefault("skipped_steps", 0)
        for group in self.param_groups:
            self.upgrade_group(group)
            for key, value in self.defaults.items():
                group.setdefault(key, value)
            for p in group["params"]:
                param_state = self.state.get(p)
                if param_state:
                    self.upgrade_state(param_state)

    def upgrade_group(self, group: dict[str, Any]) -> None:
        """Rewrite a loaded param group of an older layout (a subclass renames keys here); in place."""

    @staticmethod
    def upgrade_state(param_state: dict[str, Any]) -> None:
        """A loaded param state: an ``int`` step becomes torch's 0-dim float tensor; a missing one is 1."""
        step = param_state.get("step", 1)
        if not isinstance(step, Tensor):
            param_state["step"] = torch.tensor(float(step), dtype=_get_scalar_dtype())

    # -- what a subclass provides ---------------------------------------------------------------
    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        """State names for the rule's positional state arguments; None where the rule gets None."""
        return ()

    def initial_state(self, name: str, param: Tensor, group: dict[str, Any]) -> Tensor:
        """A fresh state tensor (zeros by default)."""
        return torch.zeros_like(param, memory_format=torch.preserve_format)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """Keyword arguments of the rule for a group at (1-based) step ``step``.

        Every :attr:`hypers` entry the rule takes (a pair such as ``betas`` unpacked), then the per-step
        coefficients of :meth:`step_kwargs`, which may replace one of them (Adagrad's decayed ``lr``).
        ``step`` is a Python ``int`` (what :mod:`adamlab.optim.fast` and the vectorised backend pass
        too), or a 0-dim float64 tensor while ``torch.compile`` traces the step; the host-side
        ``*_coefficients`` helpers of :mod:`adamlab.functional` accept both. The vectorised backend
        calls it on a stacked group, where a number may be a ``[K]`` tensor (one value per run).
        """
        if not self.hypers:
            raise NotImplementedError(f"{type(self).__name__} declares no hypers: it must define rule_kwargs")
        kwargs: dict[str, Any] = {}
        for name, unpack in self._passed:
            if unpack:
                kwargs.update(zip(unpack, group[name], strict=True))
            else:
                kwargs[name] = group[name]
        kwargs.update(self.step_kwargs(group, step))
        return kwargs

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        """The rule's per-step coefficients at step ``step`` (bias corrections, rho, ...); none by default."""
        return {}

    def begin_group_step(self, group: dict[str, Any]) -> None:
        """Update a group's hyperparameters before its step, in place (none by default; Dissected copies a
        scheduler's ``momentum`` into ``beta``). Called on every path once per group and step, before
        :meth:`rule_kwargs`; it must be idempotent (the fast lane may call it, then leave for the full path)."""

    def complete_defaults(self, defaults: dict[str, Any]) -> None:
        """Add derived keys to the defaults the generated constructor made, in place; none by default."""

    def renamed_value(self, old: str, value: Any) -> Any:
        """A value given under a :attr:`renamed` keyword: checked as its new name, with a ``DeprecationWarning``."""
        new = self.renamed[old]
        spec = next(h for h in self.hypers if h.name == new)
        spec.check(f"{old} (the old name of {new})", value)
        warnings.warn(f"{type(self).__name__}({old}=...) is deprecated: the keyword is now {new}=...",
                      DeprecationWarning, stacklevel=3)  # the caller of the constructor
        return value

    # -- the step ---------------------------------------------------------------------------------
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Perform one optimization step; ``closure`` re-evaluates the model and returns the loss."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with torch.no_grad():
            # A group whose last steps were compiled, with nothing changed since, takes its fast lane
            # (fast.lane_step: checked here, before anything of any group is written).
            lanes = ([fast.lane_step(self, group) for group in self.param_groups]
                     if self._lanes and self.nonfinite == "propagate" and not torch.compiler.is_compiling() else None)
            if lanes is not None and all(lane is not None for lane in lanes):
                for lane in lanes:
                    lane()  # type: ignore[misc]
                return loss
            work = [(group, *self._params_with_grad(group)) if lanes is None or lanes[i] is None else (group, [], [])
                    for i, group in enumerate(self.param_groups)]
            if self.nonfinite != "propagate" and not self._grads_finite(work):
                self.skipped_steps += 1
                return loss
            for lane in lanes or ():
                if lane is not None:
                    lane()
        for group, params, grads in work:
            if params:
                with torch.no_grad():
                    self._init_group(group)
                with torch.set_grad_enabled(bool(group.get("differentiable", False))):
                    self._step_group(group, params, grads)
        return loss

    def _init_group(self, group: dict[str, Any]) -> None:
        """Create the missing state (step counter and :meth:`state_slots`) of the group's params with a grad.

        The name is torch's: ``torch.compile`` runs an optimizer's ``_init_group`` eagerly instead of
        tracing it, so a compiled training step does not also compile (and then guard on) the first
        step's state creation.
        """
        slots = self.state_slots(group)
        for p in group["params"]:
            if p.grad is None:
                continue
            state = self.state[p]
            if "step" not in state:
                state["step"] = torch.zeros((), dtype=_get_scalar_dtype())
            for name in slots:
                if name is not None and name not in state:
                    state[name] = self.initial_state(name, p, group)

    def _params_with_grad(self, group: dict[str, Any]) -> tuple[list[Tensor], list[Tensor]]:
        params, grads = [], []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                self._check_sparse(group, p)
            params.append(p)
            grads.append(p.grad)
        return params, grads

    def _check_sparse(self, group: dict[str, Any], param: Tensor) -> None:
        """Refuse a sparse gradient where torch does (or where this class has no sparse semantics)."""
        name = type(self).__name__
        if self.sparse_grads is None:
            raise RuntimeError(f"{name} does not support sparse gradients; use dense gradients "
                               "(e.g. nn.Embedding(sparse=False)), adamlab.optim.SGD or Adagrad, or "
                               "torch.optim.SparseAdam")
        if param.is_complex():
            raise RuntimeError(f"{name} does not support sparse gradients of complex parameters")
        if group.get("fused") or group.get("differentiable"):
            raise RuntimeError(f"{name}: sparse gradients are not supported with fused=True or "
                               "differentiable=True (as in torch.optim)")

    def _grads_finite(self, work: list[tuple[dict[str, Any], list[Tensor], list[Tensor]]]) -> bool:
        grads = [g.coalesce().values() if g.is_sparse else g for _, _, gs in work for g in gs]
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
        self.begin_group_step(group)
        slots = self.state_slots(group)
        # While torch.compile traces a training step, the step counter stays a tensor (no guard on its
        # value, so no recompile per step) and every parameter is its own bucket.
        tracing = torch.compiler.is_compiling()
        buckets: dict[tuple[Any, ...], list[int]] = {}
        sparse: list[tuple[int, Any]] = []
        for i, p in enumerate(params):
            state = self.state[p]  # created by _init_group
            state["step"] += 1
            step = state["step"].to(torch.float64) if tracing else _step_value(state["step"])
            if grads[i].is_sparse:
                sparse.append((i, step))
            else:
                buckets.setdefault((i,) if tracing else (step, p.device, p.dtype), []).append(i)
        for i, step in sparse:
            self._sparse_step(params[i], grads[i], [None if n is None else self.state[params[i]][n] for n in slots],
                              self.rule_kwargs(group, step))
        dense = [params[i] for index in buckets.values() for i in index]
        reference_only = tracing or bool(group.get("differentiable"))
        # The path is a function of the program alone (flags, sizes, step count): never of a clock.
        compiled = bool(dense) and not reference_only and self._use_compiled(
            group, dense, min(key[0] for key in buckets))
        foreach = None  # decided when the reference path has work (never, on a fully compiled step)
        for key, index in buckets.items():
            # float64, so that the per-step coefficients match the host's Python floats of the eager path
            step = self.state[params[index[0]]]["step"].to(torch.float64) if tracing else key[0]
            kwargs = self.rule_kwargs(group, step)
            # Complex tensors as their real pairs; a real tensor is passed as itself (the compiled path's
            # per-group plan is checked by identity).
            views = [_real(params[i]) for i in index]
            grad_views = [_real(grads[i]) for i in index]
            state_views = [None if n is None else [_real(self.state[params[i]][n]) for i in index] for n in slots]
            if compiled:
                whole = not sparse and len(buckets) == 1 and len(index) == len(group["params"])
                left = fast.fast_step(type(self).rule, views, grad_views, state_views, kwargs, owner=(self, group),
                                      lane_slots=slots if whole else None)
                views, grad_views = [views[j] for j in left], [grad_views[j] for j in left]
                state_views = [None if s is None else [s[j] for j in left] for s in state_views]
            if not views:
                continue
            if foreach is None:
                foreach = not reference_only and (self._use_foreach(group, params)
                                                  or (group.get("fused") is True and not compiled))
            if foreach:
                self._apply(TensorList(views), TensorList(grad_views),
                            [None if s is None else TensorList(s) for s in state_views], kwargs)
            else:
                for j, view in enumerate(views):
                    self._apply(view, grad_views[j], [None if s is None else s[j] for s in state_views], kwargs)

    def _sparse_step(self, param: Tensor, grad: Tensor, states: list[Tensor | None], kwargs: dict[str, Any]) -> None:
        """One step of a parameter with a sparse gradient (see :attr:`sparse_grads`)."""
        grad = grad.coalesce()
        if self.sparse_grads == "dense":
            self._apply(param, grad.to_dense(), states, kwargs)
            return
        if grad._nnz() == 0:
            return
        index = tuple(grad.indices())
        new_param, *new_states = type(self).rule(param[index], grad.values(),
                                                 *(None if s is None else s[index] for s in states), **kwargs)
        for old, new in zip(states, new_states, strict=True):
            if old is not None:
                old.index_put_(index, new)
        param.index_put_(index, new_param)

    def _apply(self, param: Any, grad: Any, states: list[Any], kwargs: dict[str, Any]) -> None:
        args = (param, grad, *states)
        if torch.is_grad_enabled():  # differentiable=True: autograd must not save what is updated in place below
            args = tuple(None if a is None else a.clone() for a in args)
        new_param, *new_states = type(self).rule(*args, **kwargs)
        for old, new in zip(states, new_states, strict=True):
            if old is not None:
                copy_into(old, new)
        copy_into(param, new_param)

    def _use_compiled(self, group: dict[str, Any], params: list[Tensor], step: int) -> bool:
        """Whether this group steps with the compiled kernel at (1-based) step ``step`` (the policy:
        :func:`adamlab.optim.fast.use_compiled`)."""
        return fast.use_compiled(self, group, params, step)

    @staticmethod
    def _use_foreach(group: dict[str, Any], params: list[Tensor]) -> bool:
        foreach = group.get("foreach")
        if foreach is None:  # PyTorch's default: multi-tensor kernels on accelerators, per tensor on CPU
            return all(p.device.type != "cpu" for p in params)
        return bool(foreach)


#: The methods the fast lane stands in for (``AdamlabOptimizer._lanes``).
_LANE_BYPASSES = ("step", "_step_group", "_init_group", "_params_with_grad", "_use_compiled", "_grads_finite")


def _step_value(step: Any) -> int:
    """The step counter as a Python int (it is a 0-dim tensor, or an int in old state)."""
    return int(step.item()) if isinstance(step, Tensor) else int(step)


def _real(t: Tensor) -> Tensor:
    """A complex tensor as its real pairs (a view, like ``torch.optim``); a real tensor as it is."""
    return torch.view_as_real(t) if t.is_complex() else t
