"""What the Dissecting Adam statistics cost per training step, against a plain step and against BackPACK.

``python -m benchmarks.dissect_cost`` times, interleaved in one process (each round runs every method
once, in a rotating order, so drifts in machine load hit all methods alike), one training step
(forward, backward, Adam step) at batch 128 on three networks:

- ``mlp``: MLP 784-256-10;
- ``2c2d``: DeepOBS ``fmnist_2c2d`` (adamlab's ``fmnist.cnn``), 1x28x28 inputs;
- ``3c3d``: DeepOBS ``cifar10_3c3d`` (adamlab's ``cifar10.3c3d``), 3x32x32 inputs;

with these methods:

- ``plain``: the step alone;
- ``moments``: the step with :class:`~adamlab.dissect.moments.MomentRecorder` accumulating the per-example
  first and second moments in the backward pass;
- ``statistics``: the step, its moments and every coordinate's statistics from them (mean, variance,
  eta^2, Gaussian rho, both ideal gammas) by :class:`~adamlab.dissect.step_stats.StepStats` (one fused
  compiled pass into kept buffers, in the moments' dtype: float32); ``statistics float64``: the same in
  float64; ``stats_from_moments``: the same by :func:`~adamlab.dissect.stats.stats_from_moments` (float64,
  fresh tensors, eager: what :func:`~adamlab.dissect.moments.backward_stats` computes without the
  empirical sign agreement);
- ``monitor``: the step with :class:`~adamlab.dissect.monitor.Monitor` (``every=1``): moments, eta^2, rho,
  ideal and measured gamma, per layer and overall, every step;
- ``torch.func``: the step plus :func:`~adamlab.dissect.stats.gradient_stats` (per-example gradients
  materialised; the previous way; ``--no-func`` leaves it out);
- ``backpack.Variance``, ``backpack.SumGradSquared``: the step with BackPACK 1.7.1's extension in the
  backward pass (when ``backpack`` imports: ``pip install backpack-for-pytorch==1.7.1 --no-deps einops
  unfoldNd``);
- ``cockpit``: Cockpit 1.0.2's gradient-noise instruments (``GradNorm``, ``InnerTest``, ``NormTest``,
  ``OrthoTest``, ``GradHist1d``, every step), when ``cockpit`` imports. With torch 2.13 it needs
  ``pip install cockpit-for-pytorch==1.0.2 --no-deps json_tricks scipy seaborn "setuptools>=77.0.3,<81"``
  (it imports ``pkg_resources``, which setuptools 81 removed; torch 2.13 wants setuptools >= 77.0.3).
  Otherwise the table says why it is missing.

It prints, per network, the median milliseconds per step and the ratio to the plain step (and, on CUDA,
peak memory). Synthetic data; the same seed for every method. ``--quick`` runs tiny sizes and few
rounds (a smoke test, not a measurement).
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect.hooks import GradientStatsHook
from adamlab.dissect.moments import MomentRecorder
from adamlab.dissect.monitor import Monitor
from adamlab.dissect.stats import gradient_stats, stats_from_moments
from adamlab.dissect.step_stats import StepStats
from adamlab.optim.registry import make_optimizer


def build(name: str, quick: bool = False) -> tuple[nn.Module, tuple[int, ...]]:
    """The network and its input shape (one example)."""
    import adamlab.problems as problems

    if name == "mlp":
        hidden = 16 if quick else 256
        return nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10)), (1, 28, 28)
    if name == "2c2d":
        return problems.get("fmnist.cnn").build_model(), (1, 28, 28)
    if name == "3c3d":
        return problems.get("cifar10.3c3d").build_model(), (3, 32, 32)
    raise ValueError(f"model must be one of mlp, 2c2d, 3c3d, got {name!r}")


def _backpack() -> Any:
    try:
        import backpack  # noqa: F401
        from backpack import backpack as context
        from backpack import extend
        from backpack.extensions import SumGradSquared, Variance
    except Exception as exc:  # not installed, or broken with this torch
        return f"{type(exc).__name__}: {exc}"
    return context, extend, Variance, SumGradSquared


def _cockpit() -> Any:
    try:
        from cockpit import Cockpit, quantities  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return Cockpit, quantities


def methods(name: str, x: torch.Tensor, y: torch.Tensor, quick: bool, with_func: bool) -> tuple[
        dict[str, Callable[[], None]], dict[str, str]]:
    """One step function per method (each with its own copy of the network and optimizer)."""
    steps: dict[str, Callable[[], None]] = {}
    missing: dict[str, str] = {}

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        model = build(name, quick)[0].to(x.device)
        return model, make_optimizer("adam", model.parameters(), lr=1e-4)

    def plain_step(model: nn.Module, opt: torch.optim.Optimizer) -> Callable[[], None]:
        def step() -> None:
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
        return step

    steps["plain"] = plain_step(*fresh())
    model, opt = fresh()
    MomentRecorder(model).attach()
    steps["moments"] = plain_step(model, opt)

    def with_stats(compute: Callable[[dict[str, Any]], object]) -> Callable[[], None]:
        """The step, its moments and ``compute(moments)`` (a fresh network, recorder and optimizer)."""
        model, opt = fresh()
        recorder = MomentRecorder(model, keep_buffers=True).attach()
        inner = plain_step(model, opt)

        def step() -> None:
            recorder.reset()
            inner()
            compute(recorder.moments())
        return step

    def eager(moments: dict[str, Any]) -> object:
        return stats_from_moments({k: m.mean() for k, m in moments.items()},
                                  {k: m.variance() for k, m in moments.items()}, x.shape[0], x.shape[0])

    steps["statistics"] = with_stats(StepStats())
    steps["statistics float64"] = with_stats(StepStats(dtype=torch.float64))
    steps["stats_from_moments"] = with_stats(eager)
    model, opt = fresh()
    Monitor(model, opt, every=1)
    steps["monitor"] = plain_step(model, opt)
    if with_func:
        model, opt = fresh()
        inner = plain_step(model, opt)

        def func_step(model: nn.Module = model, inner: Callable[[], None] = inner) -> None:
            inner()
            gradient_stats(model, F.cross_entropy, x, y, resamples=64)
        steps["torch.func"] = func_step
    bp = _backpack()
    if isinstance(bp, str):
        missing["backpack"] = bp
    else:
        context, extend, variance, sgs = bp
        for label, ext in (("backpack.Variance", variance), ("backpack.SumGradSquared", sgs)):
            model, opt = fresh()
            model = extend(model)
            lossfunc = extend(nn.CrossEntropyLoss())

            def bp_step(model: nn.Module = model, opt: torch.optim.Optimizer = opt, lossfunc: nn.Module = lossfunc,
                        ext: Any = ext) -> None:
                opt.zero_grad()
                loss = lossfunc(model(x), y)
                with context(ext()):
                    loss.backward()
                opt.step()
            steps[label] = bp_step
    ck = _cockpit()
    if isinstance(ck, str):
        missing["cockpit"] = ck
    else:
        cockpit_cls, q = ck
        model, opt = fresh()
        model = bp[1](model) if not isinstance(bp, str) else model
        lossfunc = bp[1](nn.CrossEntropyLoss()) if not isinstance(bp, str) else nn.CrossEntropyLoss()
        per_example = bp[1](nn.CrossEntropyLoss(reduction="none")) if not isinstance(bp, str) else None
        from cockpit.utils.schedules import linear

        every = linear(1)  # every step, as the monitor here
        track = [q.GradNorm(every), q.InnerTest(every), q.NormTest(every), q.OrthoTest(every), q.GradHist1d(every)]
        cp = cockpit_cls(model.parameters(), quantities=track)
        state = {"t": 0}

        def cockpit_step() -> None:
            opt.zero_grad()
            out = model(x)
            loss = lossfunc(out, y)
            losses = per_example(out, y) if per_example is not None else None
            with cp(state["t"], info={"batch_size": x.shape[0], "individual_losses": losses, "loss": loss,
                                     "optimizer": opt}):
                loss.backward(create_graph=cp.create_graph(state["t"]))
            opt.step()
            state["t"] += 1
        steps["cockpit"] = cockpit_step
    return steps, missing


def run(name: str, *, batch: int, rounds: int, warmup: int, quick: bool, with_func: bool,
        device: str, skip: frozenset[str] = frozenset()) -> tuple[dict[str, float], dict[str, float],
                                                               dict[str, str], int]:
    """Median seconds per step of each method (those in ``skip`` left out), peak CUDA memory (bytes; empty
    on CPU), what was missing, and the number of parameters."""
    shape = build(name, quick)[1]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, *shape, generator=g).to(device)
    y = torch.randint(0, 10, (batch,), generator=g).to(device)
    steps, missing = methods(name, x, y, quick, with_func)
    steps = {k: v for k, v in steps.items() if k not in skip}
    params = sum(p.numel() for p in build(name, quick)[0].parameters())
    times: dict[str, list[float]] = {k: [] for k in steps}
    memory: dict[str, float] = {}
    labels = list(steps)
    cuda = device.startswith("cuda")
    for r in range(warmup + rounds):
        order = labels[r % len(labels):] + labels[:r % len(labels)]
        for label in order:
            if cuda:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            t0 = time.perf_counter()
            steps[label]()
            if cuda:
                torch.cuda.synchronize()
                memory[label] = max(memory.get(label, 0.0), float(torch.cuda.max_memory_allocated()))
            if r >= warmup:
                times[label].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}, memory, missing, params


class _Problem:
    criterion = staticmethod(F.cross_entropy)
    name = "synthetic"


def hook_cost(*, hidden: int = 256, batch: int = 128, repeats: int = 10, max_examples: int | None = None,
              seed: int = 0) -> dict[str, float]:
    """The runner hook :class:`~adamlab.dissect.hooks.GradientStatsHook` (a separate forward and backward
    pass with per-example gradients): median seconds per training step and per hook call, and their ratio."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, 10))
    opt = make_optimizer("adam", model.parameters(), lr=1e-3)
    x, y = torch.randn(batch, 784), torch.randint(0, 10, (batch,))
    hook = GradientStatsHook(every=1, max_examples=max_examples)
    step_times, hook_times = [], []
    for i in range(repeats + 2):  # two warm-up rounds
        t0 = time.perf_counter()
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
        t1 = time.perf_counter()
        hook(i + 1, model, opt, _Problem(), (x, y))
        t2 = time.perf_counter()
        if i >= 2:
            step_times.append(t1 - t0)
            hook_times.append(t2 - t1)
    step, call = statistics.median(step_times), statistics.median(hook_times)
    return {"step_s": step, "hook_s": call, "ratio": call / step,
            "parameters": float(sum(p.numel() for p in model.parameters())), "batch": float(batch)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.dissect_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mlp,2c2d,3c3d", help="comma-separated: mlp, 2c2d, 3c3d")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-func", action="store_true", help="leave out the torch.func path (slow)")
    parser.add_argument("--skip", default="", help="comma-separated methods to leave out, e.g. cockpit "
                        "(its memory traffic slows the methods interleaved with it)")
    parser.add_argument("--quick", action="store_true", help="smoke test: batch 8, tiny MLP, 2 rounds")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore", message="Full backward hook is firing")  # BackPACK, inputs without grad
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.batch, args.rounds, args.warmup = min(args.batch, 8), 2, 1
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    for m in models:
        if m not in ("mlp", "2c2d", "3c3d"):
            parser.error(f"--models: unknown model {m!r}; allowed: mlp, 2c2d, 3c3d")
    print(f"batch {args.batch}, {args.rounds} rounds (+{args.warmup} warm-up), device {args.device}, "
          f"{torch.get_num_threads()} threads, torch {torch.__version__}; median ms per training step")
    for m in models:
        med, memory, missing, params = run(m, batch=args.batch, rounds=args.rounds, warmup=args.warmup,
                                           quick=args.quick, with_func=not args.no_func, device=args.device,
                                           skip=frozenset(k.strip() for k in args.skip.split(",") if k.strip()))
        plain = med["plain"]
        print(f"\n{m} ({params:,} parameters)")
        print(f"  {'method':<26}{'ms/step':>10}{'x plain':>10}" + (f"{'peak MiB':>10}" if memory else ""))
        for label, t in med.items():
            line = f"  {label:<26}{1e3 * t:>10.2f}{t / plain:>10.2f}"
            if memory:
                line += f"{memory[label] / 2**20:>10.1f}"
            print(line)
        for label, why in missing.items():
            print(f"  {label:<26}not available ({why.splitlines()[0][:90]})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
