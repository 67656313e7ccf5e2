r"""What theory predicts for an optimizer: the vocabulary of the classes' ``theory`` tables.

Each optimizer class carries ``theory = {key: value}``, where a value is a constant or a function of a
param group (``lambda g: g["weight_decay"] == 0``), evaluated on the group the optimizer was built
with. :mod:`adamlab.claims` reads it and never compares optimizer names. The keys:

``<property>``
    bool: does theory predict the property (the names of :data:`adamlab.claims.properties.PROPERTIES`:
    ``rescaling_invariance``, ``step_bound``, ``constant_gradient_ratio``, ``cautiousness``,
    ``param_scale_lr_equivalence``, ``ill_conditioning``, ``ill_conditioning_normalized``)? A property
    a class does not list gets no prediction.
``<property>.why``
    str or None: the reason theory gives for this class's prediction, shown in the record (None: the
    generic reason of the check).
``step_bound.value``
    :class:`StepBound` or None: the bound on :math:`|\Delta|/\alpha` the step-bound check measures
    against (None: theory gives no bound; the step grows with the gradient).
``constant_gradient_ratio.noise_std``
    bool: also report seed 001's standard deviation of :math:`\hat m/\sqrt{\hat v}` for zero-mean noise
    with :math:`\beta_1 = 0` (Adam without weight decay).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class StepBound:
    r"""A bound theory gives on the step, :math:`|\Delta_{t,i}| \le \text{value} \cdot \alpha`.

    Parameters
    ----------
    value:
        The bound on :math:`|\Delta|/\alpha`.
    why:
        Where it comes from (shown in the record).
    rtol:
        The relative slack the check allows (round-off, or a bound that holds only approximately).
    approximate:
        ``(hyperparameters, value)``: a second setting where theory gives only an approximate bound
        (reported next to the record, not required), e.g. Adam's case :math:`1-\beta_1 \le \sqrt{1-\beta_2}`.
    """

    value: float
    why: str
    rtol: float = 1e-9
    approximate: tuple[dict[str, Any], float] | None = field(default=None)


def adam_step_bound(beta1: float, beta2: float, *, bias_correction: bool = True) -> StepBound:
    r"""Seed 003's bound for Adam: :math:`|\Delta|/\alpha \le (1-\beta_1)/\sqrt{1-\beta_2}` if
    :math:`1-\beta_1 > \sqrt{1-\beta_2}`, else :math:`\le 1` (which seed 003 itself softens to
    :math:`|\Delta| \lesssim \alpha`: reported for ``betas=(0.9, 0.99)``, not required).

    The bound assumes bias correction; without it a constant gradient gives
    :math:`(1-\beta_1^t)/\sqrt{1-\beta_2^t}`, and theory predicts no bound (``why`` says so).
    """
    value = (1 - beta1) / math.sqrt(1 - beta2) if (1 - beta1) > math.sqrt(1 - beta2) else 1.0
    why = (f"seed 003 bound for betas=({beta1}, {beta2})" if bias_correction else
           "the seed's bound assumes bias correction; without it a constant gradient gives "
           "(1-beta1^t)/sqrt(1-beta2^t), up to 6.7 for the default betas")
    return StepBound(value, why, approximate=({"betas": (0.9, 0.99)}, 1.0))
