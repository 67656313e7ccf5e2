"""One rank of the DDP test: ``python ddp_worker.py RANK WORLD PORT OUT_DIR``.

Trains the test model with DistributedDataParallel (gloo, CPU) on this rank's shard of each global
batch, with ``adamlab.optim.Adam`` and ``adamlab.optim.MSVAG``, and rank 0 saves the parameters
after every optimizer to ``OUT_DIR/<name>.pt`` (a plain tensor dict, loaded with ``weights_only``).
The model, data and steps come from :func:`setup` so the test can rebuild the single-process run.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

import torch
from torch import Tensor, nn

STEPS = 6
GLOBAL_BATCH = 8


def make_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).double()


def batches() -> list[tuple[Tensor, Tensor]]:
    gen = torch.Generator().manual_seed(1)
    return [(torch.randn(GLOBAL_BATCH, 5, generator=gen, dtype=torch.float64),
             torch.randint(0, 3, (GLOBAL_BATCH,), generator=gen)) for _ in range(STEPS)]


def optimizers() -> dict[str, Callable[[list[nn.Parameter]], torch.optim.Optimizer]]:
    from adamlab.optim import MSVAG, Adam

    return {"adam": lambda ps: Adam(ps, lr=0.05), "msvag": lambda ps: MSVAG(ps, lr=0.3, beta=0.8)}


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
        for name, make in optimizers().items():
            model = make_model()
            ddp = DistributedDataParallel(model)
            train(ddp, make(list(ddp.parameters())), shard)
            if rank == 0:
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                tmp = os.path.join(out, f".{name}.pt.tmp")
                torch.save(state, tmp)
                os.replace(tmp, os.path.join(out, f"{name}.pt"))
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
