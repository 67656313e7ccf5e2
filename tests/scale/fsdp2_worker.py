"""One rank of the FSDP2 / DTensor tests (started by ``torch.multiprocessing.spawn`` from test_fsdp2.py).

Every case trains a model sharded with FSDP2 ``fully_shard`` (``Shard(0)``: row shards, uneven where a
layer has an odd number of rows) on this rank's half of each global batch; rank 0 saves the full
parameters (a plain tensor dict, read back with ``weights_only``), and every rank saves which steps took
the compiled path, so the test can check both ranks chose alike. The models, data and optimizers come
from here, so that the test rebuilds the single-process run.
"""

from __future__ import annotations

import os
from typing import Any

import torch
from torch import Tensor, nn

GLOBAL_BATCH = 8


def small_model(dtype: torch.dtype = torch.float64) -> nn.Module:
    """7 and 3 rows: uneven shards on 2 ranks (4 + 3 rows, 2 + 1 rows)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(dtype)


def large_model() -> nn.Module:
    """One group of 1,051,651 elements (>= the 1M threshold: fused=None compiles from step 1)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 1024), nn.Tanh(), nn.Linear(1024, 960), nn.Tanh(), nn.Linear(960, 3))


def batches(model: nn.Module, steps: int) -> list[tuple[Tensor, Tensor]]:
    first = next(model.parameters())
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(GLOBAL_BATCH, first.shape[1], generator=gen, dtype=first.dtype),
             torch.randint(0, 3, (GLOBAL_BATCH,), generator=gen)) for _ in range(steps)]


def make_opt(name: str, params: Any, **path: Any) -> torch.optim.Optimizer:
    from adamlab.optim.registry import make_optimizer

    if name == "torch-adam":  # the yardstick: torch's own Adam on the same set-up
        return torch.optim.Adam(params, lr=0.01, **path)
    return make_optimizer(name, params, lr=0.01, **path)


def train(model: nn.Module, opt: torch.optim.Optimizer, data: list[tuple[Tensor, Tensor]],
          shard: slice | None = None) -> None:
    for x, y in data:
        if shard is not None:
            x, y = x[shard], y[shard]
        opt.zero_grad()
        # the mean over the local half; FSDP2 averages the gradients over the ranks
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def shard_model(model: nn.Module) -> nn.Module:
    from torch.distributed.fsdp import fully_shard

    for layer in model:
        if list(layer.parameters()):
            fully_shard(layer)
    fully_shard(model)
    return model


def full_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: getattr(v, "full_tensor", lambda v=v: v)().detach().clone() for k, v in model.state_dict().items()}


def _record_compiled_steps() -> list[int]:
    """Count the compiled-path calls that updated tensors (wraps fast.fast_step, which returns the
    indices it left to the reference path)."""
    from adamlab.optim import fast

    calls: list[int] = []
    real = fast.fast_step

    def recording(*args: Any, **kwargs: Any) -> list[int]:
        left = real(*args, **kwargs)
        if len(left) < len(args[1]):
            calls.append(1)
        return left

    fast.fast_step = recording  # type: ignore[assignment]
    return calls


def _count_plans() -> list[int]:
    """Count the compiled path's plans built (one per bucket, kept while the shards' memory stays)."""
    from adamlab.optim import fast

    built: list[int] = []
    init = fast._Plan.__init__

    def counting(self: Any, *args: Any, **kwargs: Any) -> None:
        built.append(1)
        init(self, *args, **kwargs)

    fast._Plan.__init__ = counting  # type: ignore[method-assign]
    return built


def _save(obj: Any, out: str, name: str) -> None:
    tmp = os.path.join(out, f".{name}.tmp")
    torch.save(obj, tmp)
    os.rename(tmp, os.path.join(out, name))


def run_case(rank: int, world: int, out: str, case: dict[str, Any]) -> None:
    shard = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    model = shard_model(large_model() if case["model"] == "large" else small_model(case.get("dtype", torch.float64)))
    data = batches(model, case["steps"])
    calls = _record_compiled_steps() if case.get("record") else []
    plans = _count_plans() if case.get("record") else []
    opt = make_opt(case["optimizer"], model.parameters(), **case["path"])
    per_step = []
    for x, y in data:
        before = len(calls)
        train(model, opt, [(x, y)], shard)
        per_step.append(len(calls) - before)
    state = full_state(model)  # every rank takes part in the gathers
    _save(per_step, out, f"{case['id']}-paths-{rank}.pt")
    _save(len(plans), out, f"{case['id']}-plans-{rank}.pt")
    if rank == 0:
        _save(state, out, f"{case['id']}.pt")


def run_checkpoint_case(rank: int, world: int, out: str, case: dict[str, Any]) -> None:
    """Train k steps, round-trip the optimizer state through get/set_optimizer_state_dict and DCP into a
    fresh model and optimizer, train on: the result must equal an uninterrupted run bit for bit."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    shard = slice(rank * GLOBAL_BATCH // world, (rank + 1) * GLOBAL_BATCH // world)
    name, path = case["optimizer"], case["path"]
    data = batches(small_model(), case["steps"])
    split = case["steps"] // 2

    straight = shard_model(small_model())
    opt = make_opt(name, straight.parameters(), **path)
    train(straight, opt, data, shard)

    first = shard_model(small_model())
    opt1 = make_opt(name, first.parameters(), **path)
    train(first, opt1, data[:split], shard)
    folder = os.path.join(out, f"dcp-{case['id']}")
    dcp.save({"model": get_model_state_dict(first), "optim": get_optimizer_state_dict(first, opt1)},
             checkpoint_id=folder)

    second = shard_model(small_model())
    opt2 = make_opt(name, second.parameters(), **path)
    train(second, opt2, data[:1], shard)  # state of the right structure, then overwritten
    target = {"model": get_model_state_dict(second), "optim": get_optimizer_state_dict(second, opt2)}
    dcp.load(target, checkpoint_id=folder)
    set_model_state_dict(second, target["model"])
    set_optimizer_state_dict(second, opt2, target["optim"])
    train(second, opt2, data[split:], shard)

    a, b = full_state(straight), full_state(second)
    if rank == 0:
        _save({"straight": a, "resumed": b}, out, f"{case['id']}.pt")


def run_refusal_case(rank: int, world: int, out: str, case: dict[str, Any]) -> None:
    """ND-Adam on a weight sharded by columns (``Shard(1)``): its rows are split, which it refuses."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    weight = nn.Parameter(distribute_tensor(torch.randn(6, 4, dtype=torch.float64), mesh, [Shard(1)]))
    opt = make_opt("ndadam", [weight])
    weight.grad = distribute_tensor(torch.ones(6, 4, dtype=torch.float64), mesh, [Shard(1)])
    try:
        opt.step()
        message = ""
    except ValueError as exc:
        message = str(exc)
    _save(message, out, f"{case['id']}-{rank}.pt")


def main(rank: int, world: int, port: int, out: str, cases: list[dict[str, Any]]) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        for case in cases:
            if case.get("checkpoint"):
                run_checkpoint_case(rank, world, out, case)
            elif case.get("refusal"):
                run_refusal_case(rank, world, out, case)
            else:
                run_case(rank, world, out, case)
            dist.barrier()
    finally:
        dist.destroy_process_group()
