"""``adamlab reproduce NAME [--quick | --protocol full|quick|deepobs|cpu] [--backend vmap|serial|ray] [--store PATH]
[--out DIR] [--quiet]`` and ``--list``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from adamlab.commands import COMMANDS

#: ``adamlab.reproduce.base.PROTOCOLS`` (repeated so that building the parser imports no torch).
PROTOCOLS = ("full", "quick", "deepobs", "cpu")

EPILOG = """\
examples:
  adamlab reproduce --list                         # the recipes, their protocols and budgets
  adamlab reproduce dissect-p1-fmnist --dry-run    # the plan: runs x steps and a time estimate, no training
  adamlab reproduce wilson --checkpoint-every 500  # checkpoint every 500 steps (default: every few minutes)
  adamlab reproduce noisy-quadratic --quick        # Balles & Hennig fig. 2, a few minutes on 2 cores
  adamlab reproduce wilson --protocol deepobs      # 36 lrs in [1e-5, 1e2], tune on 1 seed, rerun on 10
  ADAMLAB_DATA=../shared/data adamlab reproduce adam-mnist-mlp --protocol cpu   # docs/results.md's budget
  adamlab reproduce wilson --backend serial        # one run after another (default: vmap, batched)
  adamlab reproduce wilson --quick --out /tmp/w    # figure, JSON summary and store into /tmp/w
  ADAMLAB_DATA=../shared/data adamlab reproduce adam-mnist-logreg --quick
  adamlab reproduce dissect-p1-fmnist --store results/all.sqlite   # reuse finished runs of a store

Each run writes <out>/<recipe>.png and .pdf, <out>/summary.json (final metrics mean +- std over
seeds, selected lrs, ordering of the methods, the paper's claims and whether we agree, compute time)
and the SQLite store (default <out>/store.sqlite). Default <out>: ./results/<recipe>/ (with
--quick: ./results/<recipe>-quick/, with --protocol P: ./results/<recipe>-P/).
Before training it prints the plan (runs x steps per phase) and a time estimate from a few timed
steps on this machine. Runs are checkpointed every few minutes of work (and every --checkpoint-every
steps); Ctrl-C or SIGTERM keeps every finished run and checkpoint, and the same command resumes. Each claim gets an effect size with a bootstrap 95%
interval over the seeds; "agree" means the interval excludes zero on the paper's side, "disagree" on
the other side, and an interval that includes zero is "not settled at this budget" (with the number
of seeds that would settle it); with fewer than 5 seeds (--quick) no verdict is given ("too few seeds"). The output states the wall time.
Exit codes: 0 done, 2 bad input or missing data (one line on stderr).
"""


@COMMANDS.register("reproduce", order=70)
def register(subparsers: Any) -> None:
    """Add the ``reproduce`` subcommand."""
    parser = subparsers.add_parser(
        "reproduce",
        help="rerun a paper's experiment (a recipe) and check its claims",
        description="Run a recipe (problem(s) x optimizers x tuning protocol) from the papers, write its "
                    "figure, a JSON summary and the results store, and compare with the paper's claims.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("name", nargs="?", help="recipe name (omit, or use --list, to list them)")
    parser.add_argument("--list", action="store_true", help="list the recipes and exit")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke test: the recipe's reduced budget (at most a few minutes), into its own "
                             "folder; the same as --protocol quick")
    parser.add_argument("--protocol", choices=PROTOCOLS, default=None,
                        help="full (the recipe's own, default), quick, deepobs (36 log-spaced lrs in "
                             "[1e-5, 1e2], tune on 1 seed, rerun the best on 10 seeds, full budget), or cpu "
                             "(the results page's budget: <= 30 min on 2 idle cores)")
    parser.add_argument("--backend", default="vmap",
                        help="runner backend: vmap (default: batched; runs that cannot batch fall back to "
                             "serial with the backend's message), serial, or ray")
    parser.add_argument("--device", default="cpu", metavar="DEV",
                        help="where to train: cpu (default), cuda, cuda:N, mps or auto (runs in --store are "
                             "reused whatever device trained them)")
    parser.add_argument("--deterministic", action="store_true",
                        help="use PyTorch's deterministic algorithms (on CUDA: reproducible bits, slower)")
    parser.add_argument("--store", default=None, help="results store path (default <out>/store.sqlite)")
    parser.add_argument("--out", default=None, help="output folder (default ./results/<recipe>/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--checkpoint-every", type=int, default=None, metavar="N",
                        help="checkpoint runs (a batched block) every N steps, besides the default of one "
                             "checkpoint per few minutes of work")
    parser.add_argument("--dry-run", action="store_true",
                        help="print the plan (runs x steps per phase, time estimate) and exit")
    parser.set_defaults(func=_main)


def list_recipes() -> str:
    """One block per recipe: name, title, quick and full protocol, datasets."""
    from adamlab.reproduce.base import get, names

    lines = []
    for name in names():
        r = get(name)
        data = f" [data: {', '.join(r.datasets)}]" if r.datasets else " [no data needed]"
        lines.append(f"{name:<26} {r.title}{data}")
        for which in ("quick", "cpu", "full", "deepobs"):
            if which == "cpu" and getattr(r, "cpu", None) is None:
                continue  # no CPU protocol of its own: the full one fits a CPU
            proto = r.protocol(which)
            lines.append(f"{'':<28}{which + ':':<9}{proto.describe()}")
            if getattr(r, "run_standalone", None) is None:
                runs, steps = r.budget(which)
                lines.append(f"{'':<37}budget: {runs} runs, {steps:,} steps")
    return "\n".join(lines)


def _main(args: argparse.Namespace) -> int:
    from adamlab.reproduce.api import reproduce
    from adamlab.reproduce.base import get

    if args.list or not args.name:
        print(list_recipes())
        return 0
    from adamlab.runner.backends import names as backend_names

    get(args.name)  # ValueError listing the recipes -> exit 2
    if args.quick and args.protocol not in (None, "quick"):
        raise ValueError(f"--quick conflicts with --protocol {args.protocol}; give one of them")
    if args.backend not in backend_names():
        raise ValueError(f"unknown backend {args.backend!r}; known backends: {', '.join(backend_names())}")
    if args.checkpoint_every is not None and args.checkpoint_every < 1:
        raise ValueError(f"--checkpoint-every must be an integer >= 1; got {args.checkpoint_every}")
    from adamlab.data.errors import DataNotFoundError
    from adamlab.runner.progress import one_line_warnings
    from adamlab.runs.device import setup_device

    device = setup_device(args.device, args.deterministic)  # unavailable: one line, exit 2, before any run
    try:
        with one_line_warnings():
            reproduce(args.name, quick=args.quick, protocol=args.protocol, backend=args.backend, out=args.out,
                      store=args.store, quiet=args.quiet, checkpoint_every=args.checkpoint_every,
                      dry_run=args.dry_run, device=device)
    except DataNotFoundError as err:  # reproduce has no --root: name the setting it does read
        raise ValueError(str(err).replace("point --root / $ADAMLAB_DATA at", "set $ADAMLAB_DATA to")) from None
    except KeyboardInterrupt:
        print(f"adamlab reproduce: to resume, run the same command again: {resume_command()}", file=sys.stderr)
        raise
    return 0


def resume_command() -> str:
    """The command line this process was started with (what resumes an interrupted run)."""
    import shlex

    argv = list(sys.argv[1:])
    return "adamlab " + " ".join(shlex.quote(a) for a in argv)
