"""The compiled fast path (adamlab.optim.fast) against the reference loop path of the same rule.

Identity: parameters and every state tensor agree to rtol 1e-6 (float32) / 1e-12 (float64) after many
steps, with an absolute floor of rtol x the initial parameter scale for elements that pass through zero
(one unit in the last place of a step there is a large relative error). Compile time is paid once per
kernel and process; the default tests compile a handful of kernels, the full grid is marked slow.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import pytest
import torch

from adamlab.optim import fast
from adamlab.optim.registry import make_optimizer, names

pytestmark = pytest.mark.compile

@pytest.fixture(autouse=True)
def _private_snapshots(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel snapshots of earlier processes would skip the compiles these tests count or break."""
    monkeypatch.setenv(fast.SNAPSHOT_ENV, str(tmp_path_factory.mktemp("snapshots")))
    fast._have_snapshots.cache_clear()


needs_compiler = pytest.mark.skipif(not fast.compile_available()[0], reason="no torch.compile toolchain here")

RTOL = {torch.float32: 1e-6, torch.float64: 1e-12}
SHAPES = [(7, 5), (13,), (3, 4, 2), (), (0, 3), (1,)]


def _params(dtype: torch.dtype, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=gen, dtype=dtype) for s in SHAPES]


def _run(name: str, dtype: torch.dtype, steps: int, hparams: dict[str, Any], **path: Any) -> torch.optim.Optimizer:
    params = [p.clone().requires_grad_(True) for p in _params(dtype)]
    opt = make_optimizer(name, params, **hparams, **path)
    gen = torch.Generator().manual_seed(1)
    for t in range(steps):
        for p in params:
            # A gradient with a persistent mean, so sign(m) is stable and momentum builds up.
            p.grad = 0.3 * torch.ones_like(p) + torch.randn(p.shape, generator=gen, dtype=dtype)
        if t == steps // 2:
            for group in opt.param_groups:  # an LR schedule must not recompile
                group["lr"] = group["lr"] * 0.5
        opt.step()
    return opt


def _assert_same(fast_opt: torch.optim.Optimizer, ref_opt: torch.optim.Optimizer, dtype: torch.dtype) -> None:
    rtol = RTOL[dtype]
    fp = [p for g in fast_opt.param_groups for p in g["params"]]
    rp = [p for g in ref_opt.param_groups for p in g["params"]]
    for a, b in zip(fp, rp, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=rtol, atol=rtol * 3.0)
        sa, sb = fast_opt.state[a], ref_opt.state[b]
        assert sa.keys() == sb.keys()
        for key in sa:
            if isinstance(sb[key], torch.Tensor):
                assert sa[key].dtype == sb[key].dtype and sa[key].shape == sb[key].shape
                torch.testing.assert_close(sa[key], sb[key], rtol=rtol, atol=rtol * 3.0)
            else:
                assert sa[key] == sb[key]


LR = {"sgd": 0.05, "momentum": 0.05, "nesterov": 0.05, "adagrad": 0.05, "rmsprop": 0.01, "ssd": 0.01,
      "mssd": 0.01, "msgd": 0.05, "svag": 0.05, "msvag": 0.05, "mssdva": 0.01}

# One compile each (a few seconds on 2 cores with an empty Inductor cache); the full grid is slow.
DEFAULT_CASES = [("adam", torch.float32), ("msvag", torch.float64), ("mssdva", torch.float32),
                 ("mssd", torch.float32)]


def _check(name: str, dtype: torch.dtype, steps: int = 25, **hparams: Any) -> None:
    hparams.setdefault("lr", LR.get(name, 1e-2))
    ref = _run(name, dtype, steps, hparams, fused=False, foreach=False)
    fst = _run(name, dtype, steps, hparams, fused=True)
    _assert_same(fst, ref, dtype)


@needs_compiler
@pytest.mark.parametrize(("name", "dtype"), DEFAULT_CASES)
def test_compiled_equals_loop(name: str, dtype: torch.dtype) -> None:
    _check(name, dtype)


@needs_compiler
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("name", names())
def test_compiled_equals_loop_every_optimizer(name: str, dtype: torch.dtype) -> None:
    _check(name, dtype, steps=60)


OPTION_CASES = [
    ("adam", {"amsgrad": True}), ("adam", {"weight_decay": 0.1}),
    ("adam", {"weight_decay": 0.1, "decoupled_weight_decay": True}), ("adam", {"eps_inside_sqrt": True}),
    ("adam", {"bias_correction": False}), ("adam", {"maximize": True}), ("adamax", {"weight_decay": 0.1}),
    ("momentum", {"dampening": 0.5, "weight_decay": 0.01}), ("nesterov", {"maximize": True}),
    ("rmsprop", {"momentum": 0.9, "centered": True}), ("rmsprop", {"centered": True, "weight_decay": 0.1}),
    ("adagrad", {"lr_decay": 0.01, "initial_accumulator_value": 0.1}), ("msvag", {"weight_decay": 0.1}),
    ("mssdva", {"variance_estimate": "naive"}), ("svag", {"maximize": True}), ("msvag", {"beta": 0.5}),
]


@needs_compiler
@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("name", "options"), OPTION_CASES, ids=lambda x: str(x))
def test_compiled_equals_loop_options(name: str, options: dict[str, Any], dtype: torch.dtype) -> None:
    _check(name, dtype, steps=40, **options)


@needs_compiler
def test_compiled_equals_loop_large_tensors() -> None:
    """Tensors of >= PARALLEL_MIN_NUMEL elements take the parallel kernel, one per call."""
    shapes = [(fast.PARALLEL_MIN_NUMEL + 5,), (300, 120), (7,)]
    runs = []
    for path in ({"fused": False, "foreach": False}, {"fused": True}):
        gen = torch.Generator().manual_seed(0)
        params = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
        opt = make_optimizer("adam", params, lr=0.01, **path)
        for _ in range(8):
            for p in params:
                p.grad = 0.3 + torch.randn(p.shape, generator=gen)
            opt.step()
        runs.append(opt)
    _assert_same(runs[1], runs[0], torch.float32)


@needs_compiler
def test_no_recompile_across_steps_lr_and_sizes(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    calls = []
    real = fast._backend

    def counting(kernel: Any, options: dict[str, Any], reciprocal: bool, gm: Any, example_inputs: Any) -> Any:
        calls.append(1)
        return real(kernel, options, reciprocal, gm, example_inputs)

    monkeypatch.setattr(fast, "_backend", counting)
    params = [torch.randn(s, requires_grad=True) for s in [(40, 30), (17,), (5, 5, 5), (3,)]]
    opt = make_optimizer("msvag", params, lr=0.1, fused=True)
    for t in range(6):
        for p in params:
            p.grad = torch.randn_like(p)
        opt.param_groups[0]["lr"] = 0.1 / (t + 1)
        opt.step()
    assert len(calls) == 1, f"{len(calls)} compiles for one rule; expected 1 for all sizes, steps and lrs"
    assert len(fast.COMPILE_SECONDS) == 1


def test_fallback_when_compiler_missing_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    monkeypatch.setattr(fast, "compile_available", lambda device=None: (False, "simulated: no C++ compiler"))
    ref = _run("msvag", torch.float32, 5, {"lr": 0.05}, fused=False, foreach=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fst = _run("msvag", torch.float32, 5, {"lr": 0.05}, fused=True)
        _run("adam", torch.float32, 3, {}, fused=True)
    messages = [str(w.message) for w in caught if "compiled optimizer step unavailable" in str(w.message)]
    assert len(messages) == 1 and "simulated" in messages[0]
    _assert_same(fst, ref, torch.float32)
    assert not fast._KERNELS


def test_fallback_when_compile_fails_warns_once(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()

    def broken(kernel: Any, options: dict[str, Any], reciprocal: bool, gm: Any, example_inputs: Any) -> Any:
        raise RuntimeError("simulated Inductor failure")

    monkeypatch.setattr(fast, "_backend", broken)
    monkeypatch.setattr(fast, "compile_available", lambda device=None: (True, ""))
    ref = _run("adam", torch.float32, 6, {"amsgrad": True}, fused=False, foreach=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fst = _run("adam", torch.float32, 6, {"amsgrad": True}, fused=True)
    messages = [str(w.message) for w in caught if "compiled optimizer step unavailable" in str(w.message)]
    assert len(messages) == 1 and "simulated Inductor failure" in messages[0]
    _assert_same(fst, ref, torch.float32)
    fast.reset()


def test_default_stays_eager_for_small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    def forbidden(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("compiled path used")

    monkeypatch.setattr(fast, "fast_step", forbidden)
    monkeypatch.delenv("ADAMLAB_FUSED_MIN_NUMEL", raising=False)
    _run("adam", torch.float32, 2, {})  # fused=None, 100 elements < 1M
    _run("adam", torch.float32, 2, {}, fused=None, foreach=True)
    monkeypatch.setenv("ADAMLAB_FUSED_MIN_NUMEL", "10")
    _run("adam", torch.float32, 2, {}, fused=None, foreach=False)  # explicit foreach: reference path
    with pytest.raises(AssertionError, match="compiled path used"):
        _run("adam", torch.float32, 2, {})  # fused=None, foreach=None, group above the threshold


def test_min_numel_env_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ADAMLAB_FUSED_MIN_NUMEL", "many")
    with pytest.raises(ValueError, match="ADAMLAB_FUSED_MIN_NUMEL"):
        fast.min_numel()


def test_no_compile_env_disables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(fast.NO_COMPILE_ENV, "1")
    ok, reason = fast.compile_available()
    assert not ok and fast.NO_COMPILE_ENV in reason


@needs_compiler
def test_state_dict_round_trip_between_paths() -> None:
    """A run saved from the loop path resumes on the compiled path (same state names and types)."""
    dtype = torch.float64
    ref = _run("adam", dtype, 4, {"lr": 0.01}, fused=False, foreach=False)
    fst = _run("adam", dtype, 4, {"lr": 0.01}, fused=True)
    fst.load_state_dict(copy.deepcopy(ref.state_dict()))  # torch would share same-device tensors
    for opt in (ref, fst):
        for group in opt.param_groups:
            for p in group["params"]:
                p.grad = torch.full_like(p, 0.5)
    # same parameter values too, then one more step on each path
    with torch.no_grad():
        for a, b in zip(fst.param_groups[0]["params"], ref.param_groups[0]["params"], strict=True):
            a.copy_(b)
    assert fst.param_groups[0]["fused"] is False  # load_state_dict restores the saved group options
    fst.param_groups[0]["fused"] = True
    ref.step()
    fst.step()
    _assert_same(fst, ref, dtype)


@needs_compiler
def test_non_contiguous_param_takes_reference_path() -> None:
    base = torch.randn(6, 4, dtype=torch.float64)
    p_ref = base.t().clone().requires_grad_(True)  # non-contiguous leaf (clone keeps the strides)
    p_fast = base.t().clone().requires_grad_(True)
    assert not p_fast.is_contiguous()
    ref = make_optimizer("adam", [p_ref], fused=False)
    fst = make_optimizer("adam", [p_fast], fused=True)
    for _ in range(3):
        g = torch.randn(4, 6, dtype=torch.float64)
        p_ref.grad, p_fast.grad = g.clone(), g.clone()
        ref.step()
        fst.step()
    torch.testing.assert_close(p_fast, p_ref, rtol=1e-12, atol=1e-12)


def test_state_dict_of_fused_optimizer_loads_without_compiling() -> None:
    """``fused=True`` in a saved param group must not make torch cast our int ``step`` (torch does for its fused)."""
    params = [torch.randn(3, requires_grad=True)]
    saved = make_optimizer("adam", params, fused=True, foreach=False).state_dict()
    saved["state"] = {0: {"step": 3, "exp_avg": torch.ones(3), "exp_avg_sq": torch.ones(3)}}
    opt = make_optimizer("adam", params, fused=False)
    opt.load_state_dict(copy.deepcopy(saved))
    state = opt.state[params[0]]
    assert state["step"] == 3 and isinstance(state["step"], torch.Tensor)
    assert opt.param_groups[0]["fused"] is True


def test_scalar_division_rewrite() -> None:
    def f(x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return x / c + x / x

    gm = torch.fx.symbolic_trace(f)
    for node in gm.graph.nodes:  # symbolic_trace records no example values: add them
        if node.name == "x":
            node.meta["example_value"] = torch.ones(3)
        elif node.name == "c":
            node.meta["example_value"] = torch.tensor(2.0)
    assert fast.scalar_division_to_reciprocal(gm) == 1  # x / x (element-wise) stays a division
    x = torch.tensor([1.0, 2.0, 3.0])
    torch.testing.assert_close(gm(x, torch.tensor(4.0)), x / 4.0 + 1.0)
    assert "adamlab.functional.adam.adam" in fast.RECIPROCAL_RULES


@pytest.mark.parametrize("value", [1, "yes", 0.0])
def test_fused_argument_is_validated(value: Any) -> None:
    with pytest.raises(ValueError, match="fused"):
        make_optimizer("adam", [torch.zeros(2, requires_grad=True)], fused=value)
