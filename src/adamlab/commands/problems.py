"""``adamlab list``: the registered problems with their descriptions and default protocols."""

from __future__ import annotations

import argparse

from adamlab.commands import COMMANDS
from adamlab.problems.base import entry, names

EPILOG = """examples:
  adamlab list                 every problem, its description and default protocol
  adamlab list --names         just the names, one per line
  adamlab list quadratic.noisy one problem, with its options and their defaults
"""


def describe(name: str) -> str:
    """A few lines about problem ``name``: description, protocol and options."""
    registered = entry(name)
    lines = [f"{name}", f"    {registered.description}"]
    proto = registered.protocol
    if proto is not None:
        lines.append(
            f"    batch {proto.batch_size}, {proto.steps} steps, eval every {proto.eval_every}, "
            f"lr schedule {proto.lr_schedule}"
        )
        if proto.source:
            lines.append(f"    source: {proto.source}")
    defaults = getattr(registered.factory, "default_options", None)
    if defaults:
        opts = ", ".join(f"{k}={v!r}" for k, v in sorted(defaults.items()))
        lines.append(f"    options: {opts}")
    return "\n".join(lines)


def _run(args: argparse.Namespace) -> int:
    known = names()
    selected = args.problems or known
    unknown = [p for p in selected if p not in known]
    if unknown:
        raise ValueError(f"unknown problem(s) {', '.join(unknown)}; known problems: {', '.join(known)}")
    if args.names:
        print("\n".join(selected))
    else:
        print("\n\n".join(describe(p) for p in selected))
    return 0


@COMMANDS.register("problems", order=40)
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``list`` subcommand."""
    parser = subparsers.add_parser(
        "list",
        help="list the test problems and their default protocols",
        description="List the registered test problems with their description, default protocol "
        "(batch size, steps, eval cadence, lr schedule, source) and options.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("problems", nargs="*", metavar="PROBLEM", help="only these problems (default: all)")
    parser.add_argument("--names", action="store_true", help="print only the names")
    parser.set_defaults(func=_run)
