"""``Adam`` with all its switches, and ``Adamax``."""

from __future__ import annotations

from typing import Any

from adamlab import functional as F
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer, ParamsT


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
    hyperparameter_checks = {"lr": V.learning_rate, "betas": V.beta_pair, "eps": V.nonnegative,
                             "weight_decay": V.nonnegative, "amsgrad": V.boolean,
                             "decoupled_weight_decay": V.boolean, "eps_inside_sqrt": V.boolean,
                             "bias_correction": V.boolean, "maximize": V.boolean}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.adam_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0 or g["decoupled_weight_decay"],
        "step_bound": lambda g: g["bias_correction"],
        "constant_gradient_ratio": lambda g: g["bias_correction"] and (g["weight_decay"] == 0
                                                                       or g["decoupled_weight_decay"]),
        "cautiousness": True,
        # AdamW's decoupled decay lr * lambda * theta scales with lr, not with the weight scale.
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
    }

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        decoupled_weight_decay: bool = False,
        eps_inside_sqrt: bool = False,
        bias_correction: bool = True,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, amsgrad=amsgrad,
                        decoupled_weight_decay=decoupled_weight_decay, eps_inside_sqrt=eps_inside_sqrt,
                        bias_correction=bias_correction, maximize=maximize, foreach=foreach, fused=fused,
                        differentiable=differentiable)
        super().__init__(params, defaults, nonfinite=nonfinite)

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("exp_avg", "exp_avg_sq", "max_exp_avg_sq" if group["amsgrad"] else None)

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"],
                    decoupled_weight_decay=group["decoupled_weight_decay"], amsgrad=group["amsgrad"],
                    eps_inside_sqrt=group["eps_inside_sqrt"], maximize=group["maximize"],
                    **F.adam_coefficients(step, beta1, beta2, group["bias_correction"]))


class Adamax(AdamlabOptimizer):
    r"""AdaMax (Kingma & Ba 2015, sec. 7.1); see :func:`adamlab.functional.adamax`.

    :math:`u_t = \max(\beta_2 u_{t-1}, |g_t| + \epsilon)`, :math:`\theta_t = \theta_{t-1} - \frac{\alpha}{1-\beta_1^t} m_t/u_t`.
    The paper has no :math:`\epsilon`; PyTorch adds it inside the max and so do we (``eps=0`` is the
    paper's rule). Defaults: ``lr=2e-3, betas=(0.9, 0.999), eps=1e-8``.
    """

    rule = F.adamax
    hyperparameter_checks = {"lr": V.learning_rate, "betas": V.beta_pair, "eps": V.nonnegative,
                             "weight_decay": V.nonnegative, "maximize": V.boolean}
    #: The step taken apart (:func:`adamlab.dissect.decompose`), from the rule's own inputs.
    pieces = F.adamax_step_pieces
    #: What theory predicts for the property checks of :mod:`adamlab.claims.properties`: per property,
    #: a bool or a function of the param group (reasons in that module's docstring).
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0,
        "step_bound": True,
        "constant_gradient_ratio": lambda g: g["weight_decay"] == 0,
        "cautiousness": True,
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
    }

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        fused: bool | None = None,
        differentiable: bool = False,
        nonfinite: str = "propagate",
    ) -> None:
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay, maximize=maximize,
                        foreach=foreach, fused=fused, differentiable=differentiable)
        super().__init__(params, defaults, nonfinite=nonfinite)

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("exp_avg", "exp_inf")

    def rule_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return dict(lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"],
                    weight_decay=group["weight_decay"], maximize=group["maximize"],
                    bias_correction1=F.bias_correction(beta1, step))
