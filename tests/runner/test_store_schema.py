"""The store's schema is checked when it is opened: foreign or newer stores are refused before anything
is written or trained; an older adamlab store is migrated; a store can be opened read-only."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import sys

import pytest

from adamlab.runner import Store, sweep
from adamlab.store.core import SCHEMA_VERSION
from tests.runner import runner_tiny_problem as tiny
from tests.store_helpers import downgrade_to_v1, run_in_readonly_folder


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _tables(path):
    con = sqlite3.connect(path)
    try:
        return sorted(r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    finally:
        con.close()


def _make(path, *statements):
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    for s in statements:
        con.execute(s)
    con.commit()
    con.close()


def _real_store(path):
    sweep(tiny.NAME, ["sgd"], [0.1], 1, 10, path, quiet=True)


def _check_refused(path, match):
    before = (_digest(path), _tables(path))
    with pytest.raises(ValueError, match=match) as info:
        Store(path)
    assert "\n" not in str(info.value) and str(info.value).startswith("cannot open results store")
    assert (_digest(path), _tables(path)) == before  # refused before anything was written
    return str(info.value)


def test_foreign_metrics_table_is_refused(store_path):
    _make(store_path, "CREATE TABLE metrics (experiment TEXT, score REAL)")
    msg = _check_refused(store_path, "not an adamlab results store")
    assert "metrics" in msg or "meta" in msg


def test_foreign_metrics_columns_in_an_adamlab_store_are_refused(store_path):
    _real_store(store_path)
    _make(store_path, "DROP TABLE metrics", "CREATE TABLE metrics (run_id TEXT, score REAL)")
    _check_refused(store_path, r"table 'metrics' has other columns \(missing name, step, value; foreign score\)")


def test_newer_schema_version_is_refused(store_path):
    _real_store(store_path)
    _make(store_path, "UPDATE meta SET value='99' WHERE key='schema_version'")
    _check_refused(store_path, f"schema_version is 99, newer than .* reads \\(1 to {SCHEMA_VERSION}\\)")


@pytest.mark.parametrize("version", ["0", "two", "-1", ""])
def test_bad_schema_version_is_refused(store_path, version):
    _real_store(store_path)
    _make(store_path, f"UPDATE meta SET value='{version}' WHERE key='schema_version'")
    _check_refused(store_path, "is not a version")


def test_foreign_tables_are_refused(store_path):
    _real_store(store_path)
    _make(store_path, "CREATE TABLE users (name TEXT)")
    _check_refused(store_path, r"holds tables adamlab does not use \(users\)")


def test_a_table_without_meta_is_refused(store_path):
    _real_store(store_path)
    _make(store_path, "DROP TABLE meta")
    _check_refused(store_path, "no table 'meta'")


def test_not_a_database_is_refused(store_path):
    store_path.parent.mkdir(parents=True)
    store_path.write_bytes(b"hello, this is not SQLite" * 100)
    with pytest.raises(ValueError, match="cannot open results store"):
        Store(store_path)


def test_cli_refuses_a_foreign_store_before_training(store_path, capsys):
    from adamlab.cli import main

    _make(store_path, "CREATE TABLE metrics (experiment TEXT, score REAL)")
    before = _digest(store_path)
    code = main(["run", tiny.NAME, "--optimizer", "sgd", "--lr", "0.1", "--steps", "5", "--store",
                 str(store_path), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not an adamlab results store" in err
    assert _digest(store_path) == before and _tables(store_path) == ["metrics"]


def test_version_1_store_is_migrated_and_kept(store_path):
    _real_store(store_path)
    with Store(store_path) as db:
        runs, metrics = db.runs(), {r["run_id"]: db.metrics(r["run_id"]) for r in db.runs()}
    downgrade_to_v1(store_path)
    with Store(store_path, readonly=True) as db:  # read-only: read as it is, not migrated
        assert db.schema_version == 1 and len(db.runs()) == 1
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT value FROM meta").fetchone()[0] == "1"
    con.close()
    with Store(store_path) as db:
        assert db.schema_version == SCHEMA_VERSION
        after = db.runs()
        assert [{k: r[k] for k in runs[0]} for r in after] == [
            {**r, "owner_pid": None, "owner_host": None, "heartbeat": None, "execution": None} for r in runs]
        assert {r["run_id"]: db.metrics(r["run_id"]) for r in after} == metrics
    con = sqlite3.connect(store_path)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    con.close()
    rep = sweep(tiny.NAME, ["sgd"], [0.1, 0.01], 1, 10, store_path, quiet=True)  # usable as usual
    assert (rep.skipped, rep.finished) == (1, 1)


def test_readonly_store_reads_and_never_writes(store_path):
    _real_store(store_path)
    with Store(store_path, readonly=True) as db:
        assert db.runs()[0]["status"] == "finished"
        with pytest.raises(ValueError, match="opened read-only"):
            db.plan([])
    with pytest.raises(ValueError, match="does not exist"):
        Store(store_path.parent / "nope.sqlite", readonly=True)
    assert not (store_path.parent / "nope.sqlite").exists()


PLOT = """
import sys
from adamlab.cli import main
sys.exit(main(["plot", sys.argv[1], "--out", sys.argv[2], "-q"]))
"""


def _plot_on_readonly_dir(folder, out):
    """Run ``adamlab plot`` in a subprocess that cannot write ``folder`` (as root: a read-only bind mount)."""
    cmd = [sys.executable, "-c", PLOT, str(folder / "test.sqlite"), str(out)]
    return run_in_readonly_folder(folder, cmd, timeout=300, extra_env={"MPLBACKEND": "Agg"},
                                  readonly_files=[folder / "test.sqlite"])


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_plot_reads_a_store_on_a_readonly_folder(store_path, tmp_path):
    _real_store(store_path)
    sweep(tiny.NAME, ["adam"], [0.01, 0.1], 1, 10, store_path, quiet=True)
    for suffix in ("-wal", "-shm"):  # as a store copied or closed cleanly: no WAL index next to it
        assert not (store_path.parent / (store_path.name + suffix)).exists()
    proc = _plot_on_readonly_dir(store_path.parent, tmp_path / "figs")
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "figs").iterdir())
    assert len(names) == 4 and all(n.startswith(tiny.NAME) for n in names), names
