"""Low-level SQLite helpers of the store: the one write transaction and chunked ``IN (...)`` lists.

Only :mod:`adamlab.store` uses these; nothing outside the package sees the connection.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from typing import Any

#: Most ``?`` placeholders one ``IN (...)`` list holds (well under SQLite's limit).
CHUNK = 500


class Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error); yields a cursor."""

    def __init__(self, con: sqlite3.Connection) -> None:
        self.con = con

    def __enter__(self) -> sqlite3.Cursor:
        self.con.execute("BEGIN IMMEDIATE")
        return self.con.cursor()

    def __exit__(self, exc_type: Any, *exc: Any) -> None:
        self.con.execute("ROLLBACK" if exc_type is not None else "COMMIT")


def chunks(ids: Sequence[str], size: int = CHUNK) -> Iterator[list[str]]:
    """``ids`` in lists of at most ``size``."""
    for start in range(0, len(ids), size):
        yield list(ids[start:start + size])


def placeholders(n: int) -> str:
    """``?,?,...,?`` (``n`` of them)."""
    return ",".join("?" * n)


def each_chunk(cur: sqlite3.Cursor, sql: str, ids: Sequence[str], size: int = CHUNK) -> None:
    """Run ``sql`` (with one ``IN ({})`` placeholder list) over ``ids``, ``size`` at a time."""
    for chunk in chunks(ids, size):
        cur.execute(sql.format(placeholders(len(chunk))), chunk)
