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


@pytest.mark.parametrize("grid", ["1e-3:1e0:100_000_000", "1e-3:1e0:+100000000"])
def test_a_huge_lr_grid_is_refused_from_its_count_before_it_is_built(capsys, tmp_path, monkeypatch, grid):
    """Item 9: ``100_000_000`` and ``+100000000`` slipped past the COUNT check (``str.isdigit``) and the
    grid was built (59 s, 8 GB) before ``--max-runs`` refused it."""
    import adamlab.commands.runner as commands

    def never(*args, **kwargs):
        raise AssertionError("the grid was built")

    monkeypatch.setattr(commands, "parse_lr_grid", never)
    line = _one_line_exit_2(capsys, ["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", grid,
                                     "--steps", "5", "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert "COUNT 100000000 is more than --max-runs" in line, line


def test_parse_lr_grid_refuses_a_huge_count_before_building_it():
    from adamlab.runs.parsing import MAX_GRID, parse_lr_grid

    with pytest.raises(ValueError, match=f"COUNT must be >= 1 and at most {MAX_GRID}"):
        parse_lr_grid("1e-3:1e0:100000000")


@pytest.mark.parametrize("problem, options, words", [
    ("quadratic.noisy", {"d": 20000}, "d=20000: Q is 20000 x 20000 = 4e\\+08 elements"),
    ("leastsquares.wilson", {"n": 100000}, "n=100000 .* elements"),
])
def test_problem_sizes_are_refused_before_allocating(problem, options, words):
    import time

    from adamlab.problems.base import REGISTRY

    if problem not in REGISTRY.entries:
        pytest.skip(f"{problem} is not registered")
    start = time.perf_counter()
    with pytest.raises(ValueError, match=words):
        build_problem(problem, options)
    assert time.perf_counter() - start < 5.0


@pytest.mark.parametrize("backend", ["serial", "vmap"])
def test_differentiable_is_refused_up_front_on_every_backend(capsys, tmp_path, backend):
    """Item 12: ``--hparam differentiable=true`` finished on one backend and failed on the other."""
    line = _one_line_exit_2(capsys, ["sweep", tiny.NAME, "--optimizers", "adam", "--lr-grid", "0.1",
                                     "--steps", "5", "--backend", backend, "--hparam", "differentiable=true",
                                     "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert "--hparam differentiable" in line, line
    assert not (tmp_path / "s.sqlite").exists()
    with pytest.raises(ValueError, match="hparam differentiable must be False"):
        make_config(build_problem(tiny.NAME), "adam", {"lr": 0.1, "differentiable": True}, 0, 5)


def test_checkpoint_every_with_the_vmap_backend_is_honoured_not_ignored(capsys, tmp_path, monkeypatch):
    """Item 12: --checkpoint-every with the batched backend works (block checkpoints, issue 24)."""
    from adamlab.runner.backends import vmap_train

    saved, real = [], vmap_train.save_checkpoint
    monkeypatch.setattr(vmap_train, "save_checkpoint", lambda path, payload: (saved.append(path),
                                                                              real(path, payload)))
    code = main(["sweep", tiny.NAME, "--optimizers", "sgd", "--lr-grid", "0.1,0.01", "--steps", "10",
                 "--backend", "vmap", "--checkpoint-every", "5", "--store", str(tmp_path / "s.sqlite"), "-q"])
    err = capsys.readouterr().err
    assert code == 0 and "ignored" not in err, err
    assert saved, "the batched block wrote no checkpoint"
