"""Issue #24: the report's header states the seeds the table shows (per optimizer when they differ),
never the number of distinct seeds in the whole store."""

from __future__ import annotations

from adamlab.analysis.plots import load_problem_runs
from adamlab.analysis.report import build_report
from adamlab.analysis.report_page import render_html
from adamlab.runner import Store
from tests.runner.test_report import _record


def _store(tmp_path):
    path = tmp_path / "seeds.sqlite"
    with Store(path) as db:
        for seed in (0, 1, 2):
            _record(db, "p", "A", 0.1, seed, [0, 0.5, 0.9, 0.95, 0.99])
        for seed in (0, 1):
            _record(db, "p", "B", 0.1, seed, [0, 0.4, 0.8, 0.9, 0.97])
            _record(db, "p", "C", 0.1, seed, [0, 0.3, 0.7, 0.9, 0.96])
    return path


def test_report_header_states_the_seeds_per_optimizer(tmp_path):
    report = build_report(_store(tmp_path))
    (prob,) = report.problems
    assert [prob.entries[o].seeds for o in "ABC"] == [3, 2, 2]
    assert "seeds: A 3, B 2, C 2" in prob.protocol and "3 seeds" not in prob.protocol
    assert "seeds: A 3, B 2, C 2" in render_html(report, {})


def test_equal_seeds_are_one_number_and_lr_grids_give_the_range(tmp_path):
    path = tmp_path / "grid.sqlite"
    with Store(path) as db:
        for seed in (0, 1, 2):
            _record(db, "p", "A", 0.1, seed, [0, 0.5, 0.9, 0.95, 0.99])
        _record(db, "p", "A", 0.01, 0, [0, 0.3, 0.6, 0.8, 0.9])
    (grp,) = load_problem_runs(path)
    assert grp.protocol().endswith("1-3 seeds per (optimizer, lr)")
    assert grp.protocol({"A": 3}).endswith(", 3 seeds")
    assert grp.protocol({"A": 1}).endswith(", 1 seed")


def test_report_figures_keep_their_legends_off_the_data(tmp_path):
    """Issue #24 d5: the report page's figures put the legend outside every panel."""
    from adamlab.analysis.report_page import problem_figure, profile_figure
    from adamlab.plotting import pyplot

    report = build_report(_store(tmp_path))
    for fig in (profile_figure(report), problem_figure(report.problems[0])):
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        (legend,) = fig.legends
        box = legend.get_window_extent(renderer)
        for ax in fig.axes:
            assert not box.overlaps(ax.get_window_extent(renderer)), "legend on a panel"
        pyplot().close(fig)
