"""The ``adamlab`` subcommands (layer ``commands``, just below :mod:`adamlab.cli`).

One job: parse a subcommand's arguments and call the library. Each module here adds one or more
subcommands with a function ``register(subparsers) -> None`` that sets ``func`` (``args -> int`` exit
code) on them, and registers that function in :data:`COMMANDS` with an ``order`` (its place in
``adamlab --help``)::

    @COMMANDS.register("export", order=20)
    def register(subparsers): ...

:func:`adamlab.cli.build_parser` imports every module of this package (a module that fails to import
is a :class:`~adamlab.util.registry.RegistryImportError` naming it) and calls the registered functions
in order. No library code imports these modules.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from adamlab.util.registry import Registry

AddCommands = Callable[[argparse._SubParsersAction], None]
"""A command module's ``register(subparsers)``: adds its subparsers and their ``func``."""

#: The command modules' ``register`` functions, filled by the modules of this package.
COMMANDS: Registry[AddCommands] = Registry("command", package="adamlab.commands")


class UsageError(Exception):
    """Bad user input: printed as one line by :func:`adamlab.cli.main`, exit code 2."""


class _StoreOnce(argparse.Action):
    """Sets ``store``; refuses a second one (``STORE`` and ``--store PATH`` together)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: object,
                 option_string: str | None = None) -> None:
        if values is None or values == []:  # the positional left out
            return
        if getattr(namespace, "store", None) is not None:
            parser.error("the results store is given twice: give STORE or --store PATH, not both")
        namespace.store = values


def add_store_argument(parser: argparse.ArgumentParser) -> None:
    """A results store to read, as ``STORE`` or as ``--store PATH`` (the option ``run`` and ``sweep``
    write with), exactly one of them: :func:`store_argument` reads it back."""
    parser.set_defaults(store=None)
    parser.add_argument("store_path", metavar="STORE", nargs="?", action=_StoreOnce, default=None,
                        help="an SQLite results store (or --store PATH)")
    parser.add_argument("--store", dest="store_path", metavar="PATH", action=_StoreOnce, default=None,
                        help="the same, as an option (as run and sweep take it)")


def store_argument(args: argparse.Namespace) -> str:
    """The store given to a command of :func:`add_store_argument`; :class:`UsageError` when none was."""
    if args.store is None:
        raise UsageError("no results store given: give STORE or --store PATH")
    return str(args.store)


__all__ = ["COMMANDS", "AddCommands", "UsageError", "add_store_argument", "store_argument"]
