"""Pieces shared by several update rules.

Everything here is element-wise and written with operators and ``Tensor`` methods only, so it
accepts tensors, :class:`~adamlab.functional.tensorlist.TensorList` groups, and (in the compiled and
vectorised paths) 0-dim tensors for every float hyperparameter.
"""

from __future__ import annotations

from typing import Any, TypeVar

from torch import Tensor

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


def ema(average: T, value: T, beta: Any) -> T:
    r"""Exponential moving average, :math:`a \leftarrow \beta a + (1 - \beta) x` (Kingma & Ba, Alg. 1)."""
    return beta * average + (1 - beta) * value


def bias_correction(beta: Any, step: int) -> Any:
    r"""Adam's bias-correction denominator :math:`1 - \beta^t` for step :math:`t \ge 1`.

    ``beta`` may be a tensor (one value per run): the result is then a tensor too.
    """
    return 1.0 - beta**step


def msvag_rho(beta: Any, step: int) -> Any:
    r"""M-SVAG's :math:`\rho(\beta, t)` (Balles & Hennig 2018, Alg. 1), capped at :data:`RHO_MAX`.

    .. math:: \rho_t = \frac{(1 - \beta)(1 + \beta^{t})}{(1 + \beta)(1 - \beta^{t})}

    Here ``step`` is 1-based; the paper's loop is 0-based and writes :math:`\beta^{t+1}`. The ratio
    is the variance of the bias-corrected EMA of i.i.d. samples relative to one sample's variance.
    ``beta`` may be a tensor (one value per run): the result is then a tensor, element by element the same.
    """
    bt = beta**step
    denominator = (1 + beta) * (1 - bt)
    if isinstance(denominator, Tensor):  # one value per run (the batched backend)
        rho = ((1 - beta) * (1 + bt) / denominator).where(denominator != 0, 1.0)
        return rho.clamp_max(RHO_MAX)
    rho = 1.0 if denominator == 0 else (1 - beta) * (1 + bt) / denominator
    return min(rho, RHO_MAX)


def safe_ratio(numerator: T, denominator: T) -> T:
    """``numerator / denominator`` where ``denominator > 0``, else 0 (so 0/0 gives 0, never NaN)."""
    return (numerator / denominator).where(denominator > 0, 0.0)
