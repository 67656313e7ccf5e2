"""Item 13 of issue 23: messages that name what is wrong (exit 2, one line)."""

from __future__ import annotations

import os
import sqlite3

import pytest

from adamlab.cli import main
from adamlab.runner import Store, sweep
from tests.runner import runner_tiny_problem as tiny


def _exit_2_line(capsys, argv):
    try:
        code = main(argv)
    except SystemExit as exc:
        code = exc.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "Traceback" not in err[0], err
    return err[0]


@pytest.mark.skipif(not os.path.exists("/dev/null"), reason="POSIX")
def test_a_device_as_the_store_is_named(capsys):
    line = _exit_2_line(capsys, ["export", "/dev/null", "-q"])
    assert "not a regular file" in line, line
    with pytest.raises(ValueError, match="'/dev/null': it is not a regular file"):
        Store("/dev/null")


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="POSIX")
def test_a_fifo_as_the_store_is_refused_without_blocking(tmp_path):
    fifo = tmp_path / "store.sqlite"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        Store(fifo)
    with pytest.raises(ValueError, match="not a regular file"):
        Store(fifo, readonly=True)


def test_bad_json_in_the_store_names_the_store_the_run_and_the_column(store_path, capsys):
    sweep(tiny.NAME, ["sgd"], [0.1], 1, 10, store_path, quiet=True)
    con = sqlite3.connect(store_path)
    (run_id,) = con.execute("SELECT run_id FROM runs").fetchone()
    con.execute("UPDATE runs SET hparams='{not json'")
    con.commit()
    con.close()
    with Store(store_path, readonly=True) as db, pytest.raises(ValueError) as info:
        db.runs()
    message = str(info.value)
    assert str(store_path) in message and "'hparams'" in message and run_id in message, message
    line = _exit_2_line(capsys, ["export", str(store_path), "--out", str(store_path.parent / "x"), "-q"])
    assert "'hparams'" in line and str(store_path) in line, line


def test_report_of_an_unknown_problem_names_the_problems_there(store_path, capsys):
    sweep(tiny.NAME, ["sgd"], [0.1], 1, 10, store_path, quiet=True)
    line = _exit_2_line(capsys, ["report", str(store_path), "--problem", "nosuch", "-q"])
    assert "no runs of problem 'nosuch'" in line and tiny.NAME in line, line


def test_verify_json_into_a_folder_is_refused_before_verifying(tmp_path, capsys, monkeypatch):
    import adamlab.commands.verify as verify_cmd

    def never(**kwargs):
        raise AssertionError("verified first")

    monkeypatch.setattr(verify_cmd, "verify", never)
    line = _exit_2_line(capsys, ["verify", "--json", str(tmp_path)])
    assert "--json" in line and "is a folder" in line, line


def test_verify_a_huge_seed_is_one_line(capsys):
    with pytest.raises(SystemExit) as info:  # argparse: usage, then the one error line
        main(["verify", "--seed", "1" * 30])
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert "--seed: must be an integer in 0 .." in err.strip().splitlines()[-1], err


def test_numpys_dimension_error_names_the_options(capsys, tmp_path, monkeypatch):
    import adamlab.problems as problems

    real = problems.get

    def get(name, **options):
        if options:
            raise ValueError("Maximum allowed dimension exceeded")
        return real(name)

    monkeypatch.setattr(problems, "get", get)
    line = _exit_2_line(capsys, ["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--steps", "2",
                                 "--option", "noise=3", "--store", str(tmp_path / "s.sqlite"), "-q"])
    assert "--option noise=3" in line and "Maximum allowed dimension exceeded" in line, line
