"""The noisy quadratic: spectrum, rotation, exact loss/gradient and the noise covariance nu^2 Q Q / B."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.func import grad, vmap

import adamlab.problems as problems


def sample_gradients(problem, theta: torch.Tensor, n: int, batch_size: int, seed: int) -> np.ndarray:
    """n stochastic gradients at theta, each through problem.loss on one batch (via vmap(grad))."""
    stream = problem.train_batches(seed, batch_size=batch_size)
    zs = torch.stack([next(stream)[0] for _ in range(n)])  # [n, B, d]

    def loss_at(t: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return problem.loss(_Fixed(t), (z,))

    return vmap(grad(loss_at), in_dims=(None, 0))(theta, zs).double().numpy()


class _Fixed(torch.nn.Module):
    """A model whose theta is a given tensor (so vmap can differentiate through problem.loss)."""

    def __init__(self, theta: torch.Tensor) -> None:
        super().__init__()
        self._theta = theta

    def forward(self) -> torch.Tensor:
        return self._theta


@pytest.mark.parametrize(("spectrum", "rotation"), [("ill", "rotated"), ("well", "axis")])
@pytest.mark.parametrize("batch_size", [1, 4])
def test_noise_covariance_is_nu2_QQ_over_B(spectrum: str, rotation: str, batch_size: int) -> None:
    nu, d, n = 0.7, 6, 40_000
    p = problems.get("quadratic.noisy", d=d, spectrum=spectrum, rotation=rotation, nu=nu, instance_seed=3)
    theta = torch.linspace(-1.0, 1.0, d)
    g = sample_gradients(p, theta, n, batch_size, seed=11)
    q = p.hessian64
    expected_cov = nu**2 * q @ q / batch_size
    np.testing.assert_allclose(expected_cov, p.noise_covariance(batch_size))
    emp_cov = np.cov(g, rowvar=False)
    rel = np.linalg.norm(emp_cov - expected_cov) / np.linalg.norm(expected_cov)
    assert rel < 0.05, rel
    # the mean is the exact gradient Q theta (standard error ~ sqrt(diag(cov)/n))
    se = np.sqrt(np.diag(expected_cov) / n)
    assert np.all(np.abs(g.mean(0) - q @ theta.double().numpy()) < 5 * se + 1e-5)


def test_zero_noise_gives_the_exact_gradient_and_loss() -> None:
    p = problems.get("quadratic.noisy", d=20, spectrum="ill", nu=0.0, instance_seed=1)
    model = p.make_model(0)
    loss = p.loss(model, next(p.train_batches(0)))
    loss.backward()
    theta = model.theta.detach().double().numpy()
    q = p.hessian64
    np.testing.assert_allclose(model.theta.grad.double().numpy(), q @ theta, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(float(loss.detach()), 0.5 * theta @ q @ theta, rtol=1e-5)
    np.testing.assert_allclose(p.evaluate(model)["loss"], 0.5 * theta @ q @ theta, rtol=1e-5)
    np.testing.assert_allclose(p.exact_gradient(model.theta.detach()).numpy(), q @ theta, rtol=1e-5, atol=1e-5)


def test_spectra_and_rotations() -> None:
    well = problems.get("quadratic.noisy", spectrum="well", rotation="rotated")
    lam = np.sort(np.linalg.eigvalsh(well.hessian64))
    np.testing.assert_allclose(lam, np.sort(well.eigenvalues64), atol=1e-10)
    assert lam.min() >= 0.1 and lam.max() <= 1.1
    assert np.abs(well.hessian64 - np.diag(np.diag(well.hessian64))).max() > 0.01  # not axis-aligned

    ill = problems.get("quadratic.noisy", spectrum="ill", rotation="axis")
    q = ill.hessian64
    np.testing.assert_array_equal(q, np.diag(np.diag(q)))
    lam = np.diag(q)
    assert ((lam >= 0) & (lam <= 1)).sum() == 90
    assert ((lam >= 30) & (lam <= 60)).sum() == 10


def test_instance_seed_fixes_Q_and_seed_fixes_the_batches() -> None:
    a = problems.get("quadratic.noisy", instance_seed=5)
    b = problems.get("quadratic.noisy", instance_seed=5)
    c = problems.get("quadratic.noisy", instance_seed=6)
    np.testing.assert_array_equal(a.hessian64, b.hessian64)
    assert not np.allclose(a.hessian64, c.hessian64)
    s1, s2, s3 = a.train_batches(1), a.train_batches(1), a.train_batches(2)
    for _ in range(3):
        z1, z2, z3 = next(s1)[0], next(s2)[0], next(s3)[0]
        assert torch.equal(z1, z2) and not torch.equal(z1, z3)
    assert torch.equal(a.make_model(0).theta, torch.ones(100))
    n = problems.get("quadratic.noisy", init="normal")
    assert torch.equal(n.make_model(3).theta, n.make_model(3).theta)
    assert not torch.equal(n.make_model(3).theta, n.make_model(4).theta)


def test_sgd_decreases_the_exact_loss() -> None:
    p = problems.get("quadratic.noisy", nu=0.1)
    model = p.make_model(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    stream = p.train_batches(0)
    start = p.evaluate(model)["loss"]
    for _ in range(50):
        opt.zero_grad()
        p.loss(model, next(stream)).backward()
        opt.step()
    end = p.evaluate(model)["loss"]
    assert np.isfinite(end) and end < 0.1 * start


def test_float64_theta_uses_the_float64_hessian() -> None:
    p = problems.get("quadratic.noisy", spectrum="ill", nu=0.0)
    theta = torch.linspace(-1, 1, 100, dtype=torch.float64)
    np.testing.assert_allclose(p.exact_gradient(theta).numpy(), p.hessian64 @ theta.numpy(), rtol=1e-13, atol=1e-12)
    np.testing.assert_allclose(
        float(p.exact_loss(theta)), 0.5 * theta.numpy() @ p.hessian64 @ theta.numpy(), rtol=1e-13
    )
