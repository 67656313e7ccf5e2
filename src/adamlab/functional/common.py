"""Pieces shared by several update rules.

Everything here is element-wise and written with operators and ``Tensor`` methods only, so it
accepts tensors, :class:`~adamlab.functional.tensorlist.TensorList` groups, and (in the compiled and
vectorised paths) 0-dim tensors for every float hyperparameter.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, TypeVar

from torch import Tensor

T = TypeVar("T")
RuleT = TypeVar("RuleT", bound=Callable[..., Any])

__all__ = ["RHO_MAX", "bias_correction", "divides_by_reciprocal", "ema", "msvag_rho", "nan_sign", "prepare_grad",
           "rule_grad", "safe_ratio", "step_scalars", "update_rule"]

#: Cap on M-SVAG's :math:`\rho_t`, as in the reference code (github.com/lballes/msvag, ``msvag/msvag.py``:
#: ``tf.minimum(rho, 0.999)``). At :math:`t = 1`, :math:`\rho_1 = 1` and :math:`s = (v - m^2)/(1 - \rho)`
#: is 0/0; since :math:`v = m^2` at :math:`t = 1` up to rounding, capped :math:`s` is 0 up to rounding and
#: the first step is a plain (momentum-)SGD step. :math:`\rho_t` decreases in :math:`t` towards
#: :math:`(1-\beta)/(1+\beta)` (:math:`\rho_2 \le 0.51` for :math:`\beta = 0.9`), so the cap binds at
#: :math:`t = 1` only, unless :math:`\beta < 0.001/1.999 \approx 5 \cdot 10^{-4}`, where it binds at every step.
#:
#: History (the three stored versions of that file we could read): the first two cap both ``MSVAGOptimizer`` and
#: ``SVAGOptimizer`` at 0.999; a later rewrite of ``MSVAGOptimizer`` for TensorFlow 1.6 (commit 19d548b)
#: caps it at 0.9999 while ``SVAGOptimizer`` keeps 0.999. We follow 0.999 for the whole family: it is the
#: reference's value for SVAG in every version and for M-SVAG originally, and it amplifies the first
#: step's round-off in :math:`v - m^2` by :math:`1/(1-\rho) = 10^3` instead of :math:`10^4`.
RHO_MAX = 0.999

#: Keyword arguments of a rule that change from step to step when :func:`update_rule` does not say.
DEFAULT_STEP_SCALARS = frozenset({"lr"})


def update_rule(*, step_scalars: Iterable[str] = ("lr",),
                reciprocal_division: bool = False) -> Callable[[RuleT], RuleT]:
    """Mark a function as an update rule and record what it knows about itself.

    ``step_scalars`` names the float keyword arguments that change from step to step (the learning
    rate under a schedule, bias corrections, rho, ...). Every compiled path (the optimizers' kernels
    and the batched backend's) passes them as tensors, so that a new step never recompiles
    (:func:`step_scalars` reads them back)::

        @update_rule(step_scalars=("lr", "bias_correction1"))
        def adamax(param, grad, exp_avg, exp_inf, *, lr, ..., bias_correction1=1.0): ...

    ``reciprocal_division=True`` lets a compiled kernel turn the rule's divisions by those scalars
    into multiplications by their reciprocals (quotients move by about one unit in the last place;
    :func:`adamlab.optim.fast.scalar_division_to_reciprocal`). Only for rules whose round-off is not
    amplified afterwards (:func:`divides_by_reciprocal` reads it back).
    """
    names = frozenset(step_scalars)

    def mark(fn: RuleT) -> RuleT:
        fn.step_scalars = names  # type: ignore[attr-defined]
        fn.reciprocal_division = bool(reciprocal_division)  # type: ignore[attr-defined]
        return fn

    return mark


def _marked(fn: Any, attribute: str) -> Any:
    """What :func:`update_rule` recorded on ``fn`` (through :func:`functools.partial` and
    ``__wrapped__``), or None for an unmarked function."""
    while fn is not None:
        value = getattr(fn, attribute, None)
        if value is not None:
            return value
        fn = fn.func if isinstance(fn, partial) else getattr(fn, "__wrapped__", None)
    return None


def step_scalars(fn: Any) -> frozenset[str]:
    """The per-step scalar keyword arguments of rule ``fn`` (see :func:`update_rule`); ``{"lr"}`` if unmarked.

    Looks through :func:`functools.partial` (the Dissected presets) and ``__wrapped__``.
    """
    names = _marked(fn, "step_scalars")
    return DEFAULT_STEP_SCALARS if names is None else frozenset(names)


def divides_by_reciprocal(fn: Any) -> bool:
    """Whether rule ``fn`` allows its compiled divisions by per-step scalars as products (:func:`update_rule`)."""
    return bool(_marked(fn, "reciprocal_division"))


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


def rule_grad(param: T | None, grad: T, *, weight_decay: float = 0.0, maximize: bool = False,
              who: str = "this optimizer") -> T:
    """:func:`prepare_grad` for a decomposition, where ``param`` is the parameter *before* the step.

    ``param`` may be None (not recorded) when the gradient needs no weight decay; otherwise it is a
    ``ValueError`` that names ``previous`` (what :class:`adamlab.dissect.StepRecorder` records).
    """
    if param is None:
        if weight_decay != 0:
            raise ValueError(f"previous: {who}'s weight-decayed gradient needs the parameters before the step; "
                             "use StepRecorder(optimizer) around optimizer.step()")
        return prepare_grad(grad, grad, maximize=maximize)
    return prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)


def nan_sign(x: T) -> T:
    r""":math:`\operatorname{sign}(x)`, but NaN where :math:`x` is NaN (``torch.sign(nan)`` is 0).

    Sign methods use it so that a NaN gradient reaches the parameter, as in every ``torch.optim``
    method, instead of silently freezing the coordinate; :math:`\pm\infty` keeps its sign.
    ``x >= x`` is False exactly where ``x`` is NaN; Inductor vectorises it on the CPU, where
    ``isnan`` made the compiled M-SSD step 1.4x slower (5.2 vs 3.6 ms at 10M, measured idle).
    """
    return x.sign().where(x >= x, x)


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
