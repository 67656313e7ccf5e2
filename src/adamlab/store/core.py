"""The results store: one SQLite file (stdlib ``sqlite3``, WAL mode), readable with ``pandas.read_sql``.

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
bounded chunks (:meth:`Store.stage`), so a long run does not hold them all in memory; nothing reads
this table, and a run's commit moves its staged rows into ``metrics``.

``meta``: ``schema_version`` (see :data:`SCHEMA_VERSION`).

Guarantees
----------
- Crash safety: a finished run's metrics and its final status are written in ONE transaction (a batched
  block of runs: one transaction for the block, :meth:`Store.record_many`), so a ``kill -9`` leaves
  either the whole run or none of it; the primary keys make duplicates impossible. Staged rows of a run
  that crashed are never visible in ``metrics``: a new attempt discards them (:meth:`Store.discard_staged`)
  and a failed run's are dropped.
- A final status (``finished``, ``diverged``) is never changed again, by any process:
  :meth:`Store.claim` refuses such a run and :meth:`Store.record` discards a second result for it
  (it returns False and leaves the stored metrics as they are).
- Claims: a process trains a run only after claiming it (:meth:`Store.claim_many`, a check and a
  conditional ``UPDATE`` in one ``BEGIN IMMEDIATE`` transaction). A claim held by another live
  process is refused; a claim whose process died (its pid is not alive on this host) or whose
  heartbeat is older than ``claim_timeout`` seconds (any host) is taken over.
- The schema is checked when the store is opened, before anything is written: a file with foreign
  tables, foreign columns or a newer ``schema_version`` is refused with one line (``ValueError``);
  an older adamlab store is migrated in one transaction.

Example
-------
>>> import pandas as pd, sqlite3                                   # doctest: +SKIP
>>> con = sqlite3.connect("results/adamlab.sqlite")                # doctest: +SKIP
>>> runs = pd.read_sql("SELECT * FROM runs", con)                  # doctest: +SKIP
>>> metrics = pd.read_sql("SELECT * FROM metrics", con)            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from adamlab import __version__
from adamlab.runs.config import RunConfig, canonical_json
from adamlab.runs.result import DONE_STATUSES, RunResult, RunStatus, utcnow

DEFAULT_STORE = Path("results") / "adamlab.sqlite"

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

#: A claim whose heartbeat is older than this many seconds is taken over (default of ``claim_timeout``).
CLAIM_TIMEOUT = 300.0

#: Seconds between two heartbeats of a sweep's claims (default of ``heartbeat_every``).
HEARTBEAT_EVERY = 30.0

_SCHEMA = """
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

_FINAL_SQL = ",".join(f"'{s.value}'" for s in sorted(DONE_STATUSES))


def _schema_columns() -> dict[str, list[str]]:
    """``table -> column names`` of the current schema (read from ``_SCHEMA`` itself)."""
    con = sqlite3.connect(":memory:")
    try:
        con.executescript(_SCHEMA)
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: [r[1] for r in con.execute(f"PRAGMA table_info({t})")] for t in tables}
    finally:
        con.close()


_COLUMNS = _schema_columns()


def expected_columns(version: int) -> dict[str, set[str]]:
    """``table -> column names`` of a store at schema ``version`` (1 .. :data:`SCHEMA_VERSION`)."""
    out = {t: set(cols) for t, cols in _COLUMNS.items()}
    for later in range(version + 1, SCHEMA_VERSION + 1):
        for table, definition in MIGRATIONS.get(later, []):
            out[table].discard(definition.split()[0])
    return out


def _versions() -> dict[str, str]:
    return {
        "adamlab_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


def pid_alive(pid: int | None) -> bool:
    """Whether process ``pid`` is alive on this host (a zombie counts as dead).

    Where that cannot be told (not POSIX) it answers True, so only the heartbeat decides.
    """
    if pid is None or int(pid) <= 0:
        return False
    if os.name != "posix":
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{int(pid)}/stat", encoding="ascii", errors="replace") as fh:
            state = fh.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state not in ("Z", "X")


@dataclass
class Claims:
    """The outcome of :meth:`Store.claim_many` (or :meth:`Store.classify`), each list in input order.

    ``claimed``: now this process's (``classify``: could be claimed); ``busy``: claimed by another
    live process; ``done``: final (finished or diverged), or failed when failed runs are not retried.
    """

    claimed: list[RunConfig] = field(default_factory=list)
    busy: list[RunConfig] = field(default_factory=list)
    done: list[RunConfig] = field(default_factory=list)


class Store:
    """A results store in the SQLite file ``path`` (created with its parent directory if missing).

    Parameters
    ----------
    path:
        The SQLite file.
    readonly:
        Open for reading only (``mode=ro``; on a read-only folder or file system, where SQLite cannot
        create the WAL index, ``immutable=1``). Nothing is created, migrated or written; the file
        must exist. Writing methods raise ``ValueError``.
    claim_timeout:
        Seconds without a heartbeat after which another process's claim is taken over.
    heartbeat_every:
        Seconds between the heartbeats :meth:`keep_alive` sends (default ``claim_timeout / 10``,
        at most :data:`HEARTBEAT_EVERY`).

    Raises ``ValueError`` with one clear line when the file cannot be created or opened, or is not
    an adamlab store this version can use (foreign tables or columns, a newer ``schema_version``).
    Safe for several processes: WAL mode, a 60 s busy timeout, and short ``BEGIN IMMEDIATE`` transactions.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, readonly: bool = False,
                 claim_timeout: float = CLAIM_TIMEOUT, heartbeat_every: float | None = None) -> None:
        self.path = Path(path)
        self.readonly = bool(readonly)
        if not claim_timeout > 0:
            raise ValueError(f"claim_timeout must be > 0 seconds; got {claim_timeout!r}")
        self.claim_timeout = float(claim_timeout)
        self.heartbeat_every = float(heartbeat_every if heartbeat_every is not None
                                     else min(HEARTBEAT_EVERY, self.claim_timeout / 10))
        self.host = socket.gethostname()
        self.schema_version = SCHEMA_VERSION
        self._con: sqlite3.Connection | None = None
        try:
            if self.path.is_dir():
                raise ValueError("it is a directory")
            self._con = self._connect_readonly() if self.readonly else self._connect()
            self._con.row_factory = sqlite3.Row
            self._check_schema()
        except (OSError, sqlite3.Error, ValueError) as err:
            if self._con is not None:
                self._con.close()
            raise ValueError(f"cannot open results store {str(path)!r}: {err}") from None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
        con.execute("PRAGMA foreign_keys=ON")
        return con

    def _connect_readonly(self) -> sqlite3.Connection:
        if not self.path.is_file():
            raise ValueError("it does not exist")
        uri = self.path.resolve().as_uri()
        last: sqlite3.Error | None = None
        for flags in ("mode=ro", "immutable=1"):
            con = sqlite3.connect(f"{uri}?{flags}", uri=True, timeout=60.0, isolation_level=None)
            try:
                con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                return con
            except sqlite3.Error as err:  # a WAL file in a read-only folder: only immutable works
                con.close()
                last = err
        raise last or sqlite3.OperationalError("cannot open read-only")

    def _check_schema(self) -> None:
        """Refuse a foreign or newer store; create a new one; migrate an older one (see module docs)."""
        con = self._db
        tables = sorted(r[0] for r in con.execute(
            "SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'"))
        if not tables:
            if self.readonly:
                raise ValueError("it is not an adamlab results store (it holds no tables)")
            self._create()
            return
        foreign = [t for t in tables if t not in _COLUMNS]
        if foreign:
            raise ValueError(f"it is not an adamlab results store: it holds tables adamlab does not use "
                             f"({', '.join(foreign)}); adamlab uses {', '.join(sorted(_COLUMNS))}")
        version = self._stored_version(tables)
        if version > SCHEMA_VERSION:
            raise ValueError(f"its schema_version is {version}, newer than this adamlab {__version__} "
                             f"reads (1 to {SCHEMA_VERSION}); upgrade adamlab or use another store")
        expected = expected_columns(version)
        for table in sorted(_COLUMNS):
            if table not in tables and any(table in NEW_TABLES.get(v, ()) for v in range(version + 1,
                                                                                      SCHEMA_VERSION + 1)):
                continue  # added by a later version: the migration creates it
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
        self.schema_version = version
        if not self.readonly:
            con.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash or kill -9 of the process (only a power loss
            # can lose the last commits), without an fsync per transaction.
            con.execute("PRAGMA synchronous=NORMAL")
            if version < SCHEMA_VERSION:
                self._migrate(version)
            con.executescript(_SCHEMA)  # indexes a store may lack; every table exists already

    def _stored_version(self, tables: list[str]) -> int:
        if "meta" not in tables:
            raise ValueError("it is not an adamlab results store: it has no table 'meta'")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise ValueError("it is not an adamlab results store: table 'meta' holds no schema_version")
        text = str(row[0])
        if not re.fullmatch(r"[0-9]{1,9}", text) or int(text) < 1:
            raise ValueError(f"it is not an adamlab results store: schema_version {text!r} is not a "
                             f"version (1 to {SCHEMA_VERSION})")
        return int(text)

    def _create(self) -> None:
        con = self._db
        con.execute("PRAGMA journal_mode=WAL")
        con.execute("PRAGMA synchronous=NORMAL")
        with self._tx() as cur:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _migrate(self, version: int) -> None:
        """Bring a store from schema ``version`` to :data:`SCHEMA_VERSION` in one transaction."""
        with self._tx() as cur:
            now = cur.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0]
            if int(now) != version:  # another process migrated it meanwhile
                return
            for later in range(version + 1, SCHEMA_VERSION + 1):
                for table, definition in MIGRATIONS.get(later, []):
                    cur.execute(f"ALTER TABLE {table} ADD COLUMN {definition}")
            cur.execute("UPDATE meta SET value=? WHERE key='schema_version'", (str(SCHEMA_VERSION),))
        self.schema_version = SCHEMA_VERSION

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._con is not None
        return self._con

    # -- context manager ---------------------------------------------------------------------
    def close(self) -> None:
        if self._con is not None:
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tx(self) -> _Transaction:
        if self.readonly:
            raise ValueError(f"results store {str(self.path)!r} was opened read-only")
        return _Transaction(self._db)

    # -- writing -------------------------------------------------------------------------------
    def plan(self, configs: Iterable[RunConfig]) -> None:
        """Insert ``configs`` as ``pending`` runs; rows that already exist are left as they are."""
        with self._tx() as cur:
            self._insert_pending(cur, configs)

    def _insert_pending(self, cur: sqlite3.Cursor, configs: Iterable[RunConfig]) -> None:
        now = _now()
        rows = [_config_row(c, now) for c in configs]
        cur.executemany(
            "INSERT OR IGNORE INTO runs (run_id, problem, problem_options, optimizer, hparams, lr, seed,"
            " steps, batch_size, eval_every, schedule, hooks, config, status, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
            rows,
        )

    # -- claims --------------------------------------------------------------------------------
    def _verdict(self, row: sqlite3.Row, retry_failed: bool, now: float) -> str:
        """``"claim"``, ``"busy"`` or ``"done"`` for a run row (see :class:`Claims`)."""
        status = RunStatus(row["status"])
        if status.done:
            return "done"
        if status is RunStatus.FAILED:
            return "claim" if retry_failed else "done"
        if status is RunStatus.PENDING or row["owner_pid"] is None:
            return "claim"
        if self._is_mine(row):
            return "claim"  # this process's own earlier claim (e.g. an interrupted sweep)
        stale = row["heartbeat"] is None or now - float(row["heartbeat"]) > self.claim_timeout
        if stale or (row["owner_host"] == self.host and not pid_alive(row["owner_pid"])):
            return "claim"
        return "busy"

    def _is_mine(self, row: sqlite3.Row) -> bool:
        return row["owner_pid"] == os.getpid() and row["owner_host"] == self.host

    def _rows(self, cur: sqlite3.Cursor, run_ids: Sequence[str]) -> dict[str, sqlite3.Row]:
        out: dict[str, sqlite3.Row] = {}
        for i in range(0, len(run_ids), 500):
            chunk = list(run_ids[i : i + 500])
            q = ("SELECT run_id, status, owner_pid, owner_host, heartbeat FROM runs"
                 f" WHERE run_id IN ({','.join('?' * len(chunk))})")
            out.update({r["run_id"]: r for r in cur.execute(q, chunk).fetchall()})
        return out

    def classify(self, configs: Sequence[RunConfig], *, retry_failed: bool = True) -> Claims:
        """What :meth:`claim_many` would do now, without writing (runs not in the store are claimable)."""
        rows = self._rows(self._db.cursor(), [c.run_id for c in configs])
        out, now = Claims(), time.time()
        for c in configs:
            row = rows.get(c.run_id)
            verdict = "claim" if row is None else self._verdict(row, retry_failed, now)
            {"claim": out.claimed, "busy": out.busy, "done": out.done}[verdict].append(c)
        return out

    def claim_many(self, configs: Sequence[RunConfig], *, retry_failed: bool = True) -> Claims:
        """Claim the runs of ``configs`` that no live process holds, atomically, for this process.

        In one ``BEGIN IMMEDIATE`` transaction: missing rows are inserted as pending; every
        claimable run (pending, failed when ``retry_failed``, or running under a dead or stale
        claim) becomes ``running`` with one more attempt, start time and heartbeat now, and this
        process's pid and host as owner. The ``UPDATE`` is conditional on the status not being final,
        so a finished or diverged run is never touched.
        """
        out, now = Claims(), time.time()
        with self._tx() as cur:
            self._insert_pending(cur, configs)
            rows = self._rows(cur, [c.run_id for c in configs])
            started = _now()
            for c in configs:
                verdict = self._verdict(rows[c.run_id], retry_failed, now)
                if verdict == "claim":
                    cur.execute(
                        "UPDATE runs SET status='running', attempts=attempts+1, started_at=?, owner_pid=?,"
                        f" owner_host=?, heartbeat=? WHERE run_id=? AND status NOT IN ({_FINAL_SQL})",
                        (started, os.getpid(), self.host, now, c.run_id),
                    )
                    verdict = "claim" if cur.rowcount == 1 else "done"
                {"claim": out.claimed, "busy": out.busy, "done": out.done}[verdict].append(c)
        return out

    def claim(self, config: RunConfig, *, retry_failed: bool = True) -> bool:
        """Claim one run (see :meth:`claim_many`); False if it is final or another live process holds it."""
        return bool(self.claim_many([config], retry_failed=retry_failed).claimed)

    def mark_running(self, config: RunConfig) -> bool:
        """:meth:`claim` (kept for callers of the first API): never changes a finished or diverged run."""
        return self.claim(config)

    def mark_started(self, config: RunConfig) -> None:
        """The run this process has claimed starts now: start time and heartbeat now."""
        self.mark_started_many([config])

    def mark_started_many(self, configs: Sequence[RunConfig]) -> None:
        """:meth:`mark_started` for a block of runs, in ONE transaction."""
        started, now = _now(), time.time()
        with self._tx() as cur:
            cur.executemany("UPDATE runs SET started_at=?, heartbeat=? WHERE run_id=? AND status='running'"
                            " AND owner_pid=? AND owner_host=?",
                            [(started, now, c.run_id, os.getpid(), self.host) for c in configs])

    def release(self, run_ids: Iterable[str]) -> int:
        """Give back this process's claims of ``run_ids`` that are still ``running`` (they become
        ``pending``); returns how many. A sweep calls it for the runs it claimed but did not record."""
        ids = list(run_ids)
        n = 0
        with self._tx() as cur:
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                cur.execute("UPDATE runs SET status='pending', owner_pid=NULL, owner_host=NULL, heartbeat=NULL"
                            f" WHERE status='running' AND owner_pid=? AND owner_host=?"
                            f" AND run_id IN ({','.join('?' * len(chunk))})",
                            (os.getpid(), self.host, *chunk))
                n += cur.rowcount
        return n

    def heartbeat(self) -> int:
        """Refresh the heartbeat of every run this process holds; returns how many."""
        with self._tx() as cur:
            cur.execute("UPDATE runs SET heartbeat=? WHERE status='running' AND owner_pid=? AND owner_host=?",
                        (time.time(), os.getpid(), self.host))
            return cur.rowcount

    @contextlib.contextmanager
    def keep_alive(self) -> Iterator[None]:
        """While the block runs, a daemon thread refreshes this process's claims every
        ``heartbeat_every`` seconds (on its own connection), so other processes see them as live."""
        stop = threading.Event()
        pid = os.getpid()

        def beat() -> None:
            try:
                con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            except sqlite3.Error:
                return
            try:
                while not stop.wait(self.heartbeat_every):
                    with contextlib.suppress(sqlite3.Error):
                        con.execute("UPDATE runs SET heartbeat=? WHERE status='running' AND owner_pid=?"
                                    " AND owner_host=?", (time.time(), pid, self.host))
            finally:
                con.close()

        thread = threading.Thread(target=beat, name="adamlab-store-heartbeat", daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(timeout=5.0)

    def record(self, result: RunResult) -> bool:
        """:meth:`record_many` for one run; False when its result was discarded."""
        return self.record_many([result])[0]

    def record_many(self, results: Sequence[RunResult]) -> list[bool]:
        """Write several runs' metrics and final statuses in ONE transaction (e.g. a finished vmap block).

        Each run's staged rows (:meth:`stage`) move into ``metrics`` together with ``result.records``
        (a record wins over a staged row of the same step and name); a ``failed`` run's staged rows are
        dropped. Earlier rows of the run in ``metrics`` are replaced.

        Returns, per result, whether it was written. A result is discarded (False, nothing written)
        when the stored run already has a final status (``finished`` or ``diverged``, e.g. written by
        another process that also trained it): a final result is never overwritten. A ``failed``
        result is also dropped while another live process holds the run (its own result will be
        recorded).
        """
        for result in results:
            if result.status not in (*DONE_STATUSES, RunStatus.FAILED):
                raise ValueError(
                    f"record needs a final status (finished, diverged, failed); got {result.status!r}"
                )
        if not results:
            return []
        versions = tuple(_versions().values())
        with self._tx() as cur:
            self._insert_pending(cur, [r.config for r in results])
            rows = self._rows(cur, [r.run_id for r in results])
            now = time.time()
            written = []
            for r in results:
                verdict = self._verdict(rows[r.run_id], True, now)
                written.append(not (verdict == "done" or (verdict == "busy" and r.status is RunStatus.FAILED)))
            results = [r for r, ok in zip(results, written, strict=True) if ok]
            if not results:
                return written
            ids = [r.run_id for r in results]
            kept = [r.run_id for r in results if r.status is not RunStatus.FAILED]
            _each_chunk(cur, "DELETE FROM metrics WHERE run_id IN ({})", ids)
            cur.executemany(
                "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                [(result.run_id, s, n, v) for result in results for s, n, v in result.long_rows()],
            )
            if self._has_staged(cur):
                _each_chunk(cur, "INSERT OR IGNORE INTO metrics (run_id, step, name, value)"
                                 " SELECT run_id, step, name, value FROM metrics_staging WHERE run_id IN ({})", kept)
                _each_chunk(cur, "DELETE FROM metrics_staging WHERE run_id IN ({})", ids)
            cur.executemany(
                "UPDATE runs SET status=?, diverged_step=?, error=?, wall_time=?,"
                " started_at=COALESCE(?, started_at), finished_at=?, adamlab_version=?,"
                " torch_version=?, python_version=?, execution=?, owner_pid=?, owner_host=?, heartbeat=NULL"
                f" WHERE run_id=? AND status NOT IN ({_FINAL_SQL})",
                [(result.status, result.diverged_step, result.error, result.wall_time, result.started_at,
                  result.finished_at or _now(), *versions,
                  None if result.execution is None else canonical_json(result.execution), os.getpid(),
                  self.host, result.run_id)
                 for result in results],
            )
        return written

    @staticmethod
    def _has_staged(cur: sqlite3.Cursor) -> bool:
        return cur.execute("SELECT EXISTS (SELECT 1 FROM metrics_staging)").fetchone()[0] == 1

    # -- streaming a run's metrics (MetricSink) ------------------------------------------------------
    def stage(self, rows: Iterable[tuple[str, int, str, float]]) -> None:
        """Append ``(run_id, step, name, value)`` rows of runs in progress to ``metrics_staging``
        (one transaction; a row of the same run, step and name is replaced). Invisible until the run's
        :meth:`record`."""
        with self._tx() as cur:
            cur.executemany("INSERT OR REPLACE INTO metrics_staging (run_id, step, name, value)"
                            " VALUES (?, ?, ?, ?)", rows)

    def discard_staged(self, run_ids: Sequence[str], after_step: int | None = None) -> None:
        """Drop the staged rows of ``run_ids`` (only those after ``after_step`` when given: a run
        resumed from a checkpoint at that step keeps what it staged before it)."""
        with self._tx() as cur:
            if after_step is None:
                cur.executemany("DELETE FROM metrics_staging WHERE run_id=?", [(r,) for r in run_ids])
            else:
                cur.executemany("DELETE FROM metrics_staging WHERE run_id=? AND step>?",
                                [(r, int(after_step)) for r in run_ids])

    def staged_count(self, run_id: str | None = None) -> int:
        """Number of staged rows (of one run, or all)."""
        if run_id is None:
            return int(self._con.execute("SELECT COUNT(*) FROM metrics_staging").fetchone()[0])
        return int(self._con.execute("SELECT COUNT(*) FROM metrics_staging WHERE run_id=?",
                                     (run_id,)).fetchone()[0])

    # -- reading -------------------------------------------------------------------------------
    def statuses(self, run_ids: Sequence[str] | None = None) -> dict[str, RunStatus]:
        """``run_id -> status`` for ``run_ids`` (all runs when None); unknown ids are left out."""
        if run_ids is None:
            rows = self._db.execute("SELECT run_id, status FROM runs").fetchall()
        else:
            rows = []
            ids = list(run_ids)
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = f"SELECT run_id, status FROM runs WHERE run_id IN ({','.join('?' * len(chunk))})"
                rows.extend(self._db.execute(q, chunk).fetchall())
        return {r["run_id"]: RunStatus(r["status"]) for r in rows}

    def runs(
        self, *, problem: str | None = None, status: Sequence[str] | None = None
    ) -> list[dict[str, Any]]:
        """Rows of ``runs`` as dicts (JSON columns decoded), optionally filtered."""
        q, args = "SELECT * FROM runs WHERE 1=1", []
        if problem is not None:
            q += " AND problem=?"
            args.append(problem)
        if status is not None:
            q += f" AND status IN ({','.join('?' * len(status))})"
            args.extend(status)
        out = []
        for row in self._db.execute(q + " ORDER BY problem, optimizer, lr, seed", args):
            d = dict(row)
            for key in ("problem_options", "hparams", "schedule", "hooks", "config"):
                d[key] = json.loads(d[key])
            d["execution"] = None if d.get("execution") is None else json.loads(d["execution"])
            out.append(d)
        return out

    def metrics(self, run_id: str) -> dict[str, tuple[list[int], list[float]]]:
        """``name -> (steps, values)`` of one run, sorted by step."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        rows = self._db.execute(
            "SELECT step, name, value FROM metrics WHERE run_id=? ORDER BY name, step", (run_id,)
        )
        for r in rows:
            steps, values = out.setdefault(r["name"], ([], []))
            steps.append(int(r["step"]))
            values.append(float(r["value"]))
        return out

    def final_metric(self, run_id: str, name: str) -> float | None:
        """Value of ``name`` at the largest step where it was recorded, or None."""
        row = self._db.execute(
            "SELECT value FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT 1", (run_id, name)
        ).fetchone()
        return None if row is None else float(row["value"])

    def metric_names(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """The metric names recorded for ``run_ids`` (all runs when None), sorted."""
        if run_ids is None:
            return [r[0] for r in self._db.execute("SELECT DISTINCT name FROM metrics ORDER BY name")]
        names: set[str] = set()
        ids = list(run_ids)
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            q = f"SELECT DISTINCT name FROM metrics WHERE run_id IN ({','.join('?' * len(chunk))})"
            names.update(r[0] for r in self._db.execute(q, chunk))
        return sorted(names)

    def problems(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT DISTINCT problem FROM runs ORDER BY problem")]

    def config(self, run_id: str) -> RunConfig:
        row = self._db.execute("SELECT config FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return RunConfig.from_dict(json.loads(row["config"]))


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error)."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Cursor:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con.cursor()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.con.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def _each_chunk(cur: sqlite3.Cursor, sql: str, ids: Sequence[str], size: int = 500) -> None:
    """Run ``sql`` (with one ``IN ({})`` placeholder list) over ``ids``, ``size`` at a time."""
    for start in range(0, len(ids), size):
        chunk = ids[start:start + size]
        cur.execute(sql.format(",".join("?" * len(chunk))), chunk)


def _now() -> str:
    return utcnow()


def _config_row(c: RunConfig, now: str) -> tuple[Any, ...]:
    j = c.json_columns
    return (
        c.run_id,
        c.problem,
        j["problem_options"],
        c.optimizer,
        j["hparams"],
        c.lr,
        c.seed,
        c.steps,
        c.batch_size,
        c.eval_every,
        j["schedule"],
        j["hooks"],
        j["config"],
        now,
    )


@contextlib.contextmanager
def borrowed(store: Store | str | os.PathLike[str], *, readonly: bool = False) -> Iterator[Store]:
    """The one "open a store or use the given one": yield ``store`` itself if it is a :class:`Store`
    (the caller keeps owning it), else open the path and close it on exit."""
    if isinstance(store, Store):
        yield store
        return
    db = Store(store, readonly=readonly)
    try:
        yield db
    finally:
        db.close()
