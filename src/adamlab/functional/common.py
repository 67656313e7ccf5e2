"""Pieces shared by several update rules.

Everything here is element-wise and written with operators and ``Tensor`` methods only, so it
accepts tensors, :class:`~adamlab.functional.tensorlist.TensorList` groups, and (in the compiled and
vectorised paths) 0-dim tensors for every float hyperparameter.
"""

from __future__ import annotations

from typing import Any, TypeVar

T = TypeVar("T")

#: Cap on M-SVAG's rho_t. At t = 1, rho_1 = 1 and s = (v - m^2)/(1 - rho) is 0/0; the reference
#: implementation (github.com/lballes/msvag) caps rho at 0.9999, which makes the first step a plain
#: (momentum-)SGD step up to rounding.
RHO_MAX = 0.9999


def prepare_grad(param: T, grad: T, *, weight_decay: float = 0.0, maximize: bool = False) -> T:
    r"""The gradient a rule actually uses: sign flip for ``maximize``, then coupled L2 decay.

    .. math:: g \leftarrow (-1)^{\text{maximize}} g + \lambda \theta

    This is ``torch.optim``'s convention (weight decay is added after the sign flip).
    """
    if maximize:
        grad = -grad
    if weight_decay != 0:
        grad = grad + weight_decay * param
    return grad


def nan_sign(x: T) -> T:
    r""":math:`\operatorname{sign}(x)`, but NaN where :math:`x` is NaN (``torch.sign(nan)`` is 0).

    Sign methods use it so that a NaN gradient reaches the parameter, as in every ``torch.optim``
    method, instead of silently freezing the coordinate; :math:`\pm\infty` keeps its sign.
    """
    return x.sign().where(x.isnan().logical_not(), x)


def ema(average: T, value: T, beta: Any) -> T:
    r"""Exponential moving average, :math:`a \leftarrow \beta a + (1 - \beta) x` (Kingma & Ba, Alg. 1)."""
    return beta * average + (1 - beta) * value


def bias_correction(beta: float, step: int) -> float:
    r"""Adam's bias-correction denominator :math:`1 - \beta^t` for step :math:`t \ge 1`."""
    return 1.0 - beta**step


def msvag_rho(beta: float, step: int) -> float:
    r"""M-SVAG's :math:`\rho(\beta, t)` (Balles & Hennig 2018, Alg. 1), capped at :data:`RHO_MAX`.

    .. math:: \rho_t = \frac{(1 - \beta)(1 + \beta^{t})}{(1 + \beta)(1 - \beta^{t})}

    Here ``step`` is 1-based; the paper's loop is 0-based and writes :math:`\beta^{t+1}`. The ratio
    is the variance of the bias-corrected EMA of i.i.d. samples relative to one sample's variance.
    """
    bt = beta**step
    denominator = (1 + beta) * (1 - bt)
    if isinstance(denominator, (int, float)):
        rho = 1.0 if denominator == 0 else (1 - beta) * (1 + bt) / denominator
        return min(rho, RHO_MAX)
    # A tensor step (while torch.compile traces an optimizer step): same value, no host branch.
    return ((1 - beta) * (1 + bt) / denominator).nan_to_num(nan=1.0, posinf=1.0).clamp(max=RHO_MAX)


def safe_ratio(numerator: T, denominator: T) -> T:
    """``numerator / denominator`` where ``denominator > 0``, else 0 (so 0/0 gives 0, never NaN)."""
    return (numerator / denominator).where(denominator > 0, 0.0)
