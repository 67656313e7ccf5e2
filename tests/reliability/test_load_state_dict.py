"""Item 5 of issue 23: ``load_state_dict`` refuses another method's state and invalid hyperparameters;
a ``torch.optim`` state of the same method still loads."""

from __future__ import annotations

import pytest
import torch

from adamlab.optim import Adam
from adamlab.optim.registry import make_optimizer


def _param():
    torch.manual_seed(0)
    return torch.nn.Parameter(torch.randn(4))


def _stepped(opt, p):
    p.grad = torch.ones_like(p)
    opt.step()
    return opt


def test_adam_refuses_an_sgd_state_and_stays_as_it_was():
    p = _param()
    sgd = _stepped(torch.optim.SGD([p], lr=0.1, momentum=0.9), p)
    adam = Adam([p], lr=0.1)
    before = adam.state_dict()
    with pytest.raises(ValueError, match="cannot load this state dict into Adam: .*momentum.*another optimizer"):
        adam.load_state_dict(sgd.state_dict())
    assert adam.state_dict() == before


def test_adam_refuses_an_msvag_state_and_the_reverse():
    p = _param()
    msvag = _stepped(make_optimizer("msvag", [p], lr=0.1), p)
    adam = _stepped(Adam([p], lr=0.1), p)
    with pytest.raises(ValueError, match="into Adam: .*another optimizer"):
        Adam([p], lr=0.1).load_state_dict(msvag.state_dict())
    with pytest.raises(ValueError, match="another optimizer"):
        make_optimizer("msvag", [p], lr=0.1).load_state_dict(adam.state_dict())


def test_a_preset_of_another_corner_is_refused():
    p = _param()
    msvag = _stepped(make_optimizer("msvag", [p], lr=0.1), p)
    other = ["mssd", "mssdva", "svag", "ssd"]
    assert all(_has(n) for n in other)
    for name in other:
        with pytest.raises(ValueError, match="cannot load this state dict"):
            make_optimizer(name, [p], lr=0.1).load_state_dict(msvag.state_dict())


def _has(name):
    from adamlab.optim.registry import names

    return name in names()


@pytest.mark.parametrize("betas", [(2.0, -1.0), (5.0, 5.0), (0.9, 1.5)])
def test_loaded_hyperparameters_are_validated_as_the_constructor_does(betas):
    p = _param()
    adam = _stepped(Adam([p], lr=0.1), p)
    state = adam.state_dict()
    state["param_groups"][0]["betas"] = betas
    with pytest.raises(ValueError) as constructed:
        Adam([p], lr=0.1, betas=betas)
    with pytest.raises(ValueError, match="cannot load this state dict into Adam: param group 0: ") as loaded:
        Adam([p], lr=0.1).load_state_dict(state)
    assert str(constructed.value) in str(loaded.value)


def test_torch_adam_state_still_loads_and_steps_as_torch():
    p, q = _param(), _param()
    torch_adam = _stepped(torch.optim.Adam([p], lr=0.1), p)
    ours = Adam([q], lr=0.1)
    with torch.no_grad():
        q.copy_(p)
    ours.load_state_dict(torch_adam.state_dict())
    _stepped(torch_adam, p)
    _stepped(ours, q)
    torch.testing.assert_close(q, p)
