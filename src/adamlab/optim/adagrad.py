"""``Adagrad`` (``torch.optim.Adagrad`` semantics)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper
from adamlab.optim.registry import declare
from adamlab.optim.theory import StepBound


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
    hypers = (
        Hyper("lr", 1e-2, V.learning_rate),  # passed decayed, by step_kwargs
        Hyper("lr_decay", 0.0, V.nonnegative, passed=False),
        Hyper("weight_decay", 0.0, V.nonnegative),
        Hyper("initial_accumulator_value", 0.0, V.nonnegative, passed=False),  # read by initial_state
        Hyper("eps", 1e-10, V.nonnegative),
        MAXIMIZE,
    )
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.adagrad_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0 and g["initial_accumulator_value"] == 0,
        "step_bound": True,
        "step_bound.value": StepBound(1.0, "|g_t| <= sqrt(sum g^2)"),
        "constant_gradient_ratio": False,
        "constant_gradient_ratio.why": "|g|/sqrt(sum g^2) = 1/sqrt(t)",
        "cautiousness": False,
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0 and g["initial_accumulator_value"] == 0,
    }

    def _check_sparse(self, group: dict[str, Any], param: Tensor) -> None:
        super()._check_sparse(group, param)
        if group["weight_decay"] != 0:
            raise RuntimeError("Adagrad: weight_decay is not compatible with sparse gradients (as in torch.optim)")

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("sum",)

    def initial_state(self, name: str, param: Tensor, group: dict[str, Any]) -> Tensor:
        # A complex parameter is stepped as its real pairs: both parts of its sum start at the value
        # (as in torch.optim.Adagrad), so that it matches the same parameter given as view_as_real.
        value = group["initial_accumulator_value"]
        if param.is_complex():
            value = complex(value, value)
        return torch.full_like(param, value, memory_format=torch.preserve_format)

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return {"lr": F.adagrad_lr(group["lr"], group["lr_decay"], step)}


declare("adagrad", Adagrad, {}, "AdaGrad", order=20)
