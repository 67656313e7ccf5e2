"""``Adam`` with all its switches, and ``Adamax``."""

from __future__ import annotations

from typing import Any

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper
from adamlab.optim.registry import declare
from adamlab.optim.theory import StepBound, adam_step_bound


class Adam(AdamlabOptimizer):
    r"""Adam (Kingma & Ba 2015, Algorithm 1); see :func:`adamlab.functional.adam`.

    .. math::
        \theta_t = \theta_{t-1} - \alpha \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}

    Defaults are the paper's: ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8`` (one seed slide prints
    :math:`\alpha = 0.1`; that is a typo, Kingma & Ba use 0.001). Switches: ``amsgrad``,
    ``weight_decay`` (L2; with ``decoupled_weight_decay=True`` it is AdamW), ``eps_inside_sqrt``
    (:math:`\sqrt{\hat v_t + \epsilon}`, Balles & Hennig's form) and ``bias_correction=False`` (the
    ablation of Kingma & Ba sec. 6.4). With the defaults it matches ``torch.optim.Adam`` to rounding.
    """

    rule = F.adam
    hypers = (
        Hyper("lr", 1e-3, V.learning_rate),
        Hyper("betas", (0.9, 0.999), V.beta_pair, unpack=("beta1", "beta2")),
        Hyper("eps", 1e-8, V.nonnegative),
        Hyper("weight_decay", 0.0, V.nonnegative),
        Hyper("amsgrad", False, V.boolean),
        Hyper("decoupled_weight_decay", False, V.boolean),
        Hyper("eps_inside_sqrt", False, V.boolean),
        Hyper("bias_correction", True, V.boolean, passed=False),  # read by step_kwargs
        MAXIMIZE,
    )
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.adam_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0 or g["decoupled_weight_decay"],
        "step_bound": lambda g: g["bias_correction"],
        "step_bound.value": lambda g: adam_step_bound(*g["betas"], bias_correction=g["bias_correction"]),
        "constant_gradient_ratio": lambda g: g["bias_correction"] and (g["weight_decay"] == 0
                                                                       or g["decoupled_weight_decay"]),
        "constant_gradient_ratio.why": lambda g: None if g["bias_correction"] else
        "without bias correction m/sqrt(v) = (1-beta1^t)/sqrt(1-beta2^t)",
        # seed 001: for zero-mean noise and beta1 = 0, m_hat/sqrt(v_hat) has a standard deviation of about 1
        "constant_gradient_ratio.noise_std": lambda g: g["weight_decay"] == 0,
        "cautiousness": True,
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
        "param_scale_lr_equivalence.why": lambda g: "decoupled decay lr*lambda*w' scales with lr, not with the "
        "weight scale" if g["decoupled_weight_decay"] and g["weight_decay"] != 0 else None,
    }

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if group["amsgrad"] else None)

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return F.adam_coefficients(step, beta1, beta2, group["bias_correction"])


class Adamax(AdamlabOptimizer):
    r"""AdaMax (Kingma & Ba 2015, sec. 7.1); see :func:`adamlab.functional.adamax`.

    :math:`u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon)`, :math:`\theta_t = \theta_{t-1} - \frac{\alpha}{1-\beta_1^t} m_t/u_t`.
    The paper has no :math:`\epsilon`; PyTorch adds it inside the max and so do we (``eps=0`` is the
    paper's rule). Defaults: ``lr=2e-3, betas=(0.9, 0.999), eps=1e-8``.
    """

    rule = F.adamax
    hypers = (
        Hyper("lr", 2e-3, V.learning_rate),
        Hyper("betas", (0.9, 0.999), V.beta_pair, unpack=("beta1", "beta2")),
        Hyper("eps", 1e-8, V.nonnegative),
        Hyper("weight_decay", 0.0, V.nonnegative),
        MAXIMIZE,
    )
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.adamax_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0,
        "step_bound": True,
        # |m_hat|/u <= (1-beta1)/(1-beta1/beta2) = 1.009 for the default betas: 1 holds to about 1%
        "step_bound.value": StepBound(1.0, "Kingma & Ba sec. 7.1: |Delta| <= alpha", rtol=1e-2),
        "constant_gradient_ratio": lambda g: g["weight_decay"] == 0,
        "cautiousness": True,
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
    }

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("exp_avg", "exp_inf")

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return {"bias_correction1": F.bias_correction(group["betas"][0], step)}


declare("adam", Adam, {}, "Adam (Kingma & Ba)", order=40)
declare("amsgrad", Adam, {"amsgrad": True}, "Adam with the AMSGrad max", order=41)
declare("adamw", Adam, {"decoupled_weight_decay": True, "weight_decay": 1e-2}, "Adam, decoupled weight decay", order=42)
declare("adam-nobc", Adam, {"bias_correction": False}, "Adam without bias correction", order=43)
declare("adamax", Adamax, {}, "AdaMax (Adam paper sec. 7.1)", order=50)
