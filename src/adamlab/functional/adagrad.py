"""AdaGrad (Duchi, Hazan & Singer 2011), in PyTorch's parameterisation."""

from __future__ import annotations

from typing import Any, TypeVar

from adamlab.functional.common import prepare_grad, rule_grad, update_rule

T = TypeVar("T")

__all__ = ["adagrad", "adagrad_denominator", "adagrad_lr", "adagrad_step_pieces"]


def adagrad_lr(lr: float, lr_decay: float, step: int) -> float:
    r"""PyTorch's decayed step size :math:`\eta_t = \eta / (1 + (t - 1)\,\delta)`."""
    return lr / (1 + (step - 1) * lr_decay)


@update_rule(step_scalars=("lr",))
def adagrad(
    param: T,
    grad: T,
    sum_sq: T,
    *,
    lr: Any,
    eps: float = 1e-10,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[T, T]:
    r"""One AdaGrad step; returns ``(param, sum_sq)``. ``lr`` is the (possibly decayed) :math:`\eta_t`.

    .. math::
        v_t = v_{t-1} + g_t^2, \qquad \theta_t = \theta_{t-1} - \frac{\eta_t\, g_t}{\epsilon + \sqrt{v_t}}

    Seed 003 writes the same rule (its sum runs to :math:`t-1` but it applies the current gradient, so
    the accumulator includes :math:`g_t` as in Duchi et al. and ``torch.optim.Adagrad``).
    """
    grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    sum_sq = sum_sq + grad * grad
    return param - lr * (grad / adagrad_denominator(sum_sq, eps)), sum_sq


def adagrad_denominator(sum_sq: T, eps: Any) -> T:
    r"""AdaGrad's per-coordinate denominator :math:`\epsilon + \sqrt{v_t}`."""
    return sum_sq.sqrt() + eps


def adagrad_step_pieces(param: Any, grad: Any, sum_sq: Any, *, lr: Any, eps: Any = 1e-10,
                        weight_decay: float = 0.0, maximize: bool = False, **_: Any) -> dict[str, Any]:
    r"""AdaGrad's step taken apart: direction :math:`g`, magnitude :math:`\eta_t`, :math:`\gamma = 1/(\epsilon+\sqrt{v_t})`."""
    g = rule_grad(param, grad, weight_decay=weight_decay, maximize=maximize, who="Adagrad")
    return dict(kind="grad", direction=g, magnitude=float(lr), gamma=1.0 / adagrad_denominator(sum_sq, eps))
