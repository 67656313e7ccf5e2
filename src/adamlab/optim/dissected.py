"""The 2x2(x2) grid of Balles & Hennig: ``Dissected`` and its named corners."""

from __future__ import annotations

import warnings
from typing import Any

from adamlab import functional as F
from adamlab.functional.dissected import DIRECTIONS, PRESETS, VARIANCE_ESTIMATES
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper
from adamlab.optim.registry import declare
from adamlab.optim.theory import StepBound


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
    hypers = (
        Hyper("lr", V.REQUIRED, V.learning_rate),
        Hyper("beta", 0.9, V.decay_rate),
        Hyper("direction", "grad", V.one_of(*DIRECTIONS)),
        Hyper("variance_adaptation", False, V.boolean),
        Hyper("use_momentum", True, V.boolean),
        Hyper("variance_estimate", "unbiased", V.one_of(*VARIANCE_ESTIMATES), keyword_only=True),
        Hyper("weight_decay", 0.0, V.nonnegative, keyword_only=True),
        MAXIMIZE,
    )
    #: ``momentum=True/False``, the switch's old name (a ``DeprecationWarning``; :func:`_renamed_switch`).
    renamed = {"momentum": "use_momentum"}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.dissected_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`).
    theory = {
        # Sign directions (and gamma, a ratio of moments) do not see the gradient's scale; g and m do.
        "rescaling_invariance": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
        "step_bound": lambda g: g["direction"] == "sign",
        "step_bound.value": lambda g: StepBound(1.0, "|sign| = 1, gamma <= 1") if g["direction"] == "sign" else None,
        "constant_gradient_ratio": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
        # Variance adaptation shrinks the step as the SNR falls, and so does averaging g over time.
        "cautiousness": lambda g: g["variance_adaptation"] or (g["use_momentum"] and g["direction"] == "grad"),
        "param_scale_lr_equivalence": lambda g: g["direction"] == "sign" and g["weight_decay"] == 0,
    }

    def complete_defaults(self, defaults: dict[str, Any]) -> None:
        if defaults["use_momentum"] is True:
            defaults["momentum"] = None  # where cyclic LR schedulers write the momentum coefficient

    def renamed_value(self, old: str, value: Any) -> Any:
        return _renamed_switch(value, stacklevel=4)

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

    def begin_group_step(self, group: dict[str, Any]) -> None:
        if group.get("momentum") is not None:  # set by a cyclic LR scheduler: it owns beta
            self._check_scheduled_momentum(group)
            group["beta"] = group["momentum"]

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        va = group["variance_adaptation"]
        return ("exp_avg" if (group["use_momentum"] or va) else None, "exp_avg_sq" if va else None)

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return F.dissected_coefficients(step, group["beta"], use_momentum=group["use_momentum"])


def _renamed_switch(value: Any, stacklevel: int = 3) -> bool:
    """``momentum=True/False``, the old name of ``use_momentum``: accepted with a DeprecationWarning."""
    V.boolean("momentum (the old name of use_momentum)", value)
    warnings.warn("Dissected(momentum=...) is deprecated: the switch is now use_momentum=True/False "
                  "(momentum is the float that LR schedulers cycle)", DeprecationWarning, stacklevel=stacklevel)
    return value


# The named corners of the grid: Dissected with the switches of adamlab.functional.dissected.PRESETS
# fixed (their constructors leave them out and refuse them, naming Dissected).
class SSD(Dissected):
    r"""Stochastic sign descent, :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(g)` (seed 002).

    No state; ``beta`` is accepted for a uniform signature and unused.
    """

    preset = PRESETS["ssd"]


class MSSD(Dissected):
    r"""Momentum sign descent, :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(m)`, :math:`m` = EMA\ :sub:`beta`\ (g)."""

    preset = PRESETS["mssd"]


class SVAG(Dissected):
    r"""Stochastic variance-adapted gradient, :math:`\theta \leftarrow \theta - \alpha \frac{m^2}{m^2 + s} \odot g`."""

    preset = PRESETS["svag"]


class MSVAG(Dissected):
    r"""M-SVAG (Balles & Hennig 2018, Algorithm "Practical implementation of M-SVAG"), line by line.

    .. math::
        \gamma = \frac{m^2}{m^2 + \rho_t s}, \qquad \theta \leftarrow \theta - \alpha\, \gamma \odot m

    with bias-corrected :math:`m, v` (the paper's :math:`1 - \beta^{t}`; some ports divide by
    :math:`\beta^t`, which blows up), :math:`s = (v - m^2)/(1 - \rho_t)`, :math:`\rho_t` capped at
    0.999 (as the reference code) so the first step is an SGD step, :math:`s \ge 0`, :math:`\gamma \in [0, 1]`, and a zero
    gradient giving a zero step.
    """

    preset = PRESETS["msvag"]


class MSSDVA(Dissected):
    r"""Momentum sign descent with variance adaptation, :math:`\theta \leftarrow \theta - \alpha \operatorname{sign}(m)\sqrt{m^2/(m^2 + \rho_t s)}`.

    ``variance_estimate="naive"`` makes it Adam with ``betas=(beta, beta)`` and ``eps=0``.
    """

    preset = PRESETS["mssdva"]


declare("ssd", SSD, {}, "stochastic sign descent", order=60)
declare("msgd", Dissected, PRESETS["msgd"], "momentum SGD (EMA form)", order=61)
declare("mssd", MSSD, {}, "momentum sign descent", order=62)
declare("svag", SVAG, {}, "variance-adapted SGD", order=63)
declare("msvag", MSVAG, {}, "momentum variance-adapted SGD (Balles & Hennig)", order=64)
declare("mssdva", MSSDVA, {}, "momentum sign descent with variance adaptation", order=65)
