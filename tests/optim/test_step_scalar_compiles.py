"""A new rule's own per-step scalar never recompiles a kernel: every compiled path reads the rule's declaration.

The toy rule declares ``shrink`` (= 1/sqrt(t), a new value at every step) as a step scalar with
``@update_rule``. Both compiled paths -- the optimizers' kernels (``fused=True``) and the batched
backend's stacked kernels (``StackedOptimizer(compiled=True)``) -- must pass it to the kernel as a tensor;
baked in as a Python constant it would be part of the kernel's key and compile a new kernel every step.
The compiles are counted at :func:`adamlab.optim.fast._backend`, which here hands Dynamo's graph back
to run eagerly (no C++ toolchain needed, seconds instead of an Inductor build); Dynamo still traces,
guards and recompiles exactly as with Inductor.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adamlab import functional as F
from adamlab.optim import fast, registry
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import Hyper
from adamlab.runner.backends.vmap_optim import StackedOptimizer

pytestmark = pytest.mark.compile

STEPS = 4


@F.update_rule(step_scalars=("lr", "shrink"))
def shrunk_sign(param, grad, exp_avg, *, lr, beta=0.5, shrink=1.0):
    r"""Sign of an EMA of g with step size :math:`\alpha s_t`, :math:`s_t = 1/\sqrt t` (a per-step scalar)."""
    exp_avg = F.ema(exp_avg, grad, beta)
    return param - (lr * shrink) * exp_avg.sign(), exp_avg


def undeclared(param, grad, exp_avg, *, lr, beta=0.5, shrink=1.0):
    """The same rule without its declaration: ``shrink`` is then a constant of the kernel."""
    return shrunk_sign(param, grad, exp_avg, lr=lr, beta=beta, shrink=shrink)


class ShrunkSign(AdamlabOptimizer):
    rule = shrunk_sign
    hypers = (Hyper("lr", 0.01, V.learning_rate), Hyper("beta", 0.5, V.decay_rate))

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("exp_avg",)

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        return {"shrink": step ** -0.5}


class Undeclared(ShrunkSign):
    rule = undeclared


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> list[int]:
    """Count compiles (one per Dynamo graph handed to the backend); fresh kernel cache, no snapshots."""
    torch._dynamo.reset()
    fast.reset()
    monkeypatch.setenv(fast.SNAPSHOT_ENV, "0")
    monkeypatch.setattr(fast, "compile_available", lambda device=None: (True, ""))
    calls: list[int] = []

    def eager_backend(kernel: Any, options: Any, reciprocal: bool, gm: torch.fx.GraphModule, inputs: Any) -> Any:
        calls.append(1)
        return gm.forward

    monkeypatch.setattr(fast, "_backend", eager_backend)
    for name, cls in (("shrunk-sign", ShrunkSign), ("shrunk-sign-undeclared", Undeclared)):
        registry.register(name, cls)
    yield calls
    for name in ("shrunk-sign", "shrunk-sign-undeclared"):
        registry.unregister(name)
    fast.reset()
    torch._dynamo.reset()


def _stacked(name: str, compiled: bool) -> torch.Tensor:
    k = 3
    opt = StackedOptimizer(name, [{"lr": 0.1 * (i + 1)} for i in range(k)], torch.float64, torch.device("cpu"),
                           compiled=compiled)
    param = torch.linspace(-1.0, 1.0, 5 * k, dtype=torch.float64).view(k, 5).contiguous()
    opt.add_param(param, 0)
    gen = torch.Generator().manual_seed(0)
    for _ in range(STEPS):
        opt.set_lr_factor(1.0)
        opt.step([torch.randn(param.shape, generator=gen, dtype=torch.float64)])
    return param


def _fused(name: str, **path: Any) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    param = torch.randn(40, generator=gen, dtype=torch.float64, requires_grad=True)
    opt = registry.make_optimizer(name, [param], lr=0.05, **path)
    for _ in range(STEPS):
        param.grad = torch.randn(40, generator=gen, dtype=torch.float64)
        opt.step()
    return param.detach()


def test_the_stacked_kernel_compiles_once_for_a_rules_own_step_scalar(compiles: list[int]) -> None:
    got = _stacked("shrunk-sign", compiled=True)
    assert len(compiles) == 1, f"{len(compiles)} compiles in {STEPS} steps: a per-step scalar was baked in"
    torch.testing.assert_close(got, _stacked("shrunk-sign", compiled=False), rtol=0, atol=0)


def test_the_optimizer_kernel_compiles_once_for_a_rules_own_step_scalar(compiles: list[int]) -> None:
    got = _fused("shrunk-sign", fused=True)
    assert len(compiles) == 1, f"{len(compiles)} compiles in {STEPS} steps: a per-step scalar was baked in"
    torch.testing.assert_close(got, _fused("shrunk-sign", fused=False, foreach=False), rtol=0, atol=0)


def test_the_count_sees_a_step_scalar_baked_in(compiles: list[int]) -> None:
    # The same rule without its declaration: shrink is static, so every step is a new kernel. This is
    # what the two tests above would count if a compiled path ignored the rule's step scalars.
    _stacked("shrunk-sign-undeclared", compiled=True)
    assert len(compiles) == STEPS


@pytest.mark.slow  # one Inductor build, ~15 s on a loaded 2-core host
@pytest.mark.skipif(not fast.compile_available()[0], reason="no torch.compile toolchain here")
def test_with_inductor_the_stacked_kernel_compiles_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    monkeypatch.setenv(fast.SNAPSHOT_ENV, "0")
    registry.register("shrunk-sign", ShrunkSign)
    try:
        got = _stacked("shrunk-sign", compiled=True)
        assert len([key for key in fast.COMPILE_SECONDS if key[1] == "shrunk_sign"]) == 1
        torch.testing.assert_close(got, _stacked("shrunk-sign", compiled=False), rtol=1e-12, atol=1e-12)
    finally:
        registry.unregister("shrunk-sign")
        fast.reset()
