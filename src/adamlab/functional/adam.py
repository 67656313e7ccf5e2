"""Adam (Kingma & Ba 2015) and its variants: AMSGrad, AdamW, eps inside the root, no bias correction."""

from __future__ import annotations

from typing import Any, TypeVar

from adamlab.functional.common import bias_correction, ema, prepare_grad, safe_ratio, update_rule

T = TypeVar("T")

__all__ = ["adam", "adam_coefficients", "adam_direction", "adam_step_pieces", "adam_terms", "decoupled_decay"]


def adam_coefficients(step: int, beta1: float, beta2: float, correct_bias: bool = True) -> dict[str, float]:
    r"""Host-side scalars of step :math:`t`: :math:`1 - \beta_1^t` and :math:`1 - \beta_2^t` (1 without correction)."""
    if not correct_bias:
        return {"bias_correction1": 1.0, "bias_correction2": 1.0}
    return {"bias_correction1": bias_correction(beta1, step), "bias_correction2": bias_correction(beta2, step)}


def adam_direction(
    exp_avg: T,
    second_moment: T,
    *,
    eps: Any,
    eps_inside_sqrt: bool = False,
    bias_correction1: Any = 1.0,
    bias_correction2: Any = 1.0,
) -> tuple[T, T]:
    r"""Adam's step direction, taken apart as sign times variance adaptation (Balles & Hennig 2018).

    Returns ``(sign(m_hat), gamma)`` with

    .. math::
        \hat m = \frac{m_t}{1 - \beta_1^t}, \quad \hat v = \frac{v_t}{1 - \beta_2^t}, \quad
        \gamma = \frac{|\hat m|}{\sqrt{\hat v} + \epsilon}
        \;\Big(\text{or } \frac{|\hat m|}{\sqrt{\hat v + \epsilon}}\Big),

    so that :math:`\operatorname{sign}(\hat m)\,\gamma = \hat m / (\sqrt{\hat v} + \epsilon)` exactly
    (a sign flip and :math:`|a|/b = |a/b|` are exact in IEEE arithmetic). For :math:`\epsilon = 0`,
    :math:`\gamma = (1 + \hat\eta^2)^{-1/2}` with :math:`\hat\eta^2 = (\hat v - \hat m^2)/\hat m^2`.
    """
    m_hat, denom = adam_terms(exp_avg, second_moment, eps=eps, eps_inside_sqrt=eps_inside_sqrt,
                              bias_correction1=bias_correction1, bias_correction2=bias_correction2)
    return m_hat.sign(), m_hat.abs() / denom


def adam_terms(
    exp_avg: T,
    second_moment: T,
    *,
    eps: Any,
    eps_inside_sqrt: bool = False,
    bias_correction1: Any = 1.0,
    bias_correction2: Any = 1.0,
) -> tuple[T, T]:
    r"""The numerator and denominator of Adam's direction, :math:`\hat m` and :math:`\sqrt{\hat v} + \epsilon`
    (or :math:`\sqrt{\hat v + \epsilon}`): the step is their quotient, its pieces (:func:`adam_direction`)
    are :math:`\operatorname{sign}(\hat m)` and :math:`|\hat m|` over the same denominator."""
    m_hat = exp_avg / bias_correction1
    v_hat = second_moment / bias_correction2
    denom = (v_hat + eps).sqrt() if eps_inside_sqrt else v_hat.sqrt() + eps
    return m_hat, denom


def decoupled_decay(param: T, *, lr: Any, weight_decay: Any) -> T:
    r"""AdamW's decoupled shrink (Loshchilov & Hutter 2019), :math:`\theta \leftarrow (1 - \alpha\lambda)\theta`."""
    return param * (1 - lr * weight_decay)


@update_rule(step_scalars=("lr", "bias_correction1", "bias_correction2"), reciprocal_division=True)
def adam(
    param: T,
    grad: T,
    exp_avg: T,
    exp_avg_sq: T,
    max_exp_avg_sq: T | None = None,
    *,
    lr: Any,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: Any = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    amsgrad: bool = False,
    eps_inside_sqrt: bool = False,
    maximize: bool = False,
    bias_correction1: Any = 1.0,
    bias_correction2: Any = 1.0,
) -> tuple[T, T, T, T | None]:
    r"""One Adam step (Kingma & Ba 2015, Algorithm 1); returns ``(param, exp_avg, exp_avg_sq, max_exp_avg_sq)``.

    .. math::
        m_t = \beta_1 m_{t-1} + (1 - \beta_1) g_t, \qquad v_t = \beta_2 v_{t-1} + (1 - \beta_2) g_t^2,

        \theta_t = \theta_{t-1} - \alpha \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \qquad
        \hat m_t = \frac{m_t}{1 - \beta_1^t},\ \hat v_t = \frac{v_t}{1 - \beta_2^t}.

    Variants: ``eps_inside_sqrt`` uses :math:`\sqrt{\hat v_t + \epsilon}` (the form Balles & Hennig
    write, seed 002); ``bias_correction1 = bias_correction2 = 1`` is Adam without bias correction
    (Kingma & Ba sec. 6.4); ``amsgrad`` divides by :math:`\max_{s \le t} v_s` (Reddi et al. 2018, as in
    ``torch.optim.Adam``); ``weight_decay`` is L2 added to the gradient, or with
    ``decoupled_weight_decay`` the AdamW shrink :math:`\theta \leftarrow (1 - \alpha\lambda)\theta`
    (Loshchilov & Hutter 2019) before the step. Defaults are the paper's
    (:math:`\alpha = 10^{-3}`, :math:`\beta_1 = 0.9`, :math:`\beta_2 = 0.999`, :math:`\epsilon = 10^{-8}`;
    seed 003's slide says :math:`\alpha = 0.1`, a typo).
    """
    if decoupled_weight_decay:
        grad = prepare_grad(param, grad, maximize=maximize)
        if weight_decay != 0:
            param = decoupled_decay(param, lr=lr, weight_decay=weight_decay)
    else:
        grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    exp_avg = ema(exp_avg, grad, beta1)
    exp_avg_sq = ema(exp_avg_sq, grad * grad, beta2)
    second_moment = exp_avg_sq
    if amsgrad:
        max_exp_avg_sq = max_exp_avg_sq.maximum(exp_avg_sq)
        second_moment = max_exp_avg_sq
    # sign(m_hat) * gamma = m_hat / denom exactly (adam_direction); the quotient saves the sign and
    # absolute-value passes (the compiled step at 50M parameters moves no more bytes, but computes less)
    m_hat, denom = adam_terms(
        exp_avg,
        second_moment,
        eps=eps,
        eps_inside_sqrt=eps_inside_sqrt,
        bias_correction1=bias_correction1,
        bias_correction2=bias_correction2,
    )
    return param - lr * (m_hat / denom), exp_avg, exp_avg_sq, max_exp_avg_sq


def adam_step_pieces(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    max_exp_avg_sq: Any = None,
    *,
    lr: Any,
    eps: Any = 1e-8,
    weight_decay: float = 0.0,
    decoupled_weight_decay: bool = False,
    amsgrad: bool = False,
    eps_inside_sqrt: bool = False,
    bias_correction1: Any = 1.0,
    bias_correction2: Any = 1.0,
    **_: Any,
) -> dict[str, Any]:
    r"""Adam's step taken apart (see :mod:`adamlab.functional`): ``sign(m_hat) * gamma``, magnitude ``lr``.

    Takes :func:`adam`'s arguments with the state *after* the step and ``param`` the parameter *before*
    it (None if not recorded; AdamW's decay :math:`\delta = (1-\alpha\lambda)\theta_{t-1} - \theta_{t-1}`
    needs it). Also :math:`\hat\eta^2 = (\hat v - \hat m^2)/\hat m^2` (seed 002).
    """
    second = max_exp_avg_sq if amsgrad else exp_avg_sq
    sign, gamma = adam_direction(exp_avg, second, eps=eps, eps_inside_sqrt=eps_inside_sqrt,
                                 bias_correction1=bias_correction1, bias_correction2=bias_correction2)
    m_hat = exp_avg / bias_correction1
    m2 = m_hat * m_hat
    decay = None
    if decoupled_weight_decay and weight_decay != 0:
        if param is None:
            raise ValueError("previous: AdamW's decoupled decay needs the parameters before the step; "
                             "use StepRecorder(optimizer)")
        decay = decoupled_decay(param, lr=lr, weight_decay=weight_decay) - param
    v_hat = second / bias_correction2
    return dict(kind="sign", direction=sign, magnitude=float(lr), gamma=gamma,
                eta2=safe_ratio(v_hat - m2, m2), decay=decay, second_moment=v_hat)
