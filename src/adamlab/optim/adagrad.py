"""``Adagrad`` (``torch.optim.Adagrad`` semantics)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer, ParamsT


class Adagrad(AdamlabOptimizer):
    r"""AdaGrad, :math:`v \leftarrow v + g^2,\ \theta \leftarrow \theta - \eta_t g/(\epsilon + \sqrt v)`.

    See :func:`adamlab.functional.adagrad`. ``lr_decay`` gives :math:`\eta_t = \eta/(1 + (t-1)\delta)`
    and ``initial_accumulator_value`` the starting :math:`v`, as in ``torch.optim.Adagrad``.
    Defaults: ``lr=1e-2``, ``eps=1e-10`` (PyTorch's). Sparse gradients follow torch: the rule updates
    the touched entries (and their accumulator) only; not with ``weight_decay``, ``fused=True`` or
    ``differentiable=True``.
    """

    rule = F.adagrad
    sparse_grads = "touched"
    hyperparameter_checks = {"lr": V.learning_rate, "lr_decay": V.nonnegative, "weight_decay": V.nonnegative,
                             "initial_accumulator_value": V.nonnegative, "eps": V.nonnegative,
                             "maximize": V.boolean}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.adagrad_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0 and g["initial_accumulator_value"] == 0,
        "step_bound": True,
        "constant_gradient_ratio": False,  # |g|/sqrt(sum g^2) = 1/sqrt(t)
        "cautiousness": False,
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0 and g["initial_accumulator_value"] == 0,
    }

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
    ) -> None:
        defaults = dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay, eps=eps,
                        initial_accumulator_value=initial_accumulator_value, maximize=maximize,
                        foreach=foreach, fused=fused, differentiable=differentiable)
        super().__init__(params, defaults, nonfinite=nonfinite)

    def _check_sparse(self, group: dict[str, Any], param: Tensor) -> None:
        super()._check_sparse(group, param)
        if group["weight_decay"] != 0:
            raise RuntimeError("Adagrad: weight_decay is not compatible with sparse gradients (as in torch.optim)")

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("sum",)

    def initial_state(self, name: str, param: Tensor, group: dict[str, Any]) -> Tensor:
        return torch.full_like(param, group["initial_accumulator_value"], memory_format=torch.preserve_format)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return dict(lr=F.adagrad_lr(group["lr"], group["lr_decay"], step), eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"])
