r"""Take one optimizer step apart: direction, magnitude, variance-adaptation factor, noise estimate.

Every adamlab update is written as

.. math:: \theta_t - \theta_{t-1} = -\,\text{magnitude} \cdot d \odot \gamma \;+\; \delta

with :math:`d` the direction (a gradient-like vector, or its sign), a scalar magnitude, a per-coordinate
factor :math:`\gamma`, and :math:`\delta` the decoupled weight-decay shrink
:math:`-\alpha\lambda\theta_{t-1}` (AdamW only, otherwise zero). The pieces are read from the optimizer's
state *after* its step and computed with the functions of :mod:`adamlab.functional` (never re-derived):

================  ================================  ===========================  ==================================
class             direction :math:`d`               magnitude                    :math:`\gamma`
================  ================================  ===========================  ==================================
Adam (all modes)  :math:`\operatorname{sign}(\hat m)`  :math:`\alpha`             :math:`|\hat m|/(\sqrt{\hat v}+\epsilon)` (``adam_direction``)
Dissected family  ``dissected_pieces``: g, m or sign  :math:`\alpha`             1, or ``variance_adaptation_factor``
SGD               g, momentum buffer, or Nesterov's  :math:`\eta`               1
Adagrad           g                                 :math:`\eta_t` (``adagrad_lr``)  :math:`1/(\epsilon+\sqrt{\sum g^2})`
RMSprop           g (or the momentum buffer)        :math:`\eta`               :math:`1/(\epsilon+\sqrt{v})` (1 with momentum)
Adamax            :math:`\operatorname{sign}(m)`     :math:`\alpha/(1-\beta_1^t)`  :math:`|m|/u`
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
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from adamlab import functional as F
from adamlab.functional.common import prepare_grad, safe_ratio


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
        The decoupled weight-decay term :math:`-\\alpha\\lambda\\theta_{t-1}` (AdamW), else None.
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


def _grad(param: Tensor, previous: Tensor | None, group: Mapping[str, Any], *, decay: bool = True) -> Tensor:
    """The gradient the rule used: ``prepare_grad`` at the parameter value before the step."""
    wd = group.get("weight_decay", 0.0) if decay else 0.0
    if wd != 0 and previous is None:
        raise ValueError(
            "previous: the parameters before the step are needed to rebuild a weight-decayed gradient; "
            "use StepRecorder(optimizer) around optimizer.step()"
        )
    base = previous if previous is not None else param
    return prepare_grad(base, param.grad, weight_decay=wd, maximize=group.get("maximize", False))


def _adam(p: Tensor, prev: Tensor | None, state: dict, group: dict) -> dict[str, Any]:
    step = int(state["step"])
    beta1, beta2 = group["betas"]
    coeffs = F.adam_coefficients(step, beta1, beta2, group["bias_correction"])
    second = state["max_exp_avg_sq"] if group["amsgrad"] else state["exp_avg_sq"]
    sign, gamma = F.adam_direction(state["exp_avg"], second, eps=group["eps"],
                                   eps_inside_sqrt=group["eps_inside_sqrt"], **coeffs)
    m_hat = state["exp_avg"] / coeffs["bias_correction1"]
    v_hat = second / coeffs["bias_correction2"]
    m2 = m_hat * m_hat
    decay = None
    if group["decoupled_weight_decay"] and group["weight_decay"] != 0:
        if prev is None:
            raise ValueError("previous: AdamW's decoupled decay needs the parameters before the step; "
                             "use StepRecorder(optimizer)")
        decay = -(group["lr"] * group["weight_decay"]) * prev
    return dict(kind="sign", direction=sign, magnitude=float(group["lr"]), gamma=gamma,
                eta2=safe_ratio(v_hat - m2, m2), decay=decay, second_moment=v_hat)


def _adamax(p: Tensor, prev: Tensor | None, state: dict, group: dict) -> dict[str, Any]:
    beta1, _ = group["betas"]
    m = state["exp_avg"]
    return dict(kind="sign", direction=m.sign(),
                magnitude=float(group["lr"]) / F.bias_correction(beta1, int(state["step"])),
                gamma=m.abs() / state["exp_inf"])


def _dissected(p: Tensor, prev: Tensor | None, state: dict, group: dict) -> dict[str, Any]:
    momentum, va = group["momentum"], group["variance_adaptation"]
    coeffs = F.dissected_coefficients(int(state["step"]), group["beta"])
    m = state["exp_avg"] / coeffs["bias_correction"] if (momentum or va) else None
    v = state["exp_avg_sq"] / coeffs["bias_correction"] if va else None
    grad = m if momentum else _grad(p, prev, group)
    d, gamma = F.dissected_pieces(grad, m, v, direction=group["direction"], variance_adaptation=va,
                                  momentum=momentum, rho=coeffs["rho"],
                                  variance_estimate=group["variance_estimate"])
    out: dict[str, Any] = dict(kind=group["direction"], direction=d, magnitude=float(group["lr"]),
                               gamma=gamma)
    if va:
        m2 = m * m
        out["eta2"] = safe_ratio(v - m2, m2)
        var = F.direction_variance(m, v, rho=coeffs["rho"], momentum=momentum,
                                   variance_estimate=group["variance_estimate"])
        out["eta2_unbiased"] = safe_ratio(var, m2)
    return out


def _sgd(p: Tensor, prev: Tensor | None, state: dict, group: dict) -> dict[str, Any]:
    mu = group["momentum"]
    if mu == 0:
        d = _grad(p, prev, group)
    else:
        d = F.sgd_direction(_grad(p, prev, group), state["momentum_buffer"], momentum=mu,
                            nesterov=group["nesterov"])
    return dict(kind="grad", direction=d, magnitude=float(group["lr"]), gamma=1.0)


def _adagrad(p: Tensor, prev: Tensor | None, state: dict, group: dict) -> dict[str, Any]:
    lr = F.adagrad_lr(group["lr"], group["lr_decay"], int(state["step"]))
    return dict(kind="grad", direction=_grad(p, prev, group), magnitude=float(lr),
                gamma=1.0 / F.adagrad_denominator(state["sum"], group["eps"]))


def _rmsprop(p: Tensor, prev: Tensor | None, state: dict, group: dict) -> dict[str, Any]:
    if group["momentum"] > 0:
        return dict(kind="grad", direction=state["momentum_buffer"], magnitude=float(group["lr"]), gamma=1.0)
    denom = F.rmsprop_denominator(state["square_avg"], state.get("grad_avg"), eps=group["eps"],
                                  centered=group["centered"])
    return dict(kind="grad", direction=_grad(p, prev, group), magnitude=float(group["lr"]), gamma=1.0 / denom)


def _rules() -> dict[type, Any]:
    from adamlab import optim

    return {optim.Adam: _adam, optim.Adamax: _adamax, optim.Dissected: _dissected, optim.SGD: _sgd,
            optim.Adagrad: _adagrad, optim.RMSprop: _rmsprop}


def decompose(optimizer: Optimizer, previous: Mapping[int, Tensor] | None = None) -> list[StepPieces]:
    """Take the last step of ``optimizer`` apart, per parameter that took it.

    Parameters
    ----------
    optimizer:
        An adamlab optimizer (``adamlab.optim``; a ``TemporalAveraging`` wrapper is looked through) on
        which ``step()`` has just been called, with the gradients of that step still in ``.grad``.
    previous:
        Optional ``{index: parameter before the step}`` (what :class:`StepRecorder` stores). With it,
        each record carries the applied ``update``; it is required where a piece needs
        :math:`\\theta_{t-1}` (coupled weight decay with a raw-gradient direction, AdamW's decay).

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
    rule = None
    for cls, fn in _rules().items():
        if isinstance(opt, cls):
            rule = fn
            break
    if rule is None:
        raise ValueError(f"optimizer must be an adamlab.optim optimizer (SGD, Adagrad, RMSprop, Adam, Adamax, "
                         f"Dissected family), got {type(opt).__name__}")
    out: list[StepPieces] = []
    index = -1
    with torch.no_grad():
        for g_index, group in enumerate(opt.param_groups):
            for p in group["params"]:
                index += 1
                state = opt.state.get(p, {})
                if p.grad is None or not state:
                    continue
                prev = None if previous is None else previous.get(index)
                pieces = rule(p, prev, state, group)
                # Pieces may alias optimizer state (e.g. SGD's momentum buffer), which the next step
                # changes in place: keep a snapshot.
                pieces = {k: v.detach().clone() if isinstance(v, Tensor) else v for k, v in pieces.items()}
                update = None if prev is None else p.detach() - prev
                out.append(StepPieces(index=index, group=g_index, update=update, step=int(state["step"]),
                                      **pieces))
    return out


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
