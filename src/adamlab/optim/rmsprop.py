"""``RMSprop`` (``torch.optim.RMSprop`` semantics)."""

from __future__ import annotations

import math
from typing import Any

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper
from adamlab.optim.registry import declare
from adamlab.optim.theory import StepBound


class RMSprop(AdamlabOptimizer):
    r"""RMSProp, :math:`v \leftarrow \alpha v + (1-\alpha) g^2,\ \theta \leftarrow \theta - \eta g/(\epsilon + \sqrt v)`.

    See :func:`adamlab.functional.rmsprop`. Seed 003 names the decay :math:`\beta`; we keep PyTorch's
    name ``alpha`` so this is a drop-in for ``torch.optim.RMSprop`` (also ``momentum``, ``centered``).
    Defaults (PyTorch's): ``lr=1e-2``, ``alpha=0.99``, ``eps=1e-8``.
    """

    rule = F.rmsprop
    hypers = (
        Hyper("lr", 1e-2, V.learning_rate),
        Hyper("alpha", 0.99, V.closed_decay_rate),
        Hyper("eps", 1e-8, V.nonnegative),
        Hyper("weight_decay", 0.0, V.nonnegative),
        Hyper("momentum", 0.0, V.nonnegative),
        Hyper("centered", False, V.boolean),
        MAXIMIZE,
    )
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.rmsprop_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0,
        "step_bound": True,
        "step_bound.value": lambda g: StepBound(math.inf if g["alpha"] == 1 else 1.0 / math.sqrt(1 - g["alpha"]),
                                                "v >= (1-alpha) g^2 gives 1/sqrt(1-alpha)"),
        "constant_gradient_ratio": False,
        "constant_gradient_ratio.why": "|g|/sqrt(v) = 1/sqrt(1-alpha^t) without bias correction",
        "cautiousness": lambda g: g["momentum"] > 0,  # only momentum averages the steps
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
    }

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("square_avg",
                "momentum_buffer" if group["momentum"] > 0 else None,
                "grad_avg" if group["centered"] else None)


declare("rmsprop", RMSprop, {}, "RMSProp", order=30)
