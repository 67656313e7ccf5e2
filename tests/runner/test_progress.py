"""Progress off a terminal: whole lines (one per finished run), tqdm's TQDM_* variables, -q silences."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest

from adamlab import cli
from adamlab.runner import progress

ROOT = Path(__file__).resolve().parents[2]
SWEEP = ["sweep", "quadratic.noisy", "--option", "d=10", "--optimizers", "sgd,adam", "--lr-grid", "0.01,0.1,1",
         "--steps", "50"]
RUNS = 6


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TQDM_")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def _progress_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("sweep:")]


def test_cli_redirected_to_a_file_writes_one_line_per_run(tmp_path):
    log = tmp_path / "log.txt"
    with open(log, "w") as fh:
        proc = subprocess.run([sys.executable, "-m", "adamlab.cli", *SWEEP, "--store", str(tmp_path / "s.sqlite")],
                              stdout=fh, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path, timeout=300)
    assert proc.returncode == 0
    text = log.read_text()
    assert "\r" not in text and "\x1b[" not in text  # no redrawn bars, no cursor movement
    lines = text.splitlines()
    bars = _progress_lines(text)
    assert bars[0] == f"sweep: {RUNS} runs"
    assert [b.split(",")[0] for b in bars[1:]] == [f"sweep: {i}/{RUNS} runs" for i in range(1, RUNS + 1)]
    assert bars[-1].endswith(f"finished={RUNS} diverged=0 failed=0")
    # the rest is the command's own output: the plan (issue #24), the best-lr table (header + one line per
    # optimizer) and a summary
    assert lines[0].startswith(f"plan: {RUNS} runs x ")
    assert len(lines) == len(bars) + 5, text


def _sweep_in_process(tmp_path, capsys, *extra: str) -> str:
    code = cli.main([*SWEEP, "--store", str(tmp_path / "s.sqlite"), *extra])
    assert code == 0
    return capsys.readouterr().err


@pytest.mark.parametrize(("env", "flags"), [({"TQDM_DISABLE": "1"}, ()), ({}, ("-q",))])
def test_tqdm_disable_and_quiet_silence(tmp_path, capsys, monkeypatch, env, flags):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert _sweep_in_process(tmp_path, capsys, *flags) == ""


def test_tqdm_mininterval_throttles_log_lines(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("TQDM_MININTERVAL", "1000")
    bars = _progress_lines(_sweep_in_process(tmp_path, capsys))
    assert len(bars) == 2 and bars[-1].startswith(f"sweep: {RUNS}/{RUNS} runs")  # the header and the last


def test_resumed_sweep_says_what_was_done(tmp_path, capsys):
    cli.main([*SWEEP[:-4], "--lr-grid", "0.01", "--steps", "50", "--store", str(tmp_path / "s.sqlite"), "-q"])
    capsys.readouterr()
    bars = _progress_lines(_sweep_in_process(tmp_path, capsys))
    assert bars[0] == f"sweep: {RUNS} runs (2 already done)"
    assert [b.split(",")[0] for b in bars[1:]] == [f"sweep: {i}/{RUNS} runs" for i in range(3, RUNS + 1)]


def test_run_lines_are_a_periodic_summary(capsys, monkeypatch):
    bar = progress.run_bar(100, quiet=False, desc="run")  # capsys' stderr is not a terminal
    for _ in range(100):
        bar.update(1)
    bar.close()
    assert capsys.readouterr().err == ""  # shorter than RUN_LINE_INTERVAL: nothing
    monkeypatch.setattr(progress, "RUN_LINE_INTERVAL", 0.0)
    bar = progress.run_bar(4, quiet=False, desc="run")
    for _ in range(4):
        bar.set_postfix_str("loss=1")
        bar.update(1)
    bar.close()
    err = capsys.readouterr().err.splitlines()
    assert [e.split(",")[0] for e in err] == ["run: 1/4 steps", "run: 2/4 steps", "run: 3/4 steps"]
    assert err[0].endswith("loss=1")


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_bars_are_tqdm_with_env_overrides(monkeypatch):
    from tqdm.auto import tqdm

    monkeypatch.setattr(sys, "stderr", _Terminal())
    monkeypatch.setenv("TQDM_MININTERVAL", "5")
    monkeypatch.setenv("TQDM_LEAVE", "1")
    bar = progress.run_bar(10, quiet=False, desc="run")
    try:
        assert isinstance(bar, tqdm)
        assert bar.mininterval == 5.0 and bar.leave is True  # the environment wins over our defaults
    finally:
        bar.close()
    monkeypatch.setenv("TQDM_DISABLE", "0")
    bar = progress.sweep_bar(3, quiet=False)
    assert isinstance(bar, tqdm) and not bar.disable
    bar.close()
    assert isinstance(progress.sweep_bar(3, quiet=True), progress._Null)


def test_tqdm_env_parsing():
    env = {"TQDM_DISABLE": "false", "TQDM_NCOLS": "80", "TQDM_MININTERVAL": "0.5", "TQDM_ASCII": " #"}
    assert progress.tqdm_env(env) == {"disable": False, "ncols": 80, "mininterval": 0.5, "ascii": " #"}
    with pytest.raises(ValueError, match="TQDM_NCOLS must be an integer"):
        progress.tqdm_env({"TQDM_NCOLS": "wide"})


def test_notebook_keeps_widget_bars(monkeypatch):
    """In Jupyter stderr is no terminal, but tqdm.auto's widget bar redraws in place: keep it."""

    class NotebookBar(progress._Null):
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    NotebookBar.__module__ = "tqdm.notebook"
    monkeypatch.setattr(progress, "tqdm", NotebookBar)
    bar = progress.sweep_bar(3, quiet=False)
    assert isinstance(bar, NotebookBar) and bar.kwargs["total"] == 3
