"""``SGD``: plain, momentum and Nesterov (``torch.optim.SGD`` semantics)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer, ParamsT


class SGD(AdamlabOptimizer):
    r"""Stochastic gradient descent, optionally with (Nesterov) momentum; see :func:`adamlab.functional.sgd`.

    Drop-in for ``torch.optim.SGD``: same arguments, same state (``momentum_buffer``), same iterates,
    and torch's default ``lr=1e-3`` (the papers have none; so ``lr`` may be given per param group only).
    Sparse gradients follow torch: the rule on the densified gradient (untouched entries see a zero
    gradient, so momentum still decays them); not with ``weight_decay``, ``fused=True`` or
    ``differentiable=True`` (torch refuses them too). Seed 003's heavy-ball form :math:`v \leftarrow \rho v - \eta g,\
    \theta \leftarrow \theta + v` is ``SGD(momentum=rho)`` at constant ``lr``.
    """

    rule = F.sgd
    sparse_grads = "dense"
    hyperparameter_checks = {"lr": V.learning_rate, "momentum": V.nonnegative, "dampening": V.nonnegative,
                             "weight_decay": V.nonnegative, "nesterov": V.boolean, "maximize": V.boolean}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.sgd_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        "rescaling_invariance": False,  # the step is proportional to the gradient
        "step_bound": False,
        "constant_gradient_ratio": False,
        "cautiousness": lambda g: g["momentum"] > 0,  # averaging over time shrinks a noisy step
        "param_scale_lr_equivalence": False,
    }

    def validate_group(self, group: dict[str, Any]) -> None:
        super().validate_group(group)
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Invalid nesterov=True: requires momentum > 0 and dampening = 0")

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
    ) -> None:
        defaults = dict(lr=lr, momentum=momentum, dampening=dampening, weight_decay=weight_decay,
                        nesterov=nesterov, maximize=maximize, foreach=foreach, fused=fused,
                        differentiable=differentiable)
        super().__init__(params, defaults, nonfinite=nonfinite)

    def _check_sparse(self, group: dict[str, Any], param: Tensor) -> None:
        super()._check_sparse(group, param)
        if group["weight_decay"] != 0:  # torch.optim.SGD fails on it too (sparse + dense)
            raise RuntimeError("SGD: weight_decay is not supported with sparse gradients (as in torch.optim)")

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("momentum_buffer" if group["momentum"] != 0 else None,)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=group["lr"], momentum=group["momentum"], dampening=group["dampening"],
                    nesterov=group["nesterov"], weight_decay=group["weight_decay"],
                    maximize=group["maximize"], first_step=step == 1)
