"""Items 8 and 14 of issue 23: integers too large for SQLite or a float, absurd epochs, deeply nested
JSON and float budgets are refused with one line (exit 2 on the command line, ``ValueError`` naming
the parameter in the API), never a traceback and never a silent truncation."""

from __future__ import annotations

import pytest

from adamlab.cli import main
from adamlab.runner.train import build_problem
from adamlab.runs.config import Budget, make_config
from tests.runner import runner_tiny_problem as tiny

HUGE = "1" * 400


def _one_line_exit_2(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and "Traceback" not in "\n".join(err), err
    return err[-1]


@pytest.mark.parametrize("extra, words", [
    (["--steps", "99999999999999999999"], "--steps: must be an integer in 1 .."),
    (["--steps", "5", "--hparam", f"eps={HUGE}"], "--hparam eps: integer"),
    (["--steps", "5", "--option", f"noise={HUGE}"], "--option noise: integer"),
    (["--steps", "5", "--option", "noise=" + "[" * 20000 + "]" * 20000], "--option noise: value"),
    (["--epochs", "1e308"], "budget epochs 1e+308"),
])
def test_huge_numbers_on_the_command_line_are_one_line(capsys, tmp_path, extra, words):
    line = _one_line_exit_2(capsys, ["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1",
                                     "--store", str(tmp_path / "s.sqlite"), "-q", *extra])
    assert words in line, line


@pytest.mark.parametrize("kwargs, words", [
    ({"hparams": {"lr": 10**400}}, "config value .* too large"),
    ({"budget": {"steps": 7.5}}, "budget steps must be an integer"),
    ({"budget": Budget(epochs=1e308)}, "budget epochs"),
    ({"seed": 10**30}, "seed must be an integer in 0 .."),
    ({"budget": 2**63}, "budget steps must be an integer in 1 .."),
])
def test_huge_numbers_and_float_budgets_in_the_api_are_value_errors(kwargs, words):
    problem = build_problem(tiny.NAME)
    args = {"hparams": {"lr": 0.1}, "seed": 0, "budget": 5, **kwargs}
    with pytest.raises(ValueError, match=words):
        make_config(problem, "sgd", args["hparams"], args["seed"], args["budget"])


def test_an_integral_float_budget_is_still_accepted_as_its_integer():
    problem = build_problem(tiny.NAME)
    assert make_config(problem, "sgd", {"lr": 0.1}, 0, {"steps": 7.0}).steps == 7
