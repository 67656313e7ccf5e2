r"""The sign / variance-adaptation family of Balles & Hennig, "Dissecting Adam" (ICML 2018).

Every method here updates :math:`\theta \leftarrow \theta - \alpha\, d \odot \gamma` where

- the direction :math:`d` is the gradient or its sign, of the raw stochastic gradient :math:`g`
  (no momentum) or of the bias-corrected EMA :math:`m` (momentum);
- :math:`\gamma` is 1, or the variance-adaptation factor estimated from the EMAs :math:`m, v`.

=============  ==========  ====================  ========  ==============================================
method         direction   variance adaptation   momentum  update
=============  ==========  ====================  ========  ==============================================
SGD            grad        no                    no        :math:`g`
SSD            sign        no                    no        :math:`\operatorname{sign}(g)`
SVAG           grad        yes                   no        :math:`\frac{m^2}{m^2 + s} \odot g`
SSD-VA         sign        yes                   no        :math:`\sqrt{\frac{m^2}{m^2+s}} \odot \operatorname{sign}(g)`
M-SGD          grad        no                    yes       :math:`m`
M-SSD          sign        no                    yes       :math:`\operatorname{sign}(m)`
M-SVAG         grad        yes                   yes       :math:`\frac{m^2}{m^2 + \rho s} \odot m`
M-SSD-VA       sign        yes                   yes       :math:`\sqrt{\frac{m^2}{m^2 + \rho s}} \odot \operatorname{sign}(m)`
=============  ==========  ====================  ========  ==============================================

with (seed 002, "Practical implementation of M-SVAG", written here with a 1-based step :math:`t`)

.. math::
    \tilde m_t = \beta \tilde m_{t-1} + (1-\beta) g_t, \quad \tilde v_t = \beta \tilde v_{t-1} + (1-\beta) g_t^2,
    \quad m = \frac{\tilde m_t}{1-\beta^t}, \quad v = \frac{\tilde v_t}{1-\beta^t},

    \rho_t = \frac{(1-\beta)(1+\beta^t)}{(1+\beta)(1-\beta^t)}, \qquad s = \frac{v - m^2}{1 - \rho_t}.

:math:`s` estimates the gradient variance :math:`\sigma^2` and :math:`\rho_t s` the variance of
:math:`m`, so :math:`\gamma` estimates the optimal factors of the paper's lemma:
:math:`1/(1+\eta^2)` for a gradient direction and :math:`2\rho - 1 \approx (1+\eta^2)^{-1/2}` for a sign
direction (seed 002 prints :math:`(1+\eta_i)^{-1/2}` and :math:`1/(1+\eta_t)` for SVAG; the paper's
:math:`\eta^2` is meant, as its definition :math:`\eta_i^2 = \sigma_i^2/\nabla\mathcal L_i^2` shows).

Edge cases (DESIGN.md): :math:`\rho_1 = 1` makes :math:`s = 0/0`; :math:`\rho` is capped at 0.999
(:data:`~adamlab.functional.common.RHO_MAX`) as in the reference code, so the first step is an (M-)SGD
step up to rounding. Round-off can make
:math:`v - m^2 < 0`: :math:`s` is clamped at 0, which keeps :math:`\gamma` in [0, 1]. A zero gradient
(:math:`m = v = 0`) gives :math:`\gamma = 0`: a zero step, never NaN.

``variance_estimate="naive"`` replaces the variance of the direction by :math:`v - m^2` (no
:math:`\rho`, no :math:`1/(1-\rho)`): then M-SSD-VA is exactly Adam with :math:`\beta_1 = \beta_2 = \beta`
and :math:`\epsilon = 0`, since :math:`\operatorname{sign}(m)\sqrt{m^2/v} = m/\sqrt{v}`.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Literal, TypeVar

from adamlab.functional.common import (
    bias_correction,
    ema,
    msvag_rho,
    nan_sign,
    prepare_grad,
    rule_grad,
    safe_ratio,
    update_rule,
)

T = TypeVar("T")

__all__ = ["DIRECTIONS", "PRESETS", "VARIANCE_ESTIMATES", "corrected", "direction_variance", "dissected",
           "dissected_coefficients", "dissected_pieces", "dissected_step_pieces", "mssd", "mssdva", "msvag",
           "ssd", "svag", "variance_adaptation_factor", "variance_factor"]
Direction = Literal["grad", "sign"]
VarianceEstimate = Literal["unbiased", "naive"]
DIRECTIONS = ("grad", "sign")
VARIANCE_ESTIMATES = ("unbiased", "naive")


def dissected_coefficients(step: int, beta: Any, *, use_momentum: bool = True) -> dict[str, Any]:
    r"""Host-side scalars of step :math:`t`, computed once per step in float64: the bias-correction
    reciprocal :math:`1/(1 - \beta^t)` and the :func:`variance_factor` of the capped :math:`\rho_t`.

    The rule takes these products' factors, not :math:`1-\beta^t` and :math:`\rho_t`, so that no scalar
    division is left inside a compiled kernel's loop: Inductor evaluates a kernel's scalar expressions
    once per vector of elements, and the two double divisions of :math:`1/(1-\beta^t)` and
    :math:`\rho/(1-\rho)` cost M-SVAG, SVAG and M-SSD-VA 3-5% of a memory-bound step at 50M parameters
    (measured 2026-12-02). The values are those the rule computed before, so every path rounds as before."""
    return {"inv_bias_correction": 1 / bias_correction(beta, step),
            "variance_factor": variance_factor(msvag_rho(beta, step), momentum=use_momentum)}


def variance_factor(rho: Any, *, momentum: bool) -> Any:
    r"""The factor :math:`f` with :math:`\operatorname{Var}[d] = f\,(v - m^2)`: :math:`\rho/(1-\rho)` with
    momentum (:math:`\rho s`, :math:`s = (v - m^2)/(1-\rho)`), :math:`1/(1-\rho)` without (:math:`s`)."""
    return rho / (1 - rho) if momentum else 1 / (1 - rho)


def corrected(ema_value: T, inv_bias_correction: Any) -> T:
    r"""The bias-corrected EMA :math:`\tilde m_t/(1-\beta^t)`, as a product with the reciprocal
    ``inv_bias_correction`` :math:`= 1/(1-\beta^t)` (:func:`dissected_coefficients`).

    A vector division costs several multiplications; with M-SVAG's four of them the compiled step was
    compute-bound on a 2-core AVX2 CPU (1.17x torch's fused Adam at 50M parameters). The reciprocal is
    one scalar computed once per step, so the eager and compiled paths round alike; the product
    differs from the quotient by at most about one unit in the last place."""
    return ema_value * inv_bias_correction


def direction_variance(m: T, v: T, *, variance_factor: Any, variance_estimate: str = "unbiased") -> T:
    r"""Estimated variance of the update direction, :math:`f\,(v - m^2)`: :math:`\rho s` (momentum) or
    :math:`s` (none), for ``variance_factor`` :math:`f` from :func:`variance_factor`.

    With ``variance_estimate="naive"`` it is :math:`v - m^2` in both cases (no factor). Negative
    round-off is clamped to 0.
    """
    excess = (v - m * m).clamp_min(0.0)
    if variance_estimate == "naive":
        return excess
    return excess * variance_factor  # one scalar per step, no division per coordinate


def variance_adaptation_factor(
    m: T,
    v: T,
    *,
    variance_factor: Any,
    direction: str = "grad",
    variance_estimate: str = "unbiased",
) -> T:
    r""":math:`\gamma = m^2 / (m^2 + \operatorname{Var}[d])`, in [0, 1] (0 where both are 0).

    For a sign direction the factor is :math:`\sqrt{\gamma}`, the Gaussian approximation of
    :math:`2\rho - 1` (seed 002).
    """
    m2, total = _second_moments(m, v, variance_factor=variance_factor, variance_estimate=variance_estimate)
    gamma = safe_ratio(m2, total)
    return gamma.sqrt() if direction == "sign" else gamma


def _second_moments(m: T, v: T, *, variance_factor: Any, variance_estimate: str) -> tuple[T, T]:
    r""":math:`m^2` and :math:`m^2 + \operatorname{Var}[d]`, the numerator and denominator of :math:`\gamma`.

    Since :math:`\operatorname{Var}[d] \ge 0` (clamped), :math:`0 \le \gamma \le 1` holds without a clip: IEEE
    division is monotone, so :math:`a / b \le 1` for :math:`0 \le a \le b`."""
    m2 = m * m
    return m2, m2 + direction_variance(m, v, variance_factor=variance_factor, variance_estimate=variance_estimate)


def dissected_pieces(
    grad: T,
    m: T | None,
    v: T | None,
    *,
    direction: str,
    variance_adaptation: bool,
    momentum: bool,
    variance_factor: Any = 1.0,
    variance_estimate: str = "unbiased",
) -> tuple[T, T | float]:
    """``(d, gamma)`` of the table above, from the gradient and the bias-corrected ``m``, ``v``
    (``variance_factor``: :func:`variance_factor`; 1 is SVAG's with :math:`\rho = 0`).

    The sign direction is :func:`~adamlab.functional.common.nan_sign`: a NaN in ``m`` or ``g`` gives a
    NaN step (``torch.sign`` would give 0 and freeze the coordinate), as in ``torch.optim``.
    """
    source = m if momentum else grad
    d = nan_sign(source) if direction == "sign" else source
    if not variance_adaptation:
        return d, 1.0
    gamma = variance_adaptation_factor(
        m, v, variance_factor=variance_factor, direction=direction, variance_estimate=variance_estimate
    )
    return d, gamma


@update_rule(step_scalars=("lr", "inv_bias_correction", "variance_factor"))
def dissected(
    param: T,
    grad: T,
    exp_avg: T | None = None,
    exp_avg_sq: T | None = None,
    *,
    lr: Any,
    beta: Any = 0.9,
    direction: str = "grad",
    variance_adaptation: bool = False,
    use_momentum: bool = True,
    variance_estimate: str = "unbiased",
    weight_decay: float = 0.0,
    maximize: bool = False,
    inv_bias_correction: Any = 1.0,
    variance_factor: Any = 1.0,
) -> tuple[T, T | None, T | None]:
    r"""One step of any method in the table above; returns ``(param, exp_avg, exp_avg_sq)``.

    ``exp_avg`` (:math:`\tilde m`) is needed with momentum or variance adaptation, ``exp_avg_sq``
    (:math:`\tilde v`) with variance adaptation; pass None otherwise. ``inv_bias_correction``
    (:math:`1/(1-\beta^t)`) and ``variance_factor`` (:math:`\rho_t/(1-\rho_t)` with momentum,
    :math:`1/(1-\rho_t)` without) come from :func:`dissected_coefficients`.
    ``use_momentum`` is the momentum switch (a bool; the name ``momentum`` is the float that torch's
    cyclic LR schedulers write into param groups).
    """
    grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    m = v = None
    if use_momentum or variance_adaptation:
        exp_avg = ema(exp_avg, grad, beta)
        m = corrected(exp_avg, inv_bias_correction)
    if variance_adaptation:
        exp_avg_sq = ema(exp_avg_sq, grad * grad, beta)
        v = corrected(exp_avg_sq, inv_bias_correction)
    if variance_adaptation and direction == "sign" and use_momentum:
        # M-SSD-VA: sign(m) sqrt(m^2/(m^2 + rho s)) = m / sqrt(m^2 + rho s) (0 where both are 0, NaN
        # where either is): one square root and one division per coordinate, no sign; equal to the
        # pieces' product up to rounding
        _, total = _second_moments(m, v, variance_factor=variance_factor, variance_estimate=variance_estimate)
        update = (m / total.sqrt()).where(total.ne(0.0), 0.0)
    else:
        d, gamma = dissected_pieces(
            grad, m, v, direction=direction, variance_adaptation=variance_adaptation, momentum=use_momentum,
            variance_factor=variance_factor, variance_estimate=variance_estimate,
        )
        update = d * gamma if variance_adaptation else d
    return param - lr * update, exp_avg, exp_avg_sq


def dissected_step_pieces(
    param: Any,
    grad: Any,
    exp_avg: Any = None,
    exp_avg_sq: Any = None,
    *,
    lr: Any,
    direction: str = "grad",
    variance_adaptation: bool = False,
    use_momentum: bool = True,
    variance_estimate: str = "unbiased",
    weight_decay: float = 0.0,
    maximize: bool = False,
    inv_bias_correction: Any = 1.0,
    variance_factor: Any = 1.0,
    **_: Any,
) -> dict[str, Any]:
    r"""A step of :func:`dissected` taken apart: ``(d, gamma)`` of :func:`dissected_pieces`, magnitude ``lr``.

    Arguments as :func:`dissected`'s with the state after the step; ``param`` is the parameter before
    the step (needed only for a weight-decayed raw-gradient direction). With variance adaptation also
    :math:`\hat\eta^2 = (v - m^2)/m^2` and the :math:`\rho`-unbiased :math:`\operatorname{Var}[d]/m^2`
    (:func:`direction_variance`), for which :math:`\gamma = 1/(1+\hat\eta^2)` (or its square root).
    """
    m = corrected(exp_avg, inv_bias_correction) if (use_momentum or variance_adaptation) else None
    v = corrected(exp_avg_sq, inv_bias_correction) if variance_adaptation else None
    g = m if use_momentum else rule_grad(param, grad, weight_decay=weight_decay, maximize=maximize, who="Dissected")
    d, gamma = dissected_pieces(g, m, v, direction=direction, variance_adaptation=variance_adaptation,
                                momentum=use_momentum, variance_factor=variance_factor,
                                variance_estimate=variance_estimate)
    out: dict[str, Any] = dict(kind=direction, direction=d, magnitude=float(lr), gamma=gamma)
    if variance_adaptation:
        m2 = m * m
        out["eta2"] = safe_ratio(v - m2, m2)
        var = direction_variance(m, v, variance_factor=variance_factor, variance_estimate=variance_estimate)
        out["eta2_unbiased"] = safe_ratio(var, m2)
    return out


#: The named corners of the family: the same function with its switches set.
PRESETS: dict[str, dict[str, Any]] = {
    "ssd": {"direction": "sign", "variance_adaptation": False, "use_momentum": False},
    "mssd": {"direction": "sign", "variance_adaptation": False, "use_momentum": True},
    "svag": {"direction": "grad", "variance_adaptation": True, "use_momentum": False},
    "msvag": {"direction": "grad", "variance_adaptation": True, "use_momentum": True},
    "mssdva": {"direction": "sign", "variance_adaptation": True, "use_momentum": True},
    "msgd": {"direction": "grad", "variance_adaptation": False, "use_momentum": True},
}

ssd = partial(dissected, **PRESETS["ssd"])
mssd = partial(dissected, **PRESETS["mssd"])
svag = partial(dissected, **PRESETS["svag"])
msvag = partial(dissected, **PRESETS["msvag"])
mssdva = partial(dissected, **PRESETS["mssdva"])
