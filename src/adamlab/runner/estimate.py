"""How big a sweep is and how long it will take on this machine, before it starts.

Size: runs x steps (the sum of every run's steps). Time: a short calibration: for each problem, optimizer and
batch size, one model is built and trained for a few steps as the serial loop does (seconds per
step), and each problem's ``evaluate`` is timed once (seconds per eval point); a run then costs
``steps x s/step + eval points x s/eval``. That is the serial rate: the batched backend trains blocks
of runs together and is usually faster, so the estimate is an upper bound for it. The estimate is
printed, never stored: nothing a result depends on reads the clock.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch

from adamlab.problems import Problem
from adamlab.runs.config import RunConfig, problem_key

#: Steps timed per group of runs by :func:`calibrate` (after one warm-up step).
CALIBRATION_STEPS = 5
#: Seconds :func:`calibrate` may spend timing; later groups take the mean rate of the timed ones.
CALIBRATION_SECONDS = 20.0


@dataclass
class Group:
    """Runs that share problem, optimizer and batch size: how many, their steps, and the measured rates."""

    label: str
    runs: int
    steps: int
    eval_points: int
    step_seconds: float | None = None
    eval_seconds: float | None = None

    @property
    def seconds(self) -> float | None:
        if self.step_seconds is None or self.eval_seconds is None:
            return None
        return self.runs * (self.steps * self.step_seconds + self.eval_points * self.eval_seconds)


@dataclass
class Estimate:
    """The size of a list of runs and (after :func:`calibrate`) its time at the serial rate."""

    groups: list[Group] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return sum(g.runs for g in self.groups)

    @property
    def steps(self) -> int:
        return sum(g.runs * g.steps for g in self.groups)

    @property
    def seconds(self) -> float | None:
        parts = [g.seconds for g in self.groups]
        return None if not parts or any(p is None for p in parts) else float(sum(parts))  # type: ignore[misc]

    def size(self) -> str:
        """``44 runs x 2,000 steps = 88,000 steps`` (a range of steps when runs differ)."""
        lengths = sorted({g.steps for g in self.groups})
        per = f"{lengths[0]:,}" if len(lengths) == 1 else f"{lengths[0]:,}-{lengths[-1]:,}"
        return f"{self.runs} runs x {per} steps = {self.steps:,} steps"

    def describe(self) -> str:
        """Size and, when calibrated, time in one line."""
        text = self.size()
        if self.seconds is not None:
            text += f"; {about(self.seconds)} on this machine at the serial rate (calibrated)"
        return text


def duration(seconds: float) -> str:
    """``under 1 s``, ``42 s``, ``12 min``, ``3.5 h``, ``2.1 days``."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    if seconds < 48 * 3600:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def about(seconds: float) -> str:
    """``about 12 min``, or ``about 1 s or less`` (never "about under 1 s")."""
    return "about 1 s or less" if seconds < 1 else f"about {duration(seconds)}"


def _eval_points(config: RunConfig) -> int:
    return config.steps // config.eval_every + 1 + (config.steps % config.eval_every != 0)


def plan(configs: Sequence[RunConfig]) -> Estimate:
    """Group ``configs`` by problem, optimizer and batch size (and steps), without running anything."""
    groups: dict[tuple[str, str, int, int, int], Group] = {}
    for c in configs:
        key = _key(c)
        if key not in groups:
            groups[key] = Group(f"{c.problem} / {c.optimizer}", 0, c.steps, _eval_points(c))
        groups[key].runs += 1
    return Estimate(list(groups.values()))


def _time_steps(problem: Problem, config: RunConfig, steps: int) -> float:
    """Seconds per training step of ``config`` (after one warm-up step), as the serial loop takes it."""
    from adamlab.optim.registry import make_optimizer, optimizer_kwargs
    from adamlab.problems.noise import run_noise

    torch.manual_seed(config.seed)
    model = problem.make_model(config.seed)
    optimizer = make_optimizer(config.optimizer, model.parameters(), **optimizer_kwargs(config.hparams))
    batches = problem.train_batches(config.seed, config.batch_size)
    model.train()

    def one() -> None:
        optimizer.zero_grad(set_to_none=True)
        problem.loss(model, next(batches)).backward()
        optimizer.step()

    with run_noise(config.seed).active():
        one()
        t0 = time.perf_counter()
        for _ in range(steps):
            one()
    return (time.perf_counter() - t0) / steps


def _time_eval(problem: Problem, config: RunConfig) -> float:
    """Seconds of one ``problem.evaluate`` (an eval point), after one warm-up call."""
    model = problem.make_model(config.seed)
    model.eval()
    with torch.no_grad():
        problem.evaluate(model)  # warm-up: the first call loads and caches the evaluation data
        t0 = time.perf_counter()
        problem.evaluate(model)
        return time.perf_counter() - t0


def calibrate(configs: Sequence[RunConfig], problems: Sequence[Problem] = (),
              steps: int = CALIBRATION_STEPS, budget: float = CALIBRATION_SECONDS) -> Estimate:
    """:func:`plan` plus a short timing: a few steps per (problem, optimizer, batch size) and one
    evaluation per problem (see the module docstring).

    Once ``budget`` seconds are spent, the remaining groups take the mean rate of the timed ones. A
    group whose timing fails (an error of the run itself) keeps no time; the estimate is then the
    size alone. The global torch RNG is reseeded (every run seeds it again before it starts).
    """
    from adamlab.runner.train import build_problem
    from adamlab.runs.config import problem_name_and_options

    estimate = plan(configs)
    built = {problem_key(*problem_name_and_options(p)): p for p in problems}
    firsts: dict[tuple[str, str, int, int, int], RunConfig] = {}
    for c in configs:
        firsts.setdefault(_key(c), c)
    step_rates: dict[tuple[str, str, int], float | None] = {}
    eval_rates: dict[str, float | None] = {}
    t_start = time.perf_counter()
    for group, (key, config) in zip(estimate.groups, firsts.items(), strict=True):
        over = time.perf_counter() - t_start > budget
        try:
            problem = built.get(key[0]) or build_problem(config.problem, dict(config.problem_options))
            built[key[0]] = problem
            if key[:3] not in step_rates:
                n = max(1, min(steps, config.steps))
                step_rates[key[:3]] = None if over else _time_steps(problem, config, n)
            if key[0] not in eval_rates:
                eval_rates[key[0]] = None if over else _time_eval(problem, config)
        except Exception:  # noqa: BLE001 - an estimate only: the run itself reports its error
            step_rates.setdefault(key[:3], None)
            eval_rates.setdefault(key[0], None)
            continue
        group.step_seconds, group.eval_seconds = step_rates[key[:3]], eval_rates[key[0]]
    timed = [g for g in estimate.groups if g.step_seconds is not None and g.eval_seconds is not None]
    if timed:
        mean_step = sum(g.step_seconds for g in timed) / len(timed)  # type: ignore[misc]
        mean_eval = sum(g.eval_seconds for g in timed) / len(timed)  # type: ignore[misc]
        for g in estimate.groups:
            if g.step_seconds is None:
                g.step_seconds = mean_step
            if g.eval_seconds is None:
                g.eval_seconds = mean_eval
    return estimate


def _key(c: RunConfig) -> tuple[str, str, int, int, int]:
    return (problem_key(c.problem, c.problem_options), c.optimizer, c.batch_size, c.steps, c.eval_every)
