"""The generic checks of torch's optimizer suite (``TestOptimRenewed``), in our words, for every class.

torch drives its suite from the ``OptimizerInfo`` database; here the cases come from the registry
(:mod:`tests.optim.cases`), so a new optimizer is covered automatically. What is checked:
state_dict determinism, loading older (missing group keys, int step) and named state dicts, step /
state_dict / load_state_dict hooks (pre, post, prepend, global), deepcopy, complex parameters,
tensor learning rates, LR schedulers, no-op steps, printing, foreach and fused against the for-loop,
the sparse Rosenbrock (SGD, Adagrad), ``swa_utils`` and a compiled training step.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn
from torch.optim import lr_scheduler as S
from torch.optim.optimizer import register_optimizer_step_post_hook, register_optimizer_step_pre_hook

import adamlab.optim as O
from adamlab.optim.base import AdamlabOptimizer
from tests.optim.cases import CASES, NAMES, class_of, has_weight_decay, inner

pytestmark = pytest.mark.filterwarnings("ignore:.*lr_scheduler.step.*:UserWarning")


# -- small problems ------------------------------------------------------------------------------
def _linear_params(dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    weight = nn.Parameter(torch.randn(10, 5, generator=gen, dtype=dtype))
    bias = nn.Parameter(torch.randn(10, generator=gen, dtype=dtype))
    x = torch.randn(5, generator=gen, dtype=dtype)
    return [weight, bias], x


def _loss(params, x):
    weight, bias = params
    return (weight.mv(x) + bias).pow(2).sum()


def _closure(opt, params, x):
    def closure():
        opt.zero_grad()
        loss = _loss(params, x)
        loss.backward()
        return loss

    return closure


def _train(opt, params, x, n=5):
    closure = _closure(opt, params, x)
    for _ in range(n):
        opt.step(closure)


def _clone(params):
    return [nn.Parameter(p.detach().clone()) for p in params]


def _assert_same_params(a, b, exact=True):
    for p, q in zip(a, b, strict=True):
        if exact:
            assert torch.equal(p, q), (p - q).abs().max()
        else:
            torch.testing.assert_close(p, q)


def _assert_same_state_dicts(a, b):
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for key in a["state"]:
        sa, sb = a["state"][key], b["state"][key]
        assert sa.keys() == sb.keys()
        for name in sa:
            va, vb = sa[name], sb[name]
            if isinstance(va, torch.Tensor):
                assert torch.equal(va, vb), (key, name)
            else:
                assert va == vb


# -- coverage ------------------------------------------------------------------------------------
def test_every_public_class_is_covered() -> None:
    public = {name for name in O.__all__
              if isinstance(getattr(O, name), type) and issubclass(getattr(O, name), torch.optim.Optimizer)}
    public.discard(AdamlabOptimizer.__name__)  # the abstract base
    covered = {class_of(name) for name in NAMES} | {"Dissected"}  # "msgd" is Dissected's own preset
    assert public <= covered, f"not in the registry nor tests/optim/cases.py: {sorted(public - covered)}"


# -- state dicts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_is_deterministic_and_a_loaded_copy_continues_identically(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x)
    twin = _clone(params)
    opt_twin = CASES[name](twin)
    opt_twin.load_state_dict(copy.deepcopy(opt.state_dict()))
    _assert_same_state_dicts(opt.state_dict(), opt_twin.state_dict())
    _train(opt, params, x)
    _train(opt_twin, twin, x)
    _assert_same_params(params, twin)
    _assert_same_state_dicts(opt.state_dict(), opt_twin.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_step_counter_is_a_cpu_float_tensor_like_torchs(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x, 3)
    for state in inner(opt).state.values():
        if "step" in state:
            step = state["step"]
            assert isinstance(step, torch.Tensor) and step.dim() == 0 and step.device.type == "cpu"
            assert step.dtype == torch.float32 and float(step) == 3


@pytest.mark.parametrize("name", NAMES)
def test_loads_an_older_state_dict_without_newer_group_keys_and_with_int_steps(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x)
    old = copy.deepcopy(opt.state_dict())
    defaults = inner(opt).defaults
    for group in old["param_groups"]:
        for key in [k for k in group if k in defaults and k != "lr" and group[k] == defaults[k]]:
            del group[key]  # as saved by a version that did not know the key
    for state in old["state"].values():
        for key in [k for k in state if "step" in k]:
            state[key] = int(state[key])  # as saved before steps became tensors
    twin = _clone(params)
    opt_twin = CASES[name](twin)
    opt_twin.load_state_dict(old)
    for state in inner(opt_twin).state.values():
        assert isinstance(state.get("step", torch.zeros(())), torch.Tensor)
    _train(opt, params, x)
    _train(opt_twin, twin, x)
    _assert_same_params(params, twin)


@pytest.mark.parametrize("name", NAMES)
def test_named_parameters_state_dicts(name) -> None:
    torch.manual_seed(0)
    model = nn.Linear(5, 3).double()
    opt = CASES[name](list(model.named_parameters()))
    x = torch.randn(4, 5, dtype=torch.float64)
    for _ in range(3):
        opt.zero_grad()
        model(x).pow(2).sum().backward()
        opt.step()
    saved = opt.state_dict()
    assert saved["param_groups"][0]["param_names"] == ["weight", "bias"]
    twin = copy.deepcopy(model)
    for target in (list(twin.named_parameters()), list(twin.parameters())):  # named -> named and -> unnamed
        opt_twin = CASES[name](target)
        opt_twin.load_state_dict(copy.deepcopy(saved))
        _assert_same_state_dicts(opt_twin.state_dict(), saved)  # the loaded names are kept


# -- hooks -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_step_hooks_fire_once_per_step_in_order(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    calls: list[str] = []
    handles = [
        opt.register_step_pre_hook(lambda o, a, k: calls.append("pre")),
        opt.register_step_post_hook(lambda o, a, k: calls.append("post")),
        register_optimizer_step_pre_hook(lambda o, a, k: calls.append("global-pre")),
        register_optimizer_step_post_hook(lambda o, a, k: calls.append("global-post")),
    ]
    try:
        _train(opt, params, x, 2)
    finally:
        for handle in handles:
            handle.remove()
    assert calls == ["global-pre", "pre", "post", "global-post"] * 2
    _train(opt, params, x, 1)
    assert len(calls) == 8  # removed hooks stay removed


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_hooks_pre_post_and_prepend(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x, 2)
    order: list[str] = []
    opt.register_state_dict_pre_hook(lambda o: order.append("pre"))
    opt.register_state_dict_pre_hook(lambda o: order.append("pre-first"), prepend=True)

    def post(o, state_dict):
        order.append("post")
        state_dict["extra"] = "added by a hook"
        return state_dict

    opt.register_state_dict_post_hook(post)
    opt.register_state_dict_post_hook(lambda o, sd: order.append("post-first"), prepend=True)
    saved = opt.state_dict()
    assert order == ["pre-first", "pre", "post-first", "post"]
    assert saved["extra"] == "added by a hook"
    assert {"state", "param_groups"} <= set(saved)


@pytest.mark.parametrize("name", NAMES)
def test_load_state_dict_hooks_pre_post_and_prepend(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x, 2)
    saved = copy.deepcopy(opt.state_dict())
    twin = _clone(params)
    opt_twin = CASES[name](twin)
    order: list[str] = []

    def pre(o, state_dict):
        order.append("pre")
        state_dict = copy.deepcopy(state_dict)
        state_dict["param_groups"][0]["lr"] = 0.125  # a pre-hook may rewrite what is loaded
        return state_dict

    opt_twin.register_load_state_dict_pre_hook(pre)
    opt_twin.register_load_state_dict_pre_hook(lambda o, sd: order.append("pre-first"), prepend=True)
    opt_twin.register_load_state_dict_post_hook(lambda o: order.append("post"))
    opt_twin.register_load_state_dict_post_hook(
        lambda o: order.append(f"post-first lr={o.param_groups[0]['lr']}"), prepend=True)
    opt_twin.load_state_dict(saved)
    assert order == ["pre-first", "pre", "post-first lr=0.125", "post"]
    assert opt_twin.param_groups[0]["lr"] == 0.125 and saved["param_groups"][0]["lr"] != 0.125


# -- copies ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_deepcopy_keeps_every_public_attribute_and_continues_identically(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x, 3)
    holder = copy.deepcopy({"params": params, "opt": opt})
    twin, opt_twin = holder["params"], holder["opt"]
    public = {k for k in vars(opt) if not k.startswith("_")}
    assert public <= set(vars(opt_twin)), public - set(vars(opt_twin))
    assert type(opt_twin) is type(opt) and repr(opt_twin) == repr(opt)
    _train(opt, params, x, 3)
    _train(opt_twin, twin, x, 3)
    _assert_same_params(params, twin)


# -- complex ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_complex_params_are_optimised_as_real_pairs(name) -> None:
    gen = torch.Generator().manual_seed(0)
    z = nn.Parameter(torch.randn(3, 4, dtype=torch.complex128, generator=gen))
    r = nn.Parameter(torch.view_as_real(z.detach()).clone())
    start = r.detach().clone()
    opt_z, opt_r = CASES[name]([z]), CASES[name]([r])
    target = torch.randn(3, 4, dtype=torch.complex128, generator=gen)
    for _ in range(6):
        for opt in (opt_z, opt_r):
            opt.zero_grad()
        (z - target).abs().pow(2).sum().backward()
        (r - torch.view_as_real(target)).pow(2).sum().backward()
        torch.testing.assert_close(torch.view_as_real(z.grad), r.grad)
        opt_z.step()
        opt_r.step()
    torch.testing.assert_close(torch.view_as_real(z.detach()), r.detach(), rtol=1e-12, atol=1e-14)
    assert not torch.equal(r.detach(), start)  # both moved (and the same way)


# -- tensor lr, schedulers -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_tensor_lr_gives_the_float_lr_trajectory(name) -> None:
    params, x = _linear_params()
    twin = _clone(params)
    opt = CASES[name](params, lr=0.01)
    opt_t = CASES[name](twin, lr=torch.tensor(0.01, dtype=torch.float64))
    _train(opt, params, x, 5)
    _train(opt_t, twin, x, 5)
    _assert_same_params(params, twin, exact=False)


SCHEDULERS = {
    "StepLR": lambda o: S.StepLR(o, step_size=5, gamma=0.5),
    "ExponentialLR": lambda o: S.ExponentialLR(o, gamma=0.95),
    "LambdaLR": lambda o: S.LambdaLR(o, lambda t: 1.0 / math.sqrt(t + 1)),
    "CosineAnnealingLR": lambda o: S.CosineAnnealingLR(o, T_max=20),
    "ReduceLROnPlateau": lambda o: S.ReduceLROnPlateau(o, patience=1),
    "OneCycleLR": lambda o: S.OneCycleLR(o, max_lr=0.01, total_steps=20, cycle_momentum=False),
    "CyclicLR": lambda o: S.CyclicLR(o, base_lr=0.001, max_lr=0.01, step_size_up=5, cycle_momentum=False),
    "ChainedScheduler": lambda o: S.ChainedScheduler([S.ConstantLR(o, factor=0.5, total_iters=3),
                                                      S.ExponentialLR(o, gamma=0.95)]),
}


@pytest.mark.parametrize("scheduler", sorted(SCHEDULERS))
@pytest.mark.parametrize("name", NAMES)
def test_lr_schedulers_compose_and_the_loss_goes_down(name, scheduler) -> None:
    params, x = _linear_params(dtype=torch.float32)
    opt = CASES[name]([{"params": params[:1]}, {"params": params[1:], "lr": 0.005}])
    sched = SCHEDULERS[scheduler](opt)
    closure = _closure(opt, params, x)
    first = closure().item()
    for _ in range(20):
        loss = opt.step(closure)
        sched.step(loss) if isinstance(sched, S.ReduceLROnPlateau) else sched.step()
    assert closure().item() < first


@pytest.mark.parametrize("name", NAMES)
def test_cyclic_momentum_schedulers_act_on_momentum_or_are_refused(name) -> None:
    """OneCycleLR/CyclicLR cycle ``momentum`` or ``betas[0]``; methods without either refuse them."""
    params, x = _linear_params(dtype=torch.float32)
    opt = CASES[name](params)
    defaults = inner(opt).defaults
    if "momentum" not in defaults and "betas" not in defaults:
        with pytest.raises(ValueError, match="momentum"):
            S.OneCycleLR(opt, max_lr=0.01, total_steps=20)
        return
    sched = S.OneCycleLR(opt, max_lr=0.01, total_steps=20)
    closure = _closure(opt, params, x)
    first = closure().item()
    for _ in range(10):
        opt.step(closure)
        sched.step()
    assert closure().item() < first
    group = opt.param_groups[0]
    key = "betas" if "betas" in defaults else "momentum"
    value = group[key][0] if key == "betas" else group[key]
    assert 0.85 <= value < 0.95
    if isinstance(inner(opt), O.Dissected):  # the scheduled momentum coefficient is beta
        assert group["beta"] != 0.9 and group["use_momentum"] is True


def test_swa_utils_averaged_model_and_swalr() -> None:
    for name in NAMES:
        torch.manual_seed(0)
        model = nn.Linear(3, 1).double()
        x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 1, dtype=torch.float64)
        opt = CASES[name](model.parameters())
        swa = torch.optim.swa_utils.AveragedModel(model)
        swalr = torch.optim.swa_utils.SWALR(opt, swa_lr=0.002, anneal_epochs=3)
        iterates = []
        for _ in range(6):
            opt.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            opt.step()
            swa.update_parameters(model)
            swalr.step()
            iterates.append(model.weight.detach().clone())
        torch.testing.assert_close(swa.module.weight.detach(), torch.stack(iterates).mean(0))
        assert all(g["lr"] == pytest.approx(0.002) for g in opt.param_groups), name


# -- no-op steps, printing -------------------------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_a_step_without_gradients_changes_nothing(name) -> None:
    params, x = _linear_params()
    opt = CASES[name](params)
    _train(opt, params, x, 2)
    opt.zero_grad(set_to_none=True)
    before = [p.detach().clone() for p in params]
    saved = copy.deepcopy(opt.state_dict())
    opt.step()
    _assert_same_params(params, before)
    _assert_same_state_dicts(opt.state_dict(), saved)


@pytest.mark.parametrize("name", NAMES)
def test_zero_gradients_do_not_move_the_parameters(name) -> None:
    params, _ = _linear_params()
    opt = CASES[name](params)
    if has_weight_decay(opt):
        pytest.skip("weight decay moves the parameters without a gradient")
    if name == "ndadam":
        pytest.skip("ND-Adam projects weight vectors onto the unit sphere at every step, gradient or not")
    before = [p.detach().clone() for p in params]
    for _ in range(3):
        for p in params:
            p.grad = torch.zeros_like(p)
        opt.step()
    _assert_same_params(params, before)


@pytest.mark.parametrize("name", NAMES)
def test_optimizer_can_be_printed(name) -> None:
    params, _ = _linear_params()
    opt = CASES[name](params)
    text = repr(opt)
    assert type(inner(opt)).__name__ in text and "lr:" in text


# -- implementations against the for-loop --------------------------------------------------------
@pytest.mark.parametrize("name", NAMES)
def test_foreach_matches_the_forloop(name) -> None:
    params, x = _linear_params()
    twin = _clone(params)
    opt_loop, opt_foreach = CASES[name](params, foreach=False), CASES[name](twin, foreach=True)
    _train(opt_loop, params, x, 5)
    _train(opt_foreach, twin, x, 5)
    _assert_same_params(params, twin)
    _assert_same_state_dicts({**opt_loop.state_dict(), "param_groups": []},
                             {**opt_foreach.state_dict(), "param_groups": []})


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_fused_matches_the_forloop(name) -> None:
    from adamlab.optim import fast

    ok, reason = fast.compile_available()
    if not ok:
        pytest.skip(reason)
    params, x = _linear_params(dtype=torch.float32)
    twin = _clone(params)
    opt_loop, opt_fused = CASES[name](params, fused=False), CASES[name](twin, fused=True)
    _train(opt_loop, params, x, 5)
    _train(opt_fused, twin, x, 5)
    _assert_same_params(params, twin, exact=False)


# -- sparse Rosenbrock (the classes torch allows sparse gradients for) -----------------------------
def _rosenbrock_grad(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy
    return torch.stack((-400 * x * (y - x**2) - 2 * (1 - x), 200 * (y - x**2)))


SPARSE = {  # maximize=True gets the negated gradient, so every case descends
    "SGD": lambda ps: O.SGD(ps, lr=1e-4),
    "SGD-momentum-nesterov": lambda ps: O.SGD(ps, lr=1e-4, momentum=0.9, nesterov=True),
    "SGD-dampening-maximize": lambda ps: O.SGD(ps, lr=1e-4, momentum=0.5, dampening=0.2, maximize=True),
    "Adagrad": lambda ps: O.Adagrad(ps, lr=0.05),
    "Adagrad-lr_decay-maximize": lambda ps: O.Adagrad(ps, lr=0.05, lr_decay=0.01, maximize=True),
}


@pytest.mark.parametrize("case", sorted(SPARSE))
def test_sparse_rosenbrock_matches_the_dense_twin(case) -> None:
    """One random coordinate's gradient per step, sparse; the dense twin gets the same values, densified."""
    sparse_p = torch.tensor([1.5, 1.5], dtype=torch.float64, requires_grad=True)
    dense_p = sparse_p.detach().clone().requires_grad_()
    opt_s, opt_d = SPARSE[case]([sparse_p]), SPARSE[case]([dense_p])
    gen = torch.Generator().manual_seed(0)
    start = (1 - sparse_p[0]) ** 2 + 100 * (sparse_p[1] - sparse_p[0] ** 2) ** 2
    for _ in range(400):
        i = int(torch.randint(0, 2, (1,), generator=gen))
        g = _rosenbrock_grad(sparse_p.detach()) * (-1 if "maximize" in case else 1)
        sparse_p.grad = torch.sparse_coo_tensor(torch.tensor([[i]]), g[i:i + 1], (2,))
        dense_p.grad = sparse_p.grad.to_dense()
        opt_s.step()
        opt_d.step()
    torch.testing.assert_close(sparse_p, dense_p, rtol=1e-12, atol=1e-14)
    end = (1 - sparse_p[0]) ** 2 + 100 * (sparse_p[1] - sparse_p[0] ** 2) ** 2
    assert end < start


# -- a compiled training step ----------------------------------------------------------------------
def compiled_step_graphs(name: str, steps: int = 10) -> tuple[int, list[torch.Tensor], list[torch.Tensor]]:
    """Frames compiled for ``steps`` compiled training steps, and the compiled and eager parameters."""
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter

    torch._dynamo.reset()
    torch.manual_seed(0)
    model = nn.Linear(4, 2)
    twin = copy.deepcopy(model)
    x, y = torch.randn(8, 4), torch.randn(8, 2)
    opt, opt_twin = CASES[name](model.parameters()), CASES[name](twin.parameters())
    counter = CompileCounter()

    def train_step(m, o):
        o.zero_grad()
        loss = nn.functional.mse_loss(m(x), y)
        loss.backward()
        o.step()
        return loss

    compiled = torch.compile(train_step, backend=counter)
    for _ in range(steps):
        compiled(model, opt)
        train_step(twin, opt_twin)
    return counter.frame_count, list(model.parameters()), list(twin.parameters())


@pytest.mark.slow
@pytest.mark.parametrize("name", NAMES)
def test_a_compiled_training_step_compiles_a_bounded_number_of_graphs(name) -> None:
    """torch's Adam: 2 frames for 10 steps (a graph break at ``zero_grad``, one at ``backward``); ours too.

    Before the step counter became a tensor every step recompiled, up to Dynamo's limit.
    """
    frames, compiled, eager = compiled_step_graphs(name)
    assert frames <= 2, f"{name}: {frames} frames compiled for 10 steps (recompiling per step?)"
    for p, q in zip(compiled, eager, strict=True):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
