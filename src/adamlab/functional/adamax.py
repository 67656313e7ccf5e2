"""AdaMax (Kingma & Ba 2015, sec. 7.1): Adam with the infinity norm."""

from __future__ import annotations

from typing import Any, TypeVar

from adamlab.functional.common import ema, prepare_grad, update_rule

T = TypeVar("T")

__all__ = ["adamax", "adamax_direction", "adamax_step_pieces"]


def adamax_direction(exp_avg: T, exp_inf: T) -> tuple[T, T]:
    r"""AdaMax's direction as sign times factor: ``(sign(m), |m|/u)``, whose product is :math:`m_t/u_t` exactly."""
    return exp_avg.sign(), exp_avg.abs() / exp_inf


@update_rule(step_scalars=("lr", "bias_correction1"))
def adamax(
    param: T,
    grad: T,
    exp_avg: T,
    exp_inf: T,
    *,
    lr: Any,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    bias_correction1: Any = 1.0,
) -> tuple[T, T, T]:
    r"""One AdaMax step (Kingma & Ba, Algorithm 2); returns ``(param, exp_avg, exp_inf)``.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad
        u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon), \qquad
        \theta_t = \theta_{t-1} - \frac{\alpha}{1 - \beta_1^t} \frac{m_t}{u_t}.

    The paper has no :math:`\epsilon` (:math:`u_t = \max(\beta_2 u_{t-1}, |g_t|)`), so a coordinate whose
    gradients have all been zero divides 0 by 0. Like ``torch.optim.Adamax`` we add :math:`\epsilon` to
    :math:`|g_t|` inside the max; ``eps=0`` is the paper's rule exactly. Default :math:`\alpha = 0.002`.
    """
    grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    exp_avg = ema(exp_avg, grad, beta1)
    exp_inf = (beta2 * exp_inf).maximum(grad.abs() + eps)
    sign, gamma = adamax_direction(exp_avg, exp_inf)
    return param - (lr / bias_correction1) * (sign * gamma), exp_avg, exp_inf


def adamax_step_pieces(param: Any, grad: Any, exp_avg: Any, exp_inf: Any, *, lr: Any,
                       bias_correction1: Any = 1.0, **_: Any) -> dict[str, Any]:
    r"""AdaMax's step taken apart: direction :math:`\operatorname{sign}(m)`, magnitude :math:`\alpha/(1-\beta_1^t)`,
    :math:`\gamma = |m|/u` (arguments as :func:`adamax`'s, state after the step)."""
    sign, gamma = adamax_direction(exp_avg, exp_inf)
    return dict(kind="sign", direction=sign, magnitude=float(lr) / float(bias_correction1), gamma=gamma)
