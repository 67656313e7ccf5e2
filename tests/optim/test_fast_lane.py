"""The compiled path's fast lane (``adamlab.optim.fast._Lane``) never steps with a stale plan.

Once a group's compiled step was verified, later steps take a lane that skips the bucketing and the
plan lookup. Each test runs one scenario twice, with the lane on and off (``fast.LANES``), and the two
runs must agree bit for bit: both take the same compiled kernels, so any difference is a lane that kept
a stale parameter, state tensor, step counter, hyperparameter or path. Without the lane's checks (for
example a lane that keeps its flat aliases after ``p.data = ...`` or after ``load_state_dict``), the
lane run writes into the old memory and the comparison fails.
"""

from __future__ import annotations

import cProfile
import pstats
from collections.abc import Callable
from typing import Any

import pytest
import torch

from adamlab.optim import fast
from adamlab.optim.registry import make_optimizer

SHAPES = [(33, 7), (5,)]
Mutation = Callable[[torch.optim.Optimizer, list[torch.Tensor]], None]


@pytest.fixture(autouse=True)
def _compiled_available() -> None:
    ok, reason = fast.compile_available()
    if not ok:
        pytest.skip(f"no compiled path here: {reason}")


def _grads(gen: torch.Generator, params: list[torch.Tensor]) -> None:
    for p in params:
        if p.grad is not None or not getattr(p, "_no_grad", False):
            p.grad = 0.2 + torch.randn(p.shape, generator=gen, dtype=p.dtype)


def _load_other(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    other_params = [p.detach().clone().requires_grad_(True) for p in params]
    other = make_optimizer(opt.__class__.__name__.lower(), other_params, lr=1e-2, fused=True)
    for p in other_params:
        p.grad = torch.full_like(p, 0.5)
    for _ in range(4):
        other.step()
    opt.load_state_dict(other.state_dict())


def _new_storage(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    params[0].data = params[0].data.clone()


def _to_float64(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    params[1].data = params[1].data.double()
    params[1].grad = None


def _shrink(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    params[0].data = params[0].data[:10]  # same storage address, fewer elements
    params[0].grad = None
    for name, value in list(opt.state[params[0]].items()):
        if value.dim() > 0:
            opt.state[params[0]][name] = value[:10].clone()


def _new_state_tensor(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    state = opt.state[params[0]]
    name = next(k for k, v in state.items() if k != "step" and isinstance(v, torch.Tensor) and v.dim() > 0)
    state[name] = torch.ones_like(state[name])


def _state_in_place(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    state = opt.state[params[1]]
    name = next(k for k, v in state.items() if k != "step" and isinstance(v, torch.Tensor) and v.dim() > 0)
    state[name].data = torch.full_like(state[name], 3.0)  # same object, new storage


def _step_reset(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    for p in params:
        opt.state[p]["step"].fill_(0)


def _one_step_behind(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    opt.state[params[0]]["step"].sub_(1)  # two step counts: two buckets


def _static_hyper(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    group = opt.param_groups[0]
    if "betas" in group:
        group["betas"] = (0.5, 0.75)
    group["eps"] = 1e-3


def _lr(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    opt.param_groups[0]["lr"] = 0.05


def _scheduled_momentum(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    opt.param_groups[0]["momentum"] = 0.5  # what a cyclic scheduler sets: Dissected copies it into beta


def _no_grad(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    params[1]._no_grad = True  # type: ignore[attr-defined]
    params[1].grad = None


def _reversed(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    opt.param_groups[0]["params"].reverse()


def _added_group(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    extra = torch.randn(17, requires_grad=True)
    params.append(extra)
    opt.add_param_group({"params": [extra]})


def _reset(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    fast.reset()


def _fused_off(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    opt.param_groups[0]["fused"] = False


def _skip_nonfinite(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
    opt.nonfinite = "skip"
    params[0]._poison = True  # type: ignore[attr-defined]


MUTATIONS: dict[str, Mutation] = {
    "load_state_dict": _load_other, "param_data_new_storage": _new_storage, "param_data_float64": _to_float64,
    "param_data_shrunk": _shrink, "state_tensor_replaced": _new_state_tensor, "state_data_swapped": _state_in_place,
    "step_counter_reset": _step_reset, "step_counters_differ": _one_step_behind, "static_hyper_edit": _static_hyper,
    "lr_edit": _lr, "scheduled_momentum": _scheduled_momentum, "grad_none": _no_grad, "params_reordered": _reversed, "add_param_group": _added_group,
    "fast_reset": _reset, "fused_false": _fused_off, "nonfinite_skip": _skip_nonfinite,
}


def _run(method: str, mutation: Mutation, lanes: bool, monkeypatch: pytest.MonkeyPatch) -> list[torch.Tensor]:
    monkeypatch.setattr(fast, "LANES", lanes)
    torch.manual_seed(0)
    params = [torch.randn(s, requires_grad=True) for s in SHAPES]
    opt = make_optimizer(method, params, lr=1e-2, fused=True)
    gen = torch.Generator().manual_seed(1)
    for step in range(7):
        if step == 3:
            mutation(opt, params)
        _grads(gen, params)
        for p in params:
            if getattr(p, "_poison", False) and step == 5:
                p.grad[0] = float("nan")  # type: ignore[index]
        opt.step()
    out = [p.detach().clone() for p in params]
    for p in params:
        out += [v.clone() for v in opt.state[p].values() if isinstance(v, torch.Tensor)]
    return out


@pytest.mark.parametrize("method", ["adam", "msvag"])
@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_the_lane_equals_the_full_path_after(name: str, method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with_lane = _run(method, MUTATIONS[name], True, monkeypatch)
    without = _run(method, MUTATIONS[name], False, monkeypatch)
    assert len(with_lane) == len(without)
    for a, b in zip(with_lane, without, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        assert torch.equal(a, b) or (a.isnan() == b.isnan()).all() and torch.equal(a.nan_to_num(), b.nan_to_num())


def test_a_class_that_overrides_the_step_machinery_takes_no_lane(monkeypatch: pytest.MonkeyPatch) -> None:
    """A subclass that overrides ``_step_group`` (or another method the lane stands in for) keeps its override."""
    base = type(make_optimizer("adam", [torch.zeros(2, requires_grad=True)]))
    seen: list[int] = []

    class Counting(base):  # type: ignore[valid-type, misc]
        def _step_group(self, group: dict[str, Any], params: Any, grads: Any) -> None:
            seen.append(1)
            super()._step_group(group, params, grads)

    assert base._lanes and not Counting._lanes
    torch.manual_seed(0)
    params = [torch.randn(s, requires_grad=True) for s in SHAPES]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = Counting(params, lr=1e-3, fused=True)
    for _ in range(5):
        opt.step()
    assert len(seen) == 5


def _steady(monkeypatch: pytest.MonkeyPatch, env_after: str | None = None, fused: bool | None = True
            ) -> tuple[torch.optim.Optimizer, list[torch.Tensor]]:
    if env_after is not None:
        monkeypatch.setenv(fast.COMPILE_AFTER_ENV, env_after)
    torch.manual_seed(0)
    params = [torch.randn(s, requires_grad=True) for s in SHAPES]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = make_optimizer("adam", params, lr=1e-3, fused=fused)
    for _ in range(3):
        opt.step()
    return opt, params


def test_the_lane_is_taken_and_skips_the_full_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """After a verified compiled step, neither the bucketing nor fast_step runs; after a change, both do."""
    opt, params = _steady(monkeypatch)
    calls: list[int] = []
    real = fast.fast_step
    monkeypatch.setattr(fast, "fast_step", lambda *a, **k: calls.append(1) or real(*a, **k))
    before = params[0].detach().clone()
    opt.step()
    assert calls == [] and not torch.equal(before, params[0])
    params[0].data = params[0].data.clone()
    opt.step()
    assert calls == [1]


def test_the_lane_follows_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    """fused=None: the lane is left as soon as the policy says 'reference path' (here: a larger switch step)."""
    opt, params = _steady(monkeypatch, env_after="1", fused=None)
    paths: list[bool] = []
    real = fast.use_compiled
    monkeypatch.setattr(fast, "use_compiled", lambda *a, **k: paths.append(real(*a, **k)) or paths[-1])
    opt.step()
    assert paths == []  # the lane: no policy call needed
    monkeypatch.setenv(fast.COMPILE_AFTER_ENV, "100")
    opt.step()
    assert paths == [False]


def test_a_lane_step_costs_few_python_calls(monkeypatch: pytest.MonkeyPatch) -> None:
    """The per-step host work of a two-tensor model: at most 40 Python-level calls in adamlab's code
    (the full path took about 110), so a small model's step costs about what torch's fused Adam's does."""
    opt, _ = _steady(monkeypatch)
    profile = cProfile.Profile()
    profile.enable()
    for _ in range(10):
        opt.step()
    profile.disable()
    stats: Any = pstats.Stats(profile).stats
    ours = sum(calls for (path, _, _), (_, calls, *_) in stats.items() if "adamlab" in path) / 10
    assert ours <= 40, ours


def test_the_lane_calls_the_kernel_without_inductors_size_asserts(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lane checks every tensor itself before a step, so it calls the kernel without Inductor's
    per-call asserts (the full path keeps them); the same bits as with the asserts."""
    runs = [_steady(monkeypatch), _steady(monkeypatch)]
    kernel = runs[0][0].__dict__[fast._ATTRIBUTE][1][id(runs[0][0].param_groups[0])].lane.kernel
    assert kernel.unchecked is not None
    unchecked = kernel.unchecked
    calls: list[int] = []
    monkeypatch.setattr(kernel, "unchecked", lambda *a: calls.append(1) or unchecked(*a))
    for _ in range(3):
        runs[0][0].step()  # the lane, unchecked
        monkeypatch.setattr(kernel, "unchecked", None)
        runs[1][0].step()  # the lane, through Inductor's asserts
        monkeypatch.setattr(kernel, "unchecked", lambda *a: calls.append(1) or unchecked(*a))
    assert len(calls) == 3 * len(SHAPES)
    for p, q in zip(runs[0][1], runs[1][1], strict=True):
        assert torch.equal(p, q)


def test_unchecked_call_strips_only_the_asserts() -> None:
    source = ("def call(self, args):\n    a, = args\n    args.clear()\n"
              "    assert_size_stride(a, (3, ), (1, ), 'input')\n    assert_alignment(a, 16, 'input')\n"
              "    kernel(a)\n    return ()\n")
    seen = []
    call = fast.unchecked_call(source, {"kernel": seen.append})
    assert call is not None
    call([7])
    assert seen == [7]
    assert fast.unchecked_call("def other(args):\n    return ()\n", {}) is None
    assert fast.unchecked_call("def call(self, args):\n    return ()\n", {}) is None  # no asserts: keep direct


@pytest.mark.parametrize("method", ["sgd", "adam"])
def test_the_lane_equals_the_full_path_for_a_rule_without_state(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Plain SGD keeps no state, so its kernel takes its size from the gradient: the lane must pass that
    flat (a 2-D gradient as it is would step only its first row's worth of elements)."""
    def unchanged(opt: torch.optim.Optimizer, params: list[torch.Tensor]) -> None:
        return None

    with_lane = _run(method, unchanged, True, monkeypatch)
    without = _run(method, unchanged, False, monkeypatch)
    assert len(with_lane) == len(without)
    for a, b in zip(with_lane, without, strict=True):
        assert torch.equal(a, b)
