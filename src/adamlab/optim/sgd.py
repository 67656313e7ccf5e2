"""``SGD``: plain, momentum and Nesterov (``torch.optim.SGD`` semantics)."""

from __future__ import annotations

from typing import Any

from torch import Tensor

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper
from adamlab.optim.registry import declare


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
    hypers = (
        Hyper("lr", 1e-3, V.learning_rate),
        Hyper("momentum", 0.0, V.nonnegative),
        Hyper("dampening", 0.0, V.nonnegative),
        Hyper("weight_decay", 0.0, V.nonnegative),
        Hyper("nesterov", False, V.boolean),
        MAXIMIZE,
    )
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.sgd_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`).
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

    def _check_sparse(self, group: dict[str, Any], param: Tensor) -> None:
        super()._check_sparse(group, param)
        if group["weight_decay"] != 0:  # torch.optim.SGD fails on it too (sparse + dense)
            raise RuntimeError("SGD: weight_decay is not supported with sparse gradients (as in torch.optim)")

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("momentum_buffer" if group["momentum"] != 0 else None,)

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return {"first_step": step == 1}


declare("sgd", SGD, {}, "plain SGD", order=10)
declare("momentum", SGD, {"momentum": 0.9}, "SGD with heavy-ball momentum 0.9", order=11)
declare("nesterov", SGD, {"momentum": 0.9, "nesterov": True}, "SGD with Nesterov momentum 0.9", order=12)
