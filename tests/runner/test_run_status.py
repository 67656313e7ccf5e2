"""The run states live in one enum (``runner/result.py``); nothing else spells them as string literals."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from adamlab.problems import get as get_problem
from adamlab.runner.sweep import SweepReport
from adamlab.runs.config import make_config
from adamlab.runs.result import DONE_STATUSES, RunResult, RunStatus

SRC = Path(__file__).resolve().parents[2] / "src" / "adamlab"
LITERAL = re.compile(r"""(==|!=|\bin\b|\bis\b)\s*\(?\s*["'](pending|running|finished|diverged|failed)["']""")


def test_status_values_and_done():
    assert [s.value for s in RunStatus] == ["pending", "running", "finished", "diverged", "failed"]
    assert {s for s in RunStatus if s.done} == DONE_STATUSES == {RunStatus.FINISHED, RunStatus.DIVERGED}
    assert RunStatus("finished") is RunStatus.FINISHED and str(RunStatus.FAILED) == "failed"
    with pytest.raises(ValueError):
        RunStatus("done")


def test_run_result_converts_and_rejects_status():
    config = make_config(get_problem("quadratic.noisy"), "sgd", {"lr": 0.1}, seed=0, budget=1)
    assert RunResult(config, "diverged").status is RunStatus.DIVERGED
    with pytest.raises(ValueError):
        RunResult(config, "finshed")


def test_sweep_report_counts_final_statuses_only():
    report = SweepReport()
    for status in (RunStatus.FINISHED, RunStatus.FINISHED, RunStatus.DIVERGED, RunStatus.FAILED):
        report.count(status)
    assert (report.finished, report.diverged, report.failed, report.ran) == (2, 1, 1, 4)
    with pytest.raises(ValueError, match="running"):
        report.count(RunStatus.RUNNING)


def test_no_status_string_literals_outside_the_enum():
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "result.py" and path.parent.name == "runner":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if LITERAL.search(line):
                offenders.append(f"{path.relative_to(SRC)}:{n}: {line.strip()}")
    assert not offenders, "compare with RunStatus, not string literals:\n" + "\n".join(offenders)
