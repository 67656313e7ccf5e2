"""The fast path's policy is deterministic, and a failing compiled step never leaves a half-stepped group.

- which path a group takes is a function of the program (flags, sizes, step count, environment), never
  of a clock: patched clocks change nothing, and a rerun beside a CPU hog is bit-identical;
- a kernel failure at the second tensor of a group is undone: the step equals the eager path's exactly,
  and the group stays on the eager path, with a warning that says so.
"""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import torch

from adamlab.optim import fast
from adamlab.optim.registry import make_optimizer

SHAPES = [(33, 7), (5,)]


def _grads(gen: torch.Generator, params: list[torch.Tensor]) -> None:
    for p in params:
        p.grad = 0.2 + torch.randn(p.shape, generator=gen)


def _record_paths(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the step of every compiled-path call (and take the reference path for it)."""
    monkeypatch.setattr(fast, "compile_available", lambda device=None: (True, ""))
    calls: list[int] = []
    counter = itertools.count(1)

    def recording(rule: Any, params: Any, *rest: Any, **kw: Any) -> list[int]:
        calls.append(next(counter))
        return list(range(len(params)))

    monkeypatch.setattr(fast, "fast_step", recording)
    return calls


def test_policy_ignores_the_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """A clock that jumps by 1000 s on every read (a very busy machine) does not change the path."""
    fast.reset()
    monkeypatch.delenv("ADAMLAB_FUSED_MIN_NUMEL", raising=False)
    monkeypatch.delenv(fast.COMPILE_AFTER_ENV, raising=False)
    calls = _record_paths(monkeypatch)
    ticks = itertools.count(0, 1000.0)
    for name in ("perf_counter", "monotonic", "time", "process_time"):
        monkeypatch.setattr(time, name, lambda: float(next(ticks)))
    params = [torch.randn(s, requires_grad=True) for s in SHAPES]
    opt = make_optimizer("adam", params)
    gen = torch.Generator().manual_seed(0)
    for step in range(1, fast.DEFAULT_COMPILE_AFTER_STEPS + 4):
        _grads(gen, params)
        opt.step()
        assert len(calls) == max(0, step - fast.DEFAULT_COMPILE_AFTER_STEPS), step
    fast.reset()


def test_compile_after_steps_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fast.COMPILE_AFTER_ENV, raising=False)
    assert fast.compile_after_steps() == fast.DEFAULT_COMPILE_AFTER_STEPS == 10
    monkeypatch.setenv(fast.COMPILE_AFTER_ENV, "0")
    assert fast.compile_after_steps() == 0
    for bad in ("-1", "soon"):
        monkeypatch.setenv(fast.COMPILE_AFTER_ENV, bad)
        with pytest.raises(ValueError, match=f"{fast.COMPILE_AFTER_ENV} must be an integer >= 0"):
            fast.compile_after_steps()


def test_large_group_compiles_from_the_first_step(monkeypatch: pytest.MonkeyPatch) -> None:
    fast.reset()
    monkeypatch.setenv("ADAMLAB_FUSED_MIN_NUMEL", "100")
    calls = _record_paths(monkeypatch)
    params = [torch.randn(s, requires_grad=True) for s in SHAPES]  # 236 elements >= 100
    opt = make_optimizer("rmsprop", params)
    _grads(torch.Generator().manual_seed(0), params)
    opt.step()
    assert calls == [1]
    fast.reset()


class _Boom(RuntimeError):
    pass


def test_failure_at_the_second_tensor_is_undone_and_the_group_goes_eager(monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel writes the first tensor (here: garbage), then fails on the second: everything is
    restored, the step is the eager path's exactly, and later steps stay eager (no kernel call)."""
    fast.reset()
    monkeypatch.setattr(fast, "compile_available", lambda device=None: (True, ""))
    calls: list[int] = []

    def injected(self: Any, param: torch.Tensor, grad: torch.Tensor, hyper: torch.Tensor, *states: torch.Tensor) -> bool:
        calls.append(1)
        if len(calls) == 2:
            raise _Boom("injected failure at the second tensor")
        param.add_(123.0)
        for s in states:
            s.add_(7.0)
        return True

    monkeypatch.setattr(fast.Kernel, "__call__", injected)

    def run(**path: Any) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        gen = torch.Generator().manual_seed(1)
        params = [torch.randn(s, generator=gen).requires_grad_(True) for s in SHAPES]
        opt = make_optimizer("adam", params, lr=0.01, **path)
        for _ in range(4):
            _grads(gen, params)
            opt.step()
        state = [t.clone() for p in params for t in (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"])]
        return [p.detach().clone() for p in params], state

    with pytest.warns(RuntimeWarning) as caught:
        got, got_state = run(fused=True)
    assert len(calls) == 2  # the first step's two calls; never again
    messages = [str(w.message) for w in caught if "compiled step of Adam failed" in str(w.message)]
    assert len(messages) == 1
    assert "injected failure" in messages[0] and "restored" in messages[0]
    assert "foreach/loop path" in messages[0] and "last bits" in messages[0]
    monkeypatch.undo()
    for foreach in (False, True):
        want, want_state = run(fused=False, foreach=foreach)
        for a, b in zip(got + got_state, want + want_state, strict=True):
            assert torch.equal(a, b)
    fast.reset()


_PROGRAM = textwrap.dedent("""
    import sys, torch
    from adamlab.optim.registry import make_optimizer
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(20, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    opt = make_optimizer(sys.argv[1], model.parameters(), lr=0.01)
    x, y = torch.randn(64, 20), torch.randint(0, 3, (64,))
    for _ in range(int(sys.argv[2])):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    sys.stdout.write(b"".join(p.detach().numpy().tobytes() for p in model.parameters()).hex())
""")

_HOG = "import time\nend = time.time() + 120\nwhile time.time() < end:\n    pass\n"


@pytest.mark.compile
def test_rerun_beside_a_cpu_hog_is_bit_identical(tmp_path: Any) -> None:
    """The same program, idle and beside two busy processes, gives the same bits (it switches paths)."""
    if not fast.compile_available()[0]:
        pytest.skip("no torch.compile toolchain here")
    env = {**os.environ, fast.COMPILE_AFTER_ENV: "5", "ADAMLAB_KERNEL_CACHE": str(tmp_path / "snapshots"),
           "PYTHONPATH": os.pathsep.join(sys.path)}
    argv = [sys.executable, "-c", _PROGRAM, "adam", "12"]
    idle = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=600).stdout
    hogs = [subprocess.Popen([sys.executable, "-c", _HOG]) for _ in range(2)]
    try:
        busy = subprocess.run(argv, env=env, capture_output=True, check=True, timeout=600).stdout
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert idle and idle == busy
