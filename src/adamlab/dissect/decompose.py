r"""Take one optimizer step apart: direction, magnitude, variance-adaptation factor, noise estimate.

Every adamlab update is written as

.. math:: \theta_t - \theta_{t-1} = -\,\text{magnitude} \cdot d \odot \gamma \;+\; \delta

with :math:`d` the direction (a gradient-like vector, or its sign), a scalar magnitude, a per-coordinate
factor :math:`\gamma`, and :math:`\delta` the part of the update that is not a product: AdamW's decoupled
weight-decay shrink, or ND-Adam's step back onto the unit sphere (otherwise zero). The pieces are read
from the optimizer's state *after* its step by the optimizer class's ``pieces`` function, which lives next
to its rule in :mod:`adamlab.functional` (``adam_step_pieces``, ``dissected_step_pieces``, ...) and is
built from the same ``*_direction`` helpers the rule calls: it gets the parameter before the step, the
gradient, the state tensors of ``state_slots(group)`` and the rule's own keyword arguments
``rule_kwargs(group, step)``. Nothing here knows any optimizer, so a new class with a ``pieces``
attribute is decomposed as it is:

================  ================================  ===========================  ==================================
class             direction :math:`d`               magnitude                    :math:`\gamma`
================  ================================  ===========================  ==================================
Adam (all modes)  :math:`\operatorname{sign}(\hat m)`  :math:`\alpha`             :math:`|\hat m|/(\sqrt{\hat v}+\epsilon)` (``adam_direction``)
Dissected family  ``dissected_pieces``: g, m or sign  :math:`\alpha`             1, or ``variance_adaptation_factor``
SGD               g, momentum buffer, or Nesterov's  :math:`\eta`               1
Adagrad           g                                 :math:`\eta_t` (``adagrad_lr``)  :math:`1/(\epsilon+\sqrt{\sum g^2})`
RMSprop           g (or the momentum buffer)        :math:`\eta`               :math:`1/(\epsilon+\sqrt{v})` (1 with momentum)
Adamax            :math:`\operatorname{sign}(m)`     :math:`\alpha/(1-\beta_1^t)`  :math:`|m|/u` (``adamax_direction``)
NDAdam (vectors)  :math:`\operatorname{sign}(\hat m)`  :math:`\alpha`             :math:`|\hat m|/(\sqrt{\hat v}+\epsilon)`, one :math:`\hat v` per vector
================  ================================  ===========================  ==================================

For methods that keep a second moment next to a first one, :math:`\hat\eta^2 = (v - m^2)/m^2` (Balles &
Hennig 2018, seed 002; bias-corrected :math:`\hat m, \hat v` for Adam) is reported, and for the Dissected
family also the :math:`\rho`-unbiased variant :math:`\operatorname{Var}[d]/m^2` built from
:func:`adamlab.functional.direction_variance` (:math:`\rho_t s/m^2` with momentum, :math:`s/m^2`
without), for which :math:`\gamma = 1/(1+\hat\eta^2)` (gradient) or its square root (sign).

Use :class:`StepRecorder` around ``optimizer.step()`` to also get the applied update::

    with StepRecorder(optimizer) as rec:
        optimizer.step()
    for piece in rec.pieces:
        assert torch.allclose(piece.reconstructed(), piece.update)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from adamlab.optim.base import AdamlabOptimizer


@dataclass
class StepPieces:
    """One parameter's step taken apart (see the module docstring for each class).

    Attributes
    ----------
    index:
        Position of the parameter in the optimizer (over all groups, in order).
    group:
        Index of its param group.
    kind:
        ``"sign"`` or ``"grad"``: whether ``direction`` is a sign vector.
    direction:
        :math:`d`.
    magnitude:
        The scalar step size.
    gamma:
        Per-coordinate factor (a tensor, or the float 1.0 when there is none).
    eta2:
        :math:`\\hat\\eta^2 = (v - m^2)/m^2` where the method has both moments, else None (0 where m = 0).
    eta2_unbiased:
        The rho-unbiased estimate (Dissected family with variance adaptation), else None.
    decay:
        The part :math:`\\delta` of the update that is not a product of pieces: AdamW's decoupled
        decay :math:`(1-\\alpha\\lambda)\\theta_{t-1} - \\theta_{t-1}`, ND-Adam's step back onto the
        unit sphere; else None.
    update:
        The update actually applied, :math:`\\theta_t - \\theta_{t-1}`, when the parameters before the
        step were recorded; else None.
    step:
        The optimizer's (1-based) step count for this parameter.
    second_moment:
        The second-moment estimate in the denominator (Adam: :math:`\\hat v`, the bias-corrected EMA of
        :math:`g^2`, or its running max for AMSGrad), else None.
    """

    index: int
    group: int
    kind: str
    direction: Tensor
    magnitude: float
    gamma: Tensor | float
    eta2: Tensor | None = None
    eta2_unbiased: Tensor | None = None
    decay: Tensor | None = None
    update: Tensor | None = None
    step: int = 0
    second_moment: Tensor | None = None

    def reconstructed(self) -> Tensor:
        """The update rebuilt from the pieces: :math:`-\\text{magnitude}\\, d \\odot \\gamma + \\delta`."""
        out = -self.magnitude * (self.direction * self.gamma)
        if self.decay is not None:
            out = out + self.decay
        return out

    def max_error(self) -> float:
        """``max |reconstructed - update|`` (NaN when the update was not recorded)."""
        if self.update is None:
            return float("nan")
        if self.update.numel() == 0:
            return 0.0
        return float((self.reconstructed() - self.update).abs().max())


def _inner(optimizer: Optimizer) -> Optimizer:
    # TemporalAveraging wraps the optimizer that actually steps.
    inner = getattr(optimizer, "optimizer", None)
    return inner if isinstance(inner, Optimizer) else optimizer


def decompose(optimizer: Optimizer, previous: Mapping[int, Tensor] | None = None, *,
              coords: Mapping[int, Tensor] | None = None) -> list[StepPieces]:
    """Take the last step of ``optimizer`` apart, per parameter that took it.

    Parameters
    ----------
    optimizer:
        An adamlab optimizer (``adamlab.optim``; a ``TemporalAveraging`` wrapper is looked through) on
        which ``step()`` has just been called, with the gradients of that step still in ``.grad``.
    previous:
        Optional ``{index: parameter before the step}`` (what :class:`StepRecorder` stores). With it,
        each record carries the applied ``update``; it is required where a piece needs
        :math:`\\theta_{t-1}` (coupled weight decay with a raw-gradient direction, AdamW's decay,
        ND-Adam's weight vectors).
    coords:
        Optional ``{index: flat coordinate indices}``: take those parameters apart at these coordinates only
        (the pieces are then 1-d, one value per index). The rule runs on the gathered gradient and state,
        which costs O(len(indices)) instead of O(parameter size); where a state tensor is not of the
        parameter's shape (ND-Adam's per-vector second moment), the rule runs on the whole parameter and
        the pieces are gathered afterwards. The gathering is exact for rules that act coordinate by
        coordinate (the Adam family's); ``magnitude`` stays the scalar it is.

    Returns
    -------
    list[StepPieces]
        One record per parameter that has a gradient and optimizer state.

    Raises
    ------
    ValueError
        For an optimizer that is not an adamlab class, or a missing ``previous`` where it is needed.
    """
    opt = _inner(optimizer)
    pieces_of = getattr(type(opt), "pieces", None)
    if not isinstance(opt, AdamlabOptimizer) or pieces_of is None:
        raise ValueError(f"optimizer must be an adamlab.optim optimizer with a decomposition (a class "
                         f"attribute 'pieces'), got {type(opt).__name__}")
    out: list[StepPieces | _Slot] = []
    gathered: dict[tuple[Any, ...], list[_Job]] = {}  # rule calls shared by parameters taken apart at coords
    index = -1
    with torch.no_grad():
        for g_index, group in enumerate(opt.param_groups):
            for p in group["params"]:
                index += 1
                state = opt.state.get(p, {})
                if p.grad is None or not state:
                    continue
                prev = None if previous is None else previous.get(index)
                step = int(state["step"])
                states = [None if name is None else state[name] for name in opt.state_slots(group)]
                pick = None if coords is None else coords.get(index)
                update = None if prev is None else p.detach() - prev
                late = pick is not None and not all(
                    s is None or (isinstance(s, Tensor) and s.shape == p.shape) for s in states)
                if pick is not None and not late:
                    job = _Job(index, g_index, step, p.grad.reshape(-1)[pick],
                               None if prev is None else prev.reshape(-1)[pick],
                               [s if s is None else s.reshape(-1)[pick] for s in states],
                               None if update is None else update.reshape(-1)[pick])
                    key = (g_index, step, prev is None, tuple(s is None for s in states), p.dtype, p.device)
                    gathered.setdefault(key, []).append(job)
                    out.append(job.record)  # filled in below, in parameter order
                    continue
                pieces = pieces_of(prev, p.grad, *states, **opt.rule_kwargs(group, step))
                if late:
                    pieces = {k: v.reshape(-1)[pick] if isinstance(v, Tensor) and v.shape == p.shape else v
                              for k, v in pieces.items()}
                    update = None if update is None else update.reshape(-1)[pick]
                # Pieces may alias optimizer state (e.g. SGD's momentum buffer), which the next step
                # changes in place: keep a snapshot.
                pieces = {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in pieces.items()}
                out.append(StepPieces(index=index, group=g_index, update=update, step=step, **pieces))
        for (g_index, step, *_), jobs in gathered.items():
            _run_gathered(pieces_of, jobs, opt.rule_kwargs(opt.param_groups[g_index], step))
    return [piece.value if isinstance(piece, _Slot) else piece for piece in out]


class _Slot:
    """A place in :func:`decompose`'s output, filled once the shared rule call has run."""

    value: StepPieces


@dataclass
class _Job:
    """One parameter taken apart at coordinates: its gathered gradient, parameter and state."""

    index: int
    group: int
    step: int
    grad: Tensor
    param: Tensor | None
    states: list[Tensor | None]
    update: Tensor | None
    record: _Slot = field(default_factory=_Slot)


def _run_gathered(pieces_of: Any, jobs: list[_Job], kwargs: dict[str, Any]) -> None:
    """One call of the rule's pieces function on the concatenated gathered values of ``jobs`` (the same
    group, step and state layout, so the same scalars), split back per parameter. The rules act
    coordinate by coordinate, so this gives each parameter's values exactly as a call of its own;
    the gathered tensors are copies, so nothing aliases the optimizer's state."""
    sizes = [job.grad.numel() for job in jobs]

    def cat(values: list[Tensor | None]) -> Tensor | None:
        return None if values[0] is None else torch.cat(values)  # type: ignore[arg-type]

    states = [cat([job.states[i] for job in jobs]) for i in range(len(jobs[0].states))]
    pieces = pieces_of(cat([job.param for job in jobs]), cat([job.grad for job in jobs]), *states, **kwargs)
    total = sum(sizes)
    split = {k: v.split(sizes) if isinstance(v, Tensor) and v.dim() == 1 and v.numel() == total else None
             for k, v in pieces.items()}
    for i, job in enumerate(jobs):
        own = {k: (split[k][i] if split[k] is not None else v) for k, v in pieces.items()}
        job.record.value = StepPieces(index=job.index, group=job.group, update=job.update, step=job.step, **own)


class StepRecorder:
    """Context manager: copy the parameters before ``optimizer.step()``, decompose the step after.

    >>> with StepRecorder(opt) as rec:          # doctest: +SKIP
    ...     opt.step()
    >>> rec.pieces[0].update                     # doctest: +SKIP

    It costs one copy of the parameters that have a gradient.
    """

    def __init__(self, optimizer: Optimizer) -> None:
        self.optimizer = optimizer
        self.previous: dict[int, Tensor] = {}
        self.pieces: list[StepPieces] = []
        #: True when the optimizer skipped the step (``nonfinite="skip"``); ``pieces`` is then empty.
        self.skipped = False
        self._skipped_before = 0

    def __enter__(self) -> StepRecorder:
        self.previous = {}
        self.skipped = False
        self._skipped_before = getattr(_inner(self.optimizer), "skipped_steps", 0)
        index = -1
        for group in _inner(self.optimizer).param_groups:
            for p in group["params"]:
                index += 1
                if p.grad is not None:
                    self.previous[index] = p.detach().clone()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is None:
            if getattr(_inner(self.optimizer), "skipped_steps", 0) != self._skipped_before:
                self.skipped, self.pieces = True, []
                return
            self.pieces = decompose(self.optimizer, self.previous)
