"""``adamlab demo | run | sweep | plot``: the runner's command line.

Exit codes: 0 success; 1 some runs failed (an exception inside a run); 2 bad arguments or bad input
(unknown problem or optimizer, an lr grid that does not parse or holds more than ``--max-runs`` runs,
a criterion metric no run has, a store that cannot be written or is not an adamlab store, missing or
corrupt data), printed as one line by :func:`adamlab.cli.main`. Diverged runs are results, not
failures (exit 0).
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from adamlab.commands import COMMANDS, add_store_argument, store_argument
from adamlab.runs.parsing import parse_assignments, parse_lr_grid, positive_float, positive_int
from adamlab.runs.result import RunStatus
from adamlab.runs.schedules import SCHEDULES
from adamlab.store.core import DEFAULT_STORE

#: Most runs one ``run`` or ``sweep`` command plans (problems x optimizers x lrs x seeds, plus the
#: rerun seeds), unless ``--max-runs`` says otherwise: a typo such as ``1e-3:1e0:1000000`` would
#: otherwise plan a million runs and hold them all in memory.
MAX_RUNS = 10_000

DEMO_EPILOG = """examples:
  adamlab demo                      run the demo, figure in results/demo/demo.png (and .pdf)
  adamlab demo --out /tmp/demo -q   elsewhere, without progress bars
  adamlab demo --fresh              start over instead of reusing results/demo/demo.sqlite

What it does: M-SGD, M-SSD, M-SVAG, M-SSD-VA (the 2x2 grid of Balles & Hennig 2018) and Adam on
the noisy quadratic (ill-conditioned, axis-aligned, nu=4) and on Wilson et al.'s least squares.
Each method's lr is tuned on 1e-5..1 (11 values, 1 seed), the best lr rerun with 3 seeds.
No downloads; under two minutes on two CPU cores.
"""

RUN_EPILOG = """examples:
  adamlab run quadratic.noisy --optimizer msvag --lr 0.01
  adamlab run quadratic.noisy --optimizer adam --lr 1e-3 --seeds 3 --steps 2000 \\
      --option spectrum=ill --option rotation=axis --hparam betas=[0.9,0.999]
  adamlab run mnist.logreg --optimizer adam --lr 1e-3 --epochs 1 --schedule inv_sqrt

exit codes: 0 ok (diverged runs included), 1 a run failed, 2 bad arguments
"""

SWEEP_EPILOG = """examples:
  adamlab sweep quadratic.noisy --optimizers sgd,adam,msvag --lr-grid 1e-3:1e0:4 --seeds 2
  adamlab sweep quadratic.noisy --optimizers adam --lr-grid 0.001,0.003,0.01 --steps 500
  adamlab sweep leastsquares.wilson --optimizers msgd,mssd --lr-grid 1e-4:1e0:9 \\
      --rerun-seeds 5 --criterion min:train_loss     (tune on seed 0, rerun the best lr)
  adamlab sweep mnist.logreg --optimizers adam --lr-grid 1e-4:1e-1:16 --epochs 1 --backend vmap
  adamlab sweep mnist.logreg --optimizers adam,msvag --lr-grid 1e-4:1e-1:8 --backend ray --address auto

--lr-grid START:STOP:COUNT is log-spaced with both ends included; or give a comma list.
A sweep plans at most 10000 runs (problems x optimizers x lrs x seeds); --max-runs N allows more.
Before training it prints the plan: runs x steps and a time estimate from a few timed steps on
this machine (--dry-run: only that). Runs are checkpointed every few minutes of work (and every
--checkpoint-every N steps). Finished runs already in the store are skipped, so rerunning a sweep
(e.g. after Ctrl-C, SIGTERM or kill -9) only does what is missing, from the last checkpoint. Sweeps started at the same time on one store share the work:
each run is trained once, by the process that claims it first.
exit codes: 0 ok (diverged runs included), 1 a run failed, 2 bad arguments
"""

PLOT_EPILOG = """examples:
  adamlab plot results/adamlab.sqlite
  adamlab plot results/adamlab.sqlite --problem quadratic.noisy --out figures/
  adamlab plot results/adamlab.sqlite --criterion max:test_accuracy

Writes, per problem (and option set), <problem>_curves.png/.pdf (mean and min-max band over seeds
at each optimizer's best lr) and, when there is an lr grid, <problem>_lr_sensitivity.png/.pdf.
"""


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _add_common(p: argparse.ArgumentParser, *, store: bool = True) -> None:
    if store:
        p.add_argument("--store", default=str(DEFAULT_STORE), metavar="PATH",
                       help=f"results store, an SQLite file (default: {DEFAULT_STORE})")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")


def _add_training(p: argparse.ArgumentParser) -> None:
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=positive_int, metavar="N", help="optimizer steps (default: protocol)")
    budget.add_argument("--epochs", type=positive_float, metavar="N", help="epochs instead of steps")
    p.add_argument("--seeds", type=positive_int, default=1, metavar="N", help="seeds 0..N-1 (default: 1)")
    p.add_argument("--option", action="append", metavar="K=V", help="problem option, repeatable (see adamlab list)")
    p.add_argument("--hparam", action="append", metavar="K=V",
                   help="optimizer hyperparameter, repeatable (e.g. momentum=0.9, betas=[0.9,0.99])")
    p.add_argument("--batch-size", type=positive_int, metavar="N", help="override the protocol's batch size")
    p.add_argument("--eval-every", type=positive_int, metavar="N", help="override the protocol's eval cadence")
    p.add_argument("--schedule", choices=SCHEDULES, help="lr schedule (default: the protocol's)")
    p.add_argument("--decay-gamma", type=positive_float, metavar="G", help="step schedule: factor (default 0.1)")
    p.add_argument("--decay-every", type=positive_int, metavar="N",
                   help="step schedule: period in steps (default: a third of the budget)")
    p.add_argument("--checkpoint-every", type=positive_int, metavar="N",
                   help="checkpoint every N steps so an interrupted run resumes where it was")
    p.add_argument("--backend", default="serial", help="execution backend: serial, vmap or ray (default: serial)")
    p.add_argument("--address", metavar="ADDR", help="--backend ray: the Ray cluster to join (default: a local Ray)")
    p.add_argument("--max-runs", type=positive_int, default=MAX_RUNS, metavar="N",
                   help=f"refuse to plan more than N runs (default: {MAX_RUNS})")


def _add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="cpu", metavar="DEV",
                   help="where to train: cpu (default), cuda, cuda:N, mps or auto; not part of a run's identity")
    p.add_argument("--deterministic", action="store_true",
                   help="use PyTorch's deterministic algorithms (on CUDA: reproducible bits, slower)")


def _device(args: argparse.Namespace) -> Any:
    """The checked device of ``--device`` (one line, exit 2, when it is not available), before any training."""
    from adamlab.runs.device import setup_device

    return setup_device(args.device, args.deterministic)


@COMMANDS.register("runner", order=10)
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``demo``, ``run``, ``sweep`` and ``plot``."""
    p = subparsers.add_parser("demo", help="the 2x2 grid plus Adam on two built-in problems (no downloads)",
                              description="Run the built-in demo, print a table, write a figure.",
                              epilog=DEMO_EPILOG, formatter_class=_formatter)
    p.add_argument("--out", default="results/demo", metavar="DIR", help="output folder (default: results/demo)")
    p.add_argument("--fresh", action="store_true", help="discard earlier demo results in DIR")
    _add_common(p, store=False)
    p.set_defaults(func=cmd_demo)

    p = subparsers.add_parser("run", help="train one optimizer on one problem (one or more seeds)",
                              description="Train OPTIMIZER at one learning rate on PROBLEM, store the runs "
                              "and print their final metrics.", epilog=RUN_EPILOG, formatter_class=_formatter)
    p.add_argument("problem", metavar="PROBLEM", help="a problem name (see adamlab list)")
    p.add_argument("--optimizer", required=True, metavar="NAME", help="optimizer short name, e.g. adam, msvag")
    p.add_argument("--lr", type=positive_float, metavar="X", help="learning rate (default: the optimizer's)")
    _add_training(p)
    _add_device(p)
    _add_common(p)
    p.set_defaults(func=cmd_run)

    p = subparsers.add_parser("sweep", help="sweep optimizers x learning rates x seeds, resumable",
                              description="Run the grid PROBLEM x optimizers x lr grid x seeds into the "
                              "store, skipping finished runs; optionally rerun each optimizer's best lr.",
                              epilog=SWEEP_EPILOG, formatter_class=_formatter)
    p.add_argument("problem", metavar="PROBLEM", help="a problem name, or several separated by commas")
    p.add_argument("--optimizers", required=True, metavar="A,B", help="comma list of optimizer names")
    p.add_argument("--lr-grid", required=True, metavar="GRID", help="START:STOP:COUNT (log-spaced) or a,b,c")
    p.add_argument("--criterion", default="min:train_loss", metavar="MODE:METRIC",
                   help="best-lr criterion on the final metric, mean over seeds (default: min:train_loss)")
    p.add_argument("--rerun-seeds", type=positive_int, metavar="N",
                   help="after the sweep, rerun each optimizer's best lr with seeds 0..N-1")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan (runs x steps, a time estimate from a few timed steps) and exit")
    _add_training(p)
    _add_device(p)
    _add_common(p)
    p.set_defaults(func=cmd_sweep)

    p = subparsers.add_parser("plot", help="figures from a results store (PNG and PDF)",
                              description="Plot learning curves and lr-sensitivity curves from STORE.",
                              epilog=PLOT_EPILOG, formatter_class=_formatter)
    add_store_argument(p)
    p.add_argument("--problem", metavar="P", help="only this problem (default: all in the store)")
    p.add_argument("--out", default="results/figures", metavar="DIR", help="output folder (default: results/figures)")
    p.add_argument("--criterion", default="min:train_loss", metavar="MODE:METRIC",
                   help="which lr per optimizer the curves show (default: min:train_loss)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_plot)


# -- helpers --------------------------------------------------------------------------------------


def _usage(message: str) -> Exception:
    from adamlab.commands import UsageError

    return UsageError(message)


def _problems(spec: str, options: dict[str, Any]) -> list[Any]:
    from adamlab import problems
    from adamlab.problems.options import SizeError

    names = [s.strip() for s in spec.split(",") if s.strip()]
    if not names:
        raise _usage("PROBLEM is empty")
    known = problems.names()
    for name in names:
        if name not in known:
            raise _usage(f"unknown problem {name!r}; known problems: {', '.join(known)} (see adamlab list)")
    try:
        return [problems.get(name, **options) for name in names]
    except TypeError as err:  # an unknown keyword option
        raise _usage(f"bad --option for {spec}: {err}") from None
    except MemoryError as err:
        raise _usage(f"--option {_options_text(options)}: {spec} does not fit in memory ({err})") from None
    except RuntimeError as err:  # torch's allocator: "can't allocate memory: you tried to allocate ..."
        if "allocate" not in str(err):
            raise
        raise _usage(f"--option {_options_text(options)}: {spec} does not fit in memory") from None
    except SizeError as err:  # refused from the options, before allocating
        raise _usage(f"--option {_options_text(options)}: {spec} does not fit in memory ({err})") from None
    except ValueError as err:
        if "dimension" in str(err) and not any(k in str(err) for k in options):  # numpy's own size error
            raise _usage(f"--option {_options_text(options)}: {spec} cannot be built that large ({err})") from None
        raise


def _options_text(options: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in options.items()) or "(defaults)"


def _optimizers(spec: str, hparams: dict[str, Any]) -> list[str]:
    import torch

    from adamlab.optim import registry

    names = [s.strip().lower() for s in spec.split(",") if s.strip()]
    if not names:
        raise _usage("--optimizers is empty")
    for name in names:
        if name not in registry.names():
            raise _usage(f"unknown optimizer {name!r}; known optimizers: {', '.join(registry.names())}")
        try:  # validate hyperparameters once, up front, on a dummy parameter
            probe = {k: tuple(v) if isinstance(v, list) else v for k, v in hparams.items()}
            registry.make_optimizer(name, [torch.zeros(1, requires_grad=True)], **probe)
        except (TypeError, ValueError) as err:
            if "lr" not in probe and "lr is required" in str(err):
                raise _usage(f"optimizer {name} has no default learning rate: give one with --lr X "
                             "(sweep: --lr-grid); see adamlab list --optimizers") from None
            unknown = _unknown_hparams(name, probe)
            if unknown:  # a CLI message, not the constructor's "unexpected keyword argument"
                raise _usage(f"--hparam {', '.join(unknown)}: not a hyperparameter of {name}; its hyperparameters: "
                             f"{', '.join(_hparam_names(name))} (see adamlab list --optimizers)") from None
            raise _usage(f"bad --hparam/--lr for {name}: {err}") from None
    return names


def _hparam_names(name: str) -> list[str]:
    """The keyword arguments of optimizer ``name``'s constructor (after ``params``)."""
    import inspect

    from adamlab.optim import registry

    params = list(inspect.signature(registry.optimizer_class(name).__init__).parameters.values())[2:]
    return [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _unknown_hparams(name: str, hparams: dict[str, Any]) -> list[str]:
    """The names in ``hparams`` that optimizer ``name`` does not take (none when it takes ``**kwargs``)."""
    import inspect

    from adamlab.optim import registry

    params = inspect.signature(registry.optimizer_class(name).__init__).parameters.values()
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return []
    known = set(_hparam_names(name))
    return sorted(k for k in hparams if k not in known)


def _schedule(args: argparse.Namespace) -> Any:
    if args.schedule != "step" and (args.decay_gamma is not None or args.decay_every is not None):
        raise _usage("--decay-gamma and --decay-every need --schedule step")
    if args.schedule is None:
        return None
    if args.schedule == "step":
        spec: dict[str, Any] = {"name": "step"}
        if args.decay_gamma is not None:
            if args.decay_gamma > 1:
                raise _usage(f"--decay-gamma must be in (0, 1]; got {args.decay_gamma}")
            spec["gamma"] = args.decay_gamma
        if args.decay_every is not None:
            spec["every"] = args.decay_every
        return spec
    return args.schedule


def _budget(args: argparse.Namespace) -> Any:
    from adamlab.runs.config import Budget

    if args.epochs is not None:
        return Budget(epochs=args.epochs)
    return Budget(steps=args.steps) if args.steps is not None else None


@contextlib.contextmanager
def _open_store(path: str, *, readonly: bool = False, must_exist: bool = False) -> Iterator[Any]:
    """:func:`adamlab.store.borrowed`, with a store that cannot be opened as a usage error (exit 2)."""
    from adamlab.store import borrowed

    with contextlib.ExitStack() as stack:
        try:
            store = stack.enter_context(borrowed(path, readonly=readonly, must_exist=must_exist))
        except ValueError as err:
            raise _usage(str(err)) from None
        yield store


def _backend(name: str) -> str:
    from adamlab.runner.backends import names

    if name not in names():
        raise _usage(f"unknown backend {name!r}; known backends: {', '.join(names())}")
    return name


def _criterion(spec: str) -> Any:
    from adamlab.selection.lr import Criterion

    try:
        return Criterion.parse(spec)
    except ValueError as err:
        raise _usage(f"--criterion {spec!r}: {err}") from None


def _check_metric(store: Any, crit: Any, spec: str, run_ids: list[str] | None = None) -> None:
    """A usage error when no finished run (of ``run_ids``) recorded the criterion's metric."""
    finished = [r["run_id"] for r in store.runs(status=[RunStatus.FINISHED])
                if run_ids is None or r["run_id"] in set(run_ids)]
    if not finished:
        return  # nothing to rank (all diverged or failed): the table says so
    names = store.metric_names(finished)
    if crit.metric not in names:
        raise _usage(f"--criterion {spec!r}: no finished run has metric {crit.metric!r}; "
                     f"metrics available: {', '.join(names) or 'none'}")


def _lr_grid(args: argparse.Namespace) -> list[float]:
    """``parse_lr_grid``, refusing a COUNT above ``--max-runs`` before the grid is built."""
    parts = args.lr_grid.split(":")
    try:  # int() as parse_lr_grid reads it: "+100000000" and "100_000_000" too
        count = int(parts[2]) if len(parts) == 3 else 0
    except ValueError:
        count = 0  # parse_lr_grid words the error
    if count > args.max_runs:
        raise _usage(f"--lr-grid {args.lr_grid}: COUNT {count} is more than --max-runs "
                     f"{args.max_runs} (default {MAX_RUNS}); use a smaller grid or raise --max-runs")
    return parse_lr_grid(args.lr_grid)


def _check_size(n_runs: int, args: argparse.Namespace, what: str) -> None:
    if n_runs > args.max_runs:
        raise _usage(f"{what} plans {n_runs} runs, more than --max-runs {args.max_runs} "
                     f"(default {MAX_RUNS}); use a smaller grid or raise --max-runs")


def _final_table(store: Any, run_ids: list[str]) -> str:
    from adamlab.analysis.plots import CURVE_METRICS

    rows = {r["run_id"]: r for r in store.run_table(run_ids=run_ids)}
    wanted = [rows[i] for i in run_ids if i in rows]
    metrics = [m for m in CURVE_METRICS if any(m in r["final"] for r in wanted)]
    head = f"{'problem':<22} {'optimizer':<10} {'lr':>9} {'seed':>4} {'status':<9}" + "".join(
        f" {m:>14}" for m in metrics)
    lines = [head, "-" * len(head)]
    for r in wanted:
        lr = f"{r['lr']:.3g}" if r["lr"] is not None else "default"
        cells = []
        for m in metrics:
            v = r["final"].get(m)
            cells.append(f" {v:>14.6g}" if v is not None else f" {'-':>14}")
        status = r["status"] + (f"@{r['diverged_step']}" if r["status"] == RunStatus.DIVERGED else "")
        lines.append(f"{r['problem']:<22} {r['optimizer']:<10} {lr:>9} {r['seed']:>4} {status:<9}" + "".join(cells))
    return "\n".join(lines)


def _report_line(rep: Any, store_path: str) -> str:
    if rep.ran == 0:
        return f"all {rep.total} runs were already done in {store_path}; nothing to do."
    return (f"{rep.ran} runs done in {rep.wall_time:.1f} s ({rep.finished} finished, {rep.diverged} diverged, "
            f"{rep.failed} failed); {rep.skipped} of {rep.total} were already in {store_path}.")


def _failures(rep: Any) -> int:
    for line in list(rep.errors.values())[:5]:
        print(f"failed: {line}", file=sys.stderr)
    if len(rep.errors) > 5:
        print(f"... and {len(rep.errors) - 5} more failed runs (see the store's runs.error column)", file=sys.stderr)
    return 1 if rep.failed else 0


def _plan_line(args: argparse.Namespace, prep: dict[str, Any], grid: list[float]) -> tuple[str, dict[str, Any]]:
    """``plan: 12 runs x 500 steps = 6,000 steps; about 40 s ...`` for the tuning sweep (and the reruns),
    and the plan's size and time as :func:`adamlab.runner.progress.job_scope` takes them."""
    from adamlab.runner.estimate import about, calibrate, plan
    from adamlab.runner.sweep import expand_grid

    def configs(lrs: list[float], seeds: int) -> list[Any]:
        return expand_grid(prep["problems"], prep["optimizers"], lrs, seeds, prep["budget"], hparams=prep["hparams"],
                           batch_size=args.batch_size, eval_every=args.eval_every, schedule=prep["schedule"],
                           instances=prep["problems"])

    est = calibrate(configs(grid, args.seeds), prep["problems"])
    line = f"plan: {est.describe()}"
    job = {"planned_runs": est.runs, "planned_steps": est.steps, "planned_seconds": est.seconds}
    if args.rerun_seeds:
        rerun = plan(configs(grid[:1], args.rerun_seeds))
        line += f"; then at most {rerun.size()}"
        job["planned_runs"] += rerun.runs
        job["planned_steps"] += rerun.steps
        if est.seconds is not None and est.steps:
            line += f" ({about(est.seconds * rerun.steps / est.steps)})"
            job["planned_seconds"] = est.seconds * (est.steps + rerun.steps) / est.steps
    return line + "; runs already in the store are skipped", job


@contextlib.contextmanager
def _interruptible(command: str) -> Iterator[None]:
    """Warnings as one line each; on Ctrl-C / SIGTERM, the command line that resumes."""
    from adamlab.runner.progress import one_line_warnings

    try:
        with one_line_warnings():
            yield
    except KeyboardInterrupt:
        import shlex

        argv = " ".join(shlex.quote(a) for a in sys.argv[1:]) or command
        print(f"adamlab {command}: to resume, run the same command again: adamlab {argv}", file=sys.stderr)
        raise


# -- commands -------------------------------------------------------------------------------------


def cmd_demo(args: argparse.Namespace) -> int:
    from adamlab.reproduce.demo import run_demo

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise _usage(f"--out {args.out!r} exists and is not a folder")
    try:
        result = run_demo(out, quiet=args.quiet, fresh=args.fresh)
    except ValueError as err:
        raise _usage(str(err)) from None
    print(result.table)
    figs = ", ".join(str(p) for p in result.figures)
    print(f"figure: {figs}")
    print(f"results: {result.store} ({result.runs_done} runs trained, {result.wall_time:.1f} s)")
    return 1 if result.failed else 0


def _prepare(args: argparse.Namespace, optimizers: str, lr_grid: list[float] | None) -> dict[str, Any]:
    options = parse_assignments(args.option, "option")
    hparams = parse_assignments(args.hparam, "hparam")
    if "lr" in hparams and lr_grid is not None:
        raise _usage("give the learning rate with --lr / --lr-grid, not --hparam lr=...")
    if hparams.get("differentiable") not in (None, False):
        raise _usage("--hparam differentiable: the runner trains with plain optimizer steps and never "
                     "differentiates through them; differentiable=True is for the optimizer classes in "
                     "your own code (hypergradients)")
    probe = {**hparams, **({"lr": lr_grid[0]} if lr_grid else {})}
    return {
        "problems": _problems(args.problem, options),
        "optimizers": _optimizers(optimizers, probe),
        "hparams": hparams,
        "schedule": _schedule(args),
        "budget": _budget(args),
        "backend": _backend(args.backend),
        "backend_options": {"address": args.address} if getattr(args, "address", None) else None,
    }


def cmd_run(args: argparse.Namespace) -> int:
    with _interruptible("run"):
        return _cmd_run(args)


def _cmd_run(args: argparse.Namespace) -> int:
    from adamlab.runner.sweep import sweep

    grid = [args.lr] if args.lr is not None else None
    device = _device(args)
    _check_size(args.seeds, args, f"--seeds {args.seeds}")
    prep = _prepare(args, args.optimizer, grid)
    if "," in args.problem or len(prep["optimizers"]) != 1:
        raise _usage("run takes one PROBLEM and one --optimizer; use adamlab sweep for grids")
    with _open_store(args.store) as store:
        try:
            rep = sweep(prep["problems"], prep["optimizers"], grid, args.seeds, prep["budget"], store,
                        prep["backend"], backend_options=prep["backend_options"], hparams=prep["hparams"],
                        batch_size=args.batch_size,
                        eval_every=args.eval_every, schedule=prep["schedule"],
                        checkpoint_every=args.checkpoint_every, quiet=args.quiet,
                        device=device)
        except ValueError as err:
            raise _usage(str(err)) from None
        print(_final_table(store, rep.run_ids))
    print(_report_line(rep, args.store))
    return _failures(rep)


def cmd_sweep(args: argparse.Namespace) -> int:
    with _interruptible("sweep"):
        return _cmd_sweep(args)


def _cmd_sweep(args: argparse.Namespace) -> int:
    from adamlab.runner.sweep import sweep, tune_and_rerun
    from adamlab.selection.lr import select_best

    grid = _lr_grid(args)
    crit = _criterion(args.criterion)
    device = _device(args)
    n_problems = len([s for s in args.problem.split(",") if s.strip()])
    n_optimizers = len([s for s in args.optimizers.split(",") if s.strip()])
    _check_size(n_problems * n_optimizers * (len(grid) * args.seeds + (args.rerun_seeds or 0)), args,
                f"--lr-grid {args.lr_grid} ({len(grid)} values) x {n_optimizers} optimizers x "
                f"{n_problems} problems x {args.seeds} seeds" + (f" + {args.rerun_seeds} rerun seeds"
                                                                if args.rerun_seeds else ""))
    from adamlab.runner.progress import job_scope

    prep = _prepare(args, args.optimizers, grid)
    plan_line, planned = _plan_line(args, prep, grid)
    print(plan_line, flush=True)
    if args.dry_run:
        return 0
    common = dict(hparams=prep["hparams"], batch_size=args.batch_size, eval_every=args.eval_every,
                  schedule=prep["schedule"], checkpoint_every=args.checkpoint_every, quiet=args.quiet,
                  backend=prep["backend"], backend_options=prep["backend_options"])
    common["device"] = device
    with _open_store(args.store) as store, job_scope(**planned):  # one job: the tuning sweep and the reruns
        try:
            # The tuning sweep first, so that a criterion metric no run has is an error before any rerun.
            rep = sweep(prep["problems"], prep["optimizers"], grid, args.seeds, prep["budget"], store,
                        **common)
            _check_metric(store, crit, args.criterion, rep.run_ids)
            if args.rerun_seeds:
                tr = tune_and_rerun(prep["problems"], prep["optimizers"], grid, tune_seeds=args.seeds,
                                    rerun_seeds=args.rerun_seeds, budget=prep["budget"], store=store,
                                    criterion=crit, **common)  # the tuning runs are in the store now
                reports, selections = [rep, tr.rerun], tr.selections
            else:
                reports, selections = [rep], select_best(store, crit, run_ids=rep.run_ids)
        except ValueError as err:
            raise _usage(str(err)) from None
        print(f"best learning rate per optimizer ({crit}):")
        for (_, opt), sel in sorted(selections.items()):
            score = "all diverged/failed" if math.isnan(sel.score) else f"{sel.score:.6g}"
            print(f"  {sel.problem:<22} {opt:<10} lr={sel.best_lr:<10.3g} {crit.metric}={score}")
    code = 0
    for i, rep in enumerate(reports):
        prefix = ("tuning: " if i == 0 else "rerun: ") if len(reports) > 1 else ""
        print(prefix + _report_line(rep, args.store))
        code = max(code, _failures(rep))
    return code


def cmd_plot(args: argparse.Namespace) -> int:
    args.store = store_argument(args)
    from adamlab.analysis.plots import plot_store

    # plots only read: opened read-only, so that they work on a read-only file system
    with _open_store(args.store, readonly=True, must_exist=True) as store:
        crit = _criterion(args.criterion)
        problems = store.problems()
        if args.problem is not None and args.problem not in problems:
            known = ", ".join(problems) or "none"
            raise _usage(f"no runs of problem {args.problem!r} in {args.store}; problems there: {known}")
        ids = None if args.problem is None else [r["run_id"] for r in store.runs(problem=args.problem)]
        _check_metric(store, crit, args.criterion, ids)
        written = plot_store(store, args.out, problem=args.problem, criterion=args.criterion)
    if not written:
        raise _usage(f"nothing to plot in {args.store}: no finished runs")
    if not args.quiet:
        for p in written:
            print(p)
    return 0
