"""``adamlab export``: one tidy row per run plus a long metrics table, as CSV or Parquet."""

from __future__ import annotations

import builtins
import csv
import importlib.util
import sys

import pytest

from adamlab import cli
from adamlab.analysis.export import PARQUET_HINT, export_store, runs_table
from adamlab.runner import Store, sweep
from tests.runner import runner_tiny_problem as tiny


@pytest.fixture
def swept(store_path):
    sweep(tiny.NAME, ["sgd", "adam"], [0.01, 10.0], 2, 20, store_path, quiet=True,
          hparams={"weight_decay": 0.0})
    return store_path


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_csv_runs_and_metrics_tables(swept, tmp_path):
    runs_path, metrics_path = export_store(swept, tmp_path / "out")
    assert runs_path.name == "test.runs.csv" and metrics_path.name == "test.metrics.csv"
    runs = _read_csv(runs_path)
    assert len(runs) == 8  # 2 optimizers x 2 lrs x 2 seeds
    row = runs[0]
    for col in ("run_id", "problem", "option.dropout", "optimizer", "lr", "hparam.weight_decay", "seed",
                "status", "diverged_step", "wall_time", "final.train_loss", "final.test_loss"):
        assert col in row, col
    assert "hparam.lr" not in row  # lr has its own column
    with Store(swept) as db:
        by_id = {r["run_id"]: r for r in db.runs()}
        for r in runs:
            ref = by_id[r["run_id"]]
            assert (r["problem"], r["optimizer"], float(r["lr"]), int(r["seed"]), r["status"]) == (
                ref["problem"], ref["optimizer"], ref["lr"], ref["seed"], ref["status"])
            assert float(r["option.dropout"]) == 0.0
            final = db.final_metric(r["run_id"], "train_loss")
            assert (r["final.train_loss"] == "") if final is None else float(r["final.train_loss"]) == final
            if r["status"] == "diverged":
                assert int(r["diverged_step"]) == ref["diverged_step"]
            else:
                assert r["diverged_step"] == ""
        assert any(r["status"] == "diverged" for r in runs)  # sgd at lr 10
        metrics = _read_csv(metrics_path)
        assert list(metrics[0]) == ["run_id", "step", "name", "value"]
        n = db._con.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        assert len(metrics) == n
        keys = [(m["run_id"], int(m["step"]), m["name"]) for m in metrics]
        assert keys == sorted(keys)


def test_list_hparams_are_json_cells(store_path):
    sweep(tiny.NAME, ["adam"], [0.01], 1, 10, store_path, quiet=True, hparams={"betas": (0.9, 0.99)})
    with Store(store_path) as db:
        columns, rows = runs_table(db)
    assert rows[0]["hparam.betas"] == "[0.9, 0.99]"
    assert columns.index("problem") < columns.index("option.dropout") < columns.index("optimizer")


@pytest.mark.skipif(importlib.util.find_spec("pyarrow") is None, reason="pyarrow is not installed")
def test_parquet_round_trip(swept, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet")
    runs_path, metrics_path = export_store(swept, tmp_path, "parquet")
    runs = pq.read_table(runs_path).to_pylist()
    csv_runs = _read_csv(export_store(swept, tmp_path, "csv")[0])
    assert [r["run_id"] for r in runs] == [r["run_id"] for r in csv_runs]
    assert pq.read_table(runs_path).schema.field("diverged_step").type == "int64"
    assert pq.read_table(metrics_path).column_names == ["run_id", "step", "name", "value"]


def test_missing_pyarrow_is_a_one_line_hint_exit_2(swept, tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_pyarrow(name, *args, **kwargs):
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ImportError("No module named 'pyarrow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    for mod in [m for m in sys.modules if m == "pyarrow" or m.startswith("pyarrow.")]:
        monkeypatch.delitem(sys.modules, mod)
    code = cli.main(["export", str(swept), "--format", "parquet", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip() == f"adamlab export: error: {PARQUET_HINT}"
    assert "pip install 'adamlab[parquet]'" in err
    assert not (tmp_path / "x").exists()  # nothing written


def test_cli_export_and_errors(swept, tmp_path, capsys):
    assert cli.main(["export", str(swept), "--out", str(tmp_path / "o")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "o" / "test.runs.csv"),
                                               str(tmp_path / "o" / "test.metrics.csv")]
    assert cli.main(["export", str(tmp_path / "nope.sqlite")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
    assert not (tmp_path / "nope.sqlite").exists()  # not created by looking
    with pytest.raises(SystemExit):
        cli.main(["export", str(swept), "--format", "xlsx"])


@pytest.mark.parametrize("command", ["export", "plot", "report"])
def test_the_reading_commands_take_the_store_as_run_writes_it(command, swept, tmp_path, capsys):
    """``run`` and ``sweep`` write ``--store PATH``; ``export``, ``plot`` and ``report`` read ``STORE`` or
    ``--store PATH``, exactly one of them (each error one line, exit code 2)."""
    out = ["--out", str(tmp_path / command)]
    assert cli.main([command, "--store", str(swept), *out, "-q"] if command != "export"
                    else [command, "--store", str(swept), *out]) == 0
    capsys.readouterr()
    assert cli.main([command]) == 2
    assert capsys.readouterr().err.strip() == f"adamlab {command}: error: no results store given: give STORE or --store PATH"
    with pytest.raises(SystemExit):
        cli.main([command, str(swept), "--store", str(swept)])
    assert "given twice" in capsys.readouterr().err
