"""The results store: one SQLite file (stdlib ``sqlite3``, WAL mode), readable with ``pandas.read_sql``.

Tables
------
``runs``: one row per run config, keyed by ``run_id`` (the config hash). Columns: ``problem``,
``problem_options`` (JSON), ``optimizer``, ``hparams`` (JSON), ``lr``, ``seed``, ``steps``,
``batch_size``, ``eval_every``, ``schedule`` (JSON), ``hooks`` (JSON), ``config`` (the full JSON),
``status`` (pending | running | finished | diverged | failed), ``diverged_step``, ``error``,
``attempts``, ``wall_time`` (s), ``created_at``, ``started_at``, ``finished_at`` (UTC ISO-8601),
``adamlab_version``, ``torch_version``, ``python_version``, ``execution`` (JSON: how the run was
trained, ``{"backend": "vmap", "block_size": 640}``; batched runs agree with serial ones to rounding,
see docs/scale.md).

``metrics``: long format ``(run_id, step, name, value)`` with primary key ``(run_id, step, name)``.

``metrics_staging``: the same columns, for a run in progress. The runner streams a run's metrics here in
bounded chunks (:meth:`Store.stage`), so a long run does not hold them all in memory; nothing reads
this table, and a run's commit moves its staged rows into ``metrics``.

Crash safety: a finished run's metrics and its final status are written in ONE transaction (a batched
block of runs: one transaction for the block, :meth:`Store.record_many`), so a ``kill -9`` leaves
either the whole run or none of it; the primary keys make duplicates impossible. Staged rows of a run
that crashed are never visible in ``metrics``: a new attempt discards them (:meth:`Store.discard_staged`)
and a failed run's are dropped.

Example
-------
>>> import pandas as pd, sqlite3                                   # doctest: +SKIP
>>> con = sqlite3.connect("results/adamlab.sqlite")                # doctest: +SKIP
>>> runs = pd.read_sql("SELECT * FROM runs", con)                  # doctest: +SKIP
>>> metrics = pd.read_sql("SELECT * FROM metrics", con)            # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import platform
import sqlite3
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch

from adamlab import __version__
from adamlab.runner.config import RunConfig, canonical_json
from adamlab.runner.result import DONE_STATUSES, RunResult, RunStatus, utcnow

DEFAULT_STORE = Path("results") / "adamlab.sqlite"
SCHEMA_VERSION = 1

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


def _versions() -> dict[str, str]:
    return {
        "adamlab_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
    }


class Store:
    """A results store in the SQLite file ``path`` (created with its parent directory if missing).

    Raises ``ValueError`` with one clear line when the file cannot be created or opened.
    Safe for several processes: WAL mode, a 60 s busy timeout, and short ``BEGIN IMMEDIATE`` transactions.
    """

    def __init__(self, path: str | os.PathLike[str] = DEFAULT_STORE) -> None:
        self.path = Path(path)
        try:
            if self.path.is_dir():
                raise ValueError("it is a directory")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._con = sqlite3.connect(self.path, timeout=60.0, isolation_level=None)
            self._con.row_factory = sqlite3.Row
            self._con.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a commit survives a crash or kill -9 of the process (only a power loss
            # can lose the last commits), without an fsync per transaction.
            self._con.execute("PRAGMA synchronous=NORMAL")
            self._con.execute("PRAGMA foreign_keys=ON")
            self._con.executescript(_SCHEMA)
            self._add_missing_columns()
            self._con.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),)
            )
        except (OSError, sqlite3.Error, ValueError) as err:
            raise ValueError(f"cannot open results store {str(path)!r}: {err}") from None

    def _add_missing_columns(self) -> None:
        """Columns added since schema version 1 (an older store gets them, empty)."""
        have = {row[1] for row in self._con.execute("PRAGMA table_info(runs)")}
        if "execution" not in have:
            self._con.execute("ALTER TABLE runs ADD COLUMN execution TEXT")

    # -- context manager ---------------------------------------------------------------------
    def close(self) -> None:
        self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _tx(self) -> _Transaction:
        return _Transaction(self._con)

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

    def mark_running(self, config: RunConfig) -> None:
        """Status ``running``, one more attempt, start time now."""
        with self._tx() as cur:
            self._insert_pending(cur, [config])
            cur.execute(
                "UPDATE runs SET status='running', attempts=attempts+1, started_at=? WHERE run_id=?",
                (_now(), config.run_id),
            )

    def mark_running_many(self, configs: Sequence[RunConfig]) -> None:
        """:meth:`mark_running` for a block of runs, in ONE transaction."""
        now = _now()
        with self._tx() as cur:
            self._insert_pending(cur, configs)
            cur.executemany("UPDATE runs SET status='running', attempts=attempts+1, started_at=? WHERE run_id=?",
                            [(now, c.run_id) for c in configs])

    def record(self, result: RunResult) -> None:
        """Write a run's metrics and final status in ONE transaction (replacing earlier partial rows)."""
        self.record_many([result])

    def record_many(self, results: Sequence[RunResult]) -> None:
        """Write several runs' metrics and final statuses in ONE transaction (e.g. a finished vmap block).

        Each run's staged rows (:meth:`stage`) move into ``metrics`` together with ``result.records``
        (a record wins over a staged row of the same step and name); a ``failed`` run's staged rows are
        dropped. Earlier rows of the run in ``metrics`` are replaced.
        """
        for result in results:
            if result.status not in (*DONE_STATUSES, RunStatus.FAILED):
                raise ValueError(
                    f"record needs a final status (finished, diverged, failed); got {result.status!r}"
                )
        if not results:
            return
        versions = tuple(_versions().values())
        with self._tx() as cur:
            self._insert_pending(cur, [r.config for r in results])
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
                " torch_version=?, python_version=?, execution=? WHERE run_id=?",
                [(result.status, result.diverged_step, result.error, result.wall_time, result.started_at,
                  result.finished_at or _now(), *versions,
                  None if result.execution is None else canonical_json(result.execution), result.run_id)
                 for result in results],
            )

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
            rows = self._con.execute("SELECT run_id, status FROM runs").fetchall()
        else:
            rows = []
            ids = list(run_ids)
            for i in range(0, len(ids), 500):
                chunk = ids[i : i + 500]
                q = f"SELECT run_id, status FROM runs WHERE run_id IN ({','.join('?' * len(chunk))})"
                rows.extend(self._con.execute(q, chunk).fetchall())
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
        for row in self._con.execute(q + " ORDER BY problem, optimizer, lr, seed", args):
            d = dict(row)
            for key in ("problem_options", "hparams", "schedule", "hooks", "config"):
                d[key] = json.loads(d[key])
            d["execution"] = None if d.get("execution") is None else json.loads(d["execution"])
            out.append(d)
        return out

    def metrics(self, run_id: str) -> dict[str, tuple[list[int], list[float]]]:
        """``name -> (steps, values)`` of one run, sorted by step."""
        out: dict[str, tuple[list[int], list[float]]] = {}
        rows = self._con.execute(
            "SELECT step, name, value FROM metrics WHERE run_id=? ORDER BY name, step", (run_id,)
        )
        for r in rows:
            steps, values = out.setdefault(r["name"], ([], []))
            steps.append(int(r["step"]))
            values.append(float(r["value"]))
        return out

    def final_metric(self, run_id: str, name: str) -> float | None:
        """Value of ``name`` at the largest step where it was recorded, or None."""
        row = self._con.execute(
            "SELECT value FROM metrics WHERE run_id=? AND name=? ORDER BY step DESC LIMIT 1", (run_id, name)
        ).fetchone()
        return None if row is None else float(row["value"])

    def problems(self) -> list[str]:
        return [r[0] for r in self._con.execute("SELECT DISTINCT problem FROM runs ORDER BY problem")]

    def config(self, run_id: str) -> RunConfig:
        row = self._con.execute("SELECT config FROM runs WHERE run_id=?", (run_id,)).fetchone()
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
