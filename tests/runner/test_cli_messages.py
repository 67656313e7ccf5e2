"""Issue 24, deliverable 7: CLI mistakes get CLI messages (flags that exist, no Python-API wording)."""

from __future__ import annotations

import pytest

from adamlab.cli import main
from adamlab.runner.estimate import about


@pytest.mark.parametrize("command", [["run", "quadratic.noisy", "--optimizer", "adam", "--lr", "0.1"],
                                     ["sweep", "quadratic.noisy", "--optimizers", "adam", "--lr-grid", "0.1"]])
def test_unknown_hparam_names_the_flag_and_the_allowed_names(tmp_path, capsys, command):
    code = main([*command, "--hparam", "beta1=0.5", "--steps", "2", "--store", str(tmp_path / "s.sqlite"), "-q"])
    err = capsys.readouterr().err
    assert code == 2
    assert "--hparam beta1: not a hyperparameter of adam; its hyperparameters: lr, betas, eps" in err
    assert "unexpected keyword" not in err and "Adam()" not in err and "Traceback" not in err


def test_a_bad_hparam_value_still_says_why(tmp_path, capsys):
    code = main(["run", "quadratic.noisy", "--optimizer", "adam", "--lr", "0.1", "--hparam", "eps=-1",
                 "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert code == 2 and "bad --hparam/--lr for adam: Invalid eps=-1" in capsys.readouterr().err


def test_plan_never_says_about_under_one_second(tmp_path, capsys):
    assert about(0.2) == "about 1 s or less" and about(120) == "about 2 min"
    code = main(["sweep", "quadratic.noisy", "--option", "d=5", "--optimizers", "sgd", "--lr-grid", "0.1",
                 "--steps", "2", "--store", str(tmp_path / "s.sqlite"), "--dry-run"])
    out = capsys.readouterr().out
    assert code == 0 and "plan: 1 runs x 2 steps" in out and "about under" not in out


def test_a_closed_pipe_is_not_an_error():
    """``adamlab list --optimizers | head -1``: the reader goes away; no 'Broken pipe' error, exit 0."""
    import subprocess
    import sys

    code = ("import sys; from adamlab.cli import main; sys.exit(main(['list', '--optimizers']))")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    proc.stdout.close()  # like `head -1` exiting
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert proc.wait(timeout=120) == 0, err
    assert "Broken pipe" not in err and "Traceback" not in err
