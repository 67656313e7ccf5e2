"""``RMSprop`` (``torch.optim.RMSprop`` semantics)."""

from __future__ import annotations

from typing import Any

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer, ParamsT


class RMSprop(AdamlabOptimizer):
    r"""RMSProp, :math:`v \leftarrow \alpha v + (1-\alpha) g^2,\ \theta \leftarrow \theta - \eta g/(\epsilon + \sqrt v)`.

    See :func:`adamlab.functional.rmsprop`. Seed 003 names the decay :math:`\beta`; we keep PyTorch's
    name ``alpha`` so this is a drop-in for ``torch.optim.RMSprop`` (also ``momentum``, ``centered``).
    Defaults (PyTorch's): ``lr=1e-2``, ``alpha=0.99``, ``eps=1e-8``.
    """

    rule = F.rmsprop
    hyperparameter_checks = {"lr": V.learning_rate, "alpha": V.closed_decay_rate, "eps": V.nonnegative,
                             "weight_decay": V.nonnegative, "momentum": V.nonnegative, "centered": V.boolean,
                             "maximize": V.boolean}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.rmsprop_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0,
        "step_bound": True,  # v >= (1 - alpha) g^2
        "constant_gradient_ratio": False,  # no bias correction: |g|/sqrt(v) = 1/sqrt(1 - alpha^t)
        "cautiousness": lambda g: g["momentum"] > 0,  # only momentum averages the steps
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
    }

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
    ) -> None:
        defaults = dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                        centered=centered, maximize=maximize, foreach=foreach, fused=fused,
                        differentiable=differentiable)
        super().__init__(params, defaults, nonfinite=nonfinite)

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("square_avg",
                "momentum_buffer" if group["momentum"] > 0 else None,
                "grad_avg" if group["centered"] else None)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], alpha=group["alpha"], eps=group["eps"], momentum=group["momentum"],
                    centered=group["centered"], weight_decay=group["weight_decay"],
                    maximize=group["maximize"])
