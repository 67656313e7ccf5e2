"""TemporalAveraging (Kingma & Ba sec. 7.2) against a NumPy transcription."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import adamlab.optim as O


def test_average_is_the_bias_corrected_ema_of_the_iterates() -> None:
    beta = 0.9
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = O.TemporalAveraging(O.SGD([p], lr=0.1), beta=beta)
    rng = np.random.default_rng(0)
    iterates, avg = [], np.zeros(3)
    for t in range(1, 21):
        p.grad = torch.tensor(rng.normal(size=3))
        opt.step()
        iterates.append(p.detach().numpy().copy())
        avg = beta * avg + (1 - beta) * iterates[-1]
        np.testing.assert_allclose(opt.averages()[p].numpy(), avg / (1 - beta**t), rtol=1e-12)


def test_averaged_context_swaps_and_restores_even_on_error() -> None:
    p = torch.zeros(2, requires_grad=True)
    opt = O.TemporalAveraging(O.Adam([p], lr=0.1), beta=0.5)
    for g in ([1.0, -1.0], [2.0, 1.0], [0.5, 0.5]):
        p.grad = torch.tensor(g)
        opt.step()
    live = p.detach().clone()
    average = opt.averages()[p].clone()
    assert not torch.equal(live, average)
    with opt.averaged():
        assert torch.equal(p.detach(), average)
    assert torch.equal(p.detach(), live)
    with pytest.raises(KeyError), opt.averaged():
        raise KeyError("boom")
    assert torch.equal(p.detach(), live)


def test_shares_param_groups_with_inner_optimizer_for_lr_schedulers() -> None:
    p = torch.zeros(2, requires_grad=True)
    inner = O.Adam([p], lr=0.1)
    opt = O.TemporalAveraging(inner)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    p.grad = torch.ones(2)
    opt.step()
    sched.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.05)


def test_invalid_beta() -> None:
    with pytest.raises(ValueError, match="beta"):
        O.TemporalAveraging(O.Adam([torch.zeros(1, requires_grad=True)]), beta=1.0)
