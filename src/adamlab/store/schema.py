"""The store's schema: one SQLite file (stdlib ``sqlite3``, WAL mode), readable with ``pandas.read_sql``.

Tables
------
``runs``: one row per run config, keyed by ``run_id`` (the config hash). Columns: ``problem``,
``problem_options`` (JSON), ``optimizer``, ``hparams`` (JSON), ``lr``, ``seed``, ``steps``,
``batch_size``, ``eval_every``, ``schedule`` (JSON), ``hooks`` (JSON), ``config`` (the full JSON),
``status`` (pending | running | finished | diverged | failed), ``diverged_step``, ``error``,
``attempts``, ``wall_time`` (s), ``created_at``, ``started_at``, ``finished_at`` (UTC ISO-8601),
``adamlab_version``, ``torch_version``, ``python_version``, and the claim of the process that
trains (or last trained) the run: ``owner_pid``, ``owner_host``, ``heartbeat`` (Unix time of the
claim's last sign of life), and ``execution`` (JSON: how the run was trained,
``{"backend": "vmap", "block_size": 640}``; batched runs agree with serial ones to rounding, see
docs/scale.md).

``metrics``: long format ``(run_id, step, name, value)`` with primary key ``(run_id, step, name)``.

``metrics_staging``: the same columns, for a run in progress. The runner streams a run's metrics here in
bounded chunks (:meth:`~adamlab.store.core.Store.stage`), so a long run does not hold them all in
memory; no read query but ``staged_count`` reads this table, and a run's commit moves its staged rows
into ``metrics``.

``meta``: ``schema_version`` (see :data:`SCHEMA_VERSION`).

Opening
-------
A store file is accepted only if it is an adamlab store this version can use (:func:`prepare`): a file
with foreign tables, foreign columns or a newer ``schema_version`` is refused with one line
(``ValueError``); an empty file gets the current schema; an older adamlab store is migrated in one
transaction (unless opened read-only: then it is read as it is).
"""

from __future__ import annotations

import re
import sqlite3

from adamlab import __version__
from adamlab.store.sql import Transaction

#: Version of the schema this adamlab writes. 1: the first release; 2: the claim columns
#: ``owner_pid``, ``owner_host``, ``heartbeat`` of ``runs``; 3: ``runs.execution`` and the
#: ``metrics_staging`` table.
SCHEMA_VERSION = 3

#: Columns added by each schema version (``version -> [(table, column definition)]``): the
#: migration from ``version - 1``, and what an older store lacks.
MIGRATIONS: dict[int, list[tuple[str, str]]] = {
    2: [("runs", "owner_pid INTEGER"), ("runs", "owner_host TEXT"), ("runs", "heartbeat REAL")],
    3: [("runs", "execution TEXT")],
}

#: Tables added by each schema version (created by the migration, absent from an older store).
NEW_TABLES: dict[int, list[str]] = {3: ["metrics_staging"]}

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    problem TEXT NOT NULL,
    problem_options TEXT NOT NULL,
    optimizer TEXT NOT NULL,
    hparams TEXT NOT NULL,
    lr REAL,
    seed INTEGER NOT NULL,
    steps INTEGER NOT NULL,
    batch_size INTEGER NOT NULL,
    eval_every INTEGER NOT NULL,
    schedule TEXT NOT NULL,
    hooks TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending'
        CHECK (status IN ('pending', 'running', 'finished', 'diverged', 'failed')),
    diverged_step INTEGER,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    wall_time REAL,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    adamlab_version TEXT,
    torch_version TEXT,
    python_version TEXT,
    owner_pid INTEGER,
    owner_host TEXT,
    heartbeat REAL,
    execution TEXT
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, step, name)
);
CREATE INDEX IF NOT EXISTS runs_problem ON runs(problem, optimizer);
CREATE TABLE IF NOT EXISTS metrics_staging (
    run_id TEXT NOT NULL,
    step INTEGER NOT NULL,
    name TEXT NOT NULL,
    value REAL NOT NULL,
    PRIMARY KEY (run_id, step, name)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

#: Tables that hold nothing a finished run needs: when one is missing (an older adamlab's migration
#: committed the version and crashed before creating it), opening the store for writing creates it.
REBUILDABLE: frozenset[str] = frozenset({"metrics_staging"})

#: The JSON columns of ``runs`` (decoded by the read queries).
JSON_COLUMNS: tuple[str, ...] = ("problem_options", "hparams", "schedule", "hooks", "config")


def _schema_columns() -> dict[str, list[str]]:
    """``table -> column names`` of the current schema (read from :data:`SCHEMA` itself)."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(SCHEMA)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        con.close()


COLUMNS: dict[str, list[str]] = _schema_columns()


def expected_columns(version: int) -> dict[str, set[str]]:
    """``table -> column names`` of a store at schema ``version`` (1 .. :data:`SCHEMA_VERSION`)."""
    out = {t: set(cols) for t, cols in COLUMNS.items()}
    for later in range(version + 1, SCHEMA_VERSION + 1):
        for table, definition in MIGRATIONS.get(later, []):
            out[table].discard(definition.split()[0])
    return out


def prepare(con: sqlite3.Connection, *, readonly: bool) -> int:
    """Check the schema of the store on ``con``; create it in an empty file, migrate an older one.

    Returns the schema version the file has afterwards (an older store opened ``readonly`` keeps its
    version). Raises ``ValueError`` with one line for a file that is not an adamlab store this version
    can use (see the module docstring).
    """
    tables = sorted(r[0] for r in con.execute(
        "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))
    if not tables:
        if readonly:
            raise ValueError("it is not an adamlab results store (it holds no tables)")
        _create(con)
        return SCHEMA_VERSION
    foreign = [t for t in tables if t not in COLUMNS]
    if foreign:
        raise ValueError(f"it is not an adamlab results store: it holds tables adamlab does not use "
                         f"({', '.join(foreign)}); adamlab uses {', '.join(sorted(COLUMNS))}")
    version = _stored_version(con, tables)
    if version > SCHEMA_VERSION:
        raise ValueError(f"its schema_version is {version}, newer than this adamlab {__version__} "
                         f"reads (1 to {SCHEMA_VERSION}); upgrade adamlab or use another store")
    expected = expected_columns(version)
    for table in sorted(COLUMNS):
        if table not in tables and any(table in NEW_TABLES.get(v, ()) for v in range(version + 1,
                                                                                  SCHEMA_VERSION + 1)):
            continue  # added by a later version: the migration creates it
        if table not in tables and table in REBUILDABLE and not readonly:
            continue  # left out by an older adamlab's migration that crashed: created below
        if table not in tables:
            raise ValueError(f"it is not an adamlab results store: table {table!r} is missing")
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if have != expected[table]:
            detail = "; ".join(x for x in (
                f"missing {', '.join(sorted(expected[table] - have))}" if expected[table] - have else "",
                f"foreign {', '.join(sorted(have - expected[table]))}" if have - expected[table] else "",
            ) if x)
            raise ValueError(f"it is not an adamlab results store of schema_version {version}: "
                             f"table {table!r} has other columns ({detail})")
    if readonly:
        return version
    con.execute("PRAGMA journal_mode=WAL")
    # WAL + NORMAL: a commit survives a crash or kill -9 of the process (only a power loss
    # can lose the last commits), without an fsync per transaction.
    con.execute("PRAGMA synchronous=NORMAL")
    if version < SCHEMA_VERSION:
        _migrate(con, version)
        version = SCHEMA_VERSION
    con.executescript(SCHEMA)  # indexes a store may lack; every table exists already
    return version


def _stored_version(con: sqlite3.Connection, tables: list[str]) -> int:
    if "meta" not in tables:
        raise ValueError("it is not an adamlab results store: it has no table 'meta'")
    row = con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
    if row is None:
        raise ValueError("it is not an adamlab results store: table 'meta' holds no schema_version")
    text = str(row[0])
    if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
        raise ValueError(f"it is not an adamlab results store: schema_version {text!r} is not a "
                         f"version (1 to {SCHEMA_VERSION})")
    return int(text)


def _create(con: sqlite3.Connection) -> None:
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA synchronous=NORMAL")
    with Transaction(con) as cur:
        for statement in SCHEMA.split(";"):
            if statement.strip():
                cur.execute(statement)
        cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))


def _migrate(con: sqlite3.Connection, version: int) -> None:
    """Bring a store from schema ``version`` to :data:`SCHEMA_VERSION` in one transaction."""
    with Transaction(con) as cur:
        now = cur.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
        if int(now) != version:  # another process migrated it meanwhile
            return
        for later in range(version + 1, SCHEMA_VERSION + 1):
            for table, definition in MIGRATIONS.get(later, []):
                cur.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")
        # the new tables are created in the same transaction as the version bump: a crash leaves
        # either the old store or the migrated one, never a new version without its tables
        for statement in SCHEMA.split(";"):
            if statement.strip().startswith("CREATE TABLE"):
                cur.execute(statement)
        cur.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
