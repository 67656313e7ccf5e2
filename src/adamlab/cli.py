"""The ``adamlab`` command line (layer ``cli``, the top: nothing imports it).

Each subcommand lives in a module of :mod:`adamlab.commands` that registers a function
``register(subparsers) -> None`` in :data:`adamlab.commands.COMMANDS` with an ``order``. ``register``
adds one or more subparsers and sets ``func`` (``args -> int`` exit code) as their default. This file
only wires them together: it imports every command module (one that fails to import is a
:class:`~adamlab.util.registry.RegistryImportError` naming it, never a missing subcommand) and calls
the registered functions in order, which is the order of ``--help``.

Exit codes: 0 success, 1 the job ran but failed (e.g. a property did not hold where it must,
a run diverged when that is an error), 2 bad arguments or bad input (one clear line on stderr):
a ``UsageError`` or ``ValueError``, any ``OSError`` (a path that is missing, a file where a folder
is needed, read-only, ...; the line names the path), or a ``MemoryError`` (sizes too large).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
from collections.abc import Sequence

from adamlab import __version__
from adamlab.commands import COMMANDS, UsageError


def os_error_line(err: OSError) -> str:
    """One line for an ``OSError``: what failed and the path(s) it names."""
    if err.filename is None or err.strerror is None:  # adamlab's own errors carry their message
        return " ".join(str(err).split())
    paths = repr(str(err.filename)) + (f" -> {str(err.filename2)!r}" if err.filename2 is not None else "")
    return f"{err.strerror}: {paths}"


def build_parser() -> argparse.ArgumentParser:
    """The ``adamlab`` parser with every registered subcommand, in their registered order."""
    parser = argparse.ArgumentParser(
        prog="adamlab",
        description="Adam and its relatives: optimizers, dissection, and the papers' experiments.",
        epilog="Run `adamlab COMMAND --help` for a command's options and examples.",
    )
    parser.add_argument("--version", action="version", version=f"adamlab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for _, add_commands in COMMANDS.items():  # imports every command module; a broken one raises
        add_commands(sub)
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
    except BrokenPipeError:  # the reader went away (`adamlab list | head`): not an error of ours
        # point stdout at devnull so that Python's exit-time flush does not raise again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
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
