"""Tiny-budget runs of recipes end to end: store, JSON summary and figures are written."""

from __future__ import annotations

import json
import math
import sqlite3

import numpy as np
import pytest

from adamlab import cli
from adamlab.reproduce import base, reproduce


def _check_outputs(out, name, summary, n_settings, n_variants):
    assert (out / "summary.json").is_file()
    assert (out / f"{name}.png").stat().st_size > 0 and (out / f"{name}.pdf").stat().st_size > 0
    assert (out / "store.sqlite").is_file()
    data = json.loads((out / "summary.json").read_text())
    assert data == json.loads(json.dumps(summary))
    assert data["recipe"] == name and data["quick"] is True
    assert data["compute_time_s"] > 0
    assert "lr grid" in data["protocol"]["description"] and data["selection"]
    assert len(data["settings"]) == n_settings
    con = sqlite3.connect(out / "store.sqlite")
    n_runs = con.execute("SELECT COUNT(*) FROM runs WHERE status='finished'").fetchone()[0]
    con.close()
    assert n_runs >= n_settings * n_variants
    for s in data["settings"].values():
        assert len(s["variants"]) == n_variants
        assert sorted(s["ordering"]) == sorted(s["variants"])
        for v in s["variants"].values():
            assert v["selected_lr"] in data["protocol"]["lr_grid"]
            assert v["n_runs"] == len(data["protocol"]["seeds"])
    for c in data["claims"]:
        assert isinstance(c["agree"], bool) and c["measured"]
    return data


def test_tiny_noisy_quadratic(tmp_path, tiny_recipe):
    recipe = tiny_recipe("noisy-quadratic", steps=12, settings=1, lr_grid=(1e-3, 1e-1))
    summary = reproduce(recipe, quick=True, out=tmp_path, quiet=True, log=lambda s: None)
    data = _check_outputs(tmp_path, "noisy-quadratic", summary, 1, 5)
    assert (tmp_path / "noisy-quadratic_dissection.png").is_file()
    for s in data["settings"].values():
        # selected lr = argmin of the tuning scores, ties to the smaller lr
        for v in s["variants"].values():
            scores = {float(k): (math.inf if x is None else x) for k, x in v["lr_scores"].items()}
            assert v["selected_lr"] == min(scores, key=lambda lr: (scores[lr], lr))
        # dissection statistics are logged for every method
        for label, v in s["variants"].items():
            d = v["dissection"]
            assert 0.0 <= d["rho"]["mean"] <= 1.0
            assert 0.0 <= d["gamma_measured"]["mean"] <= 1.0 + 1e-6
            assert 0.0 <= d["gamma_ideal"]["mean"] <= 1.0 + 1e-6
            if label in ("msgd", "mssd"):  # no variance adaptation: gamma is exactly 1
                assert d["gamma_measured"]["mean"] == pytest.approx(1.0)
        # noise-free settings: the ideal gamma of a gradient method is 1
        if s["options"]["nu"] == 0:
            assert s["variants"]["msvag"]["dissection"]["gamma_ideal"]["mean"] == pytest.approx(1.0)


def test_summary_statistics_match_numpy(tmp_path, tiny_recipe):
    recipe = tiny_recipe("wilson", steps=10, lr_grid=(1e-2,), seeds=(0, 1, 2), variants=2)
    summary = reproduce(recipe, quick=True, out=tmp_path, quiet=True, log=lambda s: None)
    con = sqlite3.connect(tmp_path / "store.sqlite")
    for label, v in summary["settings"]["n=100, p=0.6, full batch"]["variants"].items():
        rows = con.execute(
            "SELECT r.run_id, (SELECT value FROM metrics m WHERE m.run_id=r.run_id AND m.name='test_loss' "
            "ORDER BY step DESC LIMIT 1) FROM runs r WHERE r.optimizer=? AND r.status='finished'",
            (v["optimizer"],)).fetchall()
        values = np.array([r[1] for r in rows], dtype=float)
        assert len(values) == 3  # three data draws (replicate_option = data_seed)
        st = v["final"]["test_loss"]
        assert st["mean"] == pytest.approx(values.mean(), rel=1e-12)
        assert st["std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
        assert st["min"] == pytest.approx(values.min()) and st["max"] == pytest.approx(values.max())
        assert label in summary["settings"]["n=100, p=0.6, full batch"]["ordering"]
    con.close()
    from adamlab.reproduce.report import markdown_section

    text = markdown_section(summary, "figures/results_wilson.png")
    assert "![wilson](figures/results_wilson.png)" in text and "| sgd |" in text
    assert "paper's claim" in text and f"{summary['n_runs']} runs" in text
    assert summary["n_runs"] == 2 * 3 and summary["training_time_s"] > 0  # 2 methods x 1 lr x 3 draws


def test_tiny_wilson_via_cli_and_resume(tmp_path, tiny_recipe, monkeypatch, capsys):
    recipe = tiny_recipe("wilson", steps=20, lr_grid=(1e-2, 1e-1), seeds=(0, 1))
    monkeypatch.setitem(base.REGISTRY.entries, "wilson", recipe)
    out, store = tmp_path / "w", tmp_path / "other.sqlite"
    argv = ["reproduce", "wilson", "--quick", "--out", str(out), "--store", str(store), "--quiet"]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "lr grid {0.01, 0.1}" in text and "selection" in text and "compute time" in text
    assert store.is_file() and not (out / "store.sqlite").exists()
    (out / "store.sqlite").symlink_to(store)  # _check_outputs looks for <out>/store.sqlite
    data = _check_outputs(out, "wilson", json.loads((out / "summary.json").read_text()), 1, 5)
    assert data["protocol"]["replicate_option"] == "data_seed"
    # a second invocation reuses every finished run of the store (nothing is trained again)
    con = sqlite3.connect(store)
    before = con.execute("SELECT COUNT(*), MAX(finished_at), SUM(attempts) FROM runs").fetchone()
    con.close()
    assert cli.main(argv) == 0
    con = sqlite3.connect(store)
    after = con.execute("SELECT COUNT(*), MAX(finished_at), SUM(attempts) FROM runs").fetchone()
    con.close()
    assert before == after


def test_data_recipe_on_tiny_data(tmp_path, tiny_recipe, tiny_data_root):
    recipe = tiny_recipe("adam-mnist-logreg", steps=6, lr_grid=(1e-2,), seeds=(0,),
                         problem_options={"eval_size": 16})
    summary = reproduce(recipe, quick=True, out=tmp_path, quiet=True, log=lambda s: None)
    data = _check_outputs(tmp_path, "adam-mnist-logreg", summary, 1, 3)
    (setting,) = data["settings"].values()
    for v in setting["variants"].values():
        acc = v["final"]["test_accuracy"]["mean"]
        assert 0.0 <= acc <= 1.0


def test_dissect_recipe_on_tiny_data(tmp_path, tiny_recipe, tiny_data_root):
    recipe = tiny_recipe("dissect-p1-fmnist", steps=3, lr_grid=(1e-3,), seeds=(0,), variants=2,
                         problem_options={"eval_size": 8})
    summary = reproduce(recipe, quick=True, out=tmp_path, quiet=True, log=lambda s: None)
    _check_outputs(tmp_path, "dissect-p1-fmnist", summary, 1, 2)


@pytest.mark.parametrize("name", ["adam-cifar10-cnn", "dissect-p2-cifar10", "dissect-p3-cifar100"])
def test_cifar_recipes_without_data_exit_2(tmp_path, capsys, name):
    out = tmp_path / "out"
    assert cli.main(["reproduce", name, "--quick", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "cifar" in err and "missing" in err and "adamlab data fetch" in err
    assert not out.exists()  # nothing was run or written
