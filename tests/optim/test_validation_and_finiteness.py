"""Property-based checks: finite in, finite out; bad hyperparameters raise ValueError naming them."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import adamlab.optim as O
from tests.optim.factories import FACTORIES

# Gradients spanning many magnitudes, including exact zeros and subnormals, within float32's safe
# range for g^2 (|g| <= 2^49, so g^2 <= 2^98 and sums of squares stay finite).
finite = st.one_of(st.just(0.0), st.floats(min_value=-(2.0**49), max_value=2.0**49, allow_nan=False, width=32))


@pytest.mark.parametrize("name", sorted(FACTORIES))
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_finite_gradients_never_make_a_parameter_nonfinite(name, data) -> None:
    n = data.draw(st.integers(1, 6), label="size")
    grads = data.draw(st.lists(arrays("float32", n, elements=finite), min_size=1, max_size=8), label="grads")
    p = torch.zeros(n, requires_grad=True)
    opt = FACTORIES[name]([p])
    for g in grads:
        p.grad = torch.from_numpy(g.copy())
        opt.step()
        assert torch.isfinite(p).all(), f"{name}: non-finite parameter after gradient {g}"


BAD = [
    (O.Adam, {"lr": -1e-3}, "lr"),
    (O.Adam, {"lr": math.nan}, "lr"),
    (O.Adam, {"betas": (1.0, 0.999)}, "beta1"),
    (O.Adam, {"betas": (0.9, -0.1)}, "beta2"),
    (O.Adam, {"eps": -1e-8}, "eps"),
    (O.Adam, {"weight_decay": -1.0}, "weight_decay"),
    (O.Adamax, {"betas": (0.9, 1.5)}, "beta2"),
    (O.Adamax, {"eps": -1.0}, "eps"),
    (O.SGD, {"lr": -0.1}, "lr"),
    (O.SGD, {"lr": 0.1, "momentum": -0.9}, "momentum"),
    (O.SGD, {"lr": 0.1, "nesterov": True}, "nesterov"),
    (O.Adagrad, {"eps": -1.0}, "eps"),
    (O.Adagrad, {"lr_decay": -1.0}, "lr_decay"),
    (O.RMSprop, {"alpha": 1.5}, "alpha"),
    (O.RMSprop, {"eps": -1.0}, "eps"),
    (O.MSVAG, {"lr": -0.1}, "lr"),
    (O.MSVAG, {"lr": 0.1, "beta": 1.0}, "beta"),
    (O.MSSD, {"lr": 0.1, "beta": -0.5}, "beta"),
    (O.SVAG, {"lr": 0.1, "beta": 2.0}, "beta"),
    (O.MSSDVA, {"lr": 0.1, "variance_estimate": "magic"}, "variance_estimate"),
    (O.Dissected, {"lr": 0.1, "direction": "up"}, "direction"),
    (O.SSD, {"lr": 0.1, "nonfinite": "ignore"}, "nonfinite"),
]


@pytest.mark.parametrize("cls,kwargs,param", BAD, ids=[f"{c.__name__}-{p}" for c, _, p in BAD])
def test_invalid_hyperparameters_raise_value_error_naming_them(cls, kwargs, param) -> None:
    with pytest.raises(ValueError, match=param):
        cls([torch.zeros(2, requires_grad=True)], **kwargs)


@settings(max_examples=40, deadline=None)
@given(beta=st.one_of(st.floats(max_value=-1e-9), st.floats(min_value=1.0), st.just(math.nan)))
def test_any_beta_outside_unit_interval_is_rejected(beta) -> None:
    with pytest.raises(ValueError, match=r"beta.*\[0, 1\)|beta.*NaN|beta.*real"):
        O.MSVAG([torch.zeros(2, requires_grad=True)], lr=0.1, beta=beta)


@settings(max_examples=40, deadline=None)
@given(lr=st.floats(max_value=-1e-12))
def test_any_negative_lr_is_rejected(lr) -> None:
    with pytest.raises(ValueError, match="lr"):
        O.Adam([torch.zeros(2, requires_grad=True)], lr=lr)


def test_lr_is_required_for_methods_without_a_paper_default() -> None:
    for cls in (O.SSD, O.MSSD, O.SVAG, O.MSVAG, O.MSSDVA, O.Dissected):
        with pytest.raises(ValueError, match="lr is required"):
            cls([torch.zeros(2, requires_grad=True)])
        # ... but it may be given in every param group instead (torch's "required" convention)
        opt = cls([{"params": [torch.zeros(2, requires_grad=True)], "lr": 0.1}])
        assert opt.param_groups[0]["lr"] == 0.1
        with pytest.raises(ValueError, match="lr is required"):
            opt.add_param_group({"params": [torch.zeros(2, requires_grad=True)]})


def test_sgd_default_lr_is_torchs() -> None:
    p = [torch.zeros(2, requires_grad=True)]
    assert O.SGD(p).defaults["lr"] == torch.optim.SGD(p).defaults["lr"] == 1e-3


def test_paper_defaults() -> None:
    p = [torch.zeros(2, requires_grad=True)]
    assert O.Adam(p).defaults["lr"] == 1e-3 and O.Adam(p).defaults["betas"] == (0.9, 0.999)
    assert O.Adam(p).defaults["eps"] == 1e-8
    assert O.Adamax(p).defaults["lr"] == 2e-3
    assert O.Adagrad(p).defaults["lr"] == 1e-2 and O.RMSprop(p).defaults["lr"] == 1e-2
    assert O.MSVAG(p, lr=0.1).defaults["beta"] == 0.9


@pytest.mark.parametrize("policy", ["skip", "raise", "propagate"])
def test_nonfinite_gradient_policy(policy) -> None:
    p = torch.ones(3, requires_grad=True)
    opt = O.MSVAG([p], lr=0.1, nonfinite=policy)
    p.grad = torch.tensor([1.0, 2.0, 3.0])
    opt.step()
    after_one = p.detach().clone()
    state_step = opt.state[p]["step"]
    p.grad = torch.tensor([1.0, math.nan, 3.0])
    if policy == "raise":
        with pytest.raises(FloatingPointError, match="non-finite gradient"):
            opt.step()
    else:
        opt.step()
    if policy == "propagate":
        assert torch.isnan(p).any()
    else:
        assert torch.equal(p.detach(), after_one)
        assert opt.state[p]["step"] == state_step
    if policy == "skip":
        assert opt.skipped_steps == 1


@pytest.mark.parametrize(
    "cls,group,param",
    [(O.Adam, {"lr": -1.0}, "lr"), (O.Adam, {"betas": (1.0, 0.9)}, "beta1"), (O.MSVAG, {"beta": 1.5}, "beta"),
     (O.SGD, {"nesterov": True}, "nesterov"), (O.RMSprop, {"alpha": -0.1}, "alpha"),
     (O.Dissected, {"direction": "down"}, "direction"), (O.Adagrad, {"fused": "yes"}, "fused")],
)
def test_per_group_overrides_are_validated_too(cls, group, param) -> None:
    """Hyperparameters given per param group (at construction or via add_param_group) are checked."""
    kwargs = {} if cls in (O.Adam, O.RMSprop, O.Adagrad) else {"lr": 0.1}
    a, b = torch.zeros(2, requires_grad=True), torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=param):
        cls([{"params": [a]}, {"params": [b], **group}], **kwargs)
    opt = cls([a], **kwargs)
    with pytest.raises(ValueError, match=param):
        opt.add_param_group({"params": [b], **group})
    assert len(opt.param_groups) == 1
