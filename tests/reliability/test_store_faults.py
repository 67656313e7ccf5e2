"""Store faults of issue 23: a migration is one transaction (7), a read-only store with a WAL but no
WAL index is read as committed or refused (2), external faults are detected (6), read-only commands
never migrate (11)."""

from __future__ import annotations

import sqlite3
import sys

import pytest

from adamlab.runner import Store, sweep
from adamlab.store.core import SCHEMA_VERSION
from tests.runner import runner_tiny_problem as tiny
from tests.store_helpers import downgrade_to_v1, run_in_readonly_folder


def _real_store(path, lrs=(0.1,)):
    sweep(tiny.NAME, ["sgd"], list(lrs), 1, 10, path, quiet=True)


def _tables(path):
    con = sqlite3.connect(path)
    try:
        return {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        con.close()


def test_store_left_by_a_migration_crash_opens_and_gets_its_table(store_path):
    """Item 7: the old migration committed ``schema_version=3`` and then created ``metrics_staging``;
    a crash in between left a store every command refused. It opens now and gets the table back."""
    _real_store(store_path)
    con = sqlite3.connect(store_path)
    con.execute("DROP TABLE metrics_staging")
    con.commit()
    con.close()
    with Store(store_path) as db:
        assert db.schema_version == SCHEMA_VERSION and len(db.runs()) == 1
    assert "metrics_staging" in _tables(store_path)
    rep = sweep(tiny.NAME, ["sgd"], [0.1, 0.01], 1, 10, store_path, quiet=True)
    assert (rep.skipped, rep.finished) == (1, 1)


def test_migration_creates_new_tables_in_its_own_transaction(store_path, monkeypatch):
    """Item 7: the version bump and the new tables commit together (nothing after the migration is
    needed to make the store usable)."""
    from adamlab.store import schema

    _real_store(store_path)
    con = sqlite3.connect(store_path)
    con.execute("ALTER TABLE runs DROP COLUMN execution")
    con.execute("DROP TABLE metrics_staging")
    con.execute("UPDATE meta SET value='2' WHERE key='schema_version'")
    con.commit()
    con.close()
    raw = sqlite3.connect(store_path, isolation_level=None)
    schema._migrate(raw, 2)  # exactly the migration, nothing of prepare() after it
    raw.close()
    assert "metrics_staging" in _tables(store_path)
    with Store(store_path) as db:
        assert db.schema_version == SCHEMA_VERSION


LEAVE_WAL = """
import os, sqlite3, sys
con = sqlite3.connect(sys.argv[1], isolation_level=None)
con.execute("PRAGMA wal_autocheckpoint=0")
con.execute("UPDATE runs SET status='finished', error='from-the-wal'")
os._exit(0)  # as kill -9: the -wal keeps the commit, nothing is checkpointed
"""

COUNT = """
import sys
from adamlab.store.core import Store
try:
    with Store(sys.argv[1], readonly=True) as db:
        print(sum(r["error"] == "from-the-wal" for r in db.runs()), len(db.runs()))
except ValueError as err:
    print("REFUSED", err)
"""


def _in_readonly_folder(folder, code, *args):
    return run_in_readonly_folder(folder, [sys.executable, "-c", code, *args])


def test_readonly_store_with_a_wal_and_no_wal_index_reads_what_is_committed(store_path):
    """Item 2: ``immutable=1`` ignored the WAL, so commits not yet checkpointed were silently missing."""
    import subprocess
    import sys

    _real_store(store_path, lrs=(0.1, 0.01, 0.001))
    subprocess.run([sys.executable, "-c", LEAVE_WAL, str(store_path)], check=True)
    wal = store_path.with_name(store_path.name + "-wal")
    shm = store_path.with_name(store_path.name + "-shm")
    assert wal.stat().st_size > 0
    shm.unlink()
    proc = _in_readonly_folder(store_path.parent, COUNT, str(store_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["3", "3"], proc.stdout
    assert wal.stat().st_size > 0 and not shm.exists()  # the store itself is untouched


def _config():
    from adamlab.runner import expand_grid

    (config,) = expand_grid(tiny.NAME, ["sgd"], [0.5], 1, 10)
    return config


@pytest.mark.parametrize("suffix", ["-wal", "-shm"])
def test_deleting_the_wal_or_shm_under_a_live_store_stops_the_next_claim(store_path, suffix):
    """Item 6: a deleted -wal/-shm under a live store made runs train twice or vanish silently."""
    _real_store(store_path)
    with Store(store_path) as db:
        store_path.with_name(store_path.name + suffix).unlink()
        with pytest.raises(ValueError, match=f"changed under this process \\(its {suffix} file was deleted\\)") as info:
            db.claim(_config())
        assert "\n" not in str(info.value)


def test_a_replaced_store_file_stops_the_next_claim(store_path, tmp_path):
    import os
    import shutil

    _real_store(store_path)
    with Store(store_path) as db:
        shutil.copyfile(store_path, tmp_path / "copy.sqlite")
        os.replace(tmp_path / "copy.sqlite", store_path)
        with pytest.raises(ValueError, match="the store file was replaced"):
            db.claim(_config())


def test_a_hard_linked_store_is_refused_on_open_and_on_claim(store_path, tmp_path):
    import os

    _real_store(store_path)
    with Store(store_path) as db:
        os.link(store_path, tmp_path / "twin.sqlite")
        with pytest.raises(ValueError, match="2 hard links"):
            db.claim(_config())
    with pytest.raises(ValueError, match="cannot open results store .* 2 hard links"):
        Store(tmp_path / "twin.sqlite")
    with Store(tmp_path / "twin.sqlite", readonly=True) as db:  # reading is harmless
        assert len(db.runs()) == 1


EXPORT_REPORT = """
import sys
from adamlab.cli import main
code = main(["export", sys.argv[1], "--out", sys.argv[2], "-q"])
code2 = main(["report", sys.argv[1], "--out", sys.argv[3], "-q"])
sys.exit(code or code2)
"""


def _schema_version(path):
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
    finally:
        con.close()


def test_export_and_report_never_migrate_a_store_they_only_read(store_path, tmp_path):
    """Item 11: ``export`` and ``report`` opened the store for writing, so they migrated an older store."""
    from adamlab.cli import main

    _real_store(store_path, lrs=(0.1, 0.01))
    downgrade_to_v1(store_path)
    assert main(["export", str(store_path), "--out", str(tmp_path / "csv"), "-q"]) == 0
    assert _schema_version(store_path) == "1"
    assert main(["report", str(store_path), "--out", str(tmp_path / "rep"), "-q"]) == 0
    assert _schema_version(store_path) == "1"


def test_export_and_report_read_a_store_in_a_readonly_folder(store_path, tmp_path):
    _real_store(store_path, lrs=(0.1, 0.01))
    proc = _in_readonly_folder(store_path.parent, EXPORT_REPORT, str(store_path), str(tmp_path / "csv"),
                               str(tmp_path / "rep"))
    assert proc.returncode == 0, proc.stderr
    assert any((tmp_path / "csv").iterdir()) and any((tmp_path / "rep").iterdir())
