"""The store's stated interface: its read queries on a tiny hand-made store, the write contract as readers
see it, the one open-or-borrow helper, and that nothing outside adamlab.store touches its connection."""

from __future__ import annotations

import ast
import sqlite3
from pathlib import Path

import pytest

from adamlab.runs.config import RunConfig
from adamlab.runs.result import RunResult, RunStatus
from adamlab.store import Store, borrowed
from tests.store_helpers import downgrade_to_v1

ROOT = Path(__file__).resolve().parents[2]


def _config(problem: str, optimizer: str, lr: float, seed: int, **options: object) -> RunConfig:
    return RunConfig(problem=problem, optimizer=optimizer, hparams={"lr": lr}, seed=seed, steps=20, batch_size=4,
                     eval_every=10, schedule={"name": "constant"}, problem_options=options)


R1 = _config("p", "adam", 0.1, 0)
R2 = _config("p", "adam", 0.1, 1)
R3 = _config("p", "sgd", 0.01, 0)
R4 = _config("p", "sgd", 0.01, 1)
R5 = _config("q", "adam", 0.1, 0, d=3)

CURVES = {
    R1.run_id: {"test_accuracy": ([0, 20], [0.1, 0.9]), "train_loss": ([0, 10, 20], [1.0, 0.5, 0.25])},
    R2.run_id: {"train_loss": ([0, 10], [1.0, 0.7])},
    R3.run_id: {"train_loss": ([0], [2.0])},
    R4.run_id: {},
    R5.run_id: {"loss": ([0, 20], [3.0, 1.5])},
}


def _records(run_id: str) -> list[dict[str, float]]:
    by_step: dict[int, dict[str, float]] = {}
    for name, (steps, values) in CURVES[run_id].items():
        for s, v in zip(steps, values, strict=True):
            by_step.setdefault(s, {"step": s})[name] = v
    return [by_step[s] for s in sorted(by_step)]


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    """R1 finished, R2 diverged, R3 failed, R4 only planned, R5 finished (another problem)."""
    path = tmp_path / "tiny.sqlite"
    with Store(path) as db:
        db.plan([R1, R2, R3, R4, R5])
        written = db.record_many([
            RunResult(R1, RunStatus.FINISHED, _records(R1.run_id), wall_time=1.5),
            RunResult(R2, RunStatus.DIVERGED, _records(R2.run_id), diverged_step=12, wall_time=0.5),
            RunResult(R3, RunStatus.FAILED, _records(R3.run_id), error="boom"),
            RunResult(R5, RunStatus.FINISHED, _records(R5.run_id), wall_time=2.0),
        ])
    assert written == [True] * 4
    return path


def test_runs_rows_order_and_filters(tiny):
    with Store(tiny, readonly=True) as db:
        rows = db.runs()
        assert [r["run_id"] for r in rows] == [R1.run_id, R2.run_id, R3.run_id, R4.run_id, R5.run_id]
        assert rows[0]["hparams"] == {"lr": 0.1} and rows[4]["problem_options"] == {"d": 3}
        assert all("execution" in r and r["execution"] is None for r in rows)
        assert [r["status"] for r in rows] == ["finished", "diverged", "failed", "pending", "finished"]
        assert [r["run_id"] for r in db.runs(problem="p", status=[RunStatus.FINISHED])] == [R1.run_id]
        some = [R5.run_id, "nope", R2.run_id, R1.run_id]
        assert [r["run_id"] for r in db.runs(run_ids=some)] == [R1.run_id, R2.run_id, R5.run_id]
        assert db.statuses([R4.run_id, "nope"]) == {R4.run_id: RunStatus.PENDING}
        assert db.problems() == ["p", "q"]
        assert db.config(R5.run_id) == R5


def test_curves_and_final_values(tiny):
    ids = [R1.run_id, R2.run_id, R3.run_id, R4.run_id, R5.run_id]
    with Store(tiny, readonly=True) as db:
        assert db.curves([*ids, "nope"]) == {**CURVES, "nope": {}}
        assert db.curves([R1.run_id], ["train_loss"]) == {R1.run_id: {"train_loss": CURVES[R1.run_id]["train_loss"]}}
        assert db.metrics(R1.run_id) == CURVES[R1.run_id]
        assert db.final_metrics() == {R1.run_id: {"test_accuracy": 0.9, "train_loss": 0.25},
                                      R2.run_id: {"train_loss": 0.7}, R3.run_id: {"train_loss": 2.0},
                                      R5.run_id: {"loss": 1.5}}
        assert db.final_metrics([R1.run_id, R4.run_id], ["train_loss"]) == {R1.run_id: {"train_loss": 0.25},
                                                                            R4.run_id: {}}
        assert db.final_metric(R1.run_id, "train_loss") == 0.25 and db.final_metric(R4.run_id, "x") is None
        # None unless finished: diverged, failed, planned, unknown, or a metric the run lacks
        assert db.final_values([*ids, "nope"], "train_loss") == [0.25, None, None, None, None, None]
        assert db.final_values([R5.run_id], "loss") == [1.5]
        assert db.last_steps() == {R1.run_id: 20, R2.run_id: 10, R3.run_id: 0, R5.run_id: 20}
        assert db.last_steps([R2.run_id, R4.run_id]) == {R2.run_id: 10}
        assert db.metric_names() == ["loss", "test_accuracy", "train_loss"]
        assert db.metric_names([R2.run_id]) == ["train_loss"]
        rows = list(db.metric_rows())
        assert rows == sorted(rows) and len(rows) == sum(len(s) for c in CURVES.values() for s, _ in c.values())
        table = db.run_table()
        assert [(r["run_id"], r["final_step"], r["final"]) for r in table][:4] == [
            (R1.run_id, 20, {"test_accuracy": 0.9, "train_loss": 0.25}), (R2.run_id, 10, {"train_loss": 0.7}),
            (R3.run_id, 0, {"train_loss": 2.0}), (R4.run_id, None, {})]
        assert [r["run_id"] for r in db.run_table(problem="q")] == [R5.run_id]


def test_queries_read_many_runs_in_chunks(tmp_path):
    configs = [_config("p", "adam", 0.1, seed) for seed in range(1203)]
    with Store(tmp_path / "many.sqlite") as db:
        db.record_many([RunResult(c, RunStatus.FINISHED, [{"step": 0, "loss": float(c.seed)}]) for c in configs])
        ids = [c.run_id for c in configs]
        assert db.final_values(ids, "loss") == [float(c.seed) for c in configs]
        assert len(db.curves(ids)) == len(db.runs(run_ids=ids)) == len(db.statuses(ids)) == 1203


def test_contract_final_runs_never_change_and_staged_rows_are_invisible(tiny):
    with Store(tiny) as db:
        before = db.curves([R1.run_id, R2.run_id])
        again = RunResult(R1, RunStatus.FINISHED, [{"step": 0, "train_loss": 9.0}])
        assert db.record_many([again, RunResult(R2, RunStatus.FAILED, [])]) == [False, False]
        assert db.curves([R1.run_id, R2.run_id]) == before
        assert not db.claim(R1) and db.statuses([R1.run_id]) == {R1.run_id: RunStatus.FINISHED}
        assert db.claim(R4)
        db.stage([(R4.run_id, 0, "train_loss", 1.0), (R4.run_id, 10, "train_loss", 0.5)])
        assert db.staged_count(R4.run_id) == 2
        assert db.curves([R4.run_id]) == {R4.run_id: {}} and R4.run_id not in db.final_metrics()
        assert db.record(RunResult(R4, RunStatus.FINISHED, [{"step": 20, "train_loss": 0.25}]))
        assert db.curves([R4.run_id])[R4.run_id] == {"train_loss": ([0, 10, 20], [1.0, 0.5, 0.25])}
        assert db.staged_count() == 0
        assert db.config(R4.run_id) == R4  # the config is written once and kept


def test_an_older_store_is_read_as_it_is(tiny):
    downgrade_to_v1(tiny)
    with Store(tiny, readonly=True) as db:
        assert db.schema_version == 1
        assert db.curves([R1.run_id])[R1.run_id] == CURVES[R1.run_id]
        assert [r["execution"] for r in db.run_table()] == [None] * 5
        assert db.final_values([R1.run_id, R2.run_id], "train_loss") == [0.25, None]


def test_borrowed_uses_a_given_store_and_owns_an_opened_one(tiny, tmp_path):
    with Store(tiny) as db:
        with borrowed(db) as same:
            assert same is db
        assert db.statuses()  # still open: the caller owns it
    with borrowed(tiny, readonly=True) as opened:
        assert opened.readonly and len(opened.runs()) == 5
    with pytest.raises(sqlite3.ProgrammingError):
        opened.runs()  # closed on exit
    missing = tmp_path / "missing.sqlite"
    with pytest.raises(FileNotFoundError, match="does not exist"), borrowed(missing, must_exist=True):
        pass
    assert not missing.exists()
    with borrowed(missing) as created:  # a path that may be created
        assert created.runs() == []
    assert missing.is_file()


# -- source checks ------------------------------------------------------------------------------------------


def _sources() -> list[Path]:
    files = [p for d in ("src", "scripts", "benchmarks") for p in (ROOT / d).rglob("*.py")]
    assert len(files) > 50
    return files


def _outside_store(path: Path) -> bool:
    return "adamlab/store/" not in path.as_posix()


def test_nothing_outside_the_store_touches_its_connection():
    offenders = []
    for path in filter(_outside_store, _sources()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in ("_con", "_db"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.attr}")
    assert not offenders, "use the store's read queries instead: " + ", ".join(offenders)


def test_open_or_borrow_is_written_once():
    """``isinstance(store, Store)`` (the hand-written open-or-borrow) lives in adamlab.store only."""
    offenders = []
    for path in filter(_outside_store, _sources()):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"
                    and len(node.args) == 2 and isinstance(node.args[1], ast.Name) and node.args[1].id == "Store"):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "use adamlab.store.borrowed: " + ", ".join(offenders)


@pytest.mark.parametrize("package", ["analysis", "reproduce", "selection", "commands"])
def test_readers_open_stores_with_borrowed(package):
    offenders = []
    for path in (ROOT / "src" / "adamlab" / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Store":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, "open stores with adamlab.store.borrowed: " + ", ".join(offenders)


def test_a_store_locked_while_another_process_creates_it_is_waited_for(tmp_path, monkeypatch):
    """Two sweeps started at once on a new store: the one that finds it locked waits, never fails."""
    import sqlite3

    from adamlab.store import core

    real, calls = core.prepare, []

    def locked_twice(con, *, readonly):
        calls.append(readonly)
        if len(calls) <= 2:
            raise sqlite3.OperationalError("database is locked")
        return real(con, readonly=readonly)

    monkeypatch.setattr(core, "prepare", locked_twice)
    store = core.Store(tmp_path / "s.sqlite")
    assert store.schema_version == core.SCHEMA_VERSION and len(calls) == 3
    store.close()
