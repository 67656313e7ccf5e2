"""The one figure set-up: backend choice, the atomic Type 42 saver, labels, colours, band, floor, stamp;
and that the tree has one of each (one backend choice, no private plotting helpers imported across modules)."""

from __future__ import annotations

import ast
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import matplotlib
import numpy as np
import pytest

from adamlab import plotting
from adamlab.plotting import pyplot

ROOT = Path(__file__).resolve().parents[2]
TYPE3 = re.compile(rb"/Subtype\s*/Type3|/FontType\s+3")


def _figure():
    plt = pyplot()
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0], label=r"M-SVAG $\gamma$")
    ax.set_title("train loss")
    ax.legend()
    return plt, fig


def test_save_figure_writes_png_and_type42_pdf_atomically(tmp_path):
    plt, fig = _figure()
    out = tmp_path / "new" / "folder"
    paths = plotting.save_figure(fig, out, "fig", dpi=50)
    plt.close(fig)
    assert paths == [out / "fig.png", out / "fig.pdf"]
    assert sorted(p.name for p in out.iterdir()) == ["fig.pdf", "fig.png"]  # no temporary left behind
    assert paths[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    pdf = paths[1].read_bytes()
    assert pdf.startswith(b"%PDF") and b"/FontFile2" in pdf and not TYPE3.search(pdf)
    assert matplotlib.rcParams["pdf.fonttype"] == 3  # the global default is left alone
    umask = os.umask(0)
    os.umask(umask)
    assert all(p.stat().st_mode & 0o777 == 0o666 & ~umask for p in paths)  # an ordinary new file's mode


def test_a_failed_save_leaves_the_old_file(tmp_path):
    plt, fig = _figure()
    target = tmp_path / "fig.png"
    target.write_bytes(b"old")

    def broken(*args, **kwargs):
        Path(args[0]).write_bytes(b"half")
        raise RuntimeError("disk full")

    fig.savefig = broken
    with pytest.raises(RuntimeError, match="disk full"):
        plotting.write_figure(fig, target)
    plt.close(fig)
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["fig.png"]


def test_write_figure_format_follows_the_suffix_unless_given(tmp_path):
    plt, fig = _figure()
    assert plotting.write_figure(fig, tmp_path / "a.pdf").read_bytes().startswith(b"%PDF")
    assert plotting.write_figure(fig, tmp_path / "b.out", fmt="png").read_bytes()[:4] == b"\x89PNG"
    plt.close(fig)


BACKEND = "from adamlab.plotting import pyplot; print(pyplot().get_backend())"


@pytest.mark.parametrize("env, want", [({}, "agg"), ({"MPLBACKEND": "pdf"}, "pdf")])
def test_backend_is_agg_unless_the_user_chose_one(env, want):
    base = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}
    base["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), *sys.path])
    done = subprocess.run([sys.executable, "-c", BACKEND], env={**base, **env}, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.strip().lower() == want


def test_labels_colours_styles_floor_and_stamp():
    assert plotting.metric_label("test_accuracy") == "test accuracy"
    assert plotting.metric_label("gamma_measured") == "gamma_measured"
    names = [f"m{i}" for i in range(12)]
    colors = plotting.method_colors(names)
    # issue #24: a fixed style per method, never two methods of one figure in one colour
    assert len(set(colors.values())) == 12 and len(colors["m0"]) == 4
    assert plotting.method_linestyles(["msgd", "mssd", "msvag", "mssdva"]) == {
        "msgd": "-", "mssd": "--", "msvag": "-.", "mssdva": ":"}
    assert plotting.method_linestyles(["e", "a"]) == {"a": plotting.method_linestyles(["a"])["a"],
                                                       "e": plotting.method_linestyles(["e"])["e"]}
    assert plotting.LOG_FLOOR == 1e-12 and plotting.LOG_RANGE == 20.0
    assert plotting.quick_prefix(True) == "QUICK (reduced budget) -- " and plotting.quick_prefix(False) == ""
    plt, fig = _figure()
    plotting.quick_stamp(fig, False)
    assert not fig.texts
    plotting.quick_stamp(fig, True)
    assert [t.get_text() for t in fig.texts] == ["QUICK"] and fig.texts[0].get_color() == "red"
    plt.close(fig)


def test_seed_band_leaves_out_missing_values():
    values = np.array([[1.0, np.nan, np.nan], [3.0, 2.0, np.nan]])
    mean, lo, hi = plotting.seed_band(values)
    assert mean.tolist()[:2] == [2.0, 2.0] and lo.tolist()[:2] == [1.0, 2.0] and hi.tolist()[:2] == [3.0, 2.0]
    assert all(math.isnan(a[2]) for a in (mean, lo, hi))
    assert [a.size for a in plotting.seed_band(np.zeros((0, 3)))] == [3, 3, 3]


# -- one of each in the tree -----------------------------------------------------------------------------


def _trees(*dirs: str):
    for d in dirs:
        for path in (ROOT / d).rglob("*.py"):
            yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_one_backend_choice_in_the_tree():
    calls = []
    for path, tree in _trees("src", "scripts", "benchmarks", "tests"):
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("use", "switch_backend")
                    and isinstance(node.func.value, ast.Name) and node.func.value.id in ("matplotlib", "plt")):
                calls.append(path.relative_to(ROOT).as_posix())
    assert calls == ["src/adamlab/plotting/backend.py"]


def test_plotting_imports_only_util_numpy_and_matplotlib():
    allowed = ("adamlab.util", "numpy", "matplotlib", "adamlab.plotting", "__future__")
    for path, tree in _trees("src/adamlab/plotting"):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(("adamlab", "numpy",
                                                                                             "matplotlib")):
                assert node.module.startswith(allowed), (path.name, node.module)
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert alias.name.split(".")[0] not in ("adamlab", "torch", "pandas") or alias.name.startswith(
                        allowed), (path.name, alias.name)


@pytest.mark.parametrize("folder", ["src/adamlab/analysis", "src/adamlab/reproduce", "src/adamlab/plotting",
                                    "src/adamlab/store", "src/adamlab/selection", "scripts", "benchmarks"])
def test_no_private_names_imported_across_modules(folder):
    offenders = []
    for path, tree in _trees(folder):
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("adamlab"):
                offenders += [f"{path.name}:{node.lineno} {a.name}" for a in node.names
                              if a.name.startswith("_") and a.name != "__version__"]
    assert not offenders


def test_the_report_page_imports_the_report_one_way():
    """analysis.report computes, analysis.report_page draws; report never imports the page, even inside a
    function."""
    tree = ast.parse((ROOT / "src/adamlab/analysis/report.py").read_text(encoding="utf-8"))
    imported = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    imported |= {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    assert not any("report_page" in (m or "") for m in imported)


def test_figure_helpers_are_defined_once():
    """No copy of the metric labels, the QUICK stamp or a log floor outside adamlab.plotting."""
    offenders = []
    for path, tree in _trees("src", "scripts"):
        if "adamlab/plotting/" in path.as_posix():
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Dict) and any(isinstance(k, ast.Constant) and k.value == "train_loss"
                                                  for k in node.keys) and any(
                    isinstance(v, ast.Constant) and v.value == "train loss" for v in node.values):
                offenders.append(f"{path.name}:{node.lineno} metric labels")
            if isinstance(node, ast.Call) and any(isinstance(a, ast.Constant) and a.value == "QUICK"
                                                  for a in node.args):
                offenders.append(f"{path.name}:{node.lineno} QUICK stamp")
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "LOG_FLOOR"
                                                    for t in node.targets):
                offenders.append(f"{path.name}:{node.lineno} LOG_FLOOR")
    assert not offenders
