"""The one kernel builder of adamlab.optim.fast: compiles per model, direct calls, the vmap stacks, policy.

Each test compiles at most a couple of small kernels (seconds with a cold Inductor cache on 2 cores).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adamlab import functional as F
from adamlab.optim import fast
from adamlab.optim.registry import make_optimizer

pytestmark = pytest.mark.compile

@pytest.fixture(autouse=True)
def _private_snapshots(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel snapshots of earlier processes would skip the compiles these tests count or break."""
    monkeypatch.setenv(fast.SNAPSHOT_ENV, str(tmp_path_factory.mktemp("snapshots")))
    fast._have_snapshots.cache_clear()


needs_compiler = pytest.mark.skipif(not fast.compile_available()[0], reason="no torch.compile toolchain here")

# Models of different shapes and tensor counts: an MLP, a conv net, a logistic regression, a lone matrix.
MODELS = [
    [(64, 20), (64,), (10, 64), (10,)],
    [(8, 3, 3, 3), (8,), (16, 8, 3, 3), (16,), (10, 16 * 4), (10,)],
    [(10, 784), (10,)],
    [(33, 7)],
]


def _count_compiles(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = fast._backend

    def counting(kernel: Any, options: dict[str, Any], reciprocal: bool, gm: Any, example_inputs: Any) -> Any:
        calls.append(1)
        return real(kernel, options, reciprocal, gm, example_inputs)

    monkeypatch.setattr(fast, "_backend", counting)
    return calls


def _steps(name: str, shapes: list[tuple[int, ...]], steps: int, seed: int = 0, **path: Any) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=gen).requires_grad_(True) for s in shapes]
    opt = make_optimizer(name, params, lr=0.01, **path)
    for _ in range(steps):
        for p in params:
            p.grad = 0.2 + torch.randn(p.shape, generator=gen)
        opt.step()
    return [p.detach().clone() for p in params]


@needs_compiler
def test_one_compile_per_rule_for_every_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Four models of different shapes (and a large tensor on all threads) share one compile of the rule."""
    fast.reset()
    calls = _count_compiles(monkeypatch)
    for shapes in [*MODELS, [(fast.PARALLEL_MIN_NUMEL + 3,), (5,)]]:
        got = _steps("msvag", shapes, 3, fused=True)
        want = _steps("msvag", shapes, 3, fused=False, foreach=False)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-6, atol=3e-6)
    assert len(calls) == 1, f"{len(calls)} compiles of one rule over {len(MODELS) + 1} models; expected 1"


@needs_compiler
def test_kernels_are_called_without_dynamo_after_the_first_call(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    _steps("adam", MODELS[2], 2, fused=True)
    (kernel,) = fast._KERNELS.values()
    assert kernel.direct is not None and kernel.direct_level == "inductor"

    def no_dynamo(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("Dynamo entered after the first call")

    monkeypatch.setattr(kernel, "_compiled", no_dynamo)
    got = _steps("adam", MODELS[0], 4, fused=True)
    want = _steps("adam", MODELS[0], 4, fused=False, foreach=False)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=3e-6)


@needs_compiler
def test_guarded_env_keeps_dynamo(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    monkeypatch.setenv(fast.GUARDED_ENV, "1")
    got = _steps("adam", MODELS[2], 3, fused=True)
    (kernel,) = fast._KERNELS.values()
    assert kernel.direct is None
    want = _steps("adam", MODELS[2], 3, fused=False, foreach=False)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=3e-6)
    fast.reset()


def test_wrong_dtype_grad_takes_reference_path() -> None:
    """A gradient of another dtype than its parameter never reaches a kernel (no guard would catch it)."""
    p = torch.randn(6, dtype=torch.float64)
    assert fast.fast_step(F.sgd, [p], [torch.randn(6, dtype=torch.float32)], [None], {"lr": 0.1}) == [0]


@needs_compiler
@pytest.mark.parametrize(("shape", "axis"), [((3, 5, 4), 1), ((4, 6), 0), ((6, 4), 1), ((1, 5), 0), ((2,), 0)])
def test_stacked_step_equals_rule(shape: tuple[int, ...], axis: int) -> None:
    """The vmap backend's kernels: per-run hyperparameters broadcast along the run axis, from the same builder."""
    gen = torch.Generator().manual_seed(3)
    k = shape[axis]
    param = torch.randn(shape, generator=gen)
    grad = torch.randn(shape, generator=gen)
    m, v = torch.zeros(shape), torch.zeros(shape)
    lrs = torch.linspace(0.01, 0.1, k)
    ref = [param.clone(), m.clone(), v.clone()]
    for step in (1, 2, 3):
        bc = F.adam_coefficients(step, 0.9, 0.999)
        values = [torch.full((k,), bc["bias_correction1"]), torch.full((k,), bc["bias_correction2"]), lrs]
        names = ("bias_correction1", "bias_correction2", "lr")
        static = (("amsgrad", False), ("beta1", 0.9), ("beta2", 0.999), ("eps", 1e-8))
        assert fast.stacked_step(F.adam, static, names, param, grad, [m, v, None], values, axis)
        view = [1] * len(shape)
        view[axis] = k
        new = F.adam(ref[0], grad, ref[1], ref[2], None, lr=lrs.view(view), beta1=0.9, beta2=0.999, eps=1e-8,
                     bias_correction1=bc["bias_correction1"], bias_correction2=bc["bias_correction2"])
        ref = list(new[:3])
    for got, want in zip((param, m, v), ref, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7)


@needs_compiler
def test_stacked_and_optimizer_kernels_share_one_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    calls = _count_compiles(monkeypatch)
    p, g = torch.randn(4, 6), torch.randn(4, 6)
    assert fast.stacked_step(F.sgd, (("dampening", 0.0), ("momentum", 0.0), ("nesterov", False)), ("lr",),
                             p, g, [None], [torch.full((4,), 0.1)], 0)
    p2, g2 = torch.randn(5, 9), torch.randn(5, 9)  # another shape, same pattern: no new compile
    assert fast.stacked_step(F.sgd, (("dampening", 0.0), ("momentum", 0.0), ("nesterov", False)), ("lr",),
                             p2, g2, [None], [torch.full((5,), 0.1)], 0)
    assert len(calls) == 1 and len(fast._KERNELS) == 1
    fast.reset()
    assert not fast._KERNELS and not fast.COMPILE_SECONDS and not fast._FLAT


def test_default_policy_switches_after_a_fixed_number_of_steps(monkeypatch: pytest.MonkeyPatch) -> None:
    """fused=None on a small group: the reference path for compile_after_steps() steps, then compiled."""
    fast.reset()
    monkeypatch.delenv("ADAMLAB_FUSED_MIN_NUMEL", raising=False)
    monkeypatch.setenv(fast.COMPILE_AFTER_ENV, "3")
    monkeypatch.setattr(fast, "compile_available", lambda device=None: (True, ""))
    used: list[int] = []
    monkeypatch.setattr(fast, "fast_step", lambda rule, params, *rest, **kw: used.append(1) or list(range(len(params))))
    params = [torch.randn(7, 5, requires_grad=True)]
    opt = make_optimizer("adam", params)
    params[0].grad = torch.ones(7, 5)
    for _ in range(3):
        opt.step()
    assert not used
    opt.step()
    opt.step()
    assert len(used) == 2
    explicit = make_optimizer("adam", params, foreach=False)  # explicit reference path: never switches
    for _ in range(5):
        explicit.step()
    assert len(used) == 2


@needs_compiler
def test_warm_start_from_snapshot_skips_compiling(monkeypatch: pytest.MonkeyPatch) -> None:
    """A kernel compiled once is saved; a fresh cache (as in a new process) loads it without Dynamo."""
    fast.reset()
    first = _steps("mssdva", MODELS[0], 3, fused=True)
    assert [k.direct_level for k in fast._KERNELS.values()] == ["inductor"]
    fast.reset()  # forget every kernel, as a new process would
    calls = _count_compiles(monkeypatch)
    again = _steps("mssdva", MODELS[0], 3, fused=True)
    assert not calls and [k.direct_level for k in fast._KERNELS.values()] == ["snapshot"]
    want = _steps("mssdva", MODELS[0], 3, fused=False, foreach=False)
    for a, b, c in zip(first, again, want, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.testing.assert_close(b, c, rtol=1e-6, atol=3e-6)


@needs_compiler
def test_stale_or_broken_snapshot_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    _steps("adam", MODELS[3], 2, fused=True)
    (kernel,) = fast._KERNELS.values()
    path = fast._snapshot_file(kernel.key)
    assert path is not None
    with open(path, "w") as f:
        f.write('{"version": 1, "key": "something else"}')
    fast.reset()
    calls = _count_compiles(monkeypatch)
    got = _steps("adam", MODELS[3], 2, fused=True)
    assert len(calls) == 1  # compiled again
    want = _steps("adam", MODELS[3], 2, fused=False, foreach=False)
    torch.testing.assert_close(got[0], want[0], rtol=1e-6, atol=3e-6)


def test_import_does_not_load_dynamo() -> None:
    """Importing adamlab.optim must not import Dynamo or Inductor (seconds of start-up)."""
    import subprocess
    import sys

    code = "import sys, adamlab.optim; print('torch._dynamo' in sys.modules or 'torch._inductor' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    assert out.stdout.strip() == "False"
