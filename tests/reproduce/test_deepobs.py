"""``--protocol deepobs`` and ``--backend``: the protocol's definition, the whole path on tiny overrides
(runs, selection, effects, report, regeneration of docs/results.md), and the CLI's checks."""

from __future__ import annotations

import json
import math
import sqlite3
import warnings

import numpy as np
import pytest
from scripts.regenerate_results import begin_marker, end_marker, regenerate, replace_region

from adamlab import cli
from adamlab.commands.reproduce import PROTOCOLS as CLI_PROTOCOLS
from adamlab.reproduce import base, reproduce
from adamlab.reproduce.base import DEEPOBS_GRID, PROTOCOLS, get, names


def _quiet(_: str) -> None:
    pass


def test_deepobs_grid_is_36_log_spaced_values_from_1e_5_to_1e2():
    grid = np.array(DEEPOBS_GRID)
    assert grid.size == 36 and grid[0] == pytest.approx(1e-5) and grid[-1] == pytest.approx(1e2)
    assert np.allclose(np.diff(np.log10(grid)), 7 / 35)


@pytest.mark.parametrize("name", names())
def test_every_recipe_has_the_deepobs_protocol(name):
    recipe = get(name)
    proto = recipe.protocol("deepobs")
    assert list(proto.lr_grid) == list(DEEPOBS_GRID)
    assert list(proto.tune_seeds) == [0] and list(proto.seeds) == list(range(10))
    assert proto.steps == recipe.full.steps  # the full budget
    assert "DeepOBS" in proto.describe() and "lr grid of 36 log-spaced values in [1e-05, 100]" in proto.describe()
    assert recipe.protocol("full") is recipe.full and recipe.protocol(True) is recipe.quick


def test_noisy_quadratic_deepobs_is_all_12_settings_by_5_methods():
    recipe = get("noisy-quadratic")
    assert len(recipe.settings_for("deepobs")) == 12 and len(recipe.variants_for("deepobs")) == 5
    assert list(recipe.protocol("deepobs").hook_seeds) == [0]


def test_protocol_names_agree():
    assert CLI_PROTOCOLS == PROTOCOLS
    with pytest.raises(ValueError, match="protocol must be one of"):
        get("wilson").protocol("paper")


def test_tiny_deepobs_noisy_quadratic_batches_and_hooks_seed_0_only(tmp_path, tiny_recipe):
    recipe = tiny_recipe("noisy-quadratic", which="deepobs", steps=8, settings=1, lr_grid=(1e-3, 1e-1),
                         seeds=(0, 1, 2))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        summary = reproduce(recipe, protocol="deepobs", out=tmp_path, quiet=True, log=_quiet)
    assert summary["protocol_name"] == "deepobs" and summary["backend"] == "vmap" and summary["quick"] is False
    assert summary["wall_time_s"] > 0 and set(summary["phase_times_s"]) == {"tune", "final", "hooks"}
    # the tuning and final runs batch; the hooked runs (seed 0, one per method) go to the serial
    # backend by the recipe's choice: no fallback message
    fallbacks = [str(w.message) for w in caught if "cannot be vectorised" in str(w.message)]
    assert not fallbacks
    con = sqlite3.connect(tmp_path / "store.sqlite")
    rows = con.execute("SELECT seed, hooks, execution FROM runs").fetchall()
    con.close()
    hooked = [seed for seed, hooks, _ in rows if json.loads(hooks)]
    assert {json.loads(e)["backend"] for _, hooks, e in rows if json.loads(hooks)} == {"serial"}
    assert {json.loads(e)["backend"] for _, hooks, e in rows if not json.loads(hooks)} == {"vmap"}
    assert sorted(hooked) == [0] * 5
    assert len(rows) == 5 * 2 + 5 * 2 + 5  # tune (2 lrs, seed 0), final (seeds 1, 2 new), hooked
    (setting,) = summary["settings"].values()
    for v in setting["variants"].values():
        assert v["seeds"] == [0, 1, 2] and len(v["per_seed"]["train_loss"]) == 3
        assert v["dissection"]["rho"]["n"] == 1  # from the hooked run of seed 0
    assert (tmp_path / "noisy-quadratic_dissection.png").is_file()


def test_tiny_deepobs_wilson_effects_and_report(tmp_path, tiny_recipe):
    recipe = tiny_recipe("wilson", which="deepobs", steps=20, lr_grid=(1e-2, 1e-1), seeds=(0, 1, 2, 3))
    summary = reproduce(recipe, protocol="deepobs", out=tmp_path, quiet=True, log=_quiet)
    (setting,) = summary["settings"].values()
    for v in setting["variants"].values():
        assert v["seeds"] == [0, 1, 2, 3]  # data draws
        finite = [x for x in v["per_seed"]["test_error"] if x is not None]
        assert v["final"]["test_error"]["mean"] == pytest.approx(np.mean(finite))
    for c in summary["claims"]:
        eff = c["effect"]
        assert eff is not None and eff["n"] == 4 and eff["level"] == 0.95
        low = -math.inf if eff["low"] is None else float(eff["low"])
        assert c["agree"] == (low > 0)
    # the effect of "all fit" recomputed by hand: 0.01 - max over methods of the mean train error
    fit = summary["claims"][1]["effect"]
    expected = 0.01 - max(np.mean(v["per_seed"]["train_error"]) for v in setting["variants"].values())
    assert fit["estimate"] == pytest.approx(expected)
    from adamlab.reproduce.report import claims_table, markdown_section

    text = markdown_section(summary, "figures/x.png")
    assert "(`--protocol deepobs`)" in text and "bootstrap 95% interval" in claims_table(summary)
    assert "wall time" in text


def test_serial_and_vmap_backends_select_the_same_lrs(tmp_path, tiny_recipe):
    from adamlab.reproduce.engine import execute
    from adamlab.reproduce.summary import build_summary

    recipe = tiny_recipe("wilson", steps=20, lr_grid=(1e-2, 1e-1, 1.0), seeds=(0, 1), variants=2)
    a, b = (build_summary(execute(recipe, protocol="quick", store=tmp_path / f"{k}.sqlite", backend=k,
                                  quiet=True, log=_quiet)) for k in ("serial", "vmap"))
    assert (a["backend"], b["backend"]) == ("serial", "vmap")
    for label, v in a["settings"]["n=100, p=0.6, full batch"]["variants"].items():
        w = b["settings"]["n=100, p=0.6, full batch"]["variants"][label]
        assert v["selected_lr"] == w["selected_lr"]
        assert v["final"]["train_loss"]["mean"] == pytest.approx(w["final"]["train_loss"]["mean"], rel=1e-3, abs=1e-6)


def test_cli_protocol_and_backend(tmp_path, tiny_recipe, monkeypatch, capsys):
    recipe = tiny_recipe("wilson", which="deepobs", steps=10, lr_grid=(1e-2,), seeds=(0, 1), variants=2)
    monkeypatch.setitem(base.REGISTRY.entries, "wilson", recipe)
    out = tmp_path / "w"
    assert cli.main(["reproduce", "wilson", "--protocol", "deepobs", "--backend", "serial", "--out", str(out),
                     "--quiet"]) == 0
    text = capsys.readouterr().out
    assert "protocol (deepobs)" in text and "wall time:" in text and "serial backend" in text
    assert "effect:" in text
    data = json.loads((out / "summary.json").read_text())
    assert data["protocol_name"] == "deepobs" and data["backend"] == "serial"
    assert cli.main(["reproduce", "wilson", "--quick", "--protocol", "deepobs", "--out", str(out)]) == 2
    assert "conflicts" in capsys.readouterr().err
    assert cli.main(["reproduce", "wilson", "--backend", "nosuch", "--out", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown backend" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()


def test_replace_region_touches_only_the_marked_text():
    text = f"intro\n{begin_marker('a deepobs')}\nold\n{end_marker('a deepobs')}\noutro\n"
    new = replace_region(text, "a deepobs", "new\nlines")
    assert new == f"intro\n{begin_marker('a deepobs')}\nnew\nlines\n{end_marker('a deepobs')}\noutro\n"
    with pytest.raises(ValueError, match="regenerated: b deepobs"):
        replace_region(text, "b deepobs", "x")
    with pytest.raises(ValueError, match="before"):
        replace_region(f"{end_marker('a')}\n{begin_marker('a')}\n", "a", "x")


def test_regenerate_rewrites_the_marked_sections_from_tiny_runs(tmp_path, tiny_recipe):
    recipe = tiny_recipe("wilson", which="deepobs", steps=10, lr_grid=(1e-2, 1e-1), seeds=(0, 1), variants=2)
    docs = tmp_path / "docs" / "results.md"
    docs.parent.mkdir()
    head, tail = "# Results\n\nhand-written text\n", "\n## Later section\nmore hand-written text\n"
    docs.write_text(head + f"{begin_marker('overview')}\nold overview\n{end_marker('overview')}\n"
                    f"{begin_marker('wilson deepobs')}\nold\n{end_marker('wilson deepobs')}" + tail)
    (summary,) = regenerate([recipe], docs=docs, out=tmp_path / "results", quiet=True, log=_quiet)
    text = docs.read_text()
    assert text.startswith(head) and text.endswith(tail)
    assert "old" not in text.replace("hand-written", "")
    assert "### `wilson` (`--protocol deepobs`)" in text and "| sgd |" in text
    assert "![wilson](figures/results_wilson_deepobs.png)" in text
    assert (docs.parent / "figures" / "results_wilson_deepobs.png").stat().st_size > 0
    assert "| `wilson` | deepobs |" in text and "Total compute of `make results`" in text  # the overview
    assert (tmp_path / "results" / "wilson-deepobs" / "summary.json").is_file()
    assert summary["protocol_name"] == "deepobs"


def test_regenerate_checks_the_markers_before_running(tmp_path, tiny_recipe):
    recipe = tiny_recipe("wilson", which="deepobs", steps=10, lr_grid=(1e-2,), seeds=(0,), variants=1)
    docs = tmp_path / "results.md"
    docs.write_text("no markers\n")
    with pytest.raises(ValueError, match="regenerated: wilson deepobs"):
        regenerate([recipe], docs=docs, out=tmp_path / "results", quiet=True, log=_quiet)
    assert not (tmp_path / "results").exists() and docs.read_text() == "no markers\n"


def test_docs_results_md_has_the_markers_of_the_default_regeneration():
    from pathlib import Path

    from scripts.regenerate_results import DEFAULT_PLAN

    text = (Path(__file__).resolve().parents[2] / "docs" / "results.md").read_text()
    for key in [f"{name} {which}" for name, which in DEFAULT_PLAN.items()] + ["overview"]:
        replace_region(text, key, "")  # raises when a marker is missing or repeated
