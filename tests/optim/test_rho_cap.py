"""M-SVAG's rho cap: 0.999, as in the reference code (github.com/lballes/msvag, msvag/msvag.py).

The reference (TensorFlow) keeps ``beta_power`` = beta^(t+1) for its 0-based step t, computes
rho = (1-beta)^2 (1-beta_power^2) / ((1-beta_power)^2 (1-beta^2)), caps it with tf.minimum(rho, 0.999),
and steps theta -= lr * clip(m^2/(m^2 + rho s), 0, 1) * m (M-SVAG) or * g (SVAG), NaN factors set to 0.
The transcription below is that code in float64 NumPy.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adamlab.optim as O
from adamlab import functional as F


def _reference(grads, lr, beta, momentum):
    theta = np.zeros_like(grads[0])
    m_tilde = np.zeros_like(theta)
    v_tilde = np.zeros_like(theta)
    beta_power = beta  # "initialised to beta, updated after each iteration"
    rhos = []
    for g in grads:
        m_tilde = beta * m_tilde + (1 - beta) * g
        v_tilde = beta * v_tilde + (1 - beta) * g * g
        m = m_tilde / (1 - beta_power)
        v = v_tilde / (1 - beta_power)
        rho = (1 - beta) ** 2 * (1 - beta_power**2) / ((1 - beta_power) ** 2 * (1 - beta**2))
        rho = min(rho, 0.999)
        rhos.append(rho)
        m2 = m * m
        s = (v - m2) / (1 - rho)
        with np.errstate(invalid="ignore", divide="ignore"):
            factor = m2 / (m2 + (rho * s if momentum else s))
        factor = np.nan_to_num(np.clip(factor, 0.0, 1.0), nan=0.0)
        theta = theta - lr * factor * (m if momentum else g)
        beta_power *= beta
    return theta, rhos


def test_first_step_rho_is_capped_at_0999_and_later_steps_are_not():
    assert F.RHO_MAX == 0.999
    assert F.dissected_coefficients(1, 0.9)["variance_factor"] == 0.999 / (1 - 0.999)
    assert F.dissected_coefficients(1, 0.9, use_momentum=False)["variance_factor"] == 1 / (1 - 0.999)
    assert F.msvag_rho(0.9, 1) == 0.999
    rho2 = 0.1 * (1 + 0.81) / (1.9 * (1 - 0.81))  # 0.5014: rho_t < 0.999 from t = 2 on for beta = 0.9
    assert F.msvag_rho(0.9, 2) == pytest.approx(rho2, rel=1e-15)
    # rho_t >= (1-beta)/(1+beta): for beta < 0.001/1.999 the cap binds at every step
    assert F.msvag_rho(1e-4, 50) == 0.999
    assert F.msvag_rho(1e-3, 50) < 0.999


@pytest.mark.parametrize("cls, momentum", [(O.MSVAG, True), (O.SVAG, False)])
@pytest.mark.parametrize("beta, steps", [(0.9, 2), (1e-4, 4)])
def test_matches_the_reference_code(cls, momentum, beta, steps):
    """Two steps at beta = 0.9 (the cap binds at the first only) and four at beta = 1e-4, where rho_t is
    capped at every step, so a cap of 0.9999 would give other iterates."""
    rng = np.random.default_rng(0)
    grads = [rng.normal(0.5, 1.0, size=16) for _ in range(steps)]
    want, rhos = _reference(grads, lr=0.1, beta=beta, momentum=momentum)
    assert rhos[0] == 0.999
    p = torch.zeros(16, dtype=torch.float64, requires_grad=True)
    opt = cls([p], lr=0.1, beta=beta)
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
    np.testing.assert_allclose(p.detach().numpy(), want, rtol=1e-9, atol=1e-12)
