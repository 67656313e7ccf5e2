"""A new subcommand needs one module in adamlab/commands and its registration: cli.py lists none.

The toy command here is defined and registered in this file only, then run through ``adamlab.cli``.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterator

import pytest

from adamlab import cli
from adamlab.commands import COMMANDS, UsageError

BUILT_IN = ["demo", "run", "sweep", "plot", "export", "report", "list", "verify", "data", "reproduce"]


def add_toy(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("toy-command", help="say hello (tests)")
    p.add_argument("--name", default="world")
    p.set_defaults(func=run_toy)


def run_toy(args: argparse.Namespace) -> int:
    if not args.name:
        raise UsageError("--name must not be empty")
    print(f"hello, {args.name}")
    return 0


@pytest.fixture
def toy_command() -> Iterator[str]:
    COMMANDS.add("toy-command", add_toy)
    yield "toy-command"
    COMMANDS.remove("toy-command")


def subcommands() -> list[str]:
    sub = next(a for a in cli.build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_built_in_commands_keep_their_order() -> None:
    assert subcommands() == BUILT_IN


def test_toy_command_runs(toy_command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([toy_command, "--name", "adamlab"]) == 0
    assert capsys.readouterr().out == "hello, adamlab\n"


def test_toy_command_errors_like_the_others(toy_command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main([toy_command, "--name", ""]) == 2
    assert capsys.readouterr().err == "adamlab toy-command: error: --name must not be empty\n"


def test_toy_command_is_listed_last_in_help(toy_command: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert subcommands() == [*BUILT_IN, toy_command]
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    out = capsys.readouterr().out
    assert "say hello (tests)" in out and out.index("reproduce") < out.index(toy_command)


def test_gone_after_removal() -> None:
    assert "toy-command" not in subcommands()
