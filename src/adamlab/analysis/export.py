"""``adamlab export STORE --format csv|parquet``: a results store as two tidy tables.

- ``<stem>.runs.<ext>``: one row per run. Columns: ``run_id``, ``problem``, one ``option.<name>`` column per
  problem option, ``optimizer``, ``lr``, one ``hparam.<name>`` column per other hyperparameter, ``seed``,
  ``steps``, ``batch_size``, ``eval_every``, ``schedule`` (JSON), ``status``, ``diverged_step``, ``attempts``,
  ``wall_time`` (s), ``final_step`` (the last recorded step), one ``final.<metric>`` column per metric
  (its value at the largest step where it was recorded, as :meth:`Store.final_metrics`), ``error``, the
  timestamps and the package versions, then where the run ran: ``backend``, ``device`` (``cpu``,
  ``cuda:0``, ``mps``), ``device_name`` (the GPU's model) and ``cuda_version`` (from the run's execution
  record; empty for a run not trained yet). A run without some option, hyperparameter or metric has an empty
  cell there. List values (e.g. ``betas``) are JSON text.
- ``<stem>.metrics.<ext>``: the long table ``run_id, step, name, value``, sorted.

CSV needs nothing beyond the standard library; Parquet needs ``pyarrow`` (``pip install 'adamlab[parquet]'``).
Both tables come from the store's read queries (:meth:`~adamlab.store.Store.run_table`,
:meth:`~adamlab.store.Store.metric_rows`); both files are written atomically
(:func:`adamlab.util.files.atomic_path`).

>>> import pandas as pd                                         # doctest: +SKIP
>>> runs = pd.read_csv("results/adamlab.runs.csv")              # doctest: +SKIP
>>> runs.groupby(["problem", "optimizer", "lr"])["final.test_loss"].mean()  # doctest: +SKIP
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from adamlab.store import Store, borrowed
from adamlab.util.files import atomic_open, atomic_path

FORMATS: tuple[str, ...] = ("csv", "parquet")

PARQUET_HINT = "parquet export needs pyarrow: pip install 'adamlab[parquet]' (or use --format csv)"

_LEADING = ("run_id", "problem")
_MIDDLE = ("optimizer", "lr")
_TRAILING = ("seed", "steps", "batch_size", "eval_every", "schedule", "status", "diverged_step", "attempts",
             "wall_time", "final_step")
_META = ("error", "created_at", "started_at", "finished_at", "adamlab_version", "torch_version",
         "python_version")
_EXECUTION = ("backend", "device", "device_name", "cuda_version")
METRIC_COLUMNS: tuple[str, ...] = ("run_id", "step", "name", "value")


def execution_cells(execution: dict[str, Any] | None) -> dict[str, Any]:
    """The ``backend``, ``device``, ``device_name`` and ``cuda_version`` cells of a run's execution record
    (a record without a device is a CPU run; no record: all empty)."""
    if execution is None:
        return dict.fromkeys(_EXECUTION)
    return {"backend": execution.get("backend"), "device": execution.get("device", "cpu"),
            "device_name": execution.get("device_name"), "cuda_version": execution.get("cuda")}


def _cell(value: Any) -> Any:
    """Scalars stay as they are; lists and dicts become canonical JSON text."""
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, sort_keys=True)
    return value


def runs_table(db: Store) -> tuple[list[str], list[dict[str, Any]]]:
    """The tidy runs table: ``(columns, rows)``, one row (a dict) per run, in the store's order."""
    runs = db.run_table()
    options = sorted({k for r in runs for k in r["problem_options"]})
    hparams = sorted({k for r in runs for k in r["hparams"] if k != "lr"})
    metrics = sorted({k for r in runs for k in r["final"]})
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run_id": r["run_id"], "problem": r["problem"]}
        row.update({f"option.{k}": _cell(r["problem_options"].get(k)) for k in options})
        row.update({"optimizer": r["optimizer"], "lr": r["lr"]})
        row.update({f"hparam.{k}": _cell(r["hparams"].get(k)) for k in hparams})
        row.update({k: r.get(k) for k in _TRAILING if k != "final_step"})
        row["schedule"] = _cell(r["schedule"])
        row["final_step"] = r["final_step"]
        row.update({f"final.{m}": r["final"].get(m) for m in metrics})
        row.update({k: r.get(k) for k in _META})
        row.update(execution_cells(r.get("execution")))
        rows.append(row)
    columns = [*_LEADING, *(f"option.{k}" for k in options), *_MIDDLE, *(f"hparam.{k}" for k in hparams),
               *_TRAILING, *(f"final.{m}" for m in metrics), *_META, *_EXECUTION]
    return columns, rows


def metrics_rows(db: Store) -> Iterator[tuple[str, int, str, float]]:
    """The long metrics table, sorted by ``(run_id, step, name)``."""
    yield from db.metric_rows()


def _write_csv(path: Path, columns: Sequence[str], rows: Any) -> None:
    with atomic_open(path, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            cells = [row.get(c) for c in columns] if isinstance(row, dict) else list(row)
            writer.writerow(["" if v is None else v for v in cells])


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        raise ValueError(PARQUET_HINT) from None
    return pyarrow


#: Parquet types of the columns that can be empty in every row.
_ARROW_TYPES = {"diverged_step": "int64", "final_step": "int64", "lr": "float64", "wall_time": "float64",
                "error": "string", "started_at": "string", "finished_at": "string"}


def _arrow_column(pa: Any, values: list[Any], name: str) -> Any:
    """One typed column; a column mixing kinds (numbers and text) becomes text."""
    kinds = {type(v) for v in values if v is not None}
    if name in _ARROW_TYPES or name.startswith("final."):
        return pa.array(values, type=getattr(pa, _ARROW_TYPES.get(name, "float64"))())
    if kinds and not kinds <= {int, float} and not kinds <= {bool} and not kinds <= {str}:
        values = [None if v is None else str(v) for v in values]
    elif kinds == {int, float}:
        values = [None if v is None else float(v) for v in values]
    return pa.array(values) if kinds else pa.array(values, type=pa.null())


def _write_parquet(path: Path, columns: Sequence[str], rows: Any) -> None:
    pa = _pyarrow()
    if rows and isinstance(rows[0], dict):
        data = {c: _arrow_column(pa, [r.get(c) for r in rows], c) for c in columns}
    else:
        cols = list(zip(*rows, strict=True)) if rows else [() for _ in columns]
        types = [pa.string(), pa.int64(), pa.string(), pa.float64()]
        data = {c: pa.array(list(v), type=t) for c, v, t in zip(columns, cols, types, strict=True)}
    table = pa.table(data) if data else pa.table({c: pa.array([], type=pa.null()) for c in columns})
    with atomic_path(path) as tmp:
        pa.parquet.write_table(table, str(tmp))


_WRITERS: dict[str, Callable[[Path, Sequence[str], Any], None]] = {"csv": _write_csv, "parquet": _write_parquet}


def export_store(store: Store | str | os.PathLike[str], out_dir: str | os.PathLike[str] | None = None,
                 fmt: str = "csv") -> list[Path]:
    """Write the runs table and the metrics table of ``store`` into ``out_dir``; return the two paths.

    Parameters
    ----------
    store:
        A :class:`Store` or the path of an existing SQLite store.
    out_dir:
        Output folder (created if missing); default: the store's folder.
    fmt:
        ``"csv"`` or ``"parquet"`` (needs ``pyarrow``).

    Raises ``ValueError`` for an unknown format or a missing ``pyarrow`` (with the install command), and
    ``FileNotFoundError`` for a store path that does not exist.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if fmt == "parquet":
        _pyarrow()  # fail before writing anything
    with borrowed(store, readonly=True, must_exist=True) as db:  # reads only: never migrates
        out = Path(out_dir) if out_dir is not None else db.path.parent
        out.mkdir(parents=True, exist_ok=True)
        stem = db.path.stem
        columns, rows = runs_table(db)
        paths = [out / f"{stem}.runs.{fmt}", out / f"{stem}.metrics.{fmt}"]
        _WRITERS[fmt](paths[0], columns, rows)
        _WRITERS[fmt](paths[1], METRIC_COLUMNS, list(metrics_rows(db)))
    return paths
