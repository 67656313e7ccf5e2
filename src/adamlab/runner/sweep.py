"""Sweeps: expand problems x optimizers x learning rates x seeds, run what is not done yet, tune.

Resume rule: a run whose status in the store is ``finished`` or ``diverged`` is skipped; ``pending``,
``running`` (interrupted) and ``failed`` runs are (re)started, from their checkpoint when there is one.

Concurrent sweeps on one store: a run is trained only after this process claims it in the store
(:meth:`~adamlab.store.core.Store.claim_many`); a run another live process holds is not trained
again but waited for, and taken over if that process dies. So overlapping sweeps train each shared
run once, and each returns when every run of its grid is done (by whichever process).

Tuning protocol (Kingma & Ba 2015; Balles & Hennig 2018; DeepOBS): sweep a log grid of learning rates
with ``tune_seeds``, pick per problem and optimizer the lr with the best *criterion* (the final value of
a metric, mean over seeds; an lr where any seed diverged, failed or lacks the metric ranks last; ties go
to the smaller lr), then rerun that lr with ``rerun_seeds``.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adamlab.problems import Problem
from adamlab.runner.backends import RunContext, get_backend, problem_key, result_batches
from adamlab.runner.hooks import RunHook
from adamlab.runner.loop import DEFAULT_CHECKPOINT_SECONDS
from adamlab.runner.progress import job_scope, note, sweep_bar
from adamlab.runs.config import Budget, ProblemSpec, RunConfig, make_config, problem_name_and_options
from adamlab.runs.result import DONE_STATUSES, RunResult, RunStatus
from adamlab.selection.lr import Criterion, Selection, select_best
from adamlab.store.core import DEFAULT_STORE, Store, borrowed


@dataclass
class SweepReport:
    """What a sweep did.

    ``total`` configs; ``skipped`` were already done in the store, or were done by another process
    while this sweep ran (those are also counted in ``elsewhere``); the others ran and ended
    ``finished``, ``diverged`` or ``failed``. ``run_ids`` lists all configs in grid order.
    """

    total: int = 0
    skipped: int = 0
    elsewhere: int = 0
    finished: int = 0
    diverged: int = 0
    failed: int = 0
    run_ids: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    wall_time: float = 0.0

    @property
    def ran(self) -> int:
        return self.finished + self.diverged + self.failed

    def count(self, status: RunStatus) -> None:
        """Count one run that ended with ``status`` (finished, diverged or failed)."""
        counters = {RunStatus.FINISHED: "finished", RunStatus.DIVERGED: "diverged", RunStatus.FAILED: "failed"}
        field_name = counters.get(RunStatus(status))
        if field_name is None:
            raise ValueError(f"a finished run cannot have status {status!r}")
        setattr(self, field_name, getattr(self, field_name) + 1)


def _seeds(seeds: int | Sequence[int]) -> list[int]:
    if isinstance(seeds, bool):
        raise ValueError(f"seeds must be a count >= 1 or a list of seeds; got {seeds!r}")
    if isinstance(seeds, int):
        if seeds < 1:
            raise ValueError(f"seeds must be a count >= 1 or a list of seeds; got {seeds}")
        return list(range(seeds))
    out = [int(s) for s in seeds]
    if not out:
        raise ValueError("seeds must not be empty")
    return out


def _problem_instances(problems: ProblemSpec | Sequence[ProblemSpec]) -> list[Problem]:
    from adamlab.runner.train import build_problem

    if isinstance(problems, str | Problem) or (
        isinstance(problems, tuple) and len(problems) == 2 and isinstance(problems[1], Mapping)
    ):
        problems = [problems]  # type: ignore[list-item]
    out = []
    for spec in problems:  # type: ignore[union-attr]
        if isinstance(spec, Problem):
            out.append(spec)
        else:
            name, options = problem_name_and_options(spec)
            out.append(build_problem(name, options))
    if not out:
        raise ValueError("problems must not be empty")
    return out


def expand_grid(
    problems: ProblemSpec | Sequence[ProblemSpec],
    optimizers: Sequence[str],
    lr_grid: Sequence[float] | None,
    seeds: int | Sequence[int],
    budget: Budget | int | Mapping[str, Any] | None = None,
    *,
    hparams: Mapping[str, Any] | None = None,
    optimizer_hparams: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int | None = None,
    eval_every: int | None = None,
    schedule: Any = None,
    hooks: Sequence[RunHook] = (),
    instances: list[Problem] | None = None,
) -> list[RunConfig]:
    """All run configs of the grid, in order problem, optimizer, lr, seed.

    ``hparams`` go to every optimizer, ``optimizer_hparams[name]`` to one; ``lr_grid=None`` keeps
    the lr in the hparams (or the optimizer's default).
    """
    if isinstance(optimizers, str):
        optimizers = [optimizers]
    if not optimizers:
        raise ValueError("optimizers must not be empty")
    if lr_grid is not None:
        lrs = [float(x) for x in lr_grid]
        if not lrs or not all(math.isfinite(x) and x > 0 for x in lrs):
            raise ValueError(f"lr_grid must hold finite learning rates > 0; got {list(lr_grid)}")
    seed_list = _seeds(seeds)
    configs = []
    for problem in instances if instances is not None else _problem_instances(problems):
        for opt in optimizers:
            base = {**(hparams or {}), **((optimizer_hparams or {}).get(opt, {}))}
            for lr in lrs if lr_grid is not None else [None]:
                hp = dict(base) if lr is None else {**base, "lr": lr}
                for seed in seed_list:
                    configs.append(make_config(problem, opt, hp, seed, budget, batch_size=batch_size,
                                               eval_every=eval_every, schedule=schedule, hooks=hooks))
    return configs


#: Seconds between two looks at the runs another process holds, while a sweep waits for them.
WAIT_POLL = 0.5


#: Seconds between two "waiting for ..." lines while a sweep waits for runs other processes hold.
WAIT_MESSAGE_EVERY = 60.0


def waiting_message(db: Store, run_ids: Sequence[str]) -> str:
    """One line: which runs a sweep waits for, who holds them and when they are taken over."""
    rows = db.holders(run_ids)
    now = time.time()
    owners = sorted({f"pid {pid} on {host}" for _, pid, host, _ in rows})
    beats = [now - float(hb) for *_, hb in rows if hb is not None]
    last = f", last heartbeat {min(beats):.0f} s ago" if beats else ""
    return (f"waiting for {len(run_ids)} run(s) held by another process ({', '.join(owners[:3]) or 'unknown'}"
            f"{', ...' if len(owners) > 3 else ''}{last}); they are taken over if it dies or sends no "
            f"heartbeat for {db.claim_timeout:g} s")


def check_writable(folder: Path, what: str) -> None:
    """Raise ``ValueError`` naming ``folder`` when a file cannot be created, written and flushed there
    (a read-only or full file system): found when a sweep starts, not after its runs have trained."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".adamlab-probe-") as fh:
            fh.write(b"\0" * 65536)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError as err:
        raise ValueError(f"{what} {str(folder)!r} cannot be written: {err.strerror or err}") from None


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a sweep ran: handled like Ctrl-C (claims released, what was kept said)."""


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Inside, SIGTERM raises :class:`Terminated` (a KeyboardInterrupt) in the main thread, so the
    sweep's ``finally`` releases its claims instead of leaving them ``running`` until they time out."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise Terminated(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not allowed here (an embedded interpreter)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _trained(result: RunResult) -> int:
    """Steps a run took (its steps, or up to where it diverged; 0 when it failed): for the job's rate."""
    if result.status == RunStatus.FINISHED:
        return result.config.steps
    return int(result.diverged_step or 0)


def _remove_if_empty(folder: Path | None) -> None:
    """Remove the checkpoint folder when no checkpoint is left in it (a finished sweep's runs removed
    theirs): no empty ``<store>.checkpoints`` beside the store. A concurrent sweep's next checkpoint
    makes it again (the atomic writer creates its folder)."""
    if folder is not None:
        with contextlib.suppress(OSError):  # not empty, or gone: nothing to do
            folder.rmdir()


def _kept_message(report: SweepReport, released: int, checkpoint_dir: Path | None, store_path: Path) -> str:
    """What an interrupted sweep kept, in one line."""
    done = report.skipped + report.ran
    text = f"interrupted: {done} of {report.total} runs are done and kept in {store_path}"
    if released:
        text += f"; {released} runs in progress were released"
        if checkpoint_dir is not None and checkpoint_dir.is_dir() and any(checkpoint_dir.glob("*.pt")):
            text += f" (those with a checkpoint in {checkpoint_dir} resume there, the others from step 0)"
        else:
            text += " (no checkpoint yet: they start from step 0)"
    return text + "; run the same command again to resume"


def run_configs(
    configs: Sequence[RunConfig],
    store: Store | str | os.PathLike[str] = DEFAULT_STORE,
    backend: str = "serial",
    *,
    problems: Sequence[Problem] = (),
    hooks: Sequence[RunHook] = (),
    checkpoint_every: int | None = None,
    quiet: bool = False,
    retry_failed: bool = True,
    backend_options: Mapping[str, Any] | None = None,
    desc: str = "sweep",
    device: Any = None,
    checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
) -> SweepReport:
    """Run the configs not yet done in ``store`` with ``backend``; commit each result as it arrives.

    Each run is claimed in the store before it is handed to the backend: one at a time for the
    serial backend (so concurrent serial sweeps share the grid), all claimable runs at once for the
    others (a vmap block or a Ray job needs its runs together). Runs held by another live process
    are waited for (and taken over if it dies); claims this sweep made but did not record (an
    exception, Ctrl-C, SIGTERM) are released when it ends, and an interrupted sweep says in one line
    what it kept and that the same command resumes it. ``device`` (None: the CPU) is where the runs train
    (:func:`adamlab.runs.device.parse_device`); it is checked before anything else, and it is not part of
    a run's identity, so runs done on another device are skipped.

    Checkpoints go to ``<store>.checkpoints/``: every ``checkpoint_every`` steps when given, and by
    default once a run (a batched block) has worked ``checkpoint_seconds`` seconds (default
    :data:`~adamlab.runner.loop.DEFAULT_CHECKPOINT_SECONDS`) since its last one; ``checkpoint_seconds=None``
    and no ``checkpoint_every``: none. A resumed run says "resumed at step N".
    """
    from adamlab.runs.device import parse_device

    dev = parse_device(device)  # an unavailable device stops here, before any store or training
    t0 = time.perf_counter()
    backend_impl = get_backend(backend, **dict(backend_options or {}))
    with borrowed(store) as db, job_scope() as job:
        unique = list({c.run_id: c for c in configs}.values())  # drop duplicates, keep order
        report = SweepReport(total=len(unique), run_ids=[c.run_id for c in unique])
        db.plan(unique)
        status = db.statuses(report.run_ids)
        skip = set(DONE_STATUSES) | (set() if retry_failed else {RunStatus.FAILED})
        todo = [c for c in unique if status.get(c.run_id) not in skip]
        report.skipped = len(unique) - len(todo)
        job.add((c.run_id, c.steps) for c in unique)
        job.finish(c.run_id for c in unique if status.get(c.run_id) in skip)
        context = RunContext(
            hooks=hooks,
            checkpoint_dir=Path(str(db.path) + ".checkpoints") if checkpoint_every or checkpoint_seconds else None,
            checkpoint_every=checkpoint_every,
            checkpoint_seconds=checkpoint_seconds,
            progress=not quiet,
            on_start=db.mark_started,
            problems={problem_key(*problem_name_and_options(p)): p for p in problems},
            metrics_sink=db,
            on_start_many=db.mark_started_many,
            device=dev,
        )
        if context.checkpoint_dir is not None and todo:
            check_writable(context.checkpoint_dir, "checkpoint folder")  # removed at the end when left empty
        bar = sweep_bar(len(unique), quiet=quiet, desc=desc, initial=report.skipped)
        held: set[str] = set()  # claimed by this sweep and not recorded yet
        spans = job.total_runs > len(unique)  # the job holds more than this sweep: say so in its lines

        def elsewhere(configs: Sequence[RunConfig]) -> None:
            n = len(configs)
            if n:
                report.skipped += n
                report.elsewhere += n
                job.finish(c.run_id for c in configs)
                bar.update(n)

        told = [-math.inf]  # when the last waiting message was printed (perf_counter)

        def tell_waiting(waiting: list[RunConfig]) -> None:
            now = time.perf_counter()
            if now - told[0] < WAIT_MESSAGE_EVERY:
                return
            told[0] = now  # printed even with quiet: a wait is never silent
            print(f"adamlab: {waiting_message(db, [c.run_id for c in waiting])}", file=sys.stderr, flush=True)

        def claimed_batches() -> Iterator[list[RunConfig]]:
            queue, waiting = list(todo), []
            chunk = 1 if backend_impl.name == "serial" else None
            while queue or waiting:
                if not queue:  # only runs that other live processes hold are left
                    tell_waiting(waiting)
                    time.sleep(WAIT_POLL)
                    looked = db.classify(waiting, retry_failed=retry_failed)
                    elsewhere(looked.done)
                    queue, waiting = looked.claimed, looked.busy
                    continue
                head, queue = queue[: chunk or len(queue)], queue[chunk or len(queue):]
                claims = db.claim_many(head, retry_failed=retry_failed)
                elsewhere(claims.done)
                waiting += claims.busy
                if claims.claimed:
                    held.update(c.run_id for c in claims.claimed)
                    yield claims.claimed

        released = 0
        try:
            with db.keep_alive(), _sigterm_as_interrupt():
                for batch in claimed_batches():
                    for results in result_batches(backend_impl, batch, context):
                        # one transaction per commit unit (a vmap block)
                        written = db.record_many(results)
                        for result, ok in zip(results, written, strict=True):
                            held.discard(result.run_id)
                            if not ok:  # another process recorded a final result first
                                elsewhere([result.config])
                                continue
                            report.count(result.status)
                            if result.error:
                                report.errors[result.run_id] = f"{result.config.label()}: {result.error}"
                        job.finish((r.run_id for r in results), trained=[_trained(r) for r in results])
                        counts = f"finished={report.finished} diverged={report.diverged} failed={report.failed}"
                        bar.set_postfix_str(f"{counts} | {job.line()}" if spans else counts, refresh=False)
                        bar.update(sum(written))
        except KeyboardInterrupt:
            bar.close()
            if held:
                with contextlib.suppress(sqlite3.Error, ValueError):  # never hide the exception in flight
                    released = db.release(held)
                held.clear()
            note(f"{desc}: " + _kept_message(report, released, context.checkpoint_dir, Path(db.path)))
            raise
        finally:
            bar.close()
            if held:
                with contextlib.suppress(sqlite3.Error, ValueError):  # never hide the exception in flight
                    db.release(held)
            _remove_if_empty(context.checkpoint_dir)
    report.wall_time = time.perf_counter() - t0
    return report


def sweep(
    problems: ProblemSpec | Sequence[ProblemSpec],
    optimizers: Sequence[str],
    lr_grid: Sequence[float] | None,
    seeds: int | Sequence[int],
    budget: Budget | int | Mapping[str, Any] | None = None,
    store: Store | str | os.PathLike[str] = DEFAULT_STORE,
    backend: str = "serial",
    *,
    hparams: Mapping[str, Any] | None = None,
    optimizer_hparams: Mapping[str, Mapping[str, Any]] | None = None,
    batch_size: int | None = None,
    eval_every: int | None = None,
    schedule: Any = None,
    hooks: Sequence[RunHook] = (),
    checkpoint_every: int | None = None,
    quiet: bool = False,
    retry_failed: bool = True,
    backend_options: Mapping[str, Any] | None = None,
    device: Any = None,
    checkpoint_seconds: float | None = DEFAULT_CHECKPOINT_SECONDS,
) -> SweepReport:
    """Run the grid problems x optimizers x ``lr_grid`` x seeds into ``store``, skipping finished runs.

    Parameters
    ----------
    problems:
        One problem spec or a list (names, ``(name, options)`` pairs or Problem instances).
    optimizers:
        Registry short names.
    lr_grid:
        Learning rates (e.g. :func:`adamlab.runs.parsing.parse_lr_grid`), or None for ``hparams["lr"]``.
    seeds:
        A count ``N`` (seeds ``0..N-1``) or explicit seeds.
    budget:
        Steps, ``Budget(epochs=...)`` or None (the problem's protocol).
    store:
        A :class:`Store` or a path (default ``results/adamlab.sqlite``).
    backend:
        ``"serial"`` or another module in :mod:`adamlab.runner.backends`.
    checkpoint_every:
        Checkpoint runs every this many steps into ``<store>.checkpoints/``, so an interrupted run resumes.
    checkpoint_seconds:
        Also checkpoint a run (a batched block) once it worked this many seconds since its last
        checkpoint (default 180; None: only ``checkpoint_every``).
    quiet:
        No progress bars.
    retry_failed:
        Rerun runs whose status is ``failed`` (default True).
    device:
        ``"cpu"`` (None, the default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or ``"auto"``; not part of the
        runs' identity (see :func:`run_configs`).

    Returns
    -------
    SweepReport
        Counts of skipped, finished, diverged and failed runs.
    """
    instances = _problem_instances(problems)
    configs = expand_grid(instances, optimizers, lr_grid, seeds, budget, hparams=hparams,
                          optimizer_hparams=optimizer_hparams, batch_size=batch_size, eval_every=eval_every,
                          schedule=schedule, hooks=hooks, instances=instances)
    return run_configs(configs, store, backend, problems=instances, hooks=hooks,
                       checkpoint_every=checkpoint_every, quiet=quiet, retry_failed=retry_failed,
                       backend_options=backend_options, device=device, checkpoint_seconds=checkpoint_seconds)


@dataclass
class TuneReport:
    """Result of :func:`tune_and_rerun`: the selections and both sweeps' reports."""

    criterion: Criterion
    selections: dict[tuple[str, str], Selection]
    tune: SweepReport
    rerun: SweepReport


def tune_and_rerun(
    problems: ProblemSpec | Sequence[ProblemSpec],
    optimizers: Sequence[str],
    lr_grid: Sequence[float],
    tune_seeds: int | Sequence[int] = 1,
    rerun_seeds: int | Sequence[int] = 10,
    budget: Budget | int | Mapping[str, Any] | None = None,
    store: Store | str | os.PathLike[str] = DEFAULT_STORE,
    criterion: str | Criterion = "min:train_loss",
    **sweep_options: Any,
) -> TuneReport:
    """The papers' protocol: sweep ``lr_grid`` with ``tune_seeds``, pick the best lr per problem and
    optimizer by ``criterion``, rerun it with ``rerun_seeds``. Runs already in the store are reused
    (e.g. seed 0 of the best lr is not trained twice)."""
    crit = Criterion.parse(criterion)
    instances = _problem_instances(problems)
    with borrowed(store) as db:
        tune = sweep(instances, optimizers, lr_grid, tune_seeds, budget, db, **sweep_options)
        selections = select_best(db, crit, run_ids=tune.run_ids)
        hp = dict(sweep_options.pop("hparams", None) or {})
        per_opt = dict(sweep_options.pop("optimizer_hparams", None) or {})
        rerun_ids: list[str] = []
        total = SweepReport()
        for problem in instances:
            pid = problem_key(*problem_name_and_options(problem))
            for opt in optimizers:
                sel = selections.get((pid, opt))
                if sel is None:
                    continue
                rep = sweep(problem, [opt], [sel.best_lr], rerun_seeds, budget, db, hparams=hp,
                            optimizer_hparams=per_opt, **sweep_options)
                rerun_ids += rep.run_ids
                for f in ("total", "skipped", "finished", "diverged", "failed", "wall_time"):
                    setattr(total, f, getattr(total, f) + getattr(rep, f))
                total.errors.update(rep.errors)
        total.run_ids = rerun_ids
    return TuneReport(crit, selections, tune, total)
