"""RMSProp (Tieleman & Hinton 2012), with PyTorch's momentum and centred variants."""

from __future__ import annotations

from typing import Any, TypeVar

from adamlab.functional.common import ema, prepare_grad, rule_grad, update_rule

T = TypeVar("T")

__all__ = ["rmsprop", "rmsprop_denominator", "rmsprop_step_pieces"]


@update_rule(step_scalars=("lr",))
def rmsprop(
    param: T,
    grad: T,
    square_avg: T,
    momentum_buffer: T | None = None,
    grad_avg: T | None = None,
    *,
    lr: Any,
    alpha: float = 0.99,
    eps: float = 1e-8,
    momentum: float = 0.0,
    centered: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
) -> tuple[T, T, T | None, T | None]:
    r"""One RMSProp step; returns ``(param, square_avg, momentum_buffer, grad_avg)``.

    .. math::
        v_t = \alpha v_{t-1} + (1 - \alpha) g_t^2, \qquad
        \theta_t = \theta_{t-1} - \frac{\eta\, g_t}{\epsilon + \sqrt{v_t}}

    (seed 003 calls :math:`\alpha` "beta"). ``centered`` replaces :math:`v_t` by
    :math:`v_t - \bar g_t^2` with :math:`\bar g_t` the EMA of :math:`g`; ``momentum`` :math:`\mu > 0`
    uses :math:`b_t = \mu b_{t-1} + g_t / (\epsilon + \sqrt{v_t})`, :math:`\theta_t = \theta_{t-1} - \eta b_t`.
    Both as in ``torch.optim.RMSprop``.
    """
    grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    square_avg = ema(square_avg, grad * grad, alpha)
    if centered:
        grad_avg = ema(grad_avg, grad, alpha)
    denom = rmsprop_denominator(square_avg, grad_avg, eps=eps, centered=centered)
    if momentum > 0:
        momentum_buffer = momentum * momentum_buffer + grad / denom
        return param - lr * momentum_buffer, square_avg, momentum_buffer, grad_avg
    return param - lr * (grad / denom), square_avg, momentum_buffer, grad_avg


def rmsprop_denominator(square_avg: T, grad_avg: T | None, *, eps: Any, centered: bool = False) -> T:
    r"""RMSProp's denominator :math:`\epsilon + \sqrt{v_t}` (centred: :math:`\epsilon + \sqrt{v_t - \bar g_t^2}`)."""
    if centered:
        return (square_avg - grad_avg * grad_avg).sqrt() + eps
    return square_avg.sqrt() + eps


def rmsprop_step_pieces(param: Any, grad: Any, square_avg: Any, momentum_buffer: Any = None, grad_avg: Any = None,
                        *, lr: Any, eps: Any = 1e-8, momentum: Any = 0.0, centered: bool = False,
                        weight_decay: float = 0.0, maximize: bool = False, **_: Any) -> dict[str, Any]:
    r"""RMSProp's step taken apart: :math:`g` times :math:`1/(\epsilon + \sqrt{v_t})`, or the momentum buffer."""
    if momentum > 0:
        return dict(kind="grad", direction=momentum_buffer, magnitude=float(lr), gamma=1.0)
    g = rule_grad(param, grad, weight_decay=weight_decay, maximize=maximize, who="RMSprop")
    denom = rmsprop_denominator(square_avg, grad_avg, eps=eps, centered=centered)
    return dict(kind="grad", direction=g, magnitude=float(lr), gamma=1.0 / denom)
