"""decompose / StepRecorder: the product of the pieces is the applied update, for every class and mode.

The pieces of Adam and M-SVAG are also checked against independent float64 NumPy transcriptions of
Kingma & Ba's Algorithm 1 and seed 002's "Practical implementation of M-SVAG".
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from adamlab import optim
from adamlab.dissect import StepRecorder, decompose
from adamlab.optim.registry import make_optimizer, names

VARIANTS = [(n, {}) for n in names()] + [
    ("sgd", {"weight_decay": 0.1}),
    ("momentum", {"weight_decay": 0.1, "dampening": 0.3}),
    ("nesterov", {"weight_decay": 0.1, "maximize": True}),
    ("adagrad", {"lr_decay": 0.1, "weight_decay": 0.05, "initial_accumulator_value": 0.2}),
    ("rmsprop", {"centered": True, "weight_decay": 0.1}),
    ("rmsprop", {"momentum": 0.9}),
    ("adam", {"eps_inside_sqrt": True, "weight_decay": 0.1}),
    ("adam", {"maximize": True, "eps": 1e-3}),
    ("amsgrad", {"weight_decay": 0.1}),
    ("adamw", {"weight_decay": 0.3}),
    ("adamax", {"weight_decay": 0.1}),
    ("svag", {"weight_decay": 0.1}),
    ("ssd", {"weight_decay": 0.1}),
    ("mssdva", {"variance_estimate": "naive"}),
    ("msvag", {"beta": 0.5}),
]


def _params(dtype: torch.dtype) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    shapes = [(5, 3), (4,), (), (0,)]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(True) for s in shapes]


def _steps(opt: torch.optim.Optimizer, params: list[torch.Tensor], n: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for t in range(n):
        for i, p in enumerate(params):
            # one parameter skips a step (None grad) to exercise state bookkeeping
            p.grad = None if (i == 1 and t == 2) else torch.randn(p.shape, generator=g, dtype=p.dtype)
        with StepRecorder(opt) as rec:
            opt.step()
        out.append(rec.pieces)
    return out


@pytest.mark.parametrize(("name", "extra"), VARIANTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VARIANTS)])
def test_pieces_multiply_to_update_float64(name, extra):
    params = _params(torch.float64)
    opt = make_optimizer(name, params, lr=0.05, **extra)
    history = _steps(opt, params, 6)
    for pieces in history:
        assert pieces, "every step must be decomposed"
        for piece in pieces:
            assert piece.update is not None
            assert piece.max_error() <= 1e-14, (name, extra, piece.index, piece.max_error())
    # the skipped parameter is absent from that step's records
    assert all(p.index != 1 for p in history[2])


@pytest.mark.parametrize("name", names())
def test_pieces_multiply_to_update_float32(name):
    params = _params(torch.float32)
    opt = make_optimizer(name, params, lr=0.05)
    for pieces in _steps(opt, params, 4):
        for piece in pieces:
            # update = theta_new - theta_old is exact up to one rounding of theta (|theta| ~ 1 here)
            scale = float(params[piece.index].detach().abs().max()) if piece.update.numel() else 0.0
            assert piece.max_error() <= 4 * torch.finfo(torch.float32).eps * max(scale, 1.0)


def test_temporal_averaging_is_looked_through():
    params = _params(torch.float64)
    opt = optim.TemporalAveraging(optim.Adam(params, lr=0.1))
    for pieces in _steps(opt, params, 3):
        assert all(p.max_error() <= 1e-14 for p in pieces)


def test_a_wrong_reconstruction_is_detected():
    """The comparison can fail: a tampered piece gives a large error."""
    params = _params(torch.float64)
    opt = optim.Adam(params, lr=0.1)
    (pieces,) = _steps(opt, params, 1)
    piece = pieces[0]
    piece.magnitude *= 1.01
    assert piece.max_error() > 1e-4


def _numpy_adam(grads, lr, b1, b2, eps):
    m = np.zeros_like(grads[0])
    v = np.zeros_like(grads[0])
    for t, g in enumerate(grads, start=1):
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        m_hat = m / (1 - b1**t)
        v_hat = v / (1 - b2**t)
    return m_hat, v_hat


@pytest.mark.parametrize("eps", [1e-8, 0.0])
def test_adam_pieces_against_numpy(eps):
    rng = np.random.default_rng(0)
    grads = [rng.normal(0.3, 1.0, size=20) for _ in range(7)]
    p = torch.zeros(20, dtype=torch.float64, requires_grad=True)
    opt = optim.Adam([p], lr=0.01, eps=eps)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    (piece,) = decompose(opt)
    m_hat, v_hat = _numpy_adam(grads, 0.01, 0.9, 0.999, eps)
    np.testing.assert_allclose(piece.direction.numpy(), np.sign(m_hat))
    np.testing.assert_allclose(piece.gamma.numpy(), np.abs(m_hat) / (np.sqrt(v_hat) + eps), rtol=1e-12)
    eta2 = (v_hat - m_hat**2) / m_hat**2
    np.testing.assert_allclose(piece.eta2.numpy(), eta2, rtol=1e-9)
    assert piece.magnitude == 0.01
    if eps == 0.0:  # seed 002: m/sqrt(v) = sign(m) sqrt(1/(1 + eta_hat^2))
        np.testing.assert_allclose(piece.gamma.numpy(), (1 + eta2) ** -0.5, rtol=1e-9)


def test_msvag_pieces_against_numpy():
    """Seed 002's algorithm, written 0-based as in the paper, with rho capped at 0.999 as in the reference code."""
    rng = np.random.default_rng(1)
    beta, lr = 0.9, 0.1
    grads = [rng.normal(0.5, 1.0, size=12) for _ in range(6)]
    p = torch.zeros(12, dtype=torch.float64, requires_grad=True)
    opt = optim.MSVAG([p], lr=lr, beta=beta)
    mt = np.zeros(12)
    vt = np.zeros(12)
    for t, g in enumerate(grads):  # t = 0, ..., T-1 as in the paper
        p.grad = torch.from_numpy(g.copy())
        with StepRecorder(opt) as rec:
            opt.step()
        mt = beta * mt + (1 - beta) * g
        vt = beta * vt + (1 - beta) * g * g
        m = mt / (1 - beta ** (t + 1))
        v = vt / (1 - beta ** (t + 1))
        rho = min((1 - beta) * (1 + beta ** (t + 1)) / ((1 + beta) * (1 - beta ** (t + 1))), 0.999)
        s = (v - m * m) / (1 - rho)
        gamma = np.clip(m * m / (m * m + rho * s), 0, 1)
        (piece,) = rec.pieces
        np.testing.assert_allclose(piece.gamma.numpy(), gamma, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(piece.direction.numpy(), m, rtol=1e-12)
        np.testing.assert_allclose(piece.update.numpy(), -lr * gamma * m, rtol=1e-9, atol=1e-15)
        # step 1: v - m^2 = 0 up to round-off, which the rule clamps at 0 (DESIGN.md edge cases)
        np.testing.assert_allclose(piece.eta2_unbiased.numpy(), rho * s / (m * m), rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(piece.gamma.numpy(), 1 / (1 + piece.eta2_unbiased.numpy()), rtol=1e-9)


def test_adamax_magnitude_is_lr_over_bias_correction():
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = optim.Adamax([p], lr=0.002, betas=(0.9, 0.999))
    for _ in range(3):
        p.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
        opt.step()
    (piece,) = decompose(opt)
    assert piece.magnitude == pytest.approx(0.002 / (1 - 0.9**3), rel=1e-15)
    assert piece.kind == "sign"


def test_zero_gradient_gives_zero_step_and_no_nan():
    for name in names():
        p = torch.ones(4, dtype=torch.float64, requires_grad=True)
        opt = make_optimizer(name, [p], lr=0.1)
        p.grad = torch.zeros(4, dtype=torch.float64)
        with StepRecorder(opt) as rec:
            opt.step()
        (piece,) = rec.pieces
        assert torch.isfinite(piece.reconstructed()).all(), name
        if piece.eta2 is not None:
            assert torch.isfinite(piece.eta2).all(), name


def test_errors():
    p = torch.zeros(3, requires_grad=True)
    torch_opt = torch.optim.SGD([p], lr=0.1)
    p.grad = torch.ones(3)
    torch_opt.step()
    with pytest.raises(ValueError, match="adamlab"):
        decompose(torch_opt)
    q = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = make_optimizer("adamw", [q], lr=0.1)
    q.grad = torch.ones(3, dtype=torch.float64)
    opt.step()
    with pytest.raises(ValueError, match="previous"):
        decompose(opt)
    sgd = make_optimizer("sgd", [q], lr=0.1, weight_decay=0.1)
    sgd.step()
    with pytest.raises(ValueError, match="previous"):
        decompose(sgd)


def test_skipped_step_is_reported():
    p = torch.ones(3, dtype=torch.float64, requires_grad=True)
    opt = optim.Adam([p], lr=0.1, nonfinite="skip")
    p.grad = torch.tensor([1.0, float("nan"), 0.0], dtype=torch.float64)
    with StepRecorder(opt) as rec:
        opt.step()
    assert rec.skipped and rec.pieces == []
    p.grad = torch.ones(3, dtype=torch.float64)
    with StepRecorder(opt) as rec:
        opt.step()
    assert not rec.skipped and rec.pieces[0].max_error() <= 1e-15


@pytest.mark.parametrize(("name", "extra"), VARIANTS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(VARIANTS)])
def test_pieces_at_coords_equal_the_whole_parameters_pieces_there(name, extra):
    """``decompose(coords=...)`` runs the rule once per group on the gathered values of all its
    parameters; each parameter's values must equal those of the whole-tensor call at the same
    coordinates, bit for bit, in two groups with different hyperparameters and with a parameter left
    out of ``coords``."""
    g = torch.Generator().manual_seed(3)
    params = [torch.randn(s, generator=g, dtype=torch.float64).requires_grad_(True)
              for s in [(6, 4), (7,), (3, 5), (9,)]]
    groups = [{"params": params[:2]}, {"params": params[2:], "lr": 0.05}]
    opt = make_optimizer(name, groups, lr=0.01, **extra)
    for _ in range(3):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        previous = {i: p.detach().clone() for i, p in enumerate(params)}
        opt.step()
    picks = {0: torch.tensor([5, 0, 17, 3]), 1: torch.tensor([6, 1]), 3: torch.tensor([8, 2, 4])}
    whole = {piece.index: piece for piece in decompose(opt, previous)}
    some = decompose(opt, previous, coords=picks)
    assert [piece.index for piece in some] == [0, 1, 2, 3]
    for piece in some:
        full = whole[piece.index]
        pick = picks.get(piece.index)
        for key in ("direction", "gamma", "decay", "update", "eta2"):
            mine, ref = getattr(piece, key, None), getattr(full, key, None)
            if isinstance(ref, torch.Tensor) and ref.shape == params[piece.index].shape:
                ref = ref.reshape(-1)[pick] if pick is not None else ref
                assert isinstance(mine, torch.Tensor) and torch.equal(mine, ref), (name, piece.index, key)
            else:
                assert mine == ref or (mine is None and ref is None), (name, piece.index, key)
        assert piece.magnitude == full.magnitude and piece.kind == full.kind
