"""Identities between methods, and the M-SVAG edge cases of DESIGN.md."""

from __future__ import annotations

import pytest
import torch

import adamlab.functional as F
import adamlab.optim as O


def _trajectory(make, steps: int = 40, seed: int = 0, shape=(4, 3), dtype=torch.float64) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    p = torch.randn(shape, generator=gen, dtype=dtype).requires_grad_()
    opt = make([p])
    out = []
    for _ in range(steps):
        p.grad = 0.5 + torch.randn(shape, generator=gen, dtype=dtype)
        opt.step()
        out.append(p.detach().clone())
    return out


@pytest.mark.parametrize("beta", [0.5, 0.9, 0.99])
def test_mssdva_with_naive_variance_is_adam_with_equal_betas_and_zero_eps(beta: float) -> None:
    ours = _trajectory(lambda ps: O.MSSDVA(ps, lr=0.01, beta=beta, variance_estimate="naive"))
    adam = _trajectory(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(beta, beta), eps=0.0))
    for a, b in zip(ours, adam, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_mssdva_unbiased_differs_from_adam() -> None:
    """The unbiased (rho) estimate is a different method: the identity above is not vacuous."""
    ours = _trajectory(lambda ps: O.MSSDVA(ps, lr=0.01, beta=0.9))
    adam = _trajectory(lambda ps: torch.optim.Adam(ps, lr=0.01, betas=(0.9, 0.9), eps=0.0))
    assert (ours[-1] - adam[-1]).abs().max() > 1e-4


PRESETS = {
    O.SSD: dict(direction="sign", variance_adaptation=False, use_momentum=False),
    O.MSSD: dict(direction="sign", variance_adaptation=False, use_momentum=True),
    O.SVAG: dict(direction="grad", variance_adaptation=True, use_momentum=False),
    O.MSVAG: dict(direction="grad", variance_adaptation=True, use_momentum=True),
    O.MSSDVA: dict(direction="sign", variance_adaptation=True, use_momentum=True),
}


@pytest.mark.parametrize("cls", list(PRESETS), ids=lambda c: c.__name__)
def test_named_corners_equal_their_dissected_preset_bit_for_bit(cls) -> None:
    a = _trajectory(lambda ps: cls(ps, lr=0.02, beta=0.8))
    b = _trajectory(lambda ps: O.Dissected(ps, lr=0.02, beta=0.8, **PRESETS[cls]))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)


def test_corners_are_distinct_methods() -> None:
    finals = [_trajectory(lambda ps, c=c: c(ps, lr=0.02))[-1] for c in PRESETS]
    for i in range(len(finals)):
        for j in range(i + 1, len(finals)):
            assert not torch.allclose(finals[i], finals[j])


def test_msvag_first_step_is_sgd_step() -> None:
    g = torch.tensor([1.0, -2.0, 3e-3, 40.0], dtype=torch.float64)
    p = torch.zeros(4, dtype=torch.float64, requires_grad=True)
    opt = O.MSVAG([p], lr=0.1)
    p.grad = g.clone()
    opt.step()
    torch.testing.assert_close(p.detach(), -0.1 * g, rtol=1e-9, atol=0)


def test_rho_is_capped_and_matches_formula() -> None:
    assert F.msvag_rho(0.9, 1) == F.RHO_MAX  # rho_1 = 1 -> capped
    beta, t = 0.9, 5
    expected = (1 - beta) * (1 + beta**t) / ((1 + beta) * (1 - beta**t))
    assert F.msvag_rho(beta, t) == pytest.approx(expected, rel=1e-15)
    assert F.msvag_rho(beta, 10_000) == pytest.approx((1 - beta) / (1 + beta))


@pytest.mark.parametrize("cls", [O.MSVAG, O.SVAG, O.MSSDVA, O.MSSD, O.SSD, O.Dissected])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_zero_gradient_gives_zero_step_never_nan(cls, dtype) -> None:
    p = torch.ones(5, dtype=dtype, requires_grad=True)
    opt = cls([p], lr=0.1)
    for _ in range(3):
        p.grad = torch.zeros(5, dtype=dtype)
        opt.step()
    assert torch.equal(p.detach(), torch.ones(5, dtype=dtype))


def test_gamma_is_clipped_when_roundoff_makes_variance_negative() -> None:
    m = torch.tensor([1.0, 2.0, 0.0])
    v = torch.tensor([1.0 - 1e-7, 3.0, 0.0])  # v < m^2 in the first coordinate
    gamma = F.variance_adaptation_factor(m, v, variance_factor=F.variance_factor(0.5, momentum=True))
    assert torch.all((gamma >= 0) & (gamma <= 1))
    assert gamma[0] == 1.0 and gamma[2] == 0.0
    expected = 4.0 / (4.0 + 0.5 * (3.0 - 4.0) / (1 - 0.5))  # negative s clamped -> 1
    assert gamma[1] == pytest.approx(min(expected, 1.0))


def test_constant_gradient_makes_msvag_gamma_one_and_adam_step_lr() -> None:
    """With no noise, s = 0 so gamma = 1 (M-SVAG = momentum SGD), and Adam's step is alpha (seed 001)."""
    g = torch.tensor([0.3, -5.0, 1e-3], dtype=torch.float64)
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    q = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    msvag, adam = O.MSVAG([p], lr=0.1), O.Adam([q], lr=0.1, eps=0.0)
    for t in range(1, 6):
        p.grad, q.grad = g.clone(), g.clone()
        msvag.step()
        adam.step()
        torch.testing.assert_close(p.detach(), -0.1 * t * g, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(q.detach(), -0.1 * t * g.sign(), rtol=1e-12, atol=1e-14)


def test_foreach_tensorlist_matches_per_tensor_rule() -> None:
    gen = torch.Generator().manual_seed(0)
    shapes = [(3,), (2, 4), (0,), ()]
    params = [torch.randn(s, generator=gen) for s in shapes]
    grads = [torch.randn(s, generator=gen) for s in shapes]
    ms = [torch.randn(s, generator=gen) for s in shapes]
    vs = [torch.rand(s, generator=gen) for s in shapes]
    kw = dict(lr=0.1, beta=0.9, inv_bias_correction=1 / 0.19, variance_factor=1.0, direction="sign",
              variance_adaptation=True)
    lists = F.dissected(F.TensorList(params), F.TensorList(grads), F.TensorList(ms), F.TensorList(vs), **kw)
    for i in range(len(shapes)):
        single = F.dissected(params[i], grads[i], ms[i], vs[i], **kw)
        for a, b in zip(lists, single, strict=True):
            assert torch.equal(a.items[i], b)
