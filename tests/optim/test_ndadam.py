"""ND-Adam against an independent float64 NumPy transcription of the paper's algorithm, plus its options.

Zhang, Ma, Li & Wu, "Normalized Direction-preserving Adam" (arXiv:1709.04546): per hidden-unit input
weight vector w_i (unit norm), g <- g - (g.w) w; m = EMA_b1(g); v = EMA_b2(||g||^2), one scalar per
vector; bias corrections; w~ = w - a m_hat/(sqrt(v_hat) + eps); w = w~/||w~||. Everything else is Adam.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import adamlab.optim as O
from adamlab import functional as F
from adamlab.dissect import StepRecorder, decompose
from adamlab.optim.registry import make_optimizer
from tests.optim import test_conformance as conformance
from tests.optim.factories import FACTORIES

LR, B1, B2, EPS = 0.05, 0.9, 0.999, 1e-8


# -- the reference: the paper's Algorithm 1, one vector at a time, in float64 NumPy -------------------------
def _nd_adam_vector(w0, grads, lr=LR, b1=B1, b2=B2, eps=EPS):
    """ND-Adam on ONE weight vector w (unit norm) for the gradient stream ``grads(t, w)``."""
    w = np.asarray(w0, dtype=np.float64).copy()
    m = np.zeros_like(w)
    v = 0.0
    for t in range(1, len(grads) + 1):
        g_bar = grads[t - 1]
        g = g_bar - np.dot(g_bar, w) * w  # tangent component
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * np.dot(g, g)
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
        w_tilde = w - lr * m_hat / (np.sqrt(v_hat) + eps)
        w = w_tilde / np.linalg.norm(w_tilde)
    return w, m, v


def _adam_vector(x0, grads, lr=LR, b1=B1, b2=B2, eps=EPS):
    x = np.asarray(x0, dtype=np.float64).copy()
    m = np.zeros_like(x)
    v = np.zeros_like(x)
    for t in range(1, len(grads) + 1):
        g = grads[t - 1]
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        x = x - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    return x, m, v


def _unit_rows(x: np.ndarray) -> np.ndarray:
    flat = x.reshape(x.shape[0], -1)
    return (flat / np.linalg.norm(flat, axis=1, keepdims=True)).reshape(x.shape)


def _streams(shapes, steps, seed=0):
    rng = np.random.default_rng(seed)
    return [[rng.normal(0.2, 1.0, size=s) for _ in range(steps)] for s in shapes]


SHAPES = [(5, 4), (3, 2, 3, 3), (6,)]  # a linear weight, a conv weight (out, in, kh, kw), a bias


@pytest.mark.parametrize("foreach", [False, True])
def test_matches_numpy_transcription_of_the_paper(foreach):
    steps = 12
    rng = np.random.default_rng(1)
    starts = [_unit_rows(rng.normal(size=s)) if len(s) > 1 else rng.normal(size=s) for s in SHAPES]
    grads = _streams(SHAPES, steps)
    params = [torch.tensor(x, requires_grad=True) for x in starts]
    opt = O.NDAdam(params, lr=LR, foreach=foreach)
    for t in range(steps):
        for p, gs in zip(params, grads, strict=True):
            p.grad = torch.from_numpy(gs[t].copy())
        opt.step()
    for p, x0, gs in zip(params, starts, grads, strict=True):
        state = opt.state[p]
        if x0.ndim == 1:  # a bias: plain Adam
            want, m, v = _adam_vector(x0, gs)
            np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(state["exp_avg_sq"].numpy(), v, rtol=1e-12)
            continue
        n = x0.shape[0]
        assert state["exp_avg_sq"].shape == (n,) + (1,) * (x0.ndim - 1)  # one v per vector
        for i in range(n):
            want, m, v = _nd_adam_vector(x0[i].reshape(-1), [g[i].reshape(-1) for g in gs])
            np.testing.assert_allclose(p.detach()[i].reshape(-1).numpy(), want, rtol=1e-12, atol=1e-14)
            np.testing.assert_allclose(state["exp_avg"][i].reshape(-1).numpy(), m, rtol=1e-10, atol=1e-15)
            np.testing.assert_allclose(float(state["exp_avg_sq"][i].reshape(())), v, rtol=1e-12)
            assert abs(np.linalg.norm(p.detach()[i].numpy()) - 1) < 1e-14


def test_a_weight_off_the_sphere_starts_at_its_direction():
    """Off the sphere the rule steps from w/||w|| with the gradient ||w|| g (that of a scale-invariant
    unit at w/||w||): the paper's algorithm started at w0/||w0||, first gradient times ||w0||."""
    rng = np.random.default_rng(2)
    w0 = 3.0 * rng.normal(size=(4, 5))
    grads = _streams([(4, 5)], 3, seed=3)[0]
    p = torch.tensor(w0, requires_grad=True)
    opt = O.NDAdam([p], lr=LR)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    for i in range(4):
        r = np.linalg.norm(w0[i])
        want, _, _ = _nd_adam_vector(w0[i] / r, [r * grads[0][i]] + [g[i] for g in grads[1:]])
        np.testing.assert_allclose(p.detach()[i].numpy(), want, rtol=1e-12, atol=1e-14)


def test_the_step_does_not_depend_on_the_weight_norm_of_a_scale_invariant_unit():
    """The paper's ill-conditioning: with f(w) = f(w/||w||) (a unit followed by batch norm), the
    gradient at c w is grad/c, so Adam's trajectory depends on the per-unit scales c; ND-Adam's does not
    (eps = 0: exactly, up to rounding)."""
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(64, 6, generator=gen, dtype=torch.float64)
    target = torch.randn(64, 3, generator=gen, dtype=torch.float64)
    w0 = torch.randn(3, 6, generator=gen, dtype=torch.float64)
    scales = torch.tensor([[0.1], [1.0], [7.0]], dtype=torch.float64)

    def run(name, w_start, steps=20):
        w = w_start.clone().requires_grad_(True)
        opt = make_optimizer(name, [w], lr=0.01, eps=0.0)
        for t in range(steps):
            idx = torch.arange(8 * (t % 8), 8 * (t % 8) + 8)
            opt.zero_grad()
            direction = w / w.norm(dim=1, keepdim=True)  # scale-invariant in each row
            ((x[idx] @ direction.T - target[idx]) ** 2).mean().backward()
            opt.step()
        return (w / w.norm(dim=1, keepdim=True)).detach()

    nd_gap = (run("ndadam", w0) - run("ndadam", scales * w0)).abs().max()
    adam_gap = (run("adam", w0) - run("adam", scales * w0)).abs().max()
    assert nd_gap < 1e-12
    assert adam_gap > 1e-3


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 4), k=st.integers(2, 6), scale=st.floats(1e-3, 1e3), grad_scale=st.floats(1e-6, 1e6),
       seed=st.integers(0, 2**16))
def test_weight_vectors_stay_on_the_unit_sphere(n, k, scale, grad_scale, seed):
    gen = torch.Generator().manual_seed(seed)
    w = (scale * torch.randn(n, k, generator=gen, dtype=torch.float64)).requires_grad_()
    opt = O.NDAdam([w], lr=0.3)
    for _ in range(4):
        w.grad = grad_scale * torch.randn(n, k, generator=gen, dtype=torch.float64)
        opt.step()
    assert torch.isfinite(w).all()
    torch.testing.assert_close(w.detach().norm(dim=1), torch.ones(n, dtype=torch.float64), rtol=0, atol=1e-14)


def test_normalized_false_and_one_dim_tensors_are_plain_adam():
    gen = torch.Generator().manual_seed(5)
    starts = [torch.randn(4, 3, generator=gen, dtype=torch.float64), torch.randn(5, generator=gen, dtype=torch.float64),
              torch.randn(6, 1, generator=gen, dtype=torch.float64)]  # a Linear(1, 6) weight: 1-element vectors
    pa = [s.clone().requires_grad_() for s in starts]
    pb = [s.clone().requires_grad_() for s in starts]
    nd = O.NDAdam([{"params": pa[:1], "normalized": False}, {"params": pa[1:]}], lr=LR)
    adam = O.Adam(pb, lr=LR)
    for _ in range(5):
        for p, q in zip(pa, pb, strict=True):
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
            q.grad = p.grad.clone()
        nd.step()
        adam.step()
    for p, q in zip(pa, pb, strict=True):
        assert torch.equal(p, q)
        assert nd.state[p]["exp_avg_sq"].shape == p.shape


def test_weight_decay_leaves_weight_vectors_alone_and_reaches_the_rest():
    gen = torch.Generator().manual_seed(6)
    w0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
    b0 = torch.randn(3, generator=gen, dtype=torch.float64)
    runs = []
    for wd in (0.0, 0.5):
        w, b = w0.clone().requires_grad_(), b0.clone().requires_grad_()
        opt = O.NDAdam([w, b], lr=LR, weight_decay=wd)
        g = torch.Generator().manual_seed(7)
        for _ in range(4):
            w.grad = torch.randn(w.shape, generator=g, dtype=torch.float64)
            b.grad = torch.randn(b.shape, generator=g, dtype=torch.float64)
            opt.step()
        runs.append((w.detach().clone(), b.detach().clone()))
    torch.testing.assert_close(runs[0][0], runs[1][0], rtol=0, atol=1e-14)  # the projection removes lambda w
    assert not torch.allclose(runs[0][1], runs[1][1])


def test_zero_weight_vector_and_zero_gradient_stay_finite():
    w = torch.zeros(2, 3, dtype=torch.float64, requires_grad=True)
    opt = O.NDAdam([w], lr=LR)
    w.grad = torch.zeros_like(w)
    opt.step()
    assert torch.isfinite(w).all()
    w.grad = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    opt.step()
    assert torch.isfinite(w).all()
    assert torch.allclose(w[0].norm(), torch.tensor(1.0, dtype=torch.float64))


@pytest.mark.parametrize("bad", ["yes", 1, None])
def test_normalized_must_be_a_bool(bad):
    p = torch.zeros(2, 2, requires_grad=True)
    with pytest.raises(ValueError, match="normalized"):
        O.NDAdam([p], normalized=bad)
    opt = O.NDAdam([p])
    with pytest.raises(ValueError, match="normalized"):
        opt.add_param_group({"params": [torch.zeros(3, requires_grad=True)], "normalized": bad})


def test_fused_warns_once_and_steps_like_the_loop_path(monkeypatch):
    from adamlab.optim import fast

    monkeypatch.setattr(fast, "_WARNED", False)
    gen = torch.Generator().manual_seed(8)
    starts = [torch.randn(4, 3, generator=gen), torch.randn(3, generator=gen)]
    pa = [s.clone().requires_grad_() for s in starts]
    pb = [s.clone().requires_grad_() for s in starts]
    fused, loop = O.NDAdam(pa, fused=True), O.NDAdam(pb, foreach=False)
    with pytest.warns(RuntimeWarning, match="ND-Adam"):
        for _ in range(3):
            for p, q in zip(pa, pb, strict=True):
                p.grad = torch.randn(p.shape, generator=gen)
                q.grad = p.grad.clone()
            fused.step()
            loop.step()
    for p, q in zip(pa, pb, strict=True):
        assert torch.equal(p, q)


def test_step_pieces_rebuild_the_update_and_need_the_previous_parameters():
    gen = torch.Generator().manual_seed(9)
    params = [torch.randn(4, 3, generator=gen, dtype=torch.float64).requires_grad_(),
              torch.randn(3, generator=gen, dtype=torch.float64).requires_grad_()]
    opt = O.NDAdam(params, lr=LR)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen, dtype=torch.float64)
        with StepRecorder(opt) as rec:
            opt.step()
        weight, bias = rec.pieces
        assert weight.max_error() <= 1e-14 and bias.max_error() <= 1e-14
        assert weight.kind == "sign" and weight.decay is not None and bias.decay is None
        # gamma = |m_hat|/(sqrt(v_hat) + eps) with one v per row
        st = opt.state[params[0]]
        t = int(st["step"])
        want = (st["exp_avg"] / (1 - B1**t)).abs() / ((st["exp_avg_sq"] / (1 - B2**t)).sqrt() + EPS)
        torch.testing.assert_close(weight.gamma, want, rtol=1e-15, atol=0)
    with pytest.raises(ValueError, match="previous"):
        decompose(opt)


def test_registry_export_and_declared_step_scalars():
    p = torch.zeros(2, 2, requires_grad=True)
    assert type(make_optimizer("ndadam", [p])) is O.NDAdam
    assert "NDAdam" in O.__all__
    assert F.step_scalars(F.ndadam) == {"lr", "bias_correction1", "bias_correction2"}


# -- torch.optim conformance: the shared suite, with NDAdam as one more class -------------------------------
CONFORMANCE = [name for name in dir(conformance) if name.startswith("test_")]


@pytest.mark.parametrize("test", CONFORMANCE)
def test_conformance_suite(test, monkeypatch):
    monkeypatch.setitem(FACTORIES, "NDAdam", lambda ps, **kw: O.NDAdam(ps, **{"lr": 0.01, **kw}))
    fn = getattr(conformance, test)
    args = {"name": "NDAdam"}
    if "dtype" in fn.__code__.co_varnames[: fn.__code__.co_argcount]:
        for dtype in (torch.float32, torch.float64):
            fn(dtype=dtype, **args)
    else:
        fn(**args)


def test_a_model_with_a_normalized_hidden_group_and_a_plain_group_trains():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1)).double()
    x, y = torch.randn(64, 4, dtype=torch.float64), torch.randn(64, 1, dtype=torch.float64)
    hidden = [model[0].weight]
    rest = [model[0].bias, *model[2].parameters()]
    opt = O.NDAdam([{"params": hidden, "lr": 0.05}, {"params": rest, "normalized": False}], lr=0.01)
    losses = []
    for _ in range(60):
        opt.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.9 * losses[0]
    torch.testing.assert_close(model[0].weight.norm(dim=1), torch.ones(8, dtype=torch.float64))


def test_stacked_runs_of_the_vmap_backend_equal_serial_runs():
    """The per-vector state shape carries the vectors, so K stacked runs (run axis anywhere) are exact."""
    from adamlab.runner.backends.vmap_optim import StackedOptimizer

    k, gen = 3, torch.Generator().manual_seed(10)
    w0 = torch.randn(k, 4, 5, generator=gen, dtype=torch.float64)
    b0 = torch.randn(4, k, generator=gen, dtype=torch.float64)
    lrs = [0.01, 0.02, 0.05]
    stacked = StackedOptimizer("ndadam", [{"lr": lr} for lr in lrs], torch.float64, torch.device("cpu"))
    ws, bs = w0.clone(), b0.clone()
    stacked.add_param(ws, 0)
    stacked.add_param(bs, 1)
    serial = []
    for i, lr in enumerate(lrs):
        w, b = w0[i].clone().requires_grad_(), b0[:, i].clone().requires_grad_()
        serial.append((w, b, O.NDAdam([w, b], lr=lr)))
    for _ in range(4):
        gw = torch.randn(k, 4, 5, generator=gen, dtype=torch.float64)
        gb = torch.randn(4, k, generator=gen, dtype=torch.float64)
        stacked.step([gw, gb])
        for i, (w, b, opt) in enumerate(serial):
            w.grad, b.grad = gw[i].clone(), gb[:, i].clone()
            opt.step()
    for i, (w, b, _) in enumerate(serial):
        assert torch.equal(ws[i], w.detach()) and torch.equal(bs[:, i], b.detach())
