"""Time one optimizer step: torch.optim.Adam (for-loop, foreach, fused) and every adamlab optimizer, each path.

Usage (see benchmarks/README.md)::

    python benchmarks/step_time.py --quick --out step_time.json
    python benchmarks/step_time.py --sizes 10M 50M --reps 20 --out step_time.json

Method. Parameters are 10 float32 tensors with the shapes of an MLP (5 linear layers, weight + bias),
scaled to 1M, 10M or 50M elements; gradients are fixed random tensors. For each adamlab optimizer a
block of implementations -- torch's fused Adam (the reference) and the optimizer's paths (``loop``:
``fused=False, foreach=False``; ``foreach``: ``fused=False, foreach=True``; ``compiled``: ``fused=True``)
-- is stepped round-robin, one step of each per repetition, in the same process, so host noise hits all
of them alike. The first block holds the three torch.optim.Adam variants. Per implementation it reports
the median step time, the ratio to torch fused Adam in the same block, the effective bandwidth, the
optimizer-state bytes per parameter, the minimum (and its ratio: less sensitive to a busy host than the
median), and the first-step time over the median (compile time for the
compiled path; it is near zero on a warm Inductor cache).

Effective GB/s = bytes / median, with bytes = N x itemsize x (3 + 2 k) for k state buffers: each step
reads the parameter, the gradient and the k states and writes the parameter and the k states (Adam and
M-SVAG: k = 2, 28 bytes per float32 parameter; M-SSD: k = 1, 20 bytes; SSD: k = 0, 12 bytes).
Whole runs (``--run-steps``, on by default with ``--targets``: 1,000 steps at 7,850 parameters): a fresh
optimizer with the default ``fused=None`` takes N steps from its first, so the time includes the
policy's fixed switch (the reference path for ``adamlab.optim.fast.compile_after_steps()`` steps, 10 by
default, then the compiled kernel, loaded from a snapshot or compiled once per process), against N steps
of a fresh torch fused Adam; the median over ``--run-reps`` runs, round-robin, and the first run apart.

Only public tools are used: torch, time, statistics, json, and adamlab's public optimizer registry.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from adamlab.optim.registry import make_optimizer, names
from adamlab.util.files import write_json

SIZES = {"7850": 7_850, "1M": 1_000_000, "10M": 10_000_000, "50M": 50_000_000,
         "100M": 100_000_000, "1B": 1_000_000_000}  # 100M and 1B: for a GPU (--device cuda)
#: The sizes and methods of issue 11's targets (and the bound on each ratio to torch fused Adam).
TARGET_METHODS = ["adam", "amsgrad", "adamw", "msvag", "svag", "mssd", "mssdva", "rmsprop", "adagrad", "adamax"]
TARGET_RATIO = {"7850": 1.3, "1M": 1.0, "10M": 1.0, "50M": 1.0}
TARGET_PROBE_FRACTION = 0.85
PROBE = "stream-probe"
#: Sizes below SMALL_NUMEL take SMALL_REPS_FACTOR times --reps (a step costs tens of microseconds there).
SMALL_NUMEL, SMALL_REPS_FACTOR = 100_000, 50
PEER = "pytorch_optimizer-msvag"
PATHS = {"loop": {"fused": False, "foreach": False}, "foreach": {"fused": False, "foreach": True},
         "compiled": {"fused": True}}
TORCH_ADAM = {"torch-adam-loop": {"foreach": False}, "torch-adam-foreach": {"foreach": True},
              "torch-adam-fused": {"fused": True}}
REFERENCE = "torch-adam-fused"
#: torch's fused implementation of the same algorithm, where torch has one: stepped in that method's block,
#: and its ratio reported beside the one to fused Adam (AMSGrad moves 36 bytes per parameter, Adam 28).
SAME_ALGORITHM = {
    "amsgrad": ("torch-adam-fused-amsgrad", lambda params: torch.optim.Adam(params, lr=1e-4, fused=True, amsgrad=True)),
    "adamw": ("torch-adamw-fused", lambda params: torch.optim.AdamW(params, lr=1e-4, fused=True)),
}


def mlp_shapes(total: int, d_in: int = 784, d_out: int = 10) -> list[tuple[int, ...]]:
    """Shapes of a 4-hidden-layer MLP (10 tensors) with about ``total`` parameters.

    7,850 is MNIST's logistic regression instead: a ``10 x 784`` weight and a bias (two tensors).
    """
    if total == d_in * d_out + d_out:
        return [(d_out, d_in), (d_out,)]
    # 3 h^2 + h (d_in + d_out + 4) + d_out = total
    b = d_in + d_out + 4
    h = int((-b + math.sqrt(b * b + 12 * (total - d_out))) / 6)
    return [(h, d_in), (h,), (h, h), (h,), (h, h), (h,), (h, h), (h,), (d_out, h), (d_out,)]


def make_params(total: int, seed: int = 0, device: str = "cpu") -> list[torch.Tensor]:
    """The MLP's parameters and fixed gradients, drawn on ``device`` (the CPU's numbers by default)."""
    on_cpu = torch.device(device).type == "cpu"
    gen = (torch.Generator() if on_cpu else torch.Generator(device=device)).manual_seed(seed)
    params = []
    for shape in mlp_shapes(total):
        if on_cpu:
            p = torch.randn(shape, generator=gen).requires_grad_(True)
            p.grad = torch.randn(shape, generator=gen) * 1e-2
        else:
            p = torch.randn(shape, generator=gen, device=device).requires_grad_(True)
            p.grad = torch.randn(shape, generator=gen, device=device) * 1e-2
        params.append(p)
    return params


class StreamProbe:
    """The machine's streaming bandwidth at this size: ``a.addcmul_(b, c)`` over N elements per step.

    One in-place pass that reads three arrays and writes one (16 bytes per float32 element), the
    fastest of the plain ATen streaming ops measured here (``copy_``, ``add_``, ``mul_``, ``addcmul_``;
    ../shared/notes/performance.md). It is stepped round-robin with the optimizers of each block, so
    every kernel's GB/s is compared with what the machine streamed at the same moment.
    """

    bytes_per_element = 4

    def __init__(self, n: int, device: torch.device | str = "cpu") -> None:
        gen = torch.Generator().manual_seed(1)
        self.a, self.b, self.c = (torch.randn(n, generator=gen) * 1e-3 for _ in range(3))
        if torch.device(device).type != "cpu":
            self.a, self.b, self.c = (t.to(device) for t in (self.a, self.b, self.c))
        self.state: dict[Any, Any] = {}

    def step(self) -> None:
        self.a.addcmul_(self.b, self.c)


def peer_msvag(params: list[torch.Tensor]) -> torch.optim.Optimizer | None:
    """``pytorch_optimizer.MSVAG`` (the peer implementation) when that package is installed, else None."""
    try:
        from pytorch_optimizer import MSVAG
    except ImportError:
        return None
    return MSVAG(params, lr=1e-4)


def state_bytes(opt: torch.optim.Optimizer) -> int:
    """Bytes held in the optimizer's state tensors."""
    return sum(v.numel() * v.element_size() for s in opt.state.values() for v in s.values()
               if isinstance(v, torch.Tensor))


def time_block(factories: Factories, n: int, itemsize: int,
               reps: int, warmup: int, sync: Callable[[], Any] | None = None) -> dict[str, dict[str, Any]]:
    """Step every implementation round-robin; return per-implementation measurements.

    ``sync`` (``torch.cuda.synchronize`` on a GPU) is called before and after each timed step, so a step's
    time is its kernels' time, not the launch's."""
    opts = {name: make() for name, make in factories.items()}
    first: dict[str, float] = {}
    times: dict[str, list[float]] = {name: [] for name in opts}
    for rep in range(warmup + reps):
        for name, opt in opts.items():
            if sync is not None:
                sync()
            start = time.perf_counter()
            opt.step()
            if sync is not None:
                sync()
            elapsed = time.perf_counter() - start
            if rep == 0:
                first[name] = elapsed
            elif rep >= warmup:
                times[name].append(elapsed)
    out = {}
    for name, opt in opts.items():
        median = statistics.median(times[name])
        k = state_bytes(opt) / (n * itemsize)
        moved = itemsize * (3 + 2 * round(k))
        if isinstance(opt, StreamProbe):
            k, moved = 0.0, 4 * itemsize
        out[name] = {
            "median_ms": median * 1e3,
            "p10_ms": sorted(times[name])[len(times[name]) // 10] * 1e3,
            "min_ms": min(times[name]) * 1e3,
            "state_bytes_per_param": state_bytes(opt) / n,
            "state_buffers": round(k, 3),
            "bytes_per_param_moved": moved,
            "gb_per_s": n * moved / median / 1e9,
            "first_step_minus_median_s": first[name] - median,
        }
    del opts
    return out


Factories = dict[str, Callable[[], Any]]


def make_blocks(params: list[torch.Tensor], optimizers: list[str], paths: list[str],
                torch_paths: bool = True) -> list[tuple[str, Factories]]:
    """The torch.optim.Adam block, then one block per adamlab optimizer (its paths + torch fused Adam).

    Every block also steps the streaming probe; the M-SVAG block steps the peer ``pytorch_optimizer.MSVAG``
    too when that package is installed.
    """
    n = sum(p.numel() for p in params)
    blocks: list[tuple[str, Factories]] = []
    if torch_paths:
        blocks.append(("torch", {k: (lambda kw=kw: torch.optim.Adam(params, lr=1e-4, **kw))
                                 for k, kw in TORCH_ADAM.items()}))
    for opt_name in optimizers:
        block: Factories = {REFERENCE: lambda: torch.optim.Adam(params, lr=1e-4, fused=True),
                            PROBE: lambda: StreamProbe(n, params[0].device)}
        for path in paths:
            block[f"{opt_name}:{path}"] = (
                lambda o=opt_name, kw=PATHS[path]: make_optimizer(o, params, lr=1e-4, **kw))
        if opt_name in SAME_ALGORITHM:
            label, make = SAME_ALGORITHM[opt_name]
            block[label] = lambda make=make: make(params)
        if opt_name == "msvag" and peer_msvag([torch.zeros(2, requires_grad=True)]) is not None:
            block[PEER] = lambda: peer_msvag(params)
        blocks.append((opt_name, block))
    return blocks


def run(sizes: list[str], optimizers: list[str], paths: list[str], reps: int, warmup: int,
        threads: int, torch_paths: bool = True, device: str = "cpu") -> dict[str, Any]:
    torch.set_num_threads(threads)
    results: dict[str, Any] = {"torch": torch.__version__, "threads": threads, "reps": reps,
                               "warmup": warmup, "load_average": list(os.getloadavg()), "sizes": {}}
    sync = None
    if torch.device(device).type == "cuda":
        sync = torch.cuda.synchronize
        results.update(device=device, device_name=torch.cuda.get_device_name(device), cuda=torch.version.cuda)
    for label in sizes:
        params = make_params(SIZES[label], device=device)
        n = sum(p.numel() for p in params)
        rows: dict[str, Any] = {}
        blocks = make_blocks(params, optimizers, paths, torch_paths)
        size_reps = reps * SMALL_REPS_FACTOR if n < SMALL_NUMEL else reps  # tens of us per step: more reps
        for _, block in blocks:
            measured = time_block(block, n, params[0].element_size(), size_reps, warmup, sync)
            ref = measured[REFERENCE]["median_ms"]
            probe = measured.get(PROBE, {}).get("gb_per_s")
            for impl, row in measured.items():
                if impl in (REFERENCE, PROBE) and impl in rows:
                    continue  # torch's fused Adam and the probe: reported from their first block
                if probe:
                    row["probe_gb_per_s"] = probe
                    row["fraction_of_probe"] = row["gb_per_s"] / probe
                row["ratio_to_torch_fused"] = row["median_ms"] / ref
                row["reference_median_ms"] = ref
                row["ratio_min_to_torch_fused"] = row["min_ms"] / measured[REFERENCE]["min_ms"]
                same = SAME_ALGORITHM.get(impl.partition(":")[0], ("",))[0]
                if same in measured:
                    row["ratio_to_torch_same"] = row["median_ms"] / measured[same]["median_ms"]
                rows[impl] = row
                print(f"{label:>4} {impl:<24} {row['median_ms']:9.3f} ms  x{row['ratio_to_torch_fused']:5.2f}"
                      f"  (min {row['min_ms']:8.2f} ms x{row['ratio_min_to_torch_fused']:5.2f})"
                      f"  {row['gb_per_s']:6.1f} GB/s ({100 * row.get('fraction_of_probe', 0):3.0f}% of probe)"
                      f"  state {row['state_buffers']:.0f} buf"
                      f"  first-step +{row['first_step_minus_median_s']:.2f} s", flush=True)
        results["sizes"][label] = {"numel": n, "shapes": [list(p.shape) for p in params], "rows": rows}
        del params, blocks
    return results


def time_runs(label: str, optimizers: list[str], steps: int, reps: int) -> dict[str, dict[str, Any]]:
    """Whole runs of ``steps`` steps from a fresh optimizer (``fused=None``) against torch fused Adam's."""
    params = make_params(SIZES[label])
    makers: Factories = {REFERENCE: lambda: torch.optim.Adam(params, lr=1e-4, fused=True)}
    for name in optimizers:
        makers[f"{name}:default"] = lambda o=name: make_optimizer(o, params, lr=1e-4)
    times: dict[str, list[float]] = {name: [] for name in makers}
    for _ in range(reps + 1):  # the first run of each apart: it compiles (or loads a snapshot)
        for name, make in makers.items():
            opt = make()
            start = time.perf_counter()
            for _ in range(steps):
                opt.step()
            times[name].append(time.perf_counter() - start)
    ref = statistics.median(times[REFERENCE][1:])
    return {name: {"steps": steps, "median_run_s": statistics.median(t[1:]), "first_run_s": t[0],
                   "ratio_to_torch_fused": statistics.median(t[1:]) / ref,
                   "first_ratio_to_torch_fused": t[0] / times[REFERENCE][0]}
            for name, t in times.items()}


def run_table(results: dict[str, Any]) -> str:
    """The whole-run rows (``--run-steps``) as a Markdown table."""
    lines = []
    for label, block in results.get("runs", {}).items():
        lines += [f"Runs of {block['steps']} steps at {label} parameters, default path (fused=None: the reference "
                  f"path for {block['compile_after_steps']} steps, then compiled), from a fresh optimizer:", "",
                  "| implementation | median run s (x fused) | first run s (x fused) |", "|---|---|---|"]
        for name, row in block["rows"].items():
            lines.append(f"| {name} | {row['median_run_s']:.4f} (x{row['ratio_to_torch_fused']:.2f}) | "
                         f"{row['first_run_s']:.4f} (x{row['first_ratio_to_torch_fused']:.2f}) |")
    return "\n".join(lines)


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table: one row per implementation, one column group per size."""
    labels = list(results["sizes"])
    impls: list[str] = []
    for label in labels:
        impls += [k for k in results["sizes"][label]["rows"] if k not in impls]
    head = "| implementation | state buffers | " + " | ".join(
        f"{lb} median ms (x fused) | {lb} min ms (x fused) | {lb} GB/s" for lb in labels) + " | first step +s |"
    lines = [head, "|" + "---|" * (2 + 3 * len(labels) + 1)]
    for impl in impls:
        cells, state, first = [], "", ""
        for label in labels:
            row = results["sizes"][label]["rows"].get(impl)
            if row is None:
                cells += ["", "", ""]
                continue
            state = f"{row['state_buffers']:g}"
            first = f"{row['first_step_minus_median_s']:.1f}" if not first else first
            cells += [f"{row['median_ms']:.2f} (x{row['ratio_to_torch_fused']:.2f})",
                      f"{row['min_ms']:.2f} (x{row['ratio_min_to_torch_fused']:.2f})", f"{row['gb_per_s']:.1f}"]
        lines.append(f"| {impl} | {state} | " + " | ".join(cells) + f" | {first} |")
    return "\n".join(lines)


def target_table(results: dict[str, Any]) -> str:
    """Issue 11's targets as a Markdown table: per method and size, ratio to torch fused Adam, GB/s, % of probe.

    A cell reads ``ratio / GB/s / % of probe`` with a mark when it misses a target (ratio above
    :data:`TARGET_RATIO`; below :data:`TARGET_PROBE_FRACTION` of the probe from 1M on). The path is
    ``compiled`` (what ``fused=None`` runs from 1M parameters on, and switches to at smaller sizes after
    a fixed 10 steps; benchmarks/README.md; whole runs including the switch: :func:`run_table`).
    """
    labels = [lb for lb in SIZES if lb in results["sizes"]]
    load = results.get("load_average")
    lines = [f"torch {results.get('torch')}, {results.get('threads')} threads, {results.get('reps')} reps, "
             f"load average at start {', '.join(f'{x:.2f}' for x in load) if load else 'unknown'}", "",
             "| method | " + " | ".join(f"{lb}: x fused / GB/s / % probe" for lb in labels) + " |",
             "|---|" + "---|" * len(labels)]
    misses = 0
    for method in TARGET_METHODS:
        cells = []
        for label in labels:
            row = results["sizes"][label]["rows"].get(f"{method}:compiled")
            if row is None:
                cells.append("")
                continue
            ratio, frac = row["ratio_to_torch_fused"], row.get("fraction_of_probe")
            bad = ratio > TARGET_RATIO[label] or (label != "7850" and frac is not None and frac < TARGET_PROBE_FRACTION)
            misses += bad
            frac_text = f"{100 * frac:.0f}%" if frac is not None else "-"
            same = (f" ({row['ratio_to_torch_same']:.2f}x torch's fused {method})"
                    if "ratio_to_torch_same" in row else "")
            cells.append(f"{'**' if bad else ''}{ratio:.2f}x / {row['gb_per_s']:.1f} / {frac_text}{'**' if bad else ''}"
                         + same)
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    extra = []
    for label in labels:
        rows = results["sizes"][label]["rows"]
        ref, probe = rows.get(REFERENCE), rows.get(PROBE)
        if ref is not None:
            extra.append(f"{label}: torch fused Adam {ref['median_ms']:.3f} ms ({ref['gb_per_s']:.1f} GB/s"
                         + (f", {100 * ref['fraction_of_probe']:.0f}% of probe" if "fraction_of_probe" in ref else "")
                         + ")" + (f", probe {probe['gb_per_s']:.1f} GB/s" if probe else ""))
        peer, ours = rows.get(PEER), rows.get("msvag:compiled")
        if peer is not None and ours is not None:
            speedup = peer["median_ms"] / ours["median_ms"]
            extra.append(f"{label}: M-SVAG {speedup:.1f}x faster than pytorch_optimizer.MSVAG "
                         f"({ours['median_ms']:.2f} vs {peer['median_ms']:.2f} ms; target at 10M: >= 10x)")
    lines += ["", f"Targets: ratio <= {TARGET_RATIO['1M']}x (<= {TARGET_RATIO['7850']}x at 7850) and >= "
              f"{100 * TARGET_PROBE_FRACTION:.0f}% of the probe from 1M on; **bold** = missed ({misses} cells)."]
    lines += [f"- {line}" for line in extra]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", choices=list(SIZES), default=None,
                        help="parameter counts (default 1M 10M 50M; --quick: 1M 10M)")
    parser.add_argument("--optimizers", nargs="+", default=None, help="adamlab names (default: all)")
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--reps", type=int, default=None, help="timed repetitions (default 20; --quick: 5)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first (the first compiles)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda / cuda:N: parameters, gradients and "
                        "state there, each step timed between two torch.cuda.synchronize() calls")
    parser.add_argument("--quick", action="store_true", help="short run: 1M and 10M, 5 repetitions")
    parser.add_argument("--targets", action="store_true",
                        help="issue 11's run: every size, the target methods' compiled path, the probe, the peer "
                             "M-SVAG; prints the target table")
    parser.add_argument("--run-steps", type=int, default=None,
                        help="also time whole runs of this many steps at 7850 parameters with fused=None "
                             "(default with --targets: 1000; 0: off)")
    parser.add_argument("--run-reps", type=int, default=5, help="whole runs per implementation (after a first)")
    parser.add_argument("--out", default="step_time.json", help="JSON file to write")
    parser.add_argument("--markdown", nargs="+", metavar="JSON", default=None,
                        help="print the Markdown table of earlier result files (merged) and exit")
    args = parser.parse_args(argv)
    if args.markdown:
        merged: dict[str, Any] = {"sizes": {}}
        for path in args.markdown:
            with open(path) as f:
                data = json.load(f)
            merged.update({k: v for k, v in data.items() if k != "sizes"})
            merged["sizes"].update(data["sizes"])
        print(markdown_table(merged))
        print()
        print(target_table(merged))
        print()
        print(run_table(merged))
        return 0
    if args.targets:
        args.optimizers = args.optimizers or TARGET_METHODS
        args.paths = ["compiled"] if args.paths == list(PATHS) else args.paths
    # --targets: the sizes with a target (100M and 1B are for a GPU's memory: name them with --sizes)
    sizes = args.sizes or (["1M", "10M"] if args.quick else list(TARGET_RATIO) if args.targets
                           else [s for s in SIZES if SIZES[s] <= 50_000_000])
    reps = args.reps or (5 if args.quick else 20)
    optimizers = args.optimizers or names()
    for name in optimizers:
        if name not in names():
            parser.error(f"unknown optimizer {name!r}; known: {', '.join(names())}")
    if reps < 1 or args.warmup < 1 or args.threads < 1 or args.run_reps < 1:
        parser.error("--reps, --warmup, --threads and --run-reps must be >= 1")
    run_steps = args.run_steps if args.run_steps is not None else (1000 if args.targets else 0)
    if run_steps < 0:
        parser.error("--run-steps must be >= 0")
    results = run(sizes, optimizers, args.paths, reps, args.warmup, args.threads, torch_paths=not args.targets,
                  device=args.device)
    if run_steps:
        from adamlab.optim import fast

        rows = time_runs("7850", optimizers, run_steps, args.run_reps)
        results["runs"] = {"7850": {"steps": run_steps, "compile_after_steps": fast.compile_after_steps(),
                                    "rows": rows}}
    write_json(args.out, results, indent=1)
    print(markdown_table(results))
    print()
    print(target_table(results))
    print()
    print(run_table(results))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
