"""``adamlab report STORE``: a benchmark report across problems, in the manner of DeepOBS and AlgoPerf.

For every problem (name + options) in a store, the report fixes one metric (the first recorded of
``test_accuracy`` (max), ``test_loss``, ``train_loss``, ``loss`` (min); or ``--metric``) and one **target**:

    target = s0 + q (s* - s0)            (linear scale; accuracies, or values that are not all > 0)
    log target = log s0 + q (log s* - log s0)    (losses with all values > 0)

where ``s0`` is the metric at step 0 (mean over runs), ``s*`` the best final value of any optimizer at its
best lr (mean over seeds) and ``q`` the target fraction (default 0.95): reaching the target means making
95% of the best improvement any optimizer made. Then, per optimizer and problem:

- **performance** (DeepOBS, Schneider, Balles & Hennig 2019, sec. 3): the final value of the metric at
  the best lr, as mean +- sd over all the seeds of that lr. The best lr is chosen by that final value
  (:func:`adamlab.runner.sweep.select_best`), averaged over the seeds that every lr of the optimizer has:
  the tuning seeds of a tune-and-rerun store, where the best lr also has the rerun seeds.
- **speed** (DeepOBS): the first evaluated step (and epoch) at which the mean curve over seeds at the best lr
  reaches the target; ``inf`` if it never does.
- **tunability**: the fraction of the lr grid at which the final mean value reaches the target (diverged or
  failed lrs never do). This counts, on DeepOBS's lr-sensitivity grid, the stepsizes that succeed, which is
  Asi & Duchi's (2019, PNAS, "The importance of better models in stochastic optimization") notion of
  robustness to the stepsize: 1.0 means every lr tried works, 1/n that only one of n does.

and across problems, **performance profiles** (Dolan & More 2002, as AlgoPerf uses them: Dahl et al. 2023,
"Benchmarking Neural Network Training Algorithms", sec. 4.5): with t_{s,p} the time to target of
optimizer s on problem p (at its best lr, the setting the tables report, so the profile and the speed
column agree; AlgoPerf takes the fastest of its tuning trials instead. Time in steps, or seconds of
training with ``time="wall"``),

    rho_s(tau) = |{p : t_{s,p} <= tau * min_s' t_{s',p}}| / |P|,   tau in [1, tau_max = 4],

and AlgoPerf's benchmark score, the normalised area under the profile
``B_s = 1/(tau_max - 1) * integral_1^tau_max rho_s(tau) dtau`` (1 = fastest everywhere, 0 = never within
tau_max of the fastest). An optimizer that never reaches the target on p has t = inf there.

:func:`build_report` returns the numbers; :mod:`adamlab.analysis.report_page` draws them (it imports this
module, never the reverse). Runs and curves are read with :func:`adamlab.analysis.plots.load_problem_runs`
(the store's queries); means and standard deviations over seeds follow :mod:`adamlab.util.stats`
(sample sd, NaN for a single seed).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from adamlab.analysis.plots import ProblemRuns, load_problem_runs
from adamlab.runs.config import problem_key
from adamlab.runs.device import device_label
from adamlab.runs.result import RunStatus
from adamlab.selection.lr import Criterion, select_best
from adamlab.store import Store, borrowed
from adamlab.util.stats import summarize

#: The metric a problem is scored by when none is given: the first one its runs recorded.
DEFAULT_METRICS: tuple[str, ...] = ("max:test_accuracy", "min:test_loss", "min:train_loss", "min:loss")
TARGET_FRACTION = 0.95
TAU_MAX = 4.0
TIMES = ("steps", "wall")


@dataclass
class Entry:
    """One optimizer on one problem."""

    optimizer: str
    best_lr: float | None
    final_mean: float
    final_sd: float
    seeds: int
    speed_steps: float
    speed_epochs: float | None
    tunability: float
    lrs_reaching: int
    lrs: int
    time_to_target: float
    diverged_lrs: int = 0


@dataclass
class ProblemReport:
    """The scores of every optimizer on one problem (name + options)."""

    pid: str
    label: str
    protocol: str
    criterion: Criterion
    initial: float
    best: float
    target: float
    log_scale: bool
    entries: dict[str, Entry] = field(default_factory=dict)
    group: ProblemRuns | None = field(default=None, repr=False)


@dataclass
class Report:
    """Everything the report shows: per-problem tables, the profiles and AlgoPerf scores."""

    store: str
    problems: list[ProblemReport]
    optimizers: list[str]
    taus: np.ndarray
    profiles: dict[str, np.ndarray]
    scores: dict[str, float]
    time: str
    target_fraction: float
    tau_max: float
    left_out: list[str] = field(default_factory=list)
    #: Where the runs ran (:func:`adamlab.runs.device.device_label`), each device once, e.g. ``["cpu"]``.
    devices: list[str] = field(default_factory=list)


# -- the math ---------------------------------------------------------------------------------------


def reaches(value: float, target: float, mode: str) -> bool:
    """``value`` is at least as good as ``target`` (``<=`` for min, ``>=`` for max); NaN never is."""
    if not math.isfinite(value):
        return False
    return value <= target if mode == "min" else value >= target


def time_to_target(times: Sequence[float], values: Sequence[float], target: float, mode: str) -> float:
    """The first ``times[i]`` at which ``values[i]`` reaches ``target``; ``inf`` if none does."""
    for t, v in zip(times, values, strict=True):
        if reaches(float(v), target, mode):
            return float(t)
    return math.inf


def make_target(initial: float, best: float, fraction: float, log_scale: bool) -> float:
    """``initial + fraction * (best - initial)``, on a log scale when ``log_scale`` (both > 0)."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"target fraction must be in (0, 1]; got {fraction}")
    if log_scale:
        return math.exp(math.log(initial) + fraction * (math.log(best) - math.log(initial)))
    return initial + fraction * (best - initial)


def performance_profiles(times: Mapping[str, Mapping[str, float]], taus: Sequence[float]) -> dict[str, np.ndarray]:
    """Dolan-More profiles: ``rho_s(tau)`` for each optimizer ``s``, from ``times[problem][optimizer]``.

    ``rho_s(tau) = |{p : t_{s,p} <= tau * min_s' t_{s',p}}| / |P|``. An optimizer missing from a problem, or
    with ``t = inf``, counts as never reaching it; a problem nobody reaches counts for nobody.
    """
    problems = list(times)
    optimizers = sorted({s for per in times.values() for s in per})
    taus = np.asarray(taus, dtype=float)
    out = {s: np.zeros_like(taus) for s in optimizers}
    if not problems:
        return out
    for p in problems:
        finite = [t for t in times[p].values() if math.isfinite(t)]
        if not finite:
            continue
        best = min(finite)
        for s in optimizers:
            t = times[p].get(s, math.inf)
            if math.isfinite(t):
                out[s] += (t <= taus * best) if best > 0 else np.ones_like(taus) * (t <= 0)
    return {s: v / len(problems) for s, v in out.items()}


def profile_ratios(times: Mapping[str, Mapping[str, float]]) -> dict[str, list[float]]:
    """``r_{s,p} = t_{s,p} / min_s' t_{s',p}`` per optimizer (``inf`` where not reached)."""
    optimizers = sorted({s for per in times.values() for s in per})
    out: dict[str, list[float]] = {s: [] for s in optimizers}
    for per in times.values():
        finite = [t for t in per.values() if math.isfinite(t)]
        best = min(finite) if finite else math.inf
        for s in optimizers:
            t = per.get(s, math.inf)
            if not math.isfinite(t) or not math.isfinite(best):
                out[s].append(math.inf)
            elif best == 0:
                out[s].append(1.0 if t == 0 else math.inf)
            else:
                out[s].append(t / best)
    return out


def benchmark_score(ratios: Sequence[float], tau_max: float = TAU_MAX) -> float:
    """AlgoPerf's score: ``1/(tau_max - 1) * integral_1^tau_max rho(tau) dtau``, exactly, from the ratios.

    ``rho`` is a step function, so each problem contributes ``max(0, tau_max - max(1, r_p)) / (tau_max - 1)``.
    """
    if tau_max <= 1:
        raise ValueError(f"tau_max must be > 1; got {tau_max}")
    if not ratios:
        return 0.0
    area = sum(max(0.0, tau_max - max(1.0, r)) for r in ratios if math.isfinite(r))
    return area / ((tau_max - 1.0) * len(ratios))


# -- reading a store ----------------------------------------------------------------------------------


def _mean_curve(runs: Sequence[Any], metric: str, x: str = "steps") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Steps (union), the mean of ``metric`` over ``runs`` at each step, and the mean time (steps or wall s).

    A step where some run has no value (it diverged before) is left out, so the mean never pretends.
    """
    series = [dict(zip(*r.metrics.get(metric, ([], [])), strict=True)) for r in runs]
    clocks = [dict(zip(*r.metrics.get("wall_time", ([], [])), strict=True)) for r in runs]
    steps = sorted(set.intersection(*(set(s) for s in series))) if series else []
    mean = np.array([summarize([s[k] for s in series]).mean for k in steps], dtype=float)
    if x == "wall":  # NaN where a run lacks the clock: the time never pretends either
        time = np.array([np.mean([c.get(k, math.nan) for c in clocks]) for k in steps], dtype=float)
    else:
        time = np.asarray(steps, dtype=float)
    return np.asarray(steps, dtype=float), mean, time


def _epochs_per_step(runs: Sequence[Any]) -> float | None:
    for r in runs:
        for s, e in zip(*r.metrics.get("epoch", ([], [])), strict=True):
            if s > 0:
                return e / s
    return None


def _criterion_for(grp: ProblemRuns, metric: str | Criterion | None) -> Criterion | None:
    present = {m for r in grp.runs for m in r.metrics}
    if metric is not None:
        crit = Criterion.parse(metric)
        return crit if crit.metric in present else None
    for spec in DEFAULT_METRICS:
        crit = Criterion.parse(spec)
        if crit.metric in present:
            return crit
    return None


def _initial(grp: ProblemRuns, metric: str) -> float:
    vals = [r.metrics[metric][1][0] for r in grp.runs if metric in r.metrics and r.metrics[metric][0][:1] == [0]]
    if not vals:
        vals = [r.metrics[metric][1][0] for r in grp.runs if r.metrics.get(metric, ([], []))[1]]
    return summarize(vals).mean


def _readable_id(name: str, options: dict[str, Any]) -> str:
    """``name`` or ``name[k=v,...]``: how the report names a problem instance."""
    if not options:
        return name
    return f"{name}[{','.join(f'{k}={v}' for k, v in sorted(options.items()))}]"


def _problem_report(db: Store, grp: ProblemRuns, crit: Criterion, fraction: float, x: str) -> ProblemReport:
    key = problem_key(grp.problem, grp.options)  # select_best's key
    pid = _readable_id(grp.problem, grp.options)
    by_opt_lr: dict[tuple[str, float | None], list[Any]] = {}
    for r in grp.runs:
        by_opt_lr.setdefault((r.optimizer, r.lr), []).append(r)
    # Tune-and-rerun stores (DeepOBS' protocol) hold more seeds at the best lr than elsewhere: the lrs are
    # ranked, and tunability's per-lr values taken, on the seeds that every lr of the optimizer has.
    common: dict[str, set[int]] = {}
    for (opt, _lr), runs in by_opt_lr.items():
        seeds = {r.seed for r in runs}
        common[opt] = common[opt] & seeds if opt in common else seeds
    tune_ids = [r.run_id for r in grp.runs if r.seed in common[r.optimizer]]
    selections = {opt: sel for (p, opt), sel in select_best(db, crit, run_ids=tune_ids, problem=grp.problem).items()
                  if p == key}
    eps = _epochs_per_step(grp.runs)
    perf: dict[str, tuple[float | None, list[Any], list[float]]] = {}
    for opt in sorted({r.optimizer for r in grp.runs}):
        sel = selections.get(opt)
        tuned = sel is not None and math.isfinite(sel.score)
        best_lr = sel.best_lr if tuned else None  # None: the optimizer's default lr, if it was run so
        best_runs = [r for r in by_opt_lr.get((opt, best_lr), []) if r.status is RunStatus.FINISHED]
        if not tuned and len(best_runs) != len(by_opt_lr.get((opt, None), [])):
            best_runs = []  # a default-lr seed diverged or failed: no performance, as for a grid
        finals = [r.metrics[crit.metric][1][-1] for r in best_runs if crit.metric in r.metrics]
        perf[opt] = (best_lr, best_runs, finals)
    # the target comes from the reported performance: s* is the best mean final value at a best lr
    initial = _initial(grp, crit.metric)
    means = [summarize(f).mean for _, _, f in perf.values() if f]
    best = (min(means) if crit.mode == "min" else max(means)) if means else math.nan
    values = [v for r in grp.runs for v in r.metrics.get(crit.metric, ([], []))[1]]
    log_scale = "loss" in crit.metric and bool(values) and min(values) > 0 and initial > 0 and best > 0
    target = make_target(initial, best, fraction, log_scale) if means and math.isfinite(initial) else math.nan
    rep = ProblemReport(pid, grp.label, grp.protocol(), crit, initial, best, target, log_scale, group=grp)
    for opt, (best_lr, best_runs, finals) in perf.items():
        stats = summarize(finals)
        mean, sd = stats.mean, stats.sd
        speed = clock_time = math.inf
        if finals:
            steps, curve, clock = _mean_curve(best_runs, crit.metric, x)
            speed = time_to_target(steps, curve, target, crit.mode)
            clock_time = time_to_target(clock, curve, target, crit.mode)
        lrs = sorted({lr for (o, lr) in by_opt_lr if o == opt and lr is not None})
        sel = selections.get(opt)
        scores = sel.scores if sel is not None else {}
        reaching = sum(reaches(scores.get(lr, math.nan), target, crit.mode) for lr in lrs)
        diverged = sum(any(r.status is RunStatus.DIVERGED for r in by_opt_lr[(opt, lr)]) for lr in lrs)
        rep.entries[opt] = Entry(opt, best_lr, mean, sd, len(finals), speed,
                                 speed * eps if eps is not None and math.isfinite(speed) else None,
                                 reaching / len(lrs) if lrs else math.nan, reaching, len(lrs), clock_time, diverged)
    # the header states the seeds the table shows (per optimizer when they differ), from the data
    rep.protocol = grp.protocol({o: e.seeds for o, e in rep.entries.items()})
    return rep


def build_report(store: Store | str | os.PathLike[str], *, metric: str | Criterion | None = None,
                 target_fraction: float = TARGET_FRACTION, time: str = "steps", tau_max: float = TAU_MAX,
                 problem: str | None = None) -> Report:
    """The report's numbers for every problem in ``store`` (see the module docstring for the definitions).

    Raises ``FileNotFoundError`` for a missing store and ``ValueError`` for bad options or a store with
    nothing to report.
    """
    if time not in TIMES:
        raise ValueError(f"time must be one of {', '.join(TIMES)}; got {time!r}")
    if not 0.0 < target_fraction <= 1.0:
        raise ValueError(f"target fraction must be in (0, 1]; got {target_fraction}")
    if not tau_max > 1.0:
        raise ValueError(f"tau_max must be > 1; got {tau_max}")
    with borrowed(store, readonly=True, must_exist=True) as db:  # reads only: never migrates
        problems, left_out = [], []
        for grp in load_problem_runs(db, problem):
            crit = _criterion_for(grp, metric)
            if crit is None:
                left_out.append(f"{grp.label}: no {Criterion.parse(metric).metric if metric else 'known metric'}")
                continue
            problems.append(_problem_report(db, grp, crit, target_fraction, time))
        path = str(db.path)
        devices = sorted({label for r in db.run_table() if (label := device_label(r.get("execution")))})
    if not problems:
        why = f" ({'; '.join(left_out)})" if left_out else ""
        raise ValueError(f"nothing to report in {str(store)!r}: no finished runs{why}")
    times = {p.pid: {o: e.time_to_target for o, e in p.entries.items()} for p in problems}
    taus = np.linspace(1.0, tau_max, 301)
    ratios = profile_ratios(times)
    return Report(path, problems, sorted(ratios), taus, performance_profiles(times, taus),
                  {s: benchmark_score(r, tau_max) for s, r in ratios.items()}, time, target_fraction, tau_max,
                  left_out, devices)
