"""``adamlab reproduce NAME [--quick] [--store PATH] [--out DIR] [--quiet]`` and ``--list``."""

from __future__ import annotations

import argparse
from typing import Any

EPILOG = """\
examples:
  adamlab reproduce --list                         # the recipes, with their protocols
  adamlab reproduce noisy-quadratic --quick        # Balles & Hennig fig. 2, a few minutes on 2 cores
  adamlab reproduce wilson --quick --out /tmp/w    # figure, JSON summary and store into /tmp/w
  ADAMLAB_DATA=../shared/data adamlab reproduce adam-mnist-logreg --quick
  adamlab reproduce dissect-p1-fmnist --store results/all.sqlite   # reuse finished runs of a store

Each run writes <out>/<recipe>.png and .pdf, <out>/summary.json (final metrics mean +- std over
seeds, selected lrs, ordering of the methods, the paper's claims and whether we agree, compute time)
and the SQLite store (default <out>/store.sqlite). Default <out>: ./results/<recipe>/.
Exit codes: 0 done, 2 bad input or missing data (one line on stderr).
"""


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
    parser.add_argument("--quick", action="store_true", help="the recipe's reduced budget (minutes on 2 cores)")
    parser.add_argument("--store", default=None, help="results store path (default <out>/store.sqlite)")
    parser.add_argument("--out", default=None, help="output folder (default ./results/<recipe>/)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(func=_main)


def list_recipes() -> str:
    """One block per recipe: name, title, quick and full protocol, datasets."""
    from adamlab.reproduce.base import get, names

    lines = []
    for name in names():
        r = get(name)
        data = f" [data: {', '.join(r.datasets)}]" if r.datasets else " [no data needed]"
        lines.append(f"{name:<26} {r.title}{data}")
        lines.append(f"{'':<28}quick: {r.quick.describe()}")
        lines.append(f"{'':<28}full:  {r.full.describe()}")
    return "\n".join(lines)


def _main(args: argparse.Namespace) -> int:
    from adamlab.reproduce.api import reproduce
    from adamlab.reproduce.base import get

    if args.list or not args.name:
        print(list_recipes())
        return 0
    get(args.name)  # ValueError listing the recipes -> exit 2
    reproduce(args.name, quick=args.quick, out=args.out, store=args.store, quiet=args.quiet)
    return 0
