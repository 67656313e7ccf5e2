"""Working with torch.optim: its state dicts both ways, sparse and complex against it, schedulers that
cycle momentum, hypergradients (``differentiable=True``) against finite differences."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S

import adamlab.optim as O

# (torch class, adamlab class, shared keyword arguments)
PAIRS = {
    "Adam": (torch.optim.Adam, O.Adam, dict(lr=0.01)),
    "Adam-amsgrad-wd": (torch.optim.Adam, O.Adam, dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    "AdamW": (torch.optim.AdamW, O.Adam, dict(lr=0.01, weight_decay=0.1)),
    "SGD-momentum": (torch.optim.SGD, O.SGD, dict(lr=0.01, momentum=0.9, dampening=0.1)),
    "SGD-nesterov": (torch.optim.SGD, O.SGD, dict(lr=0.01, momentum=0.9, nesterov=True)),
    "Adagrad": (torch.optim.Adagrad, O.Adagrad, dict(lr=0.05, lr_decay=0.01)),
    "RMSprop-centered-momentum": (torch.optim.RMSprop, O.RMSprop, dict(lr=0.01, centered=True, momentum=0.5)),
    "Adamax": (torch.optim.Adamax, O.Adamax, dict(lr=0.01)),
}


def _ours(name, params):
    _, cls, kw = PAIRS[name]
    if name == "AdamW":
        kw = {**kw, "decoupled_weight_decay": True}
    return cls(params, **kw)


def _theirs(name, params):
    cls, _, kw = PAIRS[name]
    return cls(params, **kw, foreach=False)


def _problem(seed=0):
    gen = torch.Generator().manual_seed(seed)
    params = [nn.Parameter(torch.randn(6, 4, generator=gen)), nn.Parameter(torch.randn(6, generator=gen))]
    x = torch.randn(16, 4, generator=gen)
    return params, x


def _train(opt, params, x, n):
    for _ in range(n):
        opt.zero_grad()
        (x @ params[0].T + params[1]).tanh().pow(2).sum().backward()
        opt.step()


@pytest.mark.parametrize("direction", ["torch->adamlab", "adamlab->torch"])
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_migrating_mid_training_continues_like_torch(name, direction) -> None:
    """Train 5 steps with one library, load its state dict into the other, train 5 more: same as torch."""
    params, x = _problem()
    reference = [nn.Parameter(p.detach().clone()) for p in params]
    first, second = (_theirs, _ours) if direction == "torch->adamlab" else (_ours, _theirs)
    opt = first(name, params)
    _train(opt, params, x, 5)
    migrated = second(name, params)
    migrated.load_state_dict(copy.deepcopy(opt.state_dict()))
    _train(migrated, params, x, 5)
    ref_opt = _theirs(name, reference)
    _train(ref_opt, reference, x, 10)
    for p, q in zip(params, reference, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_a_torch_adam_state_dict_gets_the_missing_keys_from_the_defaults() -> None:
    params, x = _problem()
    torch_opt = torch.optim.Adam(params, lr=0.01)
    _train(torch_opt, params, x, 2)
    ours = O.Adam(params, lr=0.01, eps_inside_sqrt=False)
    ours.load_state_dict(torch_opt.state_dict())
    group = ours.param_groups[0]
    assert group["eps_inside_sqrt"] is False and group["bias_correction"] is True
    _train(ours, params, x, 1)  # no KeyError


# -- sparse against torch ------------------------------------------------------------------------
SPARSE = {
    "SGD": (torch.optim.SGD, O.SGD, dict(lr=0.1)),
    "SGD-momentum-dampening-maximize": (torch.optim.SGD, O.SGD, dict(lr=0.1, momentum=0.9, dampening=0.1,
                                                                      maximize=True)),
    "SGD-nesterov": (torch.optim.SGD, O.SGD, dict(lr=0.1, momentum=0.9, nesterov=True)),
    "Adagrad": (torch.optim.Adagrad, O.Adagrad, dict(lr=0.1, lr_decay=0.01, initial_accumulator_value=0.1)),
    "Adagrad-maximize": (torch.optim.Adagrad, O.Adagrad, dict(lr=0.1, maximize=True)),
}


@pytest.mark.parametrize("name", sorted(SPARSE))
def test_sparse_embedding_gradients_match_torch(name) -> None:
    torch_cls, cls, kw = SPARSE[name]
    torch.manual_seed(0)
    emb = nn.Embedding(10, 3, sparse=True)
    twin = copy.deepcopy(emb)
    ours, theirs = cls(emb.parameters(), **kw), torch_cls(twin.parameters(), **kw)
    gen = torch.Generator().manual_seed(1)
    for _ in range(6):
        idx = torch.randint(0, 10, (5,), generator=gen)  # repeated indices: coalesced like torch
        for m, o in ((emb, ours), (twin, theirs)):
            o.zero_grad()
            m(idx).pow(2).sum().backward()
            o.step()
    torch.testing.assert_close(emb.weight, twin.weight, rtol=1e-6, atol=1e-7)


def test_sparse_combinations_torch_refuses_are_refused() -> None:
    emb = nn.Embedding(4, 2, sparse=True)
    for opt in (O.Adagrad(emb.parameters(), weight_decay=0.1), O.Adam(emb.parameters()),
                O.SGD(emb.parameters(), fused=True), O.SGD(emb.parameters(), weight_decay=0.1)):
        opt.zero_grad()
        emb(torch.tensor([1])).sum().backward()
        with pytest.raises(RuntimeError, match="sparse"):
            opt.step()


# -- complex against torch -------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(PAIRS))
def test_complex_params_match_torch(name) -> None:
    gen = torch.Generator().manual_seed(0)
    z = nn.Parameter(torch.randn(5, dtype=torch.complex128, generator=gen))
    w = nn.Parameter(z.detach().clone())
    ours, theirs = _ours(name, [z]), _theirs(name, [w])
    target = torch.randn(5, dtype=torch.complex128, generator=gen)
    for _ in range(5):
        for p, o in ((z, ours), (w, theirs)):
            o.zero_grad()
            (p - target).abs().pow(2).sum().backward()
            o.step()
    torch.testing.assert_close(z, w, rtol=1e-10, atol=1e-12)


# -- schedulers that cycle momentum (issue 14.1) ---------------------------------------------------
def _sign_problem(cls, **kw):
    gen = torch.Generator().manual_seed(0)
    p = nn.Parameter(torch.randn(20, generator=gen, dtype=torch.float64))
    grads = [torch.randn(20, generator=gen, dtype=torch.float64) + 0.2 for _ in range(30)]
    return p, grads, cls([p], lr=0.01, **kw)


@pytest.mark.parametrize("cls", [O.SSD, O.SVAG], ids=lambda c: c.__name__)
def test_onecycle_never_turns_a_method_without_momentum_into_its_momentum_twin(cls) -> None:
    """SSD stays SSD: cycle_momentum=True is refused; with cycle_momentum=False only lr is scheduled."""
    p, grads, opt = _sign_problem(cls)
    with pytest.raises(ValueError, match="momentum"):
        S.OneCycleLR(opt, max_lr=0.01, total_steps=30)
    with pytest.raises(ValueError, match="use_momentum=False"):
        opt.add_param_group({"params": [nn.Parameter(torch.zeros(1, dtype=torch.float64))], "momentum": 0.9})
    sched = S.OneCycleLR(opt, max_lr=0.01, total_steps=30, cycle_momentum=False)
    q = nn.Parameter(p.detach().clone())
    manual = cls([q], lr=0.01)
    for g in grads:
        lr = opt.param_groups[0]["lr"]
        p.grad, q.grad = g.clone(), g.clone()
        manual.param_groups[0]["lr"] = lr
        opt.step()
        manual.step()
        sched.step()
        assert opt.param_groups[0]["use_momentum"] is False and "momentum" not in opt.param_groups[0]
    assert torch.equal(p, q)


@pytest.mark.parametrize("cls", [O.MSSD, O.MSVAG, O.MSSDVA], ids=lambda c: c.__name__)
@pytest.mark.parametrize("scheduler", ["OneCycleLR", "CyclicLR"])
def test_cycled_momentum_is_the_beta_of_the_momentum_methods(cls, scheduler) -> None:
    p, grads, opt = _sign_problem(cls)
    if scheduler == "OneCycleLR":
        sched = S.OneCycleLR(opt, max_lr=0.01, total_steps=30)
    else:
        sched = S.CyclicLR(opt, base_lr=0.001, max_lr=0.01, step_size_up=5)
    q = nn.Parameter(p.detach().clone())
    manual = cls([q], lr=0.01)
    betas = []
    for g in grads:
        group = opt.param_groups[0]
        beta = group["momentum"]
        betas.append(beta)
        manual.param_groups[0].update(lr=group["lr"], beta=beta)
        p.grad, q.grad = g.clone(), g.clone()
        opt.step()
        manual.step()
        sched.step()
        assert group["beta"] == beta and group["use_momentum"] is True
    assert torch.equal(p, q)
    assert min(betas) < max(betas)  # beta was really cycled


def test_the_old_momentum_switch_still_works_as_a_keyword_and_in_old_state_dicts() -> None:
    p = nn.Parameter(torch.zeros(3))
    with pytest.warns(DeprecationWarning, match="use_momentum"):
        opt = O.Dissected([p], lr=0.1, direction="sign", momentum=False)
    assert opt.param_groups[0]["use_momentum"] is False
    saved = opt.state_dict()
    group = saved["param_groups"][0]
    group["momentum"] = group.pop("use_momentum")  # the layout before the rename
    fresh = O.Dissected([p], lr=0.1, direction="sign", use_momentum=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fresh.load_state_dict(saved)
    assert fresh.param_groups[0]["use_momentum"] is False and "momentum" not in fresh.param_groups[0]
    with pytest.raises(TypeError, match="fixes"):
        O.SSD([p], lr=0.1, momentum=True)


# -- differentiable=True: hypergradients -----------------------------------------------------------
HYPER = {
    "SGD-momentum": lambda ps, lr: O.SGD(ps, lr=lr, momentum=0.9, differentiable=True),
    "Adam": lambda ps, lr: O.Adam(ps, lr=lr, differentiable=True),
    "Adam-amsgrad-adamw": lambda ps, lr: O.Adam(ps, lr=lr, amsgrad=True, weight_decay=0.1,
                                                decoupled_weight_decay=True, differentiable=True),
    "Adamax": lambda ps, lr: O.Adamax(ps, lr=lr, differentiable=True),
    "Adagrad": lambda ps, lr: O.Adagrad(ps, lr=lr, differentiable=True),
    "RMSprop": lambda ps, lr: O.RMSprop(ps, lr=lr, centered=True, momentum=0.5, differentiable=True),
    "MSVAG": lambda ps, lr: O.MSVAG(ps, lr=lr, differentiable=True),
    "SVAG": lambda ps, lr: O.SVAG(ps, lr=lr, differentiable=True),
    "MSSDVA": lambda ps, lr: O.MSSDVA(ps, lr=lr, differentiable=True),
}


def _unrolled_loss(make, lr, steps=5, beta=None):
    """Loss after ``steps`` optimizer steps on a quadratic, as a differentiable function of lr (and beta)."""
    gen = torch.Generator().manual_seed(0)
    a = torch.rand(6, generator=gen, dtype=torch.float64) + 0.5
    p = (torch.randn(6, generator=gen, dtype=torch.float64) + 1.0).requires_grad_()
    w = p.clone()  # a non-leaf the optimizer may update in place while recording the graph
    opt = make([w], lr)
    if beta is not None:
        opt.param_groups[0]["beta"] = beta
    for _ in range(steps):
        wc = w.clone()  # the gradient's graph saves this copy, not w, which the step updates in place
        loss = 0.5 * (a * wc * wc).sum() + wc.sum()
        (grad,) = torch.autograd.grad(loss, wc, create_graph=True)
        w.grad = grad
        opt.step()
    return 0.5 * (a * w * w).sum() + w.sum()


@pytest.mark.parametrize("name", sorted(HYPER))
def test_hypergradient_wrt_lr_matches_finite_differences(name) -> None:
    lr = torch.tensor(0.05, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(_unrolled_loss(HYPER[name], lr), lr)
    h = 1e-6
    up = _unrolled_loss(HYPER[name], torch.tensor(0.05 + h, dtype=torch.float64))
    down = _unrolled_loss(HYPER[name], torch.tensor(0.05 - h, dtype=torch.float64))
    fd = ((up - down) / (2 * h)).detach()
    assert grad.abs() > 1e-6
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)


def test_hypergradient_wrt_beta_of_msvag_matches_finite_differences() -> None:
    make = HYPER["MSVAG"]
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    (grad,) = torch.autograd.grad(_unrolled_loss(make, 0.05, beta=beta), beta)
    h = 1e-6
    fd = ((_unrolled_loss(make, 0.05, beta=torch.tensor(0.8 + h, dtype=torch.float64))
           - _unrolled_loss(make, 0.05, beta=torch.tensor(0.8 - h, dtype=torch.float64))) / (2 * h)).detach()
    torch.testing.assert_close(grad, fd, rtol=1e-5, atol=1e-8)


def test_differentiable_false_is_accepted_and_refuses_leaf_in_place_like_torch() -> None:
    p = nn.Parameter(torch.zeros(2))
    O.Adam([p], differentiable=False)
    with pytest.raises(ValueError, match="non-leaf"):
        O.Adam([p.clone()], differentiable=False)
    with pytest.raises(ValueError, match="differentiable"):
        O.Adam([p.clone()], differentiable=True, foreach=True)


@pytest.mark.parametrize("init", [0.0, 0.1])
def test_adagrad_complex_equals_its_real_view_as_in_torchs_test_complex(init) -> None:
    """torch's generic ``test_complex``: a complex parameter steps as its ``view_as_real`` twin (both parts
    of Adagrad's sum start at ``initial_accumulator_value``), mixed with a real one."""
    gen = torch.Generator().manual_seed(0)
    complex_params = [nn.Parameter(torch.randn(10, 5, dtype=torch.complex64, generator=gen)),
                      nn.Parameter(torch.randn(10, dtype=torch.complex64, generator=gen)),
                      nn.Parameter(torch.randn(10, 5, dtype=torch.float32, generator=gen))]
    real_params = [nn.Parameter(torch.view_as_real(p).detach().clone() if p.is_complex() else p.detach().clone())
                   for p in complex_params]
    kw = dict(lr=0.1, lr_decay=0.01, weight_decay=0.05, initial_accumulator_value=init)
    ours_c, ours_r = O.Adagrad(complex_params, **kw), O.Adagrad(real_params, **kw)
    theirs = torch.optim.Adagrad([nn.Parameter(p.detach().clone()) for p in complex_params], **kw, foreach=False)
    for _ in range(3):
        for c, r, t in zip(complex_params, real_params, theirs.param_groups[0]["params"], strict=True):
            g = torch.randn(r.shape, generator=gen)
            r.grad = g.clone()
            c.grad = torch.view_as_complex(g.clone()) if c.is_complex() else g.clone()
            t.grad = c.grad.clone()
        ours_c.step()
        ours_r.step()
        theirs.step()
    for c, r, t in zip(complex_params, real_params, theirs.param_groups[0]["params"], strict=True):
        assert torch.equal(torch.view_as_real(c.detach()) if c.is_complex() else c.detach(), r.detach())
        torch.testing.assert_close(c, t, rtol=1e-6, atol=1e-7)
