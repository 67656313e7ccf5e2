"""A new optimizer needs only its rule, its class and its registration: the tables read the rest from them.

The toy optimizer here is defined in this file only (nothing in adamlab names it). It is decomposed by
``adamlab.dissect.decompose``, has theory for ``adamlab.claims.properties``, and its per-step scalars are
split off for the compiled path (``adamlab.optim.fast.split_kwargs``).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adamlab import functional as F
from adamlab.claims import properties as P
from adamlab.dissect import StepRecorder
from adamlab.optim import fast, registry
from adamlab.optim.base import AdamlabOptimizer


@F.update_rule(step_scalars=("lr", "shrink"))
def toy(param, grad, exp_avg, *, lr, beta=0.5, shrink=1.0):
    """Sign of an EMA of g, with a step size ``lr * shrink`` (shrink = 1/sqrt(t), a per-step scalar)."""
    exp_avg = F.ema(exp_avg, grad, beta)
    return param - (lr * shrink) * exp_avg.sign(), exp_avg


def toy_step_pieces(param, grad, exp_avg, *, lr, shrink=1.0, **_: Any) -> dict[str, Any]:
    return dict(kind="sign", direction=exp_avg.sign(), magnitude=float(lr * shrink), gamma=1.0)


class Toy(AdamlabOptimizer):
    rule = toy
    pieces = toy_step_pieces
    theory = {"rescaling_invariance": True, "step_bound": lambda group: group["beta"] < 1}

    def __init__(self, params, lr: float = 0.01, beta: float = 0.5, **kw: Any) -> None:
        super().__init__(params, dict(lr=lr, beta=beta, **kw))

    def state_slots(self, group):
        return ("exp_avg",)

    def rule_kwargs(self, group, step):
        return dict(lr=group["lr"], beta=group["beta"], shrink=step ** -0.5)


@pytest.fixture
def toy_registered():
    registry.register("toy", Toy, {}, "a toy sign method")
    yield "toy"
    registry.unregister("toy")


def test_decomposed(toy_registered):
    p = torch.randn(6, dtype=torch.float64, requires_grad=True)
    opt = registry.make_optimizer(toy_registered, [p], lr=0.1)
    for _ in range(3):
        p.grad = torch.randn(6, dtype=torch.float64)
        with StepRecorder(opt) as rec:
            opt.step()
        (piece,) = rec.pieces
        assert piece.kind == "sign" and piece.max_error() <= 1e-15
        assert piece.magnitude == pytest.approx(0.1 * piece.step ** -0.5)


def test_has_theory(toy_registered):
    assert P.predicted(toy_registered, "rescaling_invariance") is True
    assert P.predicted(toy_registered, "step_bound") is True
    assert P.predicted(toy_registered, "cautiousness") is None  # not declared: no prediction
    assert toy_registered in P.theory_table(["rescaling_invariance"])["rescaling_invariance"]
    record = P.check_rescaling_invariance(toy_registered)
    assert record.theory is True and record.holds is True


def test_per_step_scalars_are_split_for_the_compiled_path(toy_registered):
    opt = registry.make_optimizer(toy_registered, [torch.zeros(2, requires_grad=True)])
    kwargs = opt.rule_kwargs(opt.param_groups[0], 4)
    static, names, values = fast.split_kwargs(kwargs, Toy.rule)
    assert names == ("lr", "shrink") and values == [0.01, 0.5]
    assert static == (("beta", 0.5),)
    # an undeclared rule falls back to lr only (anything else is baked into the kernel: correct, recompiles)
    assert fast.split_kwargs(kwargs, lambda *a, **k: None)[1] == ("lr",)


@pytest.mark.slow  # one compile, ~15 s on a loaded 2-core host
@pytest.mark.compile
@pytest.mark.skipif(not fast.compile_available()[0], reason="no torch.compile toolchain here")
def test_compiled_path_equals_the_loop_and_compiles_once(toy_registered):
    runs = []
    fast.reset()
    for path in ({"fused": False, "foreach": False}, {"fused": True}):
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(40, generator=gen, dtype=torch.float64).requires_grad_() for _ in range(2)]
        opt = registry.make_optimizer(toy_registered, params, lr=0.05, **path)
        for _ in range(5):  # shrink changes every step: it must not recompile
            for q in params:
                q.grad = torch.randn(q.shape, generator=gen, dtype=torch.float64)
            opt.step()
        runs.append(params)
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
    assert len([k for k in fast.COMPILE_SECONDS if k[1] == "toy"]) == 1
