"""Every PDF the package writes embeds TrueType (Type 42) fonts, never Type 3 (which venues reject)."""

from __future__ import annotations

import re

import matplotlib

from adamlab.analysis import plots
from adamlab.plotting import pyplot
from adamlab.runner import sweep
from tests.runner import runner_tiny_problem as tiny

plt = pyplot()  # the one backend choice (Agg unless the user chose one)

TYPE3 = re.compile(rb"/Subtype\s*/Type3|/FontType\s+3")


def _fonts(pdf: bytes) -> list[bytes]:
    return re.findall(rb"/Subtype\s*/(\w+)", pdf)


def test_save_figure_pdf_has_type42_fonts_only(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], label=r"M-SVAG $\gamma$")
    ax.set_title("test loss (mean, min-max band)")
    ax.legend()
    paths = plots.save_figure(fig, tmp_path, "fonts")
    plt.close(fig)
    pdf = next(p for p in paths if p.suffix == ".pdf").read_bytes()
    assert not TYPE3.search(pdf)
    assert b"/FontFile2" in pdf  # an embedded TrueType program: Type 42
    assert set(_fonts(pdf)) & {b"TrueType", b"Type0", b"CIDFontType2"}
    assert matplotlib.rcParams["pdf.fonttype"] == 3  # the global default is left alone


def test_plot_store_and_reproduce_share_the_one_writer(tmp_path):
    from adamlab.reproduce import figures

    assert figures.save_figure is plots.save_figure
    store = tmp_path / "s.sqlite"
    sweep(tiny.NAME, ["sgd", "adam"], [0.01, 0.1], 1, 10, store, quiet=True)
    pdfs = [p for p in plots.plot_store(store, tmp_path / "figs") if p.suffix == ".pdf"]
    assert pdfs
    for p in pdfs:
        assert not TYPE3.search(p.read_bytes()), p
