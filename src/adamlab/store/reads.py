"""The store's read queries: everything analysis code may ask a store (see :mod:`adamlab.store`).

:class:`StoreReads` is the read half of :class:`~adamlab.store.core.Store`. Each query is one or a few
SQL statements over the store's connection; callers get plain Python values (dicts, lists, tuples),
never a cursor or the connection. Conventions shared by every query:

- A *final value* of a metric is its value at the largest step at which the run recorded it.
- A *curve* is ``(steps, values)``: two lists, sorted by step.
- ``run_ids`` arguments may hold ids the store does not know; they are left out of the answer, except
  where a query says otherwise. Large id lists are read in chunks of :data:`~adamlab.store.sql.CHUNK`.
- Rows of ``runs`` come as dicts of its columns with the JSON columns decoded and ``execution``
  always present (None where the run has none, or the store predates it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

from adamlab.dissect.names import canonical, spellings
from adamlab.runs.config import RunConfig
from adamlab.runs.result import RunStatus
from adamlab.store.schema import JSON_COLUMNS
from adamlab.store.sql import chunks, placeholders

#: A metric's curve: ``(steps, values)`` sorted by step.
Curve = tuple[list[int], list[float]]

_RUN_ORDER = " ORDER BY problem, optimizer, lr, seed"


class StoreDataError(ValueError):
    """A value in the store is not what adamlab wrote (the message names the store, run and column)."""


def _json(text: Any, column: str, run_id: Any, where: str) -> Any:
    """``json.loads(text)``, or :class:`StoreDataError` naming the store ``where``, the run and the column."""
    try:
        return json.loads(text)
    except (TypeError, ValueError, RecursionError) as err:
        raise StoreDataError(f"results store {where!r}: column {column!r} of run {run_id!r} is not valid JSON "
                             f"({type(err).__name__}: {' '.join(str(err).split())[:120]})") from None


def _run_dict(row: sqlite3.Row, where: str = "?") -> dict[str, Any]:
    d = dict(row)
    for key in JSON_COLUMNS:
        d[key] = _json(d[key], key, d.get("run_id"), where)
    d["execution"] = None if d.get("execution") is None else _json(d["execution"], "execution", d.get("run_id"), where)
    return d


def _order_key(row: dict[str, Any]) -> tuple[Any, ...]:
    """The key of ``ORDER BY problem, optimizer, lr, seed`` (SQLite puts NULL first)."""
    return (row["problem"], row["optimizer"], row["lr"] is not None, row["lr"] or 0.0, row["seed"])


class StoreReads:
    """The read queries of a results store (mixed into :class:`~adamlab.store.core.Store`)."""

    _con: sqlite3.Connection | None

    @property
    def _where(self) -> str:
        return str(getattr(self, "path", "?"))

    @property
    def _db(self) -> sqlite3.Connection:
        assert self._con is not None, "the store is closed"
        return self._con

    def _select_in(self, sql: str, ids: Sequence[str], args: Sequence[Any] = ()) -> Iterator[sqlite3.Row]:
        """Rows of ``sql`` (``args``, then one ``IN ({})`` list) over ``ids`` in chunks."""
        for chunk in chunks(list(dict.fromkeys(ids))):
            yield from self._db.execute(sql.format(placeholders(len(chunk))), (*args, *chunk))

    # -- runs ----------------------------------------------------------------------------------------
    def statuses(self, run_ids: Sequence[str] | None = None) -> dict[str, RunStatus]:
        """``run_id -> status`` for ``run_ids`` (all runs when None); unknown ids are left out."""
        rows: Any
        if run_ids is None:
            rows = self._db.execute("SELECT run_id, status FROM runs")
        else:
            rows = self._select_in("SELECT run_id, status FROM runs WHERE run_id IN ({})", run_ids)
        return {r["run_id"]: RunStatus(r["status"]) for r in rows}

    def runs(self, *, problem: str | None = None, status: Sequence[str] | None = None,
             run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Rows of ``runs`` as dicts (JSON columns decoded), ordered by problem, optimizer, lr, seed.

        Parameters
        ----------
        problem:
            Only runs of this problem (any options).
        status:
            Only runs with one of these statuses.
        run_ids:
            Only these runs (unknown ids are left out).
        """
        where, args = " WHERE 1=1", []
        if problem is not None:
            where += " AND problem=?"
            args.append(problem)
        if status is not None:
            where += f" AND status IN ({placeholders(len(status))})"
            args.extend(status)
        if run_ids is None:
            rows = self._db.execute("SELECT * FROM runs" + where + _RUN_ORDER, args)
            return [_run_dict(r, self._where) for r in rows]
        found = [_run_dict(r, self._where) for r in
                 self._select_in("SELECT * FROM runs" + where + " AND run_id IN ({})" + _RUN_ORDER, run_ids, args)]
        return sorted(found, key=_order_key)

    def config(self, run_id: str) -> RunConfig:
        """The :class:`RunConfig` of ``run_id`` (``KeyError`` if the store does not hold it)."""
        row = self._db.execute("SELECT config FROM runs WHERE run_id=?", (run_id,)).fetchone()
        if row is None:
            raise KeyError(run_id)
        return RunConfig.from_dict(_json(row["config"], "config", run_id, self._where))

    def problems(self) -> list[str]:
        """The problem names of the store's runs, sorted."""
        return [r[0] for r in self._db.execute("SELECT DISTINCT problem FROM runs ORDER BY problem")]

    # -- metrics -------------------------------------------------------------------------------------
    def metric_names(self, run_ids: Sequence[str] | None = None) -> list[str]:
        """The metric names recorded for ``run_ids`` (all runs when None), sorted."""
        if run_ids is None:
            return sorted({canonical(r[0]) for r in self._db.execute("SELECT DISTINCT name FROM metrics")})
        return sorted({canonical(r[0]) for r in self._select_in(
            "SELECT DISTINCT name FROM metrics WHERE run_id IN ({})", run_ids)})

    def metrics(self, run_id: str) -> dict[str, Curve]:
        """``name -> (steps, values)`` of one run, sorted by step."""
        return self.curves([run_id])[run_id]

    def curves(self, run_ids: Sequence[str], names: Sequence[str] | None = None) -> dict[str, dict[str, Curve]]:
        """``run_id -> {name: (steps, values)}`` for every id of ``run_ids`` (``{}`` for a run without
        metrics or unknown to the store), optionally only the metrics ``names``. Old metric names are read
        as today's (:mod:`adamlab.dissect.names`), here and in every query below."""
        out: dict[str, dict[str, Curve]] = {i: {} for i in run_ids}
        sql, args = "SELECT run_id, step, name, value FROM metrics WHERE run_id IN ({})", []
        if names is not None:
            names = spellings(list(names))
            sql = ("SELECT run_id, step, name, value FROM metrics WHERE name IN "
                   f"({placeholders(len(names))}) AND run_id IN ({{}})")
            args = list(names)
        for r in self._select_in(sql + " ORDER BY run_id, name, step", run_ids, args):
            steps, values = out[r["run_id"]].setdefault(canonical(r["name"]), ([], []))
            steps.append(int(r["step"]))
            values.append(float(r["value"]))
        return out

    def final_metric(self, run_id: str, name: str) -> float | None:
        """Value of ``name`` at the largest step where it was recorded, or None."""
        names = spellings([name])
        row = self._db.execute(
            f"SELECT value FROM metrics WHERE run_id=? AND name IN ({placeholders(len(names))}) "
            "ORDER BY step DESC LIMIT 1", (run_id, *names)
        ).fetchone()
        return None if row is None else float(row["value"])

    def final_metrics(self, run_ids: Sequence[str] | None = None,
                      names: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
        """``run_id -> {name: final value}`` (every metric, or only ``names``).

        With ``run_ids`` every given id is a key (``{}`` where the run has no metrics); without, every
        run that has metrics.
        """
        last = ("SELECT m.run_id, m.name, m.value FROM metrics m JOIN "
                "(SELECT run_id, name, MAX(step) AS step FROM metrics{where} GROUP BY run_id, name) last "
                "ON m.run_id = last.run_id AND m.name = last.name AND m.step = last.step")
        names = None if names is None else spellings(list(names))
        name_filter = f"name IN ({placeholders(len(names))})" if names is not None else ""
        name_args = list(names) if names is not None else []
        out: dict[str, dict[str, float]] = {}
        if run_ids is None:
            rows: Any = self._db.execute(last.format(where=f" WHERE {name_filter}" if names is not None else ""),
                                         name_args)
        else:
            out = {i: {} for i in run_ids}
            where = " WHERE " + (f"{name_filter} AND " if names is not None else "") + "run_id IN ({})"
            rows = self._select_in(last.format(where=where), run_ids, name_args)
        for r in rows:
            out.setdefault(r["run_id"], {})[canonical(r["name"])] = float(r["value"])
        return out

    def final_values(self, run_ids: Sequence[str], name: str) -> list[float | None]:
        """The final ``name`` of each run of ``run_ids`` in that order; None unless the run finished
        (a diverged, failed, unfinished or unknown run, or one that never recorded ``name``)."""
        status = self.statuses(run_ids)
        finished = [i for i in run_ids if status.get(i) == RunStatus.FINISHED]
        finals = self.final_metrics(finished, [name])
        return [finals[i].get(name) if i in finals else None for i in run_ids]

    def last_steps(self, run_ids: Sequence[str] | None = None) -> dict[str, int]:
        """``run_id -> the largest step with a metric`` (runs without metrics are left out)."""
        if run_ids is None:
            rows: Any = self._db.execute("SELECT run_id, MAX(step) FROM metrics GROUP BY run_id")
        else:
            rows = self._select_in("SELECT run_id, MAX(step) FROM metrics WHERE run_id IN ({}) GROUP BY run_id",
                                   run_ids)
        return {r[0]: int(r[1]) for r in rows}

    def metric_rows(self) -> Iterator[tuple[str, int, str, float]]:
        """The whole ``metrics`` table as ``(run_id, step, name, value)``, sorted by run, step and name."""
        for r in self._db.execute("SELECT run_id, step, name, value FROM metrics ORDER BY run_id, step, name"):
            yield (r[0], int(r[1]), canonical(r[2]), float(r[3]))

    def run_table(self, *, problem: str | None = None, status: Sequence[str] | None = None,
                  run_ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """:meth:`runs` with two more keys per run: ``final`` (``{name: final value}``, ``{}`` when the run
        has no metrics) and ``final_step`` (the largest step with a metric, or None)."""
        rows = self.runs(problem=problem, status=status, run_ids=run_ids)
        ids = [r["run_id"] for r in rows]
        whole = problem is None and status is None and run_ids is None
        finals = self.final_metrics(None if whole else ids)
        last = self.last_steps(None if whole else ids)
        for r in rows:
            r["final"] = finals.get(r["run_id"], {})
            r["final_step"] = last.get(r["run_id"])
        return rows

    def holders(self, run_ids: Sequence[str]) -> list[tuple[str, int | None, str | None, float | None]]:
        """``(run_id, owner_pid, owner_host, heartbeat)`` of those of ``run_ids`` that are ``running``."""
        return [(r["run_id"], r["owner_pid"], r["owner_host"], r["heartbeat"]) for r in self._select_in(
            "SELECT run_id, owner_pid, owner_host, heartbeat FROM runs WHERE status='running'"
            " AND run_id IN ({})", run_ids)]

    def staged_count(self, run_id: str | None = None, *, up_to_step: int | None = None) -> int:
        """Number of staged rows (of one run, or all; at steps up to ``up_to_step`` when given): rows of
        runs in progress, invisible to the other queries."""
        if run_id is None:
            return int(self._db.execute("SELECT COUNT(*) FROM metrics_staging").fetchone()[0])
        if up_to_step is not None:
            return int(self._db.execute("SELECT COUNT(*) FROM metrics_staging WHERE run_id=? AND step<=?",
                                        (run_id, int(up_to_step))).fetchone()[0])
        return int(self._db.execute("SELECT COUNT(*) FROM metrics_staging WHERE run_id=?",
                                    (run_id,)).fetchone()[0])
