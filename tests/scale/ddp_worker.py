"""One rank of the distributed test: ``python ddp_worker.py RANK WORLD PORT OUT_DIR``.

Trains the test model on this rank's shard of each global batch (gloo, CPU) with
``adamlab.optim.Adam`` and ``adamlab.optim.MSVAG``, three ways: DistributedDataParallel,
DDP + ``ZeroRedundancyOptimizer`` (optimizer state sharded by tensor), and FSDP2 ``fully_shard``
(parameters and state sharded by rows). Rank 0 saves the full parameters of each to
``OUT_DIR/<mode>-<optimizer>.pt`` (a plain tensor dict, loaded with ``weights_only``).
The model, data and steps come from :func:`setup` so the test can rebuild the single-process run.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import torch
from torch import Tensor, nn

STEPS = 6
GLOBAL_BATCH = 8
MODES = ("ddp", "zero", "fsdp2")


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def batches() -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(GLOBAL_BATCH, 5, generator=gen, dtype=torch.float64),
             torch.randint(0, 3, (GLOBAL_BATCH,), generator=gen)) for _ in range(STEPS)]


def optimizers() -> dict[str, tuple[type[torch.optim.Optimizer], dict[str, Any]]]:
    """Optimizer name -> (adamlab class, keyword arguments)."""
    from adamlab.optim import MSVAG, Adam

    # "adam-fused": the compiled path (on FSDP2's local shards, on ZeRO's whole tensors)
    return {"adam": (Adam, {"lr": 0.05}), "msvag": (MSVAG, {"lr": 0.3, "beta": 0.8}),
            "adam-fused": (Adam, {"lr": 0.05, "fused": True})}


def train(model: nn.Module, opt: torch.optim.Optimizer, shard: slice | None = None) -> None:
    for x, y in batches():
        if shard is not None:
            x, y = x[shard], y[shard]
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()  # mean over the local shard; DDP averages
        opt.step()


def main(rank: int, world: int, port: int, out: str) -> None:
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        per = GLOBAL_BATCH // world
        shard = slice(rank * per, (rank + 1) * per)
        for name, (cls, kwargs) in optimizers().items():
            for mode in MODES:
                model = make_model()
                if mode == "fsdp2":
                    from torch.distributed.fsdp import fully_shard

                    for layer in model:
                        if list(layer.parameters()):
                            fully_shard(layer)
                    fully_shard(model)
                    train(model, cls(model.parameters(), **kwargs), shard)
                    state = {k: getattr(v, "full_tensor", lambda v=v: v)().detach().clone()
                             for k, v in model.state_dict().items()}  # all ranks take part in the gather
                else:
                    ddp = DistributedDataParallel(model)
                    if mode == "zero":
                        from torch.distributed.optim import ZeroRedundancyOptimizer

                        opt = ZeroRedundancyOptimizer(list(ddp.parameters()), optimizer_class=cls, **kwargs)
                    else:
                        opt = cls(ddp.parameters(), **kwargs)
                    train(ddp, opt, shard)
                    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                if rank == 0:
                    tmp = os.path.join(out, f".{mode}-{name}.pt.tmp")
                    torch.save(state, tmp)
                    os.replace(tmp, os.path.join(out, f"{mode}-{name}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
