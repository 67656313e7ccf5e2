"""``torch.compile`` of an adamlab step: ``fullgraph=True`` traces (no clock, no graph break in the step),
and a compiled training step compiles no more graphs than with ``torch.optim.Adam``.

The counting backend runs the captured graphs eagerly (no Inductor), so these are quick.
"""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from adamlab.optim.registry import make_optimizer, names


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 6), nn.Tanh(), nn.Linear(6, 2))


def _set_grads(model: nn.Module, step: int) -> None:
    gen = torch.Generator().manual_seed(step)
    for p in model.parameters():
        p.grad = 0.1 + torch.randn(p.shape, generator=gen)


@pytest.mark.parametrize("name", names())
def test_fullgraph_compile_of_the_step(name: str) -> None:
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model, twin = _model(), _model()
    opt = make_optimizer(name, model.parameters(), lr=0.01)
    ref = make_optimizer(name, twin.parameters(), lr=0.01)
    counter = CompileCounter()
    step = torch.compile(opt.step, fullgraph=True, backend=counter)
    for k in range(4):
        _set_grads(model, k)
        _set_grads(twin, k)
        step()
        ref.step()
    assert counter.frame_count == 1
    for p, q in zip(model.parameters(), twin.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def _training_step_frames(make: Any) -> int:
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    model = _model()
    opt = make(model.parameters())
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    counter = CompileCounter()

    @torch.compile(backend=counter)
    def train_step() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        return loss

    for _ in range(5):
        train_step()
    return counter.frame_count


@pytest.mark.parametrize("name", ["adam", "msvag", "rmsprop"])
def test_a_compiled_training_step_compiles_no_more_graphs_than_torch_adam(name: str) -> None:
    torch_frames = _training_step_frames(lambda p: torch.optim.Adam(p, lr=0.01))
    assert _training_step_frames(lambda p: make_optimizer(name, p, lr=0.01)) <= torch_frames
