"""log_scale: plain tick labels on a log axis that spans less than a decade, matplotlib's otherwise."""

from __future__ import annotations

from adamlab.plotting import log_scale, pyplot


def _labels(low: float, high: float) -> list[str]:
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [low, high])
    log_scale(ax)
    fig.canvas.draw()
    low_view, high_view = ax.get_ylim()
    ticks = ax.yaxis.get_major_ticks() + ax.yaxis.get_minor_ticks()
    texts = [t.label1.get_text() for t in ticks if low_view <= t.get_loc() <= high_view and t.label1.get_text()]
    plt.close(fig)
    return texts


def test_a_narrow_log_axis_reads_as_plain_numbers():
    texts = _labels(1.02, 1.15)
    assert texts, "no tick labels"
    assert all("times" not in t and "10^" not in t for t in texts), texts
    assert all(1.0 <= float(t) <= 1.2 for t in texts), texts


def test_a_wide_log_axis_keeps_powers_of_ten():
    texts = _labels(1e-4, 1e2)
    assert any("10^" in t for t in texts), texts  # matplotlib's mathtext powers of ten
