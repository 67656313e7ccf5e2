import math

import pytest

from adamlab.analysis.plots import load_problem_runs, plot_curves, plot_lr_sensitivity, plot_store
from adamlab.runner import sweep
from tests.runner import runner_tiny_problem as tiny


@pytest.fixture
def swept(store_path):
    sweep(tiny.NAME, ["sgd", "adam"], [0.01, 0.1, 10.0], 2, 40, store_path, quiet=True)
    return store_path


def test_plot_store_writes_png_and_pdf(swept, tmp_path):
    files = plot_store(swept, tmp_path / "figs")
    assert sorted(p.suffix for p in files) == [".pdf", ".pdf", ".png", ".png"]
    for p in files:
        assert p.exists() and p.stat().st_size > 1000
    png = next(p for p in files if p.suffix == ".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list((tmp_path / "figs").glob(".*"))  # no temp files left behind


def test_curves_step_axis_and_filters(swept, tmp_path):
    assert len(plot_curves(swept, tmp_path, x="step", stem="c")) == 2
    assert (tmp_path / "c.png").exists()
    assert plot_curves(swept, tmp_path, problem="other") == []
    with pytest.raises(ValueError, match="x must be"):
        plot_curves(swept, tmp_path, x="time")


def test_no_lr_grid_no_sensitivity_plot(store_path, tmp_path):
    sweep(tiny.NAME, ["sgd"], [0.1], 2, 20, store_path, quiet=True)
    assert plot_lr_sensitivity(store_path, tmp_path) == []
    assert len(plot_curves(store_path, tmp_path)) == 2


def test_load_problem_runs_keeps_diverged(swept):
    (grp,) = load_problem_runs(swept)
    statuses = {(r.optimizer, r.lr): r.status for r in grp.runs}
    assert statuses[("sgd", 10.0)] == "diverged"
    assert "batch 8, 40 steps, constant lr, 2 seeds" == grp.protocol()
    assert grp.label == f"{tiny.NAME} (dropout=0.0)"
    assert all(math.isfinite(v) for r in grp.runs for _, vals in r.metrics.values() for v in vals)


def test_missing_store(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        plot_store(tmp_path / "nope.sqlite", tmp_path)


def test_long_option_sets_give_short_file_names():
    from adamlab.analysis.plots import SLUG_OPTIONS, ProblemRuns

    short = ProblemRuns("quadratic.noisy", {"d": 10}, [])
    assert short.slug == "quadratic.noisy_d-10"
    long = ProblemRuns("quadratic.noisy", {"spectrum": "ill", "rotation": "rotated", "noise": 4.0, "d": 100}, [])
    assert len(long.slug) <= len("quadratic.noisy_") + 8 < len("quadratic.noisy_") + SLUG_OPTIONS
    assert long.slug == ProblemRuns("quadratic.noisy", dict(long.options), []).slug  # stable
