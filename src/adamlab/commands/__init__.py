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


__all__ = ["COMMANDS", "AddCommands", "UsageError"]
