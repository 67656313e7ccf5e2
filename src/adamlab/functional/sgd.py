"""Stochastic gradient descent with momentum and Nesterov momentum (PyTorch semantics)."""

from __future__ import annotations

from typing import Any, TypeVar

from adamlab.functional.common import prepare_grad, rule_grad, update_rule

T = TypeVar("T")

__all__ = ["sgd", "sgd_direction", "sgd_step_pieces"]


@update_rule(step_scalars=("lr",))
def sgd(
    param: T,
    grad: T,
    momentum_buffer: T | None = None,
    *,
    lr: Any,
    momentum: float = 0.0,
    dampening: float = 0.0,
    nesterov: bool = False,
    weight_decay: float = 0.0,
    maximize: bool = False,
    first_step: Any = False,
) -> tuple[T, T | None]:
    r"""One SGD step; returns ``(param, momentum_buffer)``.

    With :math:`g` from :func:`~adamlab.functional.common.prepare_grad`:

    .. math::
        b_t = \begin{cases} g_t & t = 1 \\ \mu b_{t-1} + (1 - \tau) g_t & t > 1 \end{cases}, \qquad
        d_t = \begin{cases} g_t + \mu b_t & \text{nesterov} \\ b_t & \text{otherwise} \end{cases}, \qquad
        \theta_t = \theta_{t-1} - \eta d_t

    (:math:`\mu` momentum, :math:`\tau` dampening; without momentum :math:`d_t = g_t`). This is
    ``torch.optim.SGD``. Seed 003's heavy-ball form :math:`v_t = \rho v_{t-1} - \eta g_t,\
    \theta_t = \theta_{t-1} + v_t` is the same iteration at constant :math:`\eta`, with
    :math:`v_t = -\eta b_t` and :math:`\rho = \mu`, :math:`\tau = 0`. ``first_step`` is a bool, or a
    0-dim bool tensor (then selected element-wise, so a compiled step does not branch on it).
    """
    grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    if momentum == 0:
        return param - lr * grad, momentum_buffer
    if momentum_buffer is None or first_step is True:
        momentum_buffer = grad
    elif first_step is False:
        momentum_buffer = momentum * momentum_buffer + (1 - dampening) * grad
    else:  # a tensor flag (the step counter while torch.compile traces a step): no host-side branch
        momentum_buffer = grad.where(first_step, momentum * momentum_buffer + (1 - dampening) * grad)
    return param - lr * sgd_direction(grad, momentum_buffer, momentum=momentum, nesterov=nesterov), momentum_buffer


def sgd_direction(grad: T, momentum_buffer: T, *, momentum: Any, nesterov: bool = False) -> T:
    r"""The direction :math:`d_t` of a momentum step from the updated buffer :math:`b_t`.

    .. math:: d_t = g_t + \mu b_t \ (\text{nesterov}), \qquad d_t = b_t \ (\text{heavy ball})
    """
    return grad + momentum * momentum_buffer if nesterov else momentum_buffer


def sgd_step_pieces(param: Any, grad: Any, momentum_buffer: Any = None, *, lr: Any, momentum: Any = 0.0,
                    nesterov: bool = False, weight_decay: float = 0.0, maximize: bool = False,
                    **_: Any) -> dict[str, Any]:
    """SGD's step taken apart: direction :math:`d_t` (:func:`sgd_direction`), magnitude ``lr``, no factor.

    Arguments as :func:`sgd`'s with the buffer after the step; ``param`` is the parameter before the
    step (needed only with weight decay, for the gradient).
    """
    g = rule_grad(param, grad, weight_decay=weight_decay, maximize=maximize, who="SGD")
    d = g if momentum == 0 else sgd_direction(g, momentum_buffer, momentum=momentum, nesterov=nesterov)
    return dict(kind="grad", direction=d, magnitude=float(lr), gamma=1.0)
