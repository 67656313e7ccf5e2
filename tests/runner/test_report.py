"""``adamlab report``: DeepOBS-style tables and AlgoPerf-style performance profiles on a hand-made store."""

from __future__ import annotations

import base64
import math
import re
from pathlib import Path

import numpy as np
import pytest

from adamlab import cli
from adamlab.analysis.report import (
    benchmark_score,
    build_report,
    make_target,
    performance_profiles,
    profile_ratios,
    time_to_target,
)
from adamlab.runner import RunConfig, RunResult, Store
from adamlab.runs.result import RunStatus

STEPS = (0, 10, 20, 30, 40)


def _record(db: Store, problem: str, opt: str, lr: float | None, seed: int, values, *, status=RunStatus.FINISHED,
            clock: float = 1.0, metric: str = "test_accuracy") -> None:
    hparams = {} if lr is None else {"lr": lr}
    config = RunConfig(problem, opt, hparams, seed, STEPS[-1], 8, 10, {"name": "constant"}, {"size": 1})
    records = [{"step": s, metric: v, "wall_time": s * clock} for s, v in zip(STEPS, values, strict=False)]
    db.record(RunResult(config, status, records, diverged_step=len(values) * 10 if status == "diverged" else None))


@pytest.fixture
def hand_made(tmp_path):
    """Accuracy from 0 to 1; target (q = 0.95) 0.95. Times to target: p.one A 10, B 20, C 40; p.two A 30, B 10."""
    path = tmp_path / "hand.sqlite"
    with Store(path) as db:
        _record(db, "p.one", "A", 0.1, 0, [0, 0.96, 0.97, 0.98, 1.0])
        _record(db, "p.one", "B", 0.1, 0, [0, 0.5, 0.95, 0.99, 1.0], clock=0.1)
        _record(db, "p.one", "C", 0.1, 0, [0, 0.2, 0.4, 0.6, 0.96])
        _record(db, "p.two", "A", 0.1, 0, [0, 0.3, 0.6, 0.95, 1.0])
        _record(db, "p.two", "B", 0.1, 0, [0, 0.99, 1.0, 1.0, 1.0])
        _record(db, "p.two", "C", 0.1, 0, [0, 0.1, 0.2, 0.3, 0.5])
        # A's lr grid on p.one: 0.01 reaches only 0.9 (not the target), 1.0 diverges
        _record(db, "p.one", "A", 0.01, 0, [0, 0.3, 0.6, 0.8, 0.9])
        _record(db, "p.one", "A", 1.0, 0, [0, 0.1], status=RunStatus.DIVERGED)
    return path


def test_target_and_time_to_target():
    assert make_target(0.0, 1.0, 0.95, log_scale=False) == pytest.approx(0.95)
    assert make_target(100.0, 1.0, 0.5, log_scale=True) == pytest.approx(10.0)
    assert time_to_target([0, 10, 20], [3.0, 1.0, 0.5], 1.0, "min") == 10
    assert time_to_target([0, 10, 20], [0.1, 0.5, 0.7], 0.8, "max") == math.inf
    assert time_to_target([0, 10], [math.nan, 0.9], 0.8, "max") == 10
    with pytest.raises(ValueError, match="target fraction"):
        make_target(0.0, 1.0, 1.5, log_scale=False)


def test_profiles_and_score_from_known_times():
    times = {"p1": {"A": 10.0, "B": 20.0, "C": 40.0}, "p2": {"A": 30.0, "B": 10.0, "C": math.inf}}
    assert profile_ratios(times) == {"A": [1.0, 3.0], "B": [2.0, 1.0], "C": [4.0, math.inf]}
    taus = np.array([1.0, 1.99, 2.0, 2.99, 3.0, 3.99, 4.0])
    rho = performance_profiles(times, taus)
    np.testing.assert_array_equal(rho["A"], [0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(rho["B"], [0.5, 0.5, 1.0, 1.0, 1.0, 1.0, 1.0])
    np.testing.assert_array_equal(rho["C"], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5])
    ratios = profile_ratios(times)
    assert benchmark_score(ratios["A"]) == pytest.approx((3 + 1) / 6)
    assert benchmark_score(ratios["B"]) == pytest.approx((3 + 2) / 6)
    assert benchmark_score(ratios["C"]) == 0.0
    # the exact area equals the numerical integral of the step function
    fine = np.linspace(1, 4, 300_001)
    for s in "AB":
        area = performance_profiles(times, fine)[s].mean()  # (1/3) integral on a uniform grid
        assert benchmark_score(ratios[s]) == pytest.approx(area, abs=1e-4)
    # a problem nobody reaches counts for nobody but stays in |P|
    assert performance_profiles({"p": {"A": math.inf}, "q": {"A": 1.0}}, [1.0])["A"].tolist() == [0.5]


def test_report_on_hand_made_store(hand_made):
    rep = build_report(hand_made)
    assert [p.pid for p in rep.problems] == ["p.one[size=1]", "p.two[size=1]"]
    one, two = rep.problems
    assert one.criterion.metric == "test_accuracy" and one.criterion.mode == "max"
    assert (one.initial, one.best, one.target) == (0.0, 1.0, pytest.approx(0.95))
    a = one.entries["A"]
    assert a.best_lr == 0.1 and a.final_mean == 1.0 and a.seeds == 1 and math.isnan(a.final_sd)
    assert a.speed_steps == 10 and a.time_to_target == 10
    assert (a.lrs_reaching, a.lrs, a.diverged_lrs) == (1, 3, 1) and a.tunability == pytest.approx(1 / 3)
    assert one.entries["B"].speed_steps == 20 and one.entries["C"].speed_steps == 40
    assert two.entries["C"].speed_steps == math.inf and two.entries["C"].tunability == 0.0
    assert rep.scores == pytest.approx({"A": 4 / 6, "B": 5 / 6, "C": 0.0})
    i3 = int(np.searchsorted(rep.taus, 3.0))
    assert rep.profiles["A"][i3 - 1] == 0.5 and rep.profiles["A"][i3] == 1.0


def test_wall_time_profiles(hand_made):
    rep = build_report(hand_made, time="wall")
    one = rep.problems[0]
    assert one.entries["B"].time_to_target == pytest.approx(2.0)  # step 20 at 0.1 s per step
    assert one.entries["A"].time_to_target == pytest.approx(10.0)
    assert one.entries["B"].speed_steps == 20  # the speed column stays in steps


def test_best_lr_is_ranked_on_the_tuning_seeds(tmp_path):
    """A tune-and-rerun store: the best lr was rerun with more seeds, which must not penalise it."""
    path = tmp_path / "tr.sqlite"
    with Store(path) as db:
        _record(db, "p", "A", 0.1, 0, [0, 0.5, 0.9, 0.95, 0.99])
        _record(db, "p", "A", 0.01, 0, [0, 0.5, 0.9, 0.95, 0.98])
        for seed, final in ((1, 0.9), (2, 0.93)):
            _record(db, "p", "A", 0.1, seed, [0, 0.5, 0.8, 0.85, final])
    (prob,) = build_report(path).problems
    e = prob.entries["A"]
    assert e.best_lr == 0.1 and e.seeds == 3
    assert e.final_mean == pytest.approx((0.99 + 0.9 + 0.93) / 3)
    assert e.final_sd == pytest.approx(float(np.std([0.99, 0.9, 0.93], ddof=1)))


def test_default_lr_runs_are_reported(tmp_path):
    path = tmp_path / "d.sqlite"
    with Store(path) as db:
        _record(db, "p", "A", None, 0, [0, 0.5, 0.96, 0.97, 0.99])
        _record(db, "p", "B", 0.1, 0, [0, 0.96, 0.97, 0.98, 1.0])
    (prob,) = build_report(path).problems
    a = prob.entries["A"]
    assert a.best_lr is None and a.final_mean == 0.99 and a.speed_steps == 20 and a.lrs == 0
    assert prob.entries["B"].speed_steps == 10


def test_metric_fallback_and_left_out(tmp_path):
    path = tmp_path / "m.sqlite"
    with Store(path) as db:
        _record(db, "q", "A", 0.1, 0, [10.0, 5.0, 1.0, 0.5, 0.1], metric="train_loss")
        _record(db, "r", "A", 0.1, 0, [0, 0.5, 1.0, 1.0, 1.0])
    rep = build_report(path)
    q = next(p for p in rep.problems if p.pid.startswith("q"))
    assert q.criterion.metric == "train_loss" and q.criterion.mode == "min" and q.log_scale
    assert q.target == pytest.approx(math.exp(math.log(10) + 0.95 * (math.log(0.1) - math.log(10))))
    rep = build_report(path, metric="max:test_accuracy")
    assert [p.pid for p in rep.problems] == ["r[size=1]"] and "no test_accuracy" in rep.left_out[0]


def test_cli_report_writes_a_self_contained_page(hand_made, tmp_path, capsys):
    assert cli.main(["report", str(hand_made), "--out", str(tmp_path / "out")]) == 0
    written = [Path(p) for p in capsys.readouterr().out.split()]
    page = written[0]
    assert page == tmp_path / "out" / "report.html" and len(written) == 7
    assert {p.suffix for p in written[1:]} == {".png", ".pdf"} and all(p.is_file() for p in written)
    text = page.read_text()
    assert not re.search(r"(https?:)?//[\w.-]+\.\w", re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text))
    assert "<script" not in text and "<link" not in text and "@import" not in text and "url(" not in text
    sources = re.findall(r'<img [^>]*src="([^"]+)"', text)
    assert len(sources) == 3  # the profiles and one figure per problem
    for src in sources:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
    for needle in ("Performance profiles", "AlgoPerf score", "tunability", "p.one", "p.two", "0.833"):
        assert needle in text, needle


def test_cli_report_missing_store_is_one_line_exit_2(tmp_path, capsys):
    assert cli.main(["report", str(tmp_path / "nope.sqlite"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "nope.sqlite").exists() and not (tmp_path / "r").exists()


def test_cli_report_empty_store_and_bad_options(tmp_path, capsys):
    Store(tmp_path / "empty.sqlite").close()
    assert cli.main(["report", str(tmp_path / "empty.sqlite")]) == 2
    assert "nothing to report" in capsys.readouterr().err
    for bad in (["--target-fraction", "1.5"], ["--tau-max", "1"], ["--time", "hours"]):
        with pytest.raises(SystemExit):
            cli.main(["report", str(tmp_path / "empty.sqlite"), *bad])
