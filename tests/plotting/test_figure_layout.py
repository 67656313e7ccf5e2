"""Image-level checks of a recipe figure: legends outside the data, one colour per method (the same in
every panel and figure), one y scale per metric across the grid, clipping stated, a short title."""

from __future__ import annotations

from dataclasses import replace

import pytest

import adamlab.reproduce.figures as figures
from adamlab.plotting import method_styles
from adamlab.reproduce import Setting
from adamlab.reproduce.api import reproduce
from tests.plotting.capture import capture_figures
from tests.reproduce.test_new_recipe import TOY


@pytest.fixture
def drawn(monkeypatch, tmp_path):
    """The figures ``reproduce`` draws for a two-setting toy recipe, captured before they are closed."""
    captured = capture_figures(monkeypatch, figures)
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


def test_lr_figure_legend_off_the_data_and_one_scale(drawn):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = drawn["toy-figure_lr"]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    axes = [ax for ax in fig.axes if ax.lines]
    assert len(axes) == 2 and len({ax.get_yscale() for ax in axes}) == 1
    assert fig.legends and not any(ax.get_legend() for ax in axes)
    for legend in fig.legends:
        for ax in axes:
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
    for ax in axes:  # each method its own marker, hollow
        lines = [line for line in ax.lines if line.get_label() in ("sgd", "adam")]
        assert len({line.get_marker() for line in lines}) == 2
        assert all(line.get_markerfacecolor() == "none" for line in lines)
    assert fig._suptitle.get_text().count("\n") <= 1


def test_dissection_figure_of_a_hooked_recipe(monkeypatch, tmp_path):
    """eta^2, rho and gamma (measured against ideal) per setting, each method in its fixed colour."""
    from types import SimpleNamespace

    from matplotlib.backends.backend_agg import FigureCanvasAgg

    import adamlab.reproduce.recipes.noisy_quadratic as nq

    assert nq.RECIPE.extra_figures is figures.plot_dissection
    stats = {"eta2_median": 4.0, "rho": 0.6, "gamma_measured": 0.3, "gamma_ideal": 0.2}
    variants = {v: {"dissection": {k: {"mean": x * (i + 1) if k != "rho" else x} for k, x in stats.items()}}
                for i, v in enumerate(("msgd", "msvag"))}
    variants["msgd"]["dissection"]["eta2_median"]["mean"] = 0.0  # noise-free: no bar, and said so
    summary = {"settings": {"a": {"variants": variants}, "b": {"variants": variants}},
               "protocol": {"description": "toy protocol"}, "selection": "min:train_loss"}
    execution = SimpleNamespace(recipe=SimpleNamespace(name="toy", title="a toy"), quick=False)
    captured = {}
    original = figures.save_figure

    def keep(fig, out_dir, name, **kwargs):
        captured[name] = fig
        return original(fig, out_dir, name, **kwargs)

    monkeypatch.setattr(figures, "save_figure", keep)
    paths = figures.plot_dissection(execution, summary, tmp_path)
    assert [p.name for p in paths] == ["toy_dissection.png", "toy_dissection.pdf"]
    fig = captured["toy_dissection"]
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    eta, rho, gamma = fig.axes[:3]
    assert eta.get_yscale() == "log"
    colours = method_styles(["msgd", "msvag"])
    bars = list(rho.patches)
    assert {tuple(p.get_facecolor()[:3]) for p in bars} == {tuple(colours[v]["color"][:3]) for v in colours}
    ideal = [line for line in gamma.lines if line.get_marker() == "_"]
    assert sorted(y for line in ideal for y in line.get_ydata()) == [0.2, 0.2, 0.4, 0.4]
    assert "no bar" in fig._supxlabel.get_text()
    renderer = canvas.get_renderer()
    for legend in fig.legends:
        for ax in (eta, rho, gamma):
            assert not legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))
