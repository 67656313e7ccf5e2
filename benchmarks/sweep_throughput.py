"""Sweep throughput: K runs with the serial and vmap backends, against K plain PyTorch loops.

Usage::

    ADAMLAB_DATA=/work/shared/data python benchmarks/sweep_throughput.py --out sweep_throughput.json
    ADAMLAB_DATA=/work/shared/data python benchmarks/sweep_throughput.py --quick      # 100 steps, K = 1, 16

Two workloads (``--workloads``, default both):

``mnist``: each run is one epoch (468 steps at batch 128, the protocol's lr / sqrt(t) schedule) of
``mnist.logreg`` with Adam, seed 0; the K runs of a sweep have K log-spaced learning rates in [1e-4, 1e-1]
(``--ks``, default 1, 16, 64).

``quadratic``: ``quadratic.noisy`` with its default options (d = 100, well-conditioned, rotated,
nu = 0.1), Adam, 1,000 steps at batch 1 (evaluated every 10 steps, the protocol), K = 640 runs = 64
log-spaced learning rates in [1e-4, 1e-1] x 10 seeds (``--quadratic-k``), as in DeepOBS's protocol.

Three ways of doing the K runs, measured in the same process, interleaved per repetition so that host
noise hits them alike:

- ``reference``: K plain PyTorch loops one after another -- the same model and initial weights, the same
  batches (seeded ``torch.randperm`` and pixels / 255; or the seeded Gaussian noise stream of the
  quadratic), the same loss and ``torch.optim.Adam(fused=True)``. No adamlab code in the loop; no
  evaluation. For the quadratic only ``--reference-runs`` (64) of the 640 loops are timed (one per
  learning rate, seeds in turn) and the time is scaled by 640 / 64: every loop does the same work.
- ``serial``: ``adamlab.runner.sweep(..., backend="serial")`` into a fresh SQLite store, with the runner's
  metrics (MNIST: evaluation on 10,000 train and 10,000 test images at step 0 and after the last step;
  quadratic: the exact loss every 10 steps). For the quadratic it is timed on ``--reference-runs`` runs
  and scaled, like the reference.
- ``vmap``: the same sweep with ``backend="vmap"`` (MNIST: one block of K runs, ``compile=True``: the
  stacked Adam step is compiled once, in the untimed warm-up; quadratic: one block of 640 runs, eager;
  and again as ``vmap-1thread`` with the backend's ``threads=1`` option).

Reported per workload, K and method: median wall time, runs per second, and speed-up over the reference
(reference time / method time at the same K; for ``serial`` its inverse is the per-run slow-down),
printed as a markdown table. Targets (issue 12): MNIST vmap >= 12x at K = 64 and >= 6x at K = 16;
quadratic vmap >= 30x at K = 640; serial <= 1.2x the reference per run.
"""

from __future__ import annotations

import argparse
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


QUADRATIC = "quadratic.noisy"
QUADRATIC_STEPS = 1000
QUADRATIC_SEEDS = 10


def quadratic_grid(k: int) -> tuple[list[float], list[int]]:
    """K = n_lr x 10 runs: n_lr log-spaced learning rates in [1e-4, 1e-1], 10 seeds each."""
    seeds = min(QUADRATIC_SEEDS, k)
    n_lr = max(1, k // seeds)
    return lr_grid(n_lr) if n_lr > 1 else [1e-3], list(range(seeds))


def quadratic_reference(k: int, runs: int, steps: int = QUADRATIC_STEPS) -> float:
    """``runs`` of the K plain loops (learning rates of the grid in turn, seeds in turn); returns the time
    of all K loops, scaled from the ``runs`` timed."""
    from adamlab import problems

    problem = problems.get(QUADRATIC)
    q, nu, d = problem.hessian, problem.nu, problem.d
    lrs, seeds = quadratic_grid(k)
    pairs = [(lr, seed) for lr in lrs for seed in seeds]
    chosen = [pairs[(i * len(pairs)) // runs] for i in range(runs)]
    t0 = time.perf_counter()
    for lr, seed in chosen:
        theta = torch.nn.Parameter(torch.ones(d))
        opt = torch.optim.Adam([theta], lr=lr, fused=True)
        gen = torch.Generator().manual_seed(seed)
        for _ in range(steps):
            z = torch.randn(1, d, generator=gen)
            opt.zero_grad(set_to_none=True)
            loss = 0.5 * theta @ (q @ theta) + (nu * (q @ z.mean(0))) @ theta
            float(loss.detach())
            loss.backward()
            opt.step()
    return (time.perf_counter() - t0) * len(pairs) / len(chosen)


def quadratic_sweep(k: int, backend: str, workdir: Path, runs: int | None = None,
                    steps: int = QUADRATIC_STEPS, options: dict[str, Any] | None = None) -> float:
    """The adamlab sweep of the K quadratic runs (``runs`` of them, scaled to K, when given); seconds."""
    from adamlab.runner import Store, expand_grid, run_configs

    lrs, seeds = quadratic_grid(k)
    configs = expand_grid(QUADRATIC, ["adam"], lrs, seeds, steps)
    chosen = configs if runs is None else [configs[(i * len(configs)) // runs] for i in range(runs)]
    path = workdir / f"q-{backend}-{k}-{time.monotonic_ns()}.sqlite"
    t0 = time.perf_counter()
    with Store(path) as store:
        report = run_configs(chosen, store, backend, quiet=True, backend_options=options)
    elapsed = time.perf_counter() - t0
    if report.finished + report.diverged != len(chosen):
        raise RuntimeError(f"{backend} quadratic K={k}: {report}")
    return elapsed * len(configs) / len(chosen)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| workload | K | method | s (all K runs) | runs/s | s per run | vs reference |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        sp = "" if r["speedup_vs_reference"] is None else f"{r['speedup_vs_reference']:.2f}x"
        lines.append(f"| {r['workload']} | {r['K']} | {r['method']} | {r['seconds']:.2f} | {r['runs_per_s']:.1f} "
                     f"| {r['seconds_per_run']:.4f} | {sp} |")
    return "\n".join(lines)


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
    parser.add_argument("--workloads", default="mnist,quadratic", help="subset of mnist,quadratic")
    parser.add_argument("--quadratic-k", type=int, default=640, help="runs of the quadratic sweep (default 640)")
    parser.add_argument("--reference-runs", type=int, default=64,
                        help="quadratic: plain loops (and serial runs) timed, then scaled to K (default 64)")
    parser.add_argument("--quick", action="store_true", help="K = 1, 16; 100 steps; 1 repeat; quadratic K = 160")
    parser.add_argument("--out", help="write the results as JSON here (atomically)")
    args = parser.parse_args(argv)
    if args.quick:
        args.ks, args.steps, args.repeats, args.quadratic_k, args.reference_runs = "1,16", 100, 1, 160, 16
    workloads = [w for w in args.workloads.split(",") if w]
    if "mnist" in workloads and not os.environ.get("ADAMLAB_DATA"):
        parser.error("set ADAMLAB_DATA to the data root (e.g. ADAMLAB_DATA=/work/shared/data)")
    torch.set_num_threads(args.threads)
    ks = [int(x) for x in args.ks.split(",")]
    methods = [m for m in args.methods.split(",") if m]
    times: dict[tuple[str, int, str], list[float]] = {}
    extra: dict[tuple[str, int, str], Any] = {}
    qk = args.quadratic_k
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        # Warm-up: load the data, touch every code path once (not timed).
        if "mnist" in workloads:
            reference_sweep(2, 20)
            adamlab_sweep(2, 20, "serial", work)
            for k in ks:  # one compile per stacked shape (K), outside the timed region
                adamlab_sweep(k, 3, "vmap", work)
        if "quadratic" in workloads:
            quadratic_reference(qk, 2, steps=20)
            quadratic_sweep(qk, "serial", work, runs=2, steps=20)
            quadratic_sweep(qk, "vmap", work, steps=20)
        for rep in range(args.repeats):
            if "mnist" in workloads:
                for k in ks:
                    for method in methods:
                        t0 = time.perf_counter()
                        if method == "reference":
                            reference_sweep(k, args.steps)
                        else:
                            extra[("mnist", k, method)] = adamlab_sweep(k, args.steps, method, work)
                        elapsed = time.perf_counter() - t0
                        times.setdefault(("mnist", k, method), []).append(elapsed)
                        print(f"rep {rep} mnist K={k:3d} {method:9s} {elapsed:8.3f} s", file=sys.stderr, flush=True)
            if "quadratic" in workloads:
                for method in methods:
                    if method == "reference":
                        elapsed = quadratic_reference(qk, min(args.reference_runs, qk))
                    elif method == "serial":
                        elapsed = quadratic_sweep(qk, "serial", work, runs=min(args.reference_runs, qk))
                    else:
                        elapsed = quadratic_sweep(qk, method, work)
                    times.setdefault(("quadratic", qk, method), []).append(elapsed)
                    print(f"rep {rep} quadratic K={qk} {method:9s} {elapsed:8.3f} s", file=sys.stderr, flush=True)
                if "vmap" in methods:  # the same block with the backend's threads=1 option
                    elapsed = quadratic_sweep(qk, "vmap", work, options={"threads": 1})
                    times.setdefault(("quadratic", qk, "vmap-1thread"), []).append(elapsed)
                    print(f"rep {rep} quadratic K={qk} vmap-1thread {elapsed:8.3f} s", file=sys.stderr, flush=True)
    rows = []
    for workload, k, method in times:
        ref_times = times.get((workload, k, "reference"))
        ref = statistics.median(ref_times) if ref_times else None
        t = statistics.median(times[(workload, k, method)])
        rows.append({"workload": workload, "K": k, "method": method, "seconds": t, "runs_per_s": k / t,
                     "seconds_per_run": t / k, "speedup_vs_reference": (ref / t) if ref else None,
                     "all_seconds": times[(workload, k, method)], **extra.get((workload, k, method), {})})
    print(markdown(rows))
    print(f"\nload average {os.getloadavg()[0]:.2f}, {args.threads} threads, median of {args.repeats}; "
          f"quadratic reference and serial: {min(args.reference_runs, qk)} of {qk} runs timed and scaled")
    result = {"problems": {"mnist": PROBLEM, "quadratic": QUADRATIC}, "optimizer": "adam", "steps": args.steps,
              "batch_size": 128, "threads": args.threads, "repeats": args.repeats, "torch": torch.__version__,
              "load_average": os.getloadavg(), "rows": rows}
    if args.out:
        from adamlab.util.files import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
