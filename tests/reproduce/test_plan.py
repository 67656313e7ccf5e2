"""Before training: the plan (runs x steps), a time estimate, --dry-run, budgets in --list; quick into
its own folder; no claim verdict from fewer than 5 seeds; warnings as one line."""

from __future__ import annotations

import sqlite3
import warnings

import pytest

from adamlab import cli
from adamlab.reproduce.api import default_out, withhold_verdicts
from adamlab.runner.estimate import calibrate, duration, plan
from adamlab.runner.progress import one_line_warnings
from adamlab.runner.sweep import expand_grid
from tests.reproduce.test_new_recipe import TOY, toy_recipe  # noqa: F401  (a fixture)


def test_budget_counts_the_runs_that_execute_makes(toy_recipe, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "toy"
    assert cli.main(["reproduce", toy_recipe, "--quick", "--backend", "serial", "--out", str(out), "--quiet"]) == 0
    text = capsys.readouterr().out
    runs, steps = TOY.budget("quick")
    assert (runs, steps) == (2 * 2 + 2, 6 * 8)
    assert f"plan total      {runs} runs, {steps:,} steps; about" in text
    con = sqlite3.connect(out / "store.sqlite")
    try:
        assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2 * 2 <= runs  # the final seed 0 is a tune run
    finally:
        con.close()


def test_dry_run_plans_and_trains_nothing(toy_recipe, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "toy"
    assert cli.main(["reproduce", toy_recipe, "--dry-run", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "plan tune       4 runs x 40 steps = 160 steps; about" in text
    assert "plan final      4 runs x 40 steps = 160 steps" in text and "dry run: nothing trained" in text
    assert not out.exists()


def test_list_shows_each_protocols_budget(toy_recipe, capsys):  # noqa: F811
    assert cli.main(["reproduce", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "budget: 6 runs, 48 steps" in listing and "budget: 8 runs, 320 steps" in listing


def test_sweep_dry_run(tmp_path, capsys):
    store = tmp_path / "s.sqlite"
    assert cli.main(["sweep", "quadratic.noisy", "--optimizers", "sgd,adam", "--lr-grid", "1e-2,1e-1",
                     "--seeds", "2", "--steps", "30", "--rerun-seeds", "3", "--dry-run", "--store", str(store)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("plan: 8 runs x 30 steps = 240 steps; about ")
    assert "then at most 6 runs x 30 steps = 180 steps" in text
    assert not store.exists()


def test_estimate_groups_and_calibration():
    configs = expand_grid("quadratic.noisy", ["sgd", "adam"], [1e-2, 1e-1], 2, 20, eval_every=5)
    est = plan(configs)
    assert (est.runs, est.steps, len(est.groups)) == (8, 160, 2) and est.seconds is None
    assert est.groups[0].eval_points == 5
    timed = calibrate(configs, steps=2)
    assert timed.seconds is not None and timed.seconds > 0
    assert [duration(s) for s in (42, 600, 7200, 3 * 86400)] == ["42 s", "10 min", "2.0 h", "3.0 days"]


def test_quick_has_its_own_folder():
    assert str(default_out("wilson", "quick")) == "results/wilson-quick"
    assert str(default_out("wilson", "full")) == "results/wilson"


def test_no_verdict_from_fewer_than_5_seeds():
    summary = {"claims": [{"claim": "x", "agree": True}], "all_claims_agree": True}
    withhold_verdicts(summary, 2)
    assert summary["claims"][0]["verdict"] == "too few seeds (2 < 5)" and summary["all_claims_agree"] is None
    summary = {"claims": [{"claim": "x", "agree": False}], "all_claims_agree": False}
    withhold_verdicts(summary, 5)
    assert summary["claims"][0]["verdict"] == "disagree" and summary["all_claims_agree"] is False


def test_warnings_are_one_line(capsys):
    with one_line_warnings():
        warnings.warn("vmap backend: 3 of 3 runs\n   cannot be batched", RuntimeWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err == "warning: vmap backend: 3 of 3 runs cannot be batched\n"


@pytest.mark.parametrize("flag", ["--checkpoint-every"])
def test_reproduce_checkpoint_every_is_checked(toy_recipe, flag, capsys):  # noqa: F811
    assert cli.main(["reproduce", toy_recipe, flag, "0"]) == 2
    assert "--checkpoint-every must be an integer >= 1" in capsys.readouterr().err


def test_missing_data_names_no_flag_that_reproduce_lacks(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ADAMLAB_DATA", str(tmp_path))
    assert cli.main(["reproduce", "adam-mnist-logreg", "--quick", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "is missing" in err and "--root" not in err and "$ADAMLAB_DATA" in err


def _claim(estimate, low, high, n=5):
    agree = low > 0
    return {"claim": "x", "agree": agree, "measured": "m",
            "effect": {"what": "e", "estimate": estimate, "low": low, "high": high, "level": 0.95, "n": n}}


def test_interval_containing_zero_is_not_settled_with_the_seeds_that_would_settle_it():
    # half-width 0.2 around +0.1 over 5 seeds: 5 * (0.2 / 0.1)^2 = 20 -> 21 seeds
    summary = {"claims": [_claim(0.1, -0.1, 0.3), _claim(-0.5, -0.6, -0.4), _claim(0.5, 0.4, 0.6),
                          _claim(0.0, -0.1, 0.1)]}
    withhold_verdicts(summary, 5)
    verdicts = [c["verdict"] for c in summary["claims"]]
    assert verdicts[0].startswith("not settled at this budget (about 21 seeds")
    assert verdicts[1:3] == ["disagree", "agree"]
    assert verdicts[3].startswith("not settled at this budget (the effect is zero")


def test_seeds_to_settle_follows_the_square_root_law():
    from adamlab.reproduce.effects import Effect, seeds_to_settle

    assert seeds_to_settle(0.1, -0.1, 0.3, 5) == 21
    assert seeds_to_settle(1.0, 0.5, 1.5, 10) == 11  # already settled: the next seed count
    assert seeds_to_settle(float("nan"), 0.0, 1.0, 5) is None
    assert Effect("e", 0.1, -0.1, 0.3, 5).verdict == "not settled"
    assert Effect("e", -0.1, -0.3, -0.01, 5).verdict == "disagree"


def test_claims_table_prints_the_verdict_that_is_neither_yes_nor_no():
    from adamlab.reproduce.report import claims_table

    summary = {"claims": [_claim(0.1, -0.1, 0.3)]}
    withhold_verdicts(summary, 5)
    row = claims_table(summary).splitlines()[-1]
    assert "not settled at this budget" in row and "**no**" not in row


def test_every_data_recipe_has_a_cpu_protocol_with_5_seeds_inside_its_grid():
    from adamlab.reproduce.base import get, names

    for name in names():
        recipe = get(name)
        if not recipe.datasets or name == "adam-mnist-logreg":
            continue  # adam-mnist-logreg: the DeepOBS protocol at the paper's budget takes 8 min here
        assert recipe.cpu is not None, name
        proto = recipe.protocol("cpu")
        assert len(proto.seeds) >= 5 and len(proto.tune_seeds) == 1, name
        assert "CPU protocol" in proto.note and "paper" in proto.note, name
        assert proto.steps < recipe.full.steps, name
