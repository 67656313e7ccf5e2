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


def _trained(beta=0.8):
    p = torch.zeros(3, dtype=torch.float64, requires_grad=True)
    opt = O.TemporalAveraging(O.Adam([p], lr=0.1), beta=beta)
    for g in ([1.0, -1.0, 0.5], [2.0, 1.0, 0.0], [0.5, 0.5, -3.0]):
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
    return p, opt


def test_state_dict_is_the_optimizer_layout_with_the_averages_inside() -> None:
    p, opt = _trained()
    saved = opt.state_dict()
    assert set(saved) == {"state", "param_groups"}
    assert {"step", "exp_avg", "exp_avg_sq", "temporal_average", "temporal_average_step"} <= set(saved["state"][0])
    assert saved["param_groups"][0]["temporal_average_beta"] == 0.8
    q = p.detach().clone().requires_grad_()
    fresh = O.TemporalAveraging(O.Adam([q], lr=0.1), beta=0.5)
    fresh.load_state_dict(saved)
    assert fresh.beta == 0.8 and "temporal_average_beta" not in fresh.optimizer.param_groups[0]
    assert torch.equal(fresh.averages()[q], opt.averages()[p])
    assert torch.equal(fresh.optimizer.state[q]["exp_avg"], opt.optimizer.state[p]["exp_avg"])


def test_the_state_dict_layout_of_earlier_versions_still_loads() -> None:
    p, opt = _trained()
    average = opt.state[p]["temporal_average"]
    old = {"optimizer": opt.optimizer.state_dict(), "beta": 0.8,
           "averaging": {"state": {0: {"step": 3, "average": average.clone()}}, "param_groups": []}}
    q = p.detach().clone().requires_grad_()
    fresh = O.TemporalAveraging(O.Adam([q], lr=0.1), beta=0.5)
    fresh.load_state_dict(old)
    assert fresh.beta == 0.8 and torch.equal(fresh.averages()[q], opt.averages()[p])


def test_global_step_hooks_fire_once_and_the_inner_optimizers_own_hooks_too() -> None:
    from torch.optim.optimizer import register_optimizer_step_pre_hook

    p, opt = _trained()
    seen: list[str] = []
    opt.optimizer.register_step_pre_hook(lambda o, a, k: seen.append("inner"))
    handle = register_optimizer_step_pre_hook(lambda o, a, k: seen.append(type(o).__name__))
    try:
        p.grad = torch.ones(3, dtype=torch.float64)
        opt.step()
    finally:
        handle.remove()
    assert seen == ["TemporalAveraging", "inner"]


# -- torch's generic state-dict hook tests (test_state_dict_pre_hook, ..._post_hook, ..._pre_post_hook) --
def _pre_hook(optimizer):
    optimizer.state["test"] = 1


def _post_hook(optimizer, state_dict):
    if "test" in state_dict["state"]:
        state_dict["state"].pop("test")
        state_dict["ran_state_dict_pre_hook"] = True
    else:
        state_dict["ran_state_dict_pre_hook"] = False
    return state_dict


def _wrapped():
    param = torch.nn.Parameter(torch.rand(2, 3))
    opt = O.TemporalAveraging(O.Adam([param], lr=0.01), beta=0.9)
    param.grad = torch.ones(2, 3)
    opt.step()
    return param, opt


def test_state_dict_pre_hook_entry_is_saved_like_torchs() -> None:
    _, opt = _wrapped()
    opt.register_state_dict_pre_hook(_pre_hook)
    state_dict = opt.state_dict()
    assert state_dict["state"]["test"] == 1
    assert len(opt.averages()) == 1  # the hook's entry is not a parameter's average


def test_state_dict_post_hook_alone_and_with_the_pre_hook() -> None:
    _, opt = _wrapped()
    opt.register_state_dict_post_hook(_post_hook)
    assert opt.state_dict()["ran_state_dict_pre_hook"] is False
    opt.register_state_dict_pre_hook(_pre_hook)
    state_dict = opt.state_dict()
    assert "test" not in state_dict["state"] and state_dict["ran_state_dict_pre_hook"] is True


def test_a_hook_entry_round_trips_through_load_state_dict() -> None:
    param, opt = _wrapped()
    opt.register_state_dict_pre_hook(_pre_hook)
    saved = opt.state_dict()
    _, twin = _wrapped()
    twin.load_state_dict(saved)
    assert twin.state["test"] == 1
    assert torch.equal(next(iter(twin.averages().values())), next(iter(opt.averages().values())))
