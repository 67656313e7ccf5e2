"""gradient_stats against explicit per-example loops (autograd one example at a time, NumPy float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect import gradient_stats, per_example_grads


def _mlp(batchnorm: bool = False, dropout: float = 0.0) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Linear(6, 8)]
    if batchnorm:
        layers.append(nn.BatchNorm1d(8))
    layers += [nn.Tanh(), nn.Dropout(dropout), nn.Linear(8, 3)]
    return nn.Sequential(*layers).double()


def _data(n: int = 12):
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 6, generator=g, dtype=torch.float64), torch.randint(0, 3, (n,), generator=g)


def _loop_grads(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> dict[str, np.ndarray]:
    """One backward pass per example: the reference for the vmap path."""
    out: dict[str, list[np.ndarray]] = {n: [] for n, _ in model.named_parameters()}
    for k in range(x.shape[0]):
        model.zero_grad()
        F.cross_entropy(model(x[k:k + 1]), y[k:k + 1]).backward()
        for n, p in model.named_parameters():
            out[n].append(p.grad.detach().numpy().copy())
    return {n: np.stack(v) for n, v in out.items()}


@pytest.mark.parametrize("batchnorm", [False, True])
def test_per_example_grads_match_loop(batchnorm):
    model = _mlp(batchnorm)
    x, y = _data()
    if batchnorm:  # give the running statistics non-trivial values, then freeze them
        model.train()
        model(x * 3 + 1)
        model.eval()
    ref = _loop_grads(model, x, y)
    got = per_example_grads(model, F.cross_entropy, x, y)
    assert set(got) == set(ref)
    for n in ref:
        np.testing.assert_allclose(got[n].numpy(), ref[n], rtol=1e-10, atol=1e-13)


def test_statistics_match_numpy_reference():
    model = _mlp()
    x, y = _data(12)
    ref = _loop_grads(model, x, y)
    stats = gradient_stats(model, F.cross_entropy, x, y, batch_size=1)
    for n, g in ref.items():
        mean = g.mean(0)
        var = g.var(0, ddof=1)
        np.testing.assert_allclose(stats.mean[n].numpy(), mean, rtol=1e-10, atol=1e-14)
        np.testing.assert_allclose(stats.variance[n].numpy(), var, rtol=1e-9, atol=1e-14)
        np.testing.assert_allclose(stats.sigma2[n].numpy(), var, rtol=1e-9, atol=1e-14)
        eta2 = var / mean**2
        np.testing.assert_allclose(stats.eta2[n].numpy(), eta2, rtol=1e-8)
        rho = (np.sign(g) == np.sign(mean)).mean(0)
        np.testing.assert_allclose(stats.rho_empirical[n].numpy(), rho)
        rho_gauss = np.vectorize(lambda m, s: 0.5 * (1 + math.erf(abs(m) / (math.sqrt(2) * s))))(mean, np.sqrt(var))
        np.testing.assert_allclose(stats.rho_gaussian[n].numpy(), rho_gauss, rtol=1e-10)
        np.testing.assert_allclose(stats.gamma_grad[n].numpy(), 1 / (1 + eta2), rtol=1e-8)
        np.testing.assert_allclose(stats.gamma_sign[n].numpy(), 2 * rho - 1, atol=1e-15)
        np.testing.assert_allclose(stats.gamma_sign_gaussian[n].numpy(), 2 * rho_gauss - 1, rtol=1e-9, atol=1e-15)


def test_minibatch_statistics_and_bootstrap_sign_agreement():
    model = _mlp()
    x, y = _data(10)
    ref = _loop_grads(model, x, y)
    b, draws = 4, 50
    stats = gradient_stats(model, F.cross_entropy, x, y, batch_size=b, resamples=draws,
                           generator=torch.Generator().manual_seed(7))
    idx = torch.randint(0, 10, (draws, b), generator=torch.Generator().manual_seed(7)).numpy()
    for n, g in ref.items():
        mean = g.mean(0)
        sigma2 = g.var(0, ddof=1) / b
        np.testing.assert_allclose(stats.sigma2[n].numpy(), sigma2, rtol=1e-9, atol=1e-15)
        np.testing.assert_allclose(stats.eta2[n].numpy(), sigma2 / mean**2, rtol=1e-8)
        agree = np.zeros_like(mean)
        for row in idx:  # explicit loop over the drawn mini-batches
            agree += np.sign(g[row].mean(0)) == np.sign(mean)
        np.testing.assert_allclose(stats.rho_empirical[n].numpy(), agree / draws)


def test_summary_and_flat():
    model = _mlp()
    x, y = _data(16)
    stats = gradient_stats(model, F.cross_entropy, x, y)
    total = sum(p.numel() for p in model.parameters())
    assert stats.flat("eta2").numel() == total
    summary = stats.summary()
    assert 0.0 <= summary["rho_empirical_mean"] <= 1.0
    assert summary["eta2_median"] == pytest.approx(float(stats.flat("eta2").median()))


def test_dropout_noise_counts_in_train_mode_only():
    """Identical examples: zero variance in eval mode; dropout (train mode) adds per-example noise."""
    model = _mlp(dropout=0.5)
    x = torch.ones(8, 6, dtype=torch.float64)
    y = torch.zeros(8, dtype=torch.long)
    model.eval()
    assert float(gradient_stats(model, F.cross_entropy, x, y).flat("variance").max()) < 1e-25
    model.train()
    assert float(gradient_stats(model, F.cross_entropy, x, y).flat("variance").max()) > 1e-6


def test_frozen_parameters_are_skipped():
    model = _mlp()
    model[0].weight.requires_grad_(False)
    x, y = _data()
    stats = gradient_stats(model, F.cross_entropy, x, y)
    assert "0.weight" not in stats.mean and "0.bias" in stats.mean


def test_errors():
    x, y = _data()
    with pytest.raises(ValueError, match="no trainable parameters"):
        gradient_stats(nn.ReLU(), F.cross_entropy, x, y)
    with pytest.raises(ValueError, match="at least 2 examples"):
        gradient_stats(_mlp(), F.cross_entropy, x[:1], y[:1])
    with pytest.raises(ValueError, match="BatchNorm"):
        gradient_stats(_mlp(batchnorm=True).train(), F.cross_entropy, x, y)
    with pytest.raises(ValueError, match="targets"):
        gradient_stats(_mlp(), F.cross_entropy, x, y[:-1])
    with pytest.raises(ValueError, match="batch_size"):
        gradient_stats(_mlp(), F.cross_entropy, x, y, batch_size=0)
