"""Measure what :class:`~adamlab.dissect.hooks.GradientStatsHook` costs relative to one training step.

``python -m benchmarks.dissect_cost`` prints, for a small MLP on synthetic data (784-256-10 by default,
batch 128, Adam), the median wall time of one training step (forward, backward, ``optimizer.step``) and of
one hook call, and their ratio. The number quoted in docs/dissect.md comes from here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect.hooks import GradientStatsHook


class _Problem:
    criterion = staticmethod(F.cross_entropy)
    name = "synthetic"


def hook_cost(*, hidden: int = 256, batch: int = 128, repeats: int = 10, max_examples: int | None = None,
              seed: int = 0) -> dict[str, float]:
    """Median seconds per training step and per hook call, and their ratio."""
    from adamlab.optim.registry import make_optimizer

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    x = torch.randn(batch, 784)
    y = torch.randint(0, 10, (batch,))
    hook = GradientStatsHook(every=1, max_examples=max_examples)
    problem = _Problem()

    def train_step() -> None:
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()

    step_times, hook_times = [], []
    for i in range(repeats + 2):  # two warm-up rounds
        t0 = time.perf_counter()
        train_step()
        t1 = time.perf_counter()
        hook(i + 1, model, opt, problem, (x, y))
        t2 = time.perf_counter()
        if i >= 2:
            step_times.append(t1 - t0)
            hook_times.append(t2 - t1)
    step = statistics.median(step_times)
    call = statistics.median(hook_times)
    return {"step_s": step, "hook_s": call, "ratio": call / step,
            "parameters": float(sum(p.numel() for p in model.parameters())), "batch": float(batch)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dissect_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--max-examples", type=int, default=None)
    args = parser.parse_args(argv)
    r = hook_cost(hidden=args.hidden, batch=args.batch, max_examples=args.max_examples)
    print(f"MLP 784-{args.hidden}-10 ({int(r['parameters'])} parameters), batch {args.batch}, "
          f"{torch.get_num_threads()} threads: training step {1e3 * r['step_s']:.2f} ms, "
          f"hook call {1e3 * r['hook_s']:.2f} ms, ratio {r['ratio']:.1f}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
