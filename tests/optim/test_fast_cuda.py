"""The compiled path on CUDA tensors (Inductor's Triton backend): the CPU tests' checks, on the GPU.

Skipped without a CUDA device (or without Triton).
"""

from __future__ import annotations

from typing import Any

import pytest
import torch

from adamlab import functional as F
from adamlab.optim import fast
from adamlab.optim.registry import make_optimizer

pytestmark = [
    pytest.mark.compile,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device"),
]

@pytest.fixture(autouse=True)
def _private_snapshots(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Kernel snapshots of earlier processes would skip the compiles these tests count or break."""
    monkeypatch.setenv(fast.SNAPSHOT_ENV, str(tmp_path_factory.mktemp("snapshots")))
    fast._have_snapshots.cache_clear()


RTOL = {torch.float32: 1e-6, torch.float64: 1e-12}
SHAPES = [(70, 50), (13,), (3, 4, 2), (), (fast.PARALLEL_MIN_NUMEL + 5,)]


def _run(name: str, dtype: torch.dtype, steps: int, **path: Any) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    params = [torch.randn(s, generator=gen, dtype=dtype).cuda().requires_grad_(True) for s in SHAPES]
    opt = make_optimizer(name, params, lr=0.01, **path)
    for t in range(steps):
        for p in params:
            p.grad = (0.3 + torch.randn(p.shape, generator=gen, dtype=dtype)).cuda()
        if t == steps // 2:
            opt.param_groups[0]["lr"] *= 0.5
        opt.step()
    return [p.detach().cpu() for p in params]


@pytest.mark.parametrize(("name", "dtype"), [("adam", torch.float32), ("msvag", torch.float64),
                                             ("mssdva", torch.float32), ("adagrad", torch.float32)])
def test_cuda_compiled_equals_loop(name: str, dtype: torch.dtype) -> None:
    if not fast.compile_available(torch.device("cuda"))[0]:
        pytest.skip(fast.compile_available(torch.device("cuda"))[1])
    got = _run(name, dtype, 20, fused=True)
    want = _run(name, dtype, 20, fused=False, foreach=False)
    rtol = RTOL[dtype]
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, rtol=rtol, atol=3 * rtol)
    assert any(key[7] == "cuda" for key in fast.COMPILE_SECONDS)


def test_cuda_one_compile_for_two_models(monkeypatch: pytest.MonkeyPatch) -> None:
    if not fast.compile_available(torch.device("cuda"))[0]:
        pytest.skip(fast.compile_available(torch.device("cuda"))[1])
    fast.reset()
    calls: list[int] = []
    real = fast._backend

    def counting(kernel: Any, options: dict[str, Any], reciprocal: bool, gm: Any, example_inputs: Any) -> Any:
        calls.append(1)
        return real(kernel, options, reciprocal, gm, example_inputs)

    monkeypatch.setattr(fast, "_backend", counting)
    for shapes in ([(10, 784), (10,)], [(300, 30), (30,), (7, 7, 3)]):
        params = [torch.randn(s, device="cuda", requires_grad=True) for s in shapes]
        opt = make_optimizer("adam", params, fused=True)
        for _ in range(3):
            for p in params:
                p.grad = torch.randn_like(p)
            opt.step()
    assert len(calls) == 1


def test_cuda_stacked_step_equals_rule() -> None:
    if not fast.compile_available(torch.device("cuda"))[0]:
        pytest.skip(fast.compile_available(torch.device("cuda"))[1])
    param, grad = torch.randn(4, 6, device="cuda"), torch.randn(4, 6, device="cuda")
    buf = torch.zeros(4, 6, device="cuda")
    lrs = torch.linspace(0.01, 0.1, 4, device="cuda")
    want = F.sgd(param.clone(), grad, buf.clone(), lr=lrs.view(4, 1), momentum=0.9, dampening=0.0, nesterov=False)
    static = (("dampening", 0.0), ("momentum", 0.9), ("nesterov", False))
    assert fast.stacked_step(F.sgd, static, ("lr",), param, grad, [buf], [lrs], 0)
    torch.testing.assert_close(param, want[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(buf, want[1], rtol=1e-6, atol=1e-7)
