"""torch.optim conformance for every adamlab optimizer class."""

from __future__ import annotations

import io

import pytest
import torch
from torch import nn

from tests.optim.factories import FACTORIES

NAMES = sorted(FACTORIES)


def _params(dtype=torch.float64, seed=0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shapes = [(4, 3), (3,), (), (0,), (2, 0, 3)]
    return [torch.randn(s, generator=gen, dtype=dtype).requires_grad_() for s in shapes]


def _grads(params, gen) -> list[torch.Tensor]:
    return [0.3 + torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]


def _steps(opt, params, n: int, seed: int = 1, sign: float = 1.0) -> None:
    gen = torch.Generator().manual_seed(seed)
    for _ in range(n):
        for p, g in zip(params, _grads(params, gen), strict=True):
            p.grad = sign * g
        opt.step()


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_size_and_zero_dim_params_in_both_dtypes(name, dtype) -> None:
    params = _params(dtype)
    before = [p.detach().clone() for p in params]
    opt = FACTORIES[name](params)
    _steps(opt, params, 3)
    for p, b in zip(params, before, strict=True):
        assert p.dtype == dtype and p.shape == b.shape
        assert torch.isfinite(p).all()
    assert not torch.equal(params[2], before[2])  # the 0-dim parameter moved
    assert not torch.equal(params[0], before[0])


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bit_for_bit(name) -> None:
    params_a = _params()
    opt_a = FACTORIES[name](params_a)
    _steps(opt_a, params_a, 5)
    buffer = io.BytesIO()
    torch.save({"params": [p.detach() for p in params_a], "opt": opt_a.state_dict()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    params_b = [p.clone().requires_grad_() for p in saved["params"]]
    opt_b = FACTORIES[name](params_b)
    opt_b.load_state_dict(saved["opt"])
    _steps(opt_a, params_a, 5, seed=7)
    _steps(opt_b, params_b, 5, seed=7)
    for a, b in zip(params_a, params_b, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_foreach_path_equals_loop_path(name) -> None:
    pa, pb = _params(), _params()
    opt_a, opt_b = FACTORIES[name](pa, foreach=False), FACTORIES[name](pb, foreach=True)
    _steps(opt_a, pa, 6)
    _steps(opt_b, pb, 6)
    for a, b in zip(pa, pb, strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_maximize_equals_minimizing_the_negated_gradient(name) -> None:
    pa, pb = _params(), _params()
    opt_a, opt_b = FACTORIES[name](pa, maximize=True), FACTORIES[name](pb)
    _steps(opt_a, pa, 6)
    _steps(opt_b, pb, 6, sign=-1.0)
    for a, b in zip(pa, pb, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    pc = _params()
    _steps(FACTORIES[name](pc), pc, 6)
    assert not torch.allclose(pa[0], pc[0])  # maximize changes something


@pytest.mark.parametrize("name", NAMES)
def test_params_without_grad_are_untouched_and_get_no_state(name) -> None:
    params = _params()
    frozen = params[1]
    before = frozen.detach().clone()
    opt = FACTORIES[name](params)
    gen = torch.Generator().manual_seed(0)
    for _ in range(3):
        for p, g in zip(params, _grads(params, gen), strict=True):
            p.grad = None if p is frozen else g
        opt.step()
    assert torch.equal(frozen, before)
    inner = getattr(opt, "optimizer", opt)
    assert frozen not in inner.state or not inner.state[frozen]


@pytest.mark.parametrize("name", NAMES)
def test_param_groups_with_their_own_hyperparameters(name) -> None:
    """Group 2 with lr=0.003 follows exactly the trajectory of a separate optimizer with that lr."""
    pa = _params()
    pb = [p.detach().clone().requires_grad_() for p in pa]
    opt = FACTORIES[name]([{"params": pa[:2]}, {"params": pa[2:], "lr": 0.003}])
    ref = FACTORIES[name](pb[2:], lr=0.003)
    gen = torch.Generator().manual_seed(3)
    for _ in range(4):
        grads = _grads(pa, gen)
        for p, q, g in zip(pa, pb, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        ref.step()
    for a, b in zip(pa[2:], pb[2:], strict=True):
        assert torch.equal(a, b)
    assert opt.param_groups[1]["lr"] == 0.003


@pytest.mark.parametrize("name", NAMES)
def test_closure_is_called_with_grad_enabled_and_its_loss_returned(name) -> None:
    torch.manual_seed(0)
    model = nn.Linear(3, 1).double()
    x, y = torch.randn(8, 3, dtype=torch.float64), torch.randn(8, 1, dtype=torch.float64)
    opt = FACTORIES[name](model.parameters())

    def closure():
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        return loss

    first = closure().item()
    losses = [opt.step(closure).item() for _ in range(30)]
    assert losses[0] == pytest.approx(first)
    assert losses[-1] < losses[0]


SPARSE_OK = {"SGD", "SGD-nesterov", "Adagrad"}  # torch.optim's SGD and Adagrad take sparse gradients


@pytest.mark.parametrize("name", sorted(set(NAMES) - SPARSE_OK))
def test_sparse_gradients_raise_a_clear_error(name) -> None:
    emb = nn.Embedding(10, 3, sparse=True)
    opt = FACTORIES[name](emb.parameters())
    emb(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        opt.step()
