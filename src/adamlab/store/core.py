"""The :class:`Store`: opening a results store, its write contract, and :func:`borrowed`.

The contract (who writes what, what readers may assume) is stated in :mod:`adamlab.store`; the tables
in :mod:`adamlab.store.schema`; the read queries in :mod:`adamlab.store.reads`. This module holds the
writing side, each method a short ``BEGIN IMMEDIATE`` transaction:

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
- The schema is checked when the store is opened, before anything is written
  (:func:`adamlab.store.schema.prepare`).

Example
-------
>>> import pandas as pd, sqlite3                                   # doctest: +SKIP
>>> con = sqlite3.connect("results/adamlab.sqlite")                # doctest: +SKIP
>>> runs = pd.read_sql("SELECT * FROM runs", con)                  # doctest: +SKIP
>>> metrics = pd.read_sql("SELECT * FROM metrics", con)            # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import os
import platform
import shutil
import socket
import sqlite3
import tempfile
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
from adamlab.store.reads import StoreReads
from adamlab.store.schema import MIGRATIONS, NEW_TABLES, SCHEMA_VERSION, expected_columns, prepare
from adamlab.store.sql import Transaction, chunks, each_chunk, placeholders

__all__ = [
    "CLAIM_TIMEOUT", "DEFAULT_STORE", "HEARTBEAT_EVERY", "MIGRATIONS", "NEW_TABLES", "SCHEMA_VERSION", "Claims",
    "Store", "borrowed", "expected_columns", "pid_alive",
]

DEFAULT_STORE = Path("results") / "adamlab.sqlite"

#: A claim whose heartbeat is older than this many seconds is taken over (default of ``claim_timeout``).
CLAIM_TIMEOUT = 300.0

#: Seconds between two heartbeats of a sweep's claims (default of ``heartbeat_every``).
HEARTBEAT_EVERY = 30.0

#: The shortest ``heartbeat_every`` (a heartbeat is a write transaction: 0 would write without pause).
MIN_HEARTBEAT = 0.01

_FINAL_SQL = ",".join(f"'{s.value}'" for s in sorted(DONE_STATUSES))

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


class Store(StoreReads):
    """A results store in the SQLite file ``path`` (created with its parent directory if missing).

    Parameters
    ----------
    path:
        The SQLite file.
    readonly:
        Open for reading only (``mode=ro``; on a read-only folder or file system, where SQLite cannot
        create the WAL index: ``immutable=1`` when there is no write-ahead log, else a private
        temporary copy of the file and its ``-wal``, so commits not yet checkpointed are read too).
        Nothing is created, migrated or written; the file must exist. Writing methods raise ``ValueError``.
    claim_timeout:
        Seconds without a heartbeat after which another process's claim is taken over.
    heartbeat_every:
        Seconds between the heartbeats :meth:`keep_alive` sends (default ``claim_timeout / 10``,
        at most :data:`HEARTBEAT_EVERY`).

    Raises ``ValueError`` with one clear line when the file cannot be created or opened, or is not
    an adamlab store this version can use (foreign tables or columns, a newer ``schema_version``).
    Safe for several processes: WAL mode, a 60 s busy timeout, and short ``BEGIN IMMEDIATE`` transactions.
    The read queries are those of :class:`~adamlab.store.reads.StoreReads`; what they may assume is
    the contract of :mod:`adamlab.store`.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE, *, readonly: bool = False,
                 claim_timeout: float = CLAIM_TIMEOUT, heartbeat_every: float | None = None) -> None:
        self.path = Path(path)
        self.readonly = bool(readonly)
        if not 0 < claim_timeout < math.inf:
            raise ValueError(f"claim_timeout must be a finite number > 0 of seconds; got {claim_timeout!r}")
        self.claim_timeout = float(claim_timeout)
        self.heartbeat_every = float(heartbeat_every if heartbeat_every is not None
                                     else min(HEARTBEAT_EVERY, self.claim_timeout / 10))
        if not MIN_HEARTBEAT <= self.heartbeat_every <= self.claim_timeout / 2:
            raise ValueError(f"heartbeat_every must be in {MIN_HEARTBEAT} .. claim_timeout / 2 = "
                             f"{self.claim_timeout / 2:g} seconds; got {heartbeat_every!r}")
        self.host = socket.gethostname()
        self.schema_version = SCHEMA_VERSION
        self._con: sqlite3.Connection | None = None
        self._copy_dir: Path | None = None
        self._identity: dict[str, tuple[int, int]] | None = None
        try:
            if self.path.is_dir():
                raise ValueError("it is a directory")
            if self.path.exists() and not self.path.is_file():  # a FIFO would block, a device fails late
                raise ValueError("it is not a regular file (a device, FIFO or socket)")
            self._con = self._connect_readonly() if self.readonly else self._connect()
            self._con.row_factory = sqlite3.Row
            self.schema_version = _prepare_when_unlocked(self._con, self.readonly)
            if not self.readonly:
                self._remember_identity()
        except (OSError, sqlite3.Error, ValueError) as err:
            self.close()
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
        con = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=60.0, isolation_level=None)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.Error as err:  # no WAL index, and none can be created (a read-only folder)
            con.close()
            first = err
        wal = self.path.with_name(self.path.name + "-wal")
        if wal.is_file() and wal.stat().st_size > 0:
            # immutable=1 would ignore the write-ahead log, i.e. commits not yet checkpointed into
            # the main file: read a private copy of the file and its log, which SQLite recovers
            return self._connect_copy(wal)
        con = sqlite3.connect(f"{uri}?immutable=1", uri=True, timeout=60.0, isolation_level=None)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.Error:
            con.close()
            raise first from None

    def _connect_copy(self, wal: Path) -> sqlite3.Connection:
        """A connection to a private copy of the store and its write-ahead log (read-only folder)."""
        folder = Path(tempfile.mkdtemp(prefix="adamlab-ro-store-"))
        self._copy_dir = folder
        try:
            shutil.copyfile(self.path, folder / self.path.name)
            shutil.copyfile(wal, folder / wal.name)
            con = sqlite3.connect(folder / self.path.name, timeout=60.0, isolation_level=None)
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            con.execute("PRAGMA query_only=ON")
            return con
        except (OSError, sqlite3.Error) as err:
            shutil.rmtree(folder, ignore_errors=True)
            self._copy_dir = None
            raise ValueError(f"it has a write-ahead log ({wal.name}) but no WAL index, in a folder "
                             f"adamlab cannot write, and reading a copy failed ({err}); open it once "
                             "where it can be written, or copy it with its -wal file") from None

    # -- context manager ---------------------------------------------------------------------
    def close(self) -> None:
        if self._con is not None:
            self._con.close()  # kept: a closed connection raises sqlite3.ProgrammingError on use
        if self._copy_dir is not None:
            shutil.rmtree(self._copy_dir, ignore_errors=True)
            self._copy_dir = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tx(self) -> Transaction:
        if self.readonly:
            raise ValueError(f"results store {str(self.path)!r} was opened read-only")
        self.check_identity()
        return Transaction(self._db)

    # -- identity: faults SQLite cannot survive ----------------------------------------------------
    def _files(self) -> dict[str, tuple[int, int]]:
        """``(st_dev, st_ino)`` of the store file and of its ``-wal`` and ``-shm`` (absent: missing)."""
        out = {}
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                st = os.stat(self.path.with_name(self.path.name + suffix))
                out[suffix] = (st.st_dev, st.st_ino)
        return out

    def _links(self) -> int:
        return os.stat(self.path).st_nlink

    def _remember_identity(self) -> None:
        links = self._links()
        if links > 1:
            raise ValueError(f"it has {links} hard links; SQLite's locks and write-ahead log do not follow "
                             "hard links, so processes using different names would lose or duplicate "
                             "runs: keep one name per store (copy it instead of linking)")
        self._identity = self._files()

    def check_identity(self) -> None:
        """Raise ``ValueError`` (one line) when the store's files were changed under this process:
        the file replaced or hard-linked, its ``-wal`` or ``-shm`` deleted or replaced. SQLite cannot
        survive these (runs would be trained twice or vanish), so every write checks first."""
        if self._identity is None:
            return
        now = self._files()
        names = {"": "the store file", "-wal": "its -wal file", "-shm": "its -shm file"}
        for suffix, ident in self._identity.items():
            if suffix not in now:
                what = f"{names[suffix]} was deleted"
            elif now[suffix] != ident:
                what = f"{names[suffix]} was replaced"
            else:
                continue
            raise ValueError(f"results store {str(self.path)!r} was changed under this process ({what}); "
                             "stop every process using it, then check it before going on (SQLite cannot "
                             "survive this, runs could be lost or trained twice)")
        links = self._links()
        if links > 1:
            raise ValueError(f"results store {str(self.path)!r} now has {links} hard links; stop every "
                             "process using it and keep one name per store (SQLite's locks do not follow "
                             "hard links)")

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
        for chunk in chunks(run_ids):
            q = ("SELECT run_id, status, owner_pid, owner_host, heartbeat FROM runs"
                 f" WHERE run_id IN ({placeholders(len(chunk))})")
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
            for chunk in chunks(ids):
                cur.execute("UPDATE runs SET status='pending', owner_pid=NULL, owner_host=NULL, heartbeat=NULL"
                            " WHERE status='running' AND owner_pid=? AND owner_host=?"
                            f" AND run_id IN ({placeholders(len(chunk))})",
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
            each_chunk(cur, "DELETE FROM metrics WHERE run_id IN ({})", ids)
            cur.executemany(
                "INSERT INTO metrics (run_id, step, name, value) VALUES (?, ?, ?, ?)",
                [(result.run_id, s, n, v) for result in results for s, n, v in result.long_rows()],
            )
            if self._has_staged(cur):
                each_chunk(cur, "INSERT OR IGNORE INTO metrics (run_id, step, name, value)"
                                 " SELECT run_id, step, name, value FROM metrics_staging WHERE run_id IN ({})", kept)
                each_chunk(cur, "DELETE FROM metrics_staging WHERE run_id IN ({})", ids)
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



#: Seconds a store being created or migrated by another process is waited for when it is opened.
OPEN_TIMEOUT = 60.0


def _prepare_when_unlocked(con: sqlite3.Connection, readonly: bool) -> int:
    """:func:`~adamlab.store.schema.prepare`, retried while another process holds the lock it needs.

    Two sweeps started at once on a new store both create it; switching the file to WAL mode can then
    fail at once with "database is locked" (SQLite does not always call the busy handler for that), so
    the loser waits and looks again (the schema statements are idempotent) instead of failing.
    """
    deadline = time.monotonic() + OPEN_TIMEOUT
    pause = 0.01
    while True:
        try:
            return prepare(con, readonly=readonly)
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            if con.in_transaction:
                con.rollback()
            time.sleep(pause)
            pause = min(pause * 2, 0.2)

@contextlib.contextmanager
def borrowed(store: Store | str | os.PathLike[str], *, readonly: bool = False,
             must_exist: bool = False) -> Iterator[Store]:
    """The one "open a store or use the given one".

    Parameters
    ----------
    store:
        A :class:`Store`, yielded as it is (the caller keeps owning it: it is not closed), or the path
        of a store, opened here and closed on exit.
    readonly:
        Open the path read-only (see :class:`Store`).
    must_exist:
        Raise ``FileNotFoundError`` (``results store '...' does not exist``) when the path is not a
        file, instead of creating a new store there.
    """
    if isinstance(store, Store):
        yield store
        return
    if must_exist and Path(store).exists() and not Path(store).is_file():
        kind = "a directory" if Path(store).is_dir() else "not a regular file (a device, FIFO or socket)"
        raise ValueError(f"cannot open results store {str(store)!r}: it is {kind}")
    if must_exist and not Path(store).is_file():
        raise FileNotFoundError(f"results store {str(store)!r} does not exist")
    db = Store(store, readonly=readonly)
    try:
        yield db
    finally:
        db.close()
