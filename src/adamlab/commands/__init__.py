"""The ``adamlab`` subcommands (layer ``commands``, just below :mod:`adamlab.cli`).

Each module here adds one or more subcommands with ``register(subparsers) -> None`` and sets
``func`` (``args -> int`` exit code) on them. They parse arguments and call the library; no library
code imports them.
"""


class UsageError(Exception):
    """Bad user input: printed as one line by :func:`adamlab.cli.main`, exit code 2."""


__all__ = ["UsageError"]
