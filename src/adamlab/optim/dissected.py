"""The 2x2(x2) grid of Balles & Hennig: ``Dissected`` and its named corners."""

from __future__ import annotations

import warnings
from typing import Any

from torch import Tensor

from adamlab import functional as F
from adamlab.functional.dissected import DIRECTIONS, PRESETS, VARIANCE_ESTIMATES
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer, ParamsT

_UNSET: Any = object()


class Dissected(AdamlabOptimizer):
    r"""Sign or gradient direction, with or without variance adaptation and momentum.

    One class for the whole grid of "Dissecting Adam" (Balles & Hennig 2018); the update is
    :math:`\theta \leftarrow \theta - \alpha\, d \odot \gamma` as tabulated in
    :mod:`adamlab.functional.dissected`.

    Parameters
    ----------
    lr:
        Step size :math:`\alpha` (required, here or in every param group; the paper tunes it).
    beta:
        EMA decay of :math:`\tilde m, \tilde v` (default 0.9, the paper's).
    direction:
        ``"grad"`` or ``"sign"``.
    variance_adaptation:
        Scale by :math:`\gamma = m^2/(m^2 + \rho s)` (grad) or its square root (sign). ``True`` or ``False``.
    use_momentum:
        Use the bias-corrected EMA :math:`m` instead of :math:`g` as the direction. ``True`` or ``False``.
        (Its old name ``momentum=`` still works as a keyword, with a ``DeprecationWarning``.)
    variance_estimate:
        ``"unbiased"`` (the paper's :math:`s`, with :math:`\rho_t` capped at 0.999) or ``"naive"``
        (:math:`v - m^2`, which turns M-SSD-VA into Adam with :math:`\beta_1=\beta_2`, :math:`\epsilon=0`).
    weight_decay, maximize, foreach, fused, differentiable, nonfinite:
        As in the other adamlab optimizers.

    LR schedulers that cycle momentum (``OneCycleLR``, ``CyclicLR`` with ``cycle_momentum=True``) look
    for a float ``momentum`` in the param groups, as in ``torch.optim.SGD``. With ``use_momentum=True``
    the groups hold ``momentum=None``; when a scheduler sets it to a number, that number is the
    momentum coefficient :math:`\beta` of the following steps (each step copies it into ``beta``, which
    the scheduler then owns). Without momentum (SGD, SSD, SVAG, SSD-VA) there is no ``momentum`` key,
    so those schedulers refuse the optimizer unless ``cycle_momentum=False``: no scheduler can turn a
    method into another one.

    State: ``exp_avg`` when momentum or variance adaptation is on, ``exp_avg_sq`` with variance
    adaptation; nothing but the step counter for SGD and SSD.
    """

    rule = F.dissected
    hyperparameter_checks = {"lr": V.learning_rate, "beta": V.decay_rate, "direction": V.one_of(*DIRECTIONS),
                             "variance_adaptation": V.boolean, "use_momentum": V.boolean,
                             "variance_estimate": V.one_of(*VARIANCE_ESTIMATES), "weight_decay": V.nonnegative,
                             "maximize": V.boolean}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.dissected_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        # Sign directions (and gamma, a ratio of moments) do not see the gradient's scale; g and m do.
        "rescaling_invariance": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
        "step_bound": lambda g: g["direction"] == "sign",  # |sign| = 1, gamma <= 1
        "constant_gradient_ratio": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
        # Variance adaptation shrinks the step as the SNR falls, and so does averaging g over time.
        "cautiousness": lambda g: g["variance_adaptation"] or (g["use_momentum"] and g["direction"] == "grad"),
        "param_scale_lr_equivalence": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
    }

    def __init__(
        self,
        params: ParamsT,
        lr: float = V.REQUIRED,
        beta: float = 0.9,
        direction: str = "grad",
        variance_adaptation: bool = False,
        use_momentum: bool = True,
        *,
        variance_estimate: str = "unbiased",
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
        momentum: Any = _UNSET,
    ) -> None:
        if momentum is not _UNSET:
            use_momentum = _renamed_switch(momentum)
        defaults = dict(lr=lr, beta=beta, direction=direction, variance_adaptation=variance_adaptation,
                        use_momentum=use_momentum, variance_estimate=variance_estimate,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach, fused=fused,
                        differentiable=differentiable)
        if use_momentum is True:
            defaults["momentum"] = None  # where cyclic LR schedulers write the momentum coefficient
        super().__init__(params, defaults, nonfinite=nonfinite)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        self.upgrade_group(param_group)
        super().add_param_group(param_group)

    def upgrade_group(self, group: dict[str, Any]) -> None:
        """A group of the old layout (the switch stored as a bool ``momentum``) gets ``use_momentum``."""
        if isinstance(group.get("momentum"), bool):
            group["use_momentum"] = _renamed_switch(group.pop("momentum"))
            if group["use_momentum"] and "momentum" in self.defaults:
                group["momentum"] = None

    def validate_group(self, group: dict[str, Any]) -> None:
        super().validate_group(group)
        self._check_scheduled_momentum(group)

    @staticmethod
    def _check_scheduled_momentum(group: dict[str, Any]) -> None:
        value = group.get("momentum")
        if value is None:
            return
        V.check_unit_interval("momentum (the momentum coefficient beta)", value)
        if group["use_momentum"] is not True:
            raise ValueError(f"Invalid momentum={value!r} in a param group with use_momentum=False: this "
                             "method has no momentum to schedule (use cycle_momentum=False in the LR scheduler)")

    def _step_group(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> None:
        if group.get("momentum") is not None:  # set by a cyclic LR scheduler: it owns beta
            self._check_scheduled_momentum(group)
            group["beta"] = group["momentum"]
        super()._step_group(group, params, grads)

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        va = group["variance_adaptation"]
        return ("exp_avg" if (group["use_momentum"] or va) else None, "exp_avg_sq" if va else None)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], beta=group["beta"], direction=group["direction"],
                    variance_adaptation=group["variance_adaptation"], use_momentum=group["use_momentum"],
                    variance_estimate=group["variance_estimate"], weight_decay=group["weight_decay"],
                    maximize=group["maximize"], **F.dissected_coefficients(step, group["beta"]))


def _renamed_switch(value: Any) -> bool:
    """``momentum=True/False``, the old name of ``use_momentum``: accepted with a DeprecationWarning."""
    V.boolean("momentum (the old name of use_momentum)", value)
    warnings.warn("Dissected(momentum=...) is deprecated: the switch is now use_momentum=True/False "
                  "(momentum is the float that LR schedulers cycle)", DeprecationWarning, stacklevel=3)
    return value


class _Preset(Dissected):
    """A named corner of the grid: ``Dissected`` with its switches fixed."""

    preset: dict[str, Any] = {}

    def __init__(
        self,
        params: ParamsT,
        lr: float = V.REQUIRED,
        beta: float = 0.9,
        *,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
        **extra: Any,
    ) -> None:
        fixed = sorted(set(extra) & {*self.preset, "momentum"})
        if fixed:
            raise TypeError(f"{type(self).__name__} fixes {', '.join(fixed)}; use Dissected to choose it")
        super().__init__(params, lr, beta, **self.preset, weight_decay=weight_decay, maximize=maximize,
                         foreach=foreach, fused=fused, differentiable=differentiable, nonfinite=nonfinite,
                         **extra)


class SSD(_Preset):
    r"""Stochastic sign descent, :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(g)` (seed 002).

    No state; ``beta`` is accepted for a uniform signature and unused.
    """

    preset = PRESETS["ssd"]


class MSSD(_Preset):
    r"""Momentum sign descent, :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(m)`, :math:`m` = EMA\ :sub:`beta`\ (g)."""

    preset = PRESETS["mssd"]


class SVAG(_Preset):
    r"""Stochastic variance-adapted gradient, :math:`\theta \leftarrow \theta - \alpha \frac{m^2}{m^2 + s} \odot g`."""

    preset = PRESETS["svag"]


class MSVAG(_Preset):
    r"""M-SVAG (Balles & Hennig 2018, Algorithm "Practical implementation of M-SVAG"), line by line.

    .. math::
        \gamma = \frac{m^2}{m^2 + \rho_t s}, \qquad \theta \leftarrow \theta - \alpha\, \gamma \odot m

    with bias-corrected :math:`m, v` (the paper's :math:`1 - \beta^{t}`; some ports divide by
    :math:`\beta^t`, which blows up), :math:`s = (v - m^2)/(1 - \rho_t)`, :math:`\rho_t` capped at
    0.999 (as the reference code) so the first step is an SGD step, :math:`s \ge 0`, :math:`\gamma \in [0, 1]`, and a zero
    gradient giving a zero step.
    """

    preset = PRESETS["msvag"]


class MSSDVA(_Preset):
    r"""Momentum sign descent with variance adaptation, :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(m)\sqrt{m^2/(m^2 + \rho_t s)}`.

    ``variance_estimate="naive"`` makes it Adam with ``betas=(beta, beta)`` and ``eps=0``.
    """

    preset = PRESETS["mssdva"]

    def __init__(self, params: ParamsT, lr: float = V.REQUIRED, beta: float = 0.9, *,
                 variance_estimate: str = "unbiased",
                 **kwargs: Any) -> None:
        super().__init__(params, lr, beta, variance_estimate=variance_estimate, **kwargs)
