"""The ``adamlab`` command line.

Each subcommand lives with the layer it belongs to, in a module that exposes
``register(subparsers) -> None``. ``register`` adds one or more subparsers and sets
``func`` (``args -> int`` exit code) as their default. This file only wires them together.

Exit codes: 0 success, 1 the job ran but failed (e.g. a property did not hold where it must,
a run diverged when that is an error), 2 bad arguments or bad input (one clear line on stderr):
a ``UsageError`` or ``ValueError``, any ``OSError`` (a path that is missing, a file where a folder
is needed, read-only, ...; the line names the path), or a ``MemoryError`` (sizes too large).
"""

from __future__ import annotations

import argparse
import importlib
import sqlite3
import sys
from collections.abc import Sequence

from adamlab import __version__
from adamlab.commands import UsageError

# Modules that add subcommands, in the order they appear in --help.
COMMAND_MODULES: tuple[str, ...] = (
    "adamlab.commands.runner",  # demo, run, sweep, plot
    "adamlab.commands.export",  # export
    "adamlab.commands.report",  # report
    "adamlab.commands.problems",  # list
    "adamlab.commands.verify",  # verify
    "adamlab.commands.data",  # data fetch | verify
    "adamlab.commands.reproduce",  # reproduce
)


def os_error_line(err: OSError) -> str:
    """One line for an ``OSError``: what failed and the path(s) it names."""
    if err.filename is None or err.strerror is None:  # adamlab's own errors carry their message
        return " ".join(str(err).split())
    paths = repr(str(err.filename)) + (f" -> {str(err.filename2)!r}" if err.filename2 is not None else "")
    return f"{err.strerror}: {paths}"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adamlab",
        description="Adam and its relatives: optimizers, dissection, and the papers' experiments.",
        epilog="Run `adamlab COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"adamlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            # Only tolerate the command module itself being absent, never a broken import inside it.
            if err.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UsageError as err:
        print(f"adamlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except ValueError as err:
        print(f"adamlab {args.command}: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a path that is missing, a file, read-only, full, ...
        print(f"adamlab {args.command}: error: {os_error_line(err)}", file=sys.stderr)
        return 2
    except sqlite3.Error as err:  # e.g. a results store on a full or vanished disk
        print(f"adamlab {args.command}: error: results store: {err}", file=sys.stderr)
        return 2
    except MemoryError as err:
        detail = f" ({err})" if str(err) else ""
        print(f"adamlab {args.command}: error: out of memory{detail}; use smaller sizes", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"adamlab {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
