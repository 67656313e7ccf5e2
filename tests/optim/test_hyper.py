"""One ``Hyper`` declaration per hyperparameter: constructor, validation and rule keywords come from it.

Also pins the public constructor signatures (names, order, kinds, defaults), which are now generated.
"""

from __future__ import annotations

import copy
import inspect
from typing import Any

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

import adamlab.optim as O
from adamlab import functional as F
from adamlab.optim import registry
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper

P, K = inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY
OPTIONS = [("foreach", K, None), ("fused", K, None), ("differentiable", K, False), ("nonfinite", K, "propagate")]
PRESET = [("lr", P, V.REQUIRED), ("beta", P, 0.9), ("variance_estimate", K, "unbiased"), ("weight_decay", K, 0.0),
          ("maximize", K, False), *OPTIONS]

#: The constructors' signatures before they were generated (the presets' ``**extra`` is now spelled out).
SIGNATURES: dict[type, list[tuple[str, Any, Any]]] = {
    O.SGD: [("lr", P, 1e-3), ("momentum", P, 0.0), ("dampening", P, 0.0), ("weight_decay", P, 0.0),
            ("nesterov", P, False), ("maximize", K, False), *OPTIONS],
    O.Adagrad: [("lr", P, 1e-2), ("lr_decay", P, 0.0), ("weight_decay", P, 0.0),
                ("initial_accumulator_value", P, 0.0), ("eps", P, 1e-10), ("maximize", K, False), *OPTIONS],
    O.RMSprop: [("lr", P, 1e-2), ("alpha", P, 0.99), ("eps", P, 1e-8), ("weight_decay", P, 0.0), ("momentum", P, 0.0),
                ("centered", P, False), ("maximize", K, False), *OPTIONS],
    O.Adam: [("lr", P, 1e-3), ("betas", P, (0.9, 0.999)), ("eps", P, 1e-8), ("weight_decay", P, 0.0),
             ("amsgrad", P, False), ("decoupled_weight_decay", P, False), ("eps_inside_sqrt", P, False),
             ("bias_correction", P, True), ("maximize", K, False), *OPTIONS],
    O.Adamax: [("lr", P, 2e-3), ("betas", P, (0.9, 0.999)), ("eps", P, 1e-8), ("weight_decay", P, 0.0),
               ("maximize", K, False), *OPTIONS],
    O.NDAdam: [("lr", P, 1e-3), ("betas", P, (0.9, 0.999)), ("eps", P, 1e-8), ("weight_decay", P, 0.0),
               ("normalized", P, True), ("maximize", K, False), ("foreach", K, None), ("fused", K, None),
               ("nonfinite", K, "propagate")],
    O.Dissected: [("lr", P, V.REQUIRED), ("beta", P, 0.9), ("direction", P, "grad"), ("variance_adaptation", P, False),
                  ("use_momentum", P, True), ("variance_estimate", K, "unbiased"), ("weight_decay", K, 0.0),
                  ("maximize", K, False), *OPTIONS, ("momentum", K, "unset")],
    **{cls: PRESET for cls in (O.SSD, O.MSSD, O.SVAG, O.MSVAG, O.MSSDVA)},
}


@pytest.mark.parametrize("cls", list(SIGNATURES), ids=lambda c: c.__name__)
def test_constructor_signatures_are_unchanged(cls: type) -> None:
    params = list(inspect.signature(cls).parameters.values())
    assert params[0].name == "params" and params[0].kind is P
    got = [(p.name, p.kind, "unset" if repr(p.default) == "<unset>" else p.default) for p in params[1:]]
    assert got == SIGNATURES[cls]


@pytest.mark.parametrize("name", registry.names())
def test_rule_kwargs_are_the_rules_keywords(name: str) -> None:
    """Every keyword ``rule_kwargs`` makes from the spec is a keyword of the class's rule."""
    opt = registry.make_optimizer(name, [torch.zeros(3, requires_grad=True)], lr=0.1)
    cls = type(opt)
    rule = inspect.signature(cls.rule).parameters
    kwargs = opt.rule_kwargs(opt.param_groups[0], 3)
    assert set(kwargs) <= {n for n, p in rule.items() if p.kind is K}, set(kwargs) - set(rule)
    assert set(cls.hyperparameter_checks) == {h.name for h in cls.hypers}


def test_presets_are_fixed_where_the_class_fixes_them() -> None:
    p = [nn.Parameter(torch.zeros(2))]
    assert O.MSVAG.preset == F.PRESETS["msvag"] and registry.presets("msvag") == {}
    group = O.MSVAG(p, lr=0.1).param_groups[0]
    assert {k: group[k] for k in F.PRESETS["msvag"]} == F.PRESETS["msvag"]
    with pytest.raises(TypeError, match="MSVAG fixes direction; use Dissected to choose it"):
        O.MSVAG(p, lr=0.1, direction="sign")
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        O.MSVAG(p, lr=0.1, nope=1)
    with pytest.raises(TypeError, match="too many positional arguments"):
        O.Adamax(p, 0.1, (0.9, 0.99), 1e-8, 0.0, True)


# -- a new optimizer declared with a spec only -------------------------------------------------------
@F.update_rule(step_scalars=("lr",))
def heavy_ball(param, grad, buf, *, lr, rho, maximize=False):
    r""":math:`b \leftarrow \rho b + g, \theta \leftarrow \theta - \alpha b`."""
    grad = -grad if maximize else grad
    buf = rho * buf + grad
    return param - lr * buf, buf


class HeavyBall(AdamlabOptimizer):
    """Heavy ball; ``rho`` is written once, here."""

    rule = heavy_ball
    hypers = (Hyper("lr", 0.1, V.learning_rate), Hyper("rho", 0.9, V.decay_rate), MAXIMIZE)

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("buf",)


def test_a_spec_gives_the_constructor_checks_and_rule_kwargs() -> None:
    p = nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    opt = HeavyBall([p], 0.5, rho=0.5)
    assert str(inspect.signature(HeavyBall)).startswith("(params: 'ParamsT', lr: 'float' = 0.1, rho: 'float' = 0.9, *, "
                                                        "maximize: 'bool' = False, foreach")
    assert opt.rule_kwargs(opt.param_groups[0], 1) == {"lr": 0.5, "rho": 0.5, "maximize": False}
    with pytest.raises(ValueError, match=r"Invalid rho=1.5: must be in \[0, 1\)"):
        HeavyBall([p], rho=1.5)
    with pytest.raises(ValueError, match="rho"):  # per-group values are checked too
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(1))], "rho": -1.0})
    for _ in range(2):
        p.grad = torch.tensor([1.0, 1.0], dtype=torch.float64)
        opt.step()
    torch.testing.assert_close(p.detach(), torch.tensor([1.0 - 0.5 - 0.75, -2.0 - 0.5 - 0.75], dtype=torch.float64))
    twin = copy.deepcopy(opt)
    fresh = HeavyBall([p])
    fresh.load_state_dict(opt.state_dict())
    assert fresh.param_groups[0]["rho"] == twin.param_groups[0]["rho"] == 0.5
    sched = S.StepLR(opt, step_size=1, gamma=0.5)
    opt.step()
    sched.step()
    assert opt.param_groups[0]["lr"] == 0.25
