"""Issue #24, figures fit for a paper: lr-sensitivity curves lying on each other stay distinguishable
(own marker and line style per method, hollow markers larger the lower the curve lies, the best drawn
last, on top), ``adamlab plot`` fills its canvas and keeps its legend off the data."""

from __future__ import annotations

import pytest

import adamlab.analysis.plots as plots
from adamlab.analysis.plots import draw_lr_sensitivity, load_problem_runs
from adamlab.plotting import pyplot, stacked_styles
from adamlab.runner import Store
from tests.plotting.capture import capture_figures
from tests.runner.test_report import _record

OPTS = ("msgd", "mssd", "msvag", "mssdva", "adam")


def test_stacked_styles_rank_size_and_order():
    styles = stacked_styles(["b", "a", "c"])  # worst first
    assert [styles[n]["zorder"] for n in ("b", "a", "c")] == [3, 4, 5]
    sizes = [styles[n]["markersize"] for n in ("b", "a", "c")]
    widths = [styles[n]["linewidth"] for n in ("b", "a", "c")]
    assert sizes[0] > sizes[1] > sizes[2] and widths[0] > widths[1] > widths[2]
    assert all(s["markerfacecolor"] == "none" for s in styles.values())
    # a method's colour, marker and line style do not depend on its rank
    again = stacked_styles(["c", "a", "b"])
    assert all(again[n]["color"] == styles[n]["color"] and again[n]["marker"] == styles[n]["marker"]
               for n in "abc")


@pytest.fixture
def tied(tmp_path):
    """Five methods with identical scores at every lr: their curves lie exactly on each other."""
    path = tmp_path / "tied.sqlite"
    with Store(path) as db:
        for opt in OPTS:
            for lr in (0.01, 0.1, 1.0):
                _record(db, "p", opt, lr, 0, [0, 0.5, 0.9, 0.95, 0.99 if opt in ("msgd", "adam") else 0.6])
    return path


def test_lr_panel_curves_on_each_other_stay_distinguishable(tied):
    plt = pyplot()
    (grp,) = load_problem_runs(tied)
    fig, ax = plt.subplots()
    draw_lr_sensitivity(ax, grp, "test_accuracy")
    lines = {line.get_label(): line for line in ax.lines if line.get_label() in OPTS}
    assert sorted(lines) == sorted(OPTS)
    looks = {(line.get_marker(), line.get_linestyle(), line.get_color()) for line in lines.values()}
    assert len(looks) == len(OPTS), "two methods look alike"
    assert len({line.get_marker() for line in lines.values()}) == len(OPTS)
    assert all(line.get_markerfacecolor() == "none" for line in lines.values())
    # ties: one curve on top of another has a smaller marker, so the one under it shows as a ring
    for group in (("msgd", "adam"), ("mssd", "msvag", "mssdva")):
        ranked = sorted(group, key=lambda o: lines[o].get_zorder())
        sizes = [lines[o].get_markersize() for o in ranked]
        assert sizes == sorted(sizes, reverse=True) and len(set(sizes)) == len(sizes)
    # the best (max accuracy) drawn above the worse ones
    assert min(lines[o].get_zorder() for o in ("msgd", "adam")) > max(
        lines[o].get_zorder() for o in ("mssd", "msvag", "mssdva"))
    plt.close(fig)


def _captured(monkeypatch, store, out):
    figs = capture_figures(monkeypatch, plots)
    written = plots.plot_store(store, out, criterion="max:test_accuracy")
    return figs, written


def test_plot_fills_its_canvas_and_keeps_legends_off_the_data(monkeypatch, tied, tmp_path):
    figs, written = _captured(monkeypatch, tied, tmp_path / "figs")
    assert len(figs) == 2 and all(len(p.name) <= 40 for p in written)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for stem, fig in figs.items():
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        renderer = canvas.get_renderer()
        page = fig.get_tightbbox(renderer)  # what save_figure's tight bounding box keeps (inches)
        axes = [ax for ax in fig.axes if ax.lines]
        area = sum(ax.get_window_extent(renderer).width * ax.get_window_extent(renderer).height for ax in axes)
        fill = area / (page.width * page.height * fig.dpi ** 2)
        assert fill > 0.4, f"{stem}: the panels fill only {fill:.0%} of the canvas"
        assert fig._suptitle.get_text().count("\n") <= 1
        for legend in fig.legends + [ax.get_legend() for ax in fig.axes if ax.get_legend()]:
            box = legend.get_window_extent(renderer)
            for ax in axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), f"{stem}: a legend covers data"
