"""Image-level checks of a recipe figure: legends outside the data, one colour per method (the same in
every panel and figure), one y scale per metric across the grid, clipping stated, a short title."""

from __future__ import annotations

from dataclasses import replace

import pytest

import adamlab.reproduce.figures as figures
from adamlab.plotting import method_styles
from adamlab.reproduce import Setting
from adamlab.reproduce.api import reproduce
from tests.reproduce.test_new_recipe import TOY


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """The figures ``reproduce`` draws for a two-setting toy recipe, captured before they are closed."""
    captured = {}
    original = figures.save_figure

    def keep(fig, out_dir, name, **kwargs):
        fig.canvas.draw()
        captured[name] = fig
        return original(fig, out_dir, name, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    recipe = replace(TOY, name="toy-figure", settings=[Setting("d=10", "quadratic.noisy", {"d": 10}),
                                                        Setting("d=4", "quadratic.noisy", {"d": 4})])
    reproduce(recipe, quick=True, out=tmp_path, quiet=True, backend="serial", log=lambda *a: None)
    return captured


def test_legends_sit_outside_every_axes(drawn):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = drawn["toy-figure"]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.get_visible() and ax.lines]
    assert len(axes) == 2
    for ax in axes:
        legend = ax.get_legend()
        assert legend is not None and legend.get_texts()[0].get_fontsize() >= 7
        box = legend.get_window_extent(renderer)
        for other in axes:
            assert not box.overlaps(other.get_window_extent(renderer)), "a legend covers data"


def test_one_colour_per_method_everywhere(drawn):
    expected = method_styles(["sgd", "adam"])
    assert expected["sgd"]["color"] != expected["adam"]["color"]
    for fig in drawn.values():
        for ax in fig.axes:
            for line in ax.lines:
                label = line.get_label().split(" (")[0]
                if label in expected:
                    assert line.get_color() == expected[label]["color"]
    assert method_styles(["msvag"])["msvag"] == method_styles(["adam", "msgd", "msvag"])["msvag"]


def test_no_two_methods_share_a_colour_in_a_figure():
    names = ["momentum", "nesterov", "adam", "adam (bc)", "adam (no bc)", "x1", "x2", "x3", "x4", "x5", "x6"]
    colours = [s["color"] for s in method_styles(names).values()]
    assert len(set(colours)) == len(colours)


def test_one_scale_per_metric_and_a_short_title(drawn):
    fig = drawn["toy-figure"]
    scales = {ax.get_yscale() for ax in fig.axes if ax.lines}
    assert len(scales) == 1
    title = fig._suptitle.get_text()
    assert title.count("\n") <= 1 and "selection" not in title
    caption = fig._supxlabel.get_text()
    assert "selection" in caption
    if scales == {"log"}:
        assert all(ax.get_ylim()[0] > 0 for ax in fig.axes if ax.lines)
