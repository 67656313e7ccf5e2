"""The 2x2(x2) grid of Balles & Hennig: ``Dissected`` and its named corners."""

from __future__ import annotations

from typing import Any

from adamlab import functional as F
from adamlab.functional.dissected import DIRECTIONS, PRESETS, VARIANCE_ESTIMATES
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer, ParamsT


class Dissected(AdamlabOptimizer):
    r"""Sign or gradient direction, with or without variance adaptation and momentum.

    One class for the whole grid of "Dissecting Adam" (Balles & Hennig 2018); the update is
    :math:`\theta \leftarrow \theta - \alpha\, d \odot \gamma` as tabulated in
    :mod:`adamlab.functional.dissected`.

    Parameters
    ----------
    lr:
        Step size :math:`\alpha` (required; the paper tunes it).
    beta:
        EMA decay of :math:`\tilde m, \tilde v` (default 0.9, the paper's).
    direction:
        ``"grad"`` or ``"sign"``.
    variance_adaptation:
        Scale by :math:`\gamma = m^2/(m^2 + \rho s)` (grad) or its square root (sign).
    momentum:
        Use the bias-corrected EMA :math:`m` instead of :math:`g` as the direction.
    variance_estimate:
        ``"unbiased"`` (the paper's :math:`s`, with :math:`\rho_t` capped at 0.999) or ``"naive"``
        (:math:`v - m^2`, which turns M-SSD-VA into Adam with :math:`\beta_1=\beta_2`, :math:`\epsilon=0`).
    weight_decay, maximize, foreach, fused, nonfinite:
        As in the other adamlab optimizers.

    State: ``exp_avg`` when momentum or variance adaptation is on, ``exp_avg_sq`` with variance
    adaptation; nothing for SGD and SSD.
    """

    rule = F.dissected
    hyperparameter_checks = {"lr": V.learning_rate, "beta": V.decay_rate, "direction": V.one_of(*DIRECTIONS),
                             "variance_estimate": V.one_of(*VARIANCE_ESTIMATES), "weight_decay": V.nonnegative}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.dissected_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.dissect.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        # Sign directions (and gamma, a ratio of moments) do not see the gradient's scale; g and m do.
        "rescaling_invariance": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
        "step_bound": lambda g: g["direction"] == "sign",  # |sign| = 1, gamma <= 1
        "constant_gradient_ratio": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
        # Variance adaptation shrinks the step as the SNR falls, and so does averaging g over time.
        "cautiousness": lambda g: g["variance_adaptation"] or (g["momentum"] and g["direction"] == "grad"),
        "param_scale_lr_equivalence": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
    }

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        beta: float = 0.9,
        direction: str = "grad",
        variance_adaptation: bool = False,
        momentum: bool = True,
        *,
        variance_estimate: str = "unbiased",
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        nonfinite: str = "propagate",
    ) -> None:
        defaults = dict(lr=lr, beta=beta, direction=direction, variance_adaptation=bool(variance_adaptation),
                        momentum=bool(momentum), variance_estimate=variance_estimate,
                        weight_decay=weight_decay, maximize=maximize, foreach=foreach, fused=fused)
        super().__init__(params, defaults, nonfinite=nonfinite)

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        va = group["variance_adaptation"]
        return ("exp_avg" if (group["momentum"] or va) else None, "exp_avg_sq" if va else None)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], beta=group["beta"], direction=group["direction"],
                    variance_adaptation=group["variance_adaptation"], momentum=group["momentum"],
                    variance_estimate=group["variance_estimate"], weight_decay=group["weight_decay"],
                    maximize=group["maximize"], **F.dissected_coefficients(step, group["beta"]))


class _Preset(Dissected):
    """A named corner of the grid: ``Dissected`` with its switches fixed."""

    preset: dict[str, Any] = {}

    def __init__(
        self,
        params: ParamsT,
        lr: float,
        beta: float = 0.9,
        *,
        weight_decay: float = 0.0,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        nonfinite: str = "propagate",
        **extra: Any,
    ) -> None:
        super().__init__(params, lr, beta, **self.preset, weight_decay=weight_decay, maximize=maximize,
                         foreach=foreach, fused=fused, nonfinite=nonfinite, **extra)


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

    def __init__(self, params: ParamsT, lr: float, beta: float = 0.9, *, variance_estimate: str = "unbiased",
                 **kwargs: Any) -> None:
        super().__init__(params, lr, beta, variance_estimate=variance_estimate, **kwargs)
