"""Sweep throughput: K MNIST logistic-regression runs with the serial and vmap backends, against K plain loops.

Usage::

    ADAMLAB_DATA=/work/shared/data python benchmarks/sweep_throughput.py --out sweep_throughput.json
    ADAMLAB_DATA=/work/shared/data python benchmarks/sweep_throughput.py --quick      # 100 steps, K = 1, 16

Method. Each run is one epoch (468 steps at batch 128, the protocol's lr / sqrt(t) schedule) of
``mnist.logreg`` with Adam, seed 0; the K runs of a sweep have K log-spaced learning rates in
[1e-4, 1e-1]. Three ways of doing the K runs, measured in the same process, interleaved per repetition
so that host noise hits them alike:

- ``reference``: K plain PyTorch loops one after another -- ``nn.Linear(784, 10)`` with the same initial
  weights, the same shuffled batches (``torch.randperm`` with the seed, pixels / 255), the same loss
  (cross-entropy plus ``weight_decay / 2 ||W||^2``) and ``torch.optim.Adam(fused=True)``. No adamlab
  code in the loop; no evaluation.
- ``serial``: ``adamlab.runner.sweep(..., backend="serial")`` into a fresh SQLite store, with the runner's
  metrics (evaluation on 10,000 train and 10,000 test images at step 0 and after the last step).
- ``vmap``: the same sweep with ``backend="vmap"`` (one block of K runs; ``compile=True``: the stacked
  Adam step is compiled once, in the untimed warm-up).

Reported per K and method: median wall time, runs per second, and speed-up over the reference
(reference time / method time at the same K; for ``serial`` its inverse is the per-run slow-down).
Targets (issue 7): vmap >= 10x at K = 64 and >= 6x at K = 16; serial <= 1.3x slower per run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

PROBLEM = "mnist.logreg"
WEIGHT_DECAY = 1e-4  # mnist.logreg's default L2 strength


def lr_grid(k: int) -> list[float]:
    if k == 1:
        return [1e-3]
    return [float(10 ** (-4 + 3 * i / (k - 1))) for i in range(k)]


def reference_sweep(k: int, steps: int, batch_size: int = 128, seed: int = 0) -> None:
    """K plain PyTorch training loops, one after another (no adamlab in the loop)."""
    from adamlab.data import load

    images, labels = load("mnist", "train")  # cached by the caller's warm-up; not timed work of adamlab
    n = int(images.shape[0])
    for lr in lr_grid(k):
        torch.manual_seed(seed)
        model = nn.Linear(784, 10)
        opt = torch.optim.Adam(model.parameters(), lr=lr, fused=True)
        gen = torch.Generator().manual_seed(seed)
        step = 0
        while step < steps:
            perm = torch.randperm(n, generator=gen)
            xs, ys = images.index_select(0, perm), labels.index_select(0, perm)
            for start in range(0, n - batch_size + 1, batch_size):
                if step == steps:
                    break
                step += 1
                x = xs[start:start + batch_size].to(torch.float32).div_(255.0).reshape(batch_size, -1)
                y = ys[start:start + batch_size]
                for group in opt.param_groups:
                    group["lr"] = lr / math.sqrt(step)
                opt.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(x), y) + 0.5 * WEIGHT_DECAY * model.weight.square().sum()
                loss.backward()
                opt.step()


def adamlab_sweep(k: int, steps: int, backend: str, workdir: Path) -> dict[str, Any]:
    from adamlab.runner import Store, sweep

    path = workdir / f"{backend}-{k}-{time.monotonic_ns()}.sqlite"
    with Store(path) as store:
        options = {"compile": True} if backend == "vmap" else None  # the stacked Adam step compiled once
        report = sweep(PROBLEM, ["adam"], lr_grid(k), [0], steps, store, backend, quiet=True, eval_every=steps,
                       backend_options=options)
        finals = [store.final_metric(rid, "test_accuracy") for rid in report.run_ids]
    if report.finished + report.diverged != k:
        raise RuntimeError(f"{backend} K={k}: {report}")
    return {"test_accuracy": finals}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ks", default="1,16,64", help="comma list of sweep sizes K (default 1,16,64)")
    parser.add_argument("--steps", type=int, default=468, help="steps per run (default 468 = one epoch)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repetitions per (K, method); median")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--methods", default="reference,serial,vmap", help="subset of reference,serial,vmap")
    parser.add_argument("--quick", action="store_true", help="K = 1, 16; 100 steps; 1 repeat")
    parser.add_argument("--out", help="write the results as JSON here (atomically)")
    args = parser.parse_args(argv)
    if args.quick:
        args.ks, args.steps, args.repeats = "1,16", 100, 1
    if not os.environ.get("ADAMLAB_DATA"):
        parser.error("set ADAMLAB_DATA to the data root (e.g. ADAMLAB_DATA=/work/shared/data)")
    torch.set_num_threads(args.threads)
    ks = [int(x) for x in args.ks.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    times: dict[tuple[int, str], list[float]] = {}
    extra: dict[tuple[int, str], Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Warm-up: load the data, touch every code path once (not timed).
        reference_sweep(2, 20)
        adamlab_sweep(2, 20, "serial", work)
        for k in ks:  # one compile per stacked shape (K), outside the timed region
            adamlab_sweep(k, 3, "vmap", work)
        for rep in range(args.repeats):
            for k in ks:
                for method in methods:
                    t0 = time.perf_counter()
                    if method == "reference":
                        reference_sweep(k, args.steps)
                    else:
                        extra[(k, method)] = adamlab_sweep(k, args.steps, method, work)
                    elapsed = time.perf_counter() - t0
                    times.setdefault((k, method), []).append(elapsed)
                    print(f"rep {rep} K={k:3d} {method:9s} {elapsed:8.3f} s", file=sys.stderr, flush=True)
    rows = []
    for k in ks:
        ref = statistics.median(times[(k, "reference")]) if (k, "reference") in times else None
        for method in methods:
            t = statistics.median(times[(k, method)])
            rows.append({"K": k, "method": method, "seconds": t, "runs_per_s": k / t,
                         "seconds_per_run": t / k, "speedup_vs_reference": (ref / t) if ref else None,
                         "all_seconds": times[(k, method)], **extra.get((k, method), {})})
    print(f"{'K':>3} {'method':9} {'s':>8} {'runs/s':>8} {'s/run':>8} {'speedup':>8}")
    for r in rows:
        sp = "" if r["speedup_vs_reference"] is None else f"{r['speedup_vs_reference']:.2f}x"
        print(f"{r['K']:>3} {r['method']:9} {r['seconds']:8.3f} {r['runs_per_s']:8.2f} {r['seconds_per_run']:8.3f} {sp:>8}")
    result = {"problem": PROBLEM, "optimizer": "adam", "steps": args.steps, "batch_size": 128,
              "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
              "load_average": os.getloadavg(), "rows": rows}
    if args.out:
        out = Path(args.out)
        tmp_out = out.with_name(f".{out.name}.tmp")
        tmp_out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        os.replace(tmp_out, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
