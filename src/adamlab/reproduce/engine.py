"""Run a recipe: tune each (setting, variant) on the lr grid, rerun the best lr on the seeds.

Runs go through the runner (:func:`adamlab.runner.sweep.run_configs`, the body of
:func:`~adamlab.runner.sweep.sweep`) with the chosen backend (``vmap`` by default), so they land in a
results store and are skipped when already there (a rerun of a recipe resumes). Each phase hands all
its runs to the backend at once, so that the batched backend can group the runs of every (setting,
variant) that share a problem and an optimizer; runs it cannot batch fall back to the serial loop with
the backend's own message. Phases: (1) the tuning runs of every tuned variant; (2) the selection, by the
runner's rule (:func:`adamlab.runner.sweep.select_lr`: the pooled tune runs, so that data draws
(``Protocol.replicate_option``) are averaged like seeds); (3) the final reruns at the selected lrs;
(4) where ``Protocol.hook_seeds`` is set, the extra hooked runs of those seeds (serial: a hook needs a
single run's model). Tuning runs never carry the recipe's hook, so that they batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from adamlab.reproduce.base import Protocol, Recipe, Setting, Variant, protocol_name


@dataclass
class VariantRuns:
    """Run ids of one (setting, variant): the tuning sweep, the final reruns and the hooked runs.

    ``final_seeds[i]`` is the seed (or data draw) of ``final_ids[i]``. ``hook_ids`` are the runs
    that recorded the recipe's hook (the final runs themselves unless ``Protocol.hook_seeds`` is set).
    """

    setting: Setting
    variant: Variant
    selected_lr: float
    tune_ids: list[str] = field(default_factory=list)
    final_ids: list[str] = field(default_factory=list)
    lr_scores: dict[float, float] = field(default_factory=dict)
    final_seeds: list[int] = field(default_factory=list)
    hook_ids: list[str] = field(default_factory=list)


@dataclass
class Execution:
    """Everything a recipe run produced (before summarising).

    ``protocol_name`` is one of :data:`adamlab.reproduce.base.PROTOCOLS`; ``wall_time`` the seconds
    this invocation took; ``backend`` the runner backend used; ``device`` where its runs trained.
    """

    recipe: Recipe
    protocol_name: str
    protocol: Protocol
    store: Path
    runs: list[VariantRuns]
    wall_time: float
    backend: str = "vmap"
    phase_times: dict[str, float] = field(default_factory=dict)
    device: str = "cpu"

    @property
    def quick(self) -> bool:
        """The quick protocol (reduced budget, marked QUICK)."""
        return self.protocol_name == "quick"


def check_data(recipe: Recipe) -> None:
    """Load the training split of every dataset the recipe needs (cached for the runs).

    Raises
    ------
    FileNotFoundError
        ``adamlab.data``'s one-line "file missing" error (the CLI turns it into exit code 2).
    """
    from adamlab.problems.datasets import load_cached

    for name in recipe.datasets:
        load_cached(name, "train")


def _instances(setting: Setting, protocol: Protocol, replicates: list[int]) -> list[Any]:
    from adamlab import problems

    options = {**dict(setting.options), **dict(protocol.problem_options)}
    if protocol.replicate_option is None:
        return [problems.get(setting.problem, **options)]
    return [problems.get(setting.problem, **{**options, protocol.replicate_option: int(s)}) for s in replicates]


def execute(
    recipe: Recipe,
    *,
    protocol: bool | str = "full",
    store: str | os.PathLike[str],
    backend: str = "vmap",
    quiet: bool = False,
    log: Callable[[str], None] = print,
    quick: bool | None = None,
    backend_options: Mapping[str, Any] | None = None,
    device: Any = None,
    checkpoint_every: int | None = None,
    dry_run: bool = False,
    estimate: bool = True,
) -> Execution:
    """Run ``recipe`` under ``protocol`` into ``store`` and return the run ids.

    Parameters
    ----------
    recipe:
        The recipe.
    protocol:
        ``"full"`` (default), ``"quick"`` or ``"deepobs"`` (or a bool: True = quick).
    store:
        Path of the SQLite results store (created if missing; finished runs are reused).
    backend:
        Runner backend: ``"vmap"`` (default: batched where the runs can be, serial fallback otherwise),
        ``"serial"`` or ``"ray"``.
    quiet:
        No progress bars.
    log:
        Where progress lines go.
    quick:
        Shorthand for ``protocol="quick"`` (kept for callers of the old signature).
    backend_options:
        Options of the backend (default: ``{"vmap": True}`` for ``ray``, so each task trains a batched
        block; none otherwise).
    device:
        Where the runs train: ``"cpu"`` (None, the default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
        ``"auto"`` (:func:`adamlab.runs.device.parse_device`, checked before any run). Runs already in the
        store are reused whatever device trained them.
    checkpoint_every:
        Checkpoint runs (a batched block) every this many steps, besides the runner's default of one
        checkpoint per few minutes of work (:data:`adamlab.runner.loop.DEFAULT_CHECKPOINT_SECONDS`).
    dry_run:
        Log the plan (phases, runs x steps, time estimate) and return before any run (the returned
        execution has no run ids).
    estimate:
        Time a few steps of one run per group (:func:`adamlab.runner.estimate.calibrate`) and log the
        estimate before the runs start (False: the size only).
    """
    from adamlab.runner.backends import get_backend
    from adamlab.runner.sweep import expand_grid, run_configs
    from adamlab.selection.lr import select_lr
    from adamlab.store import borrowed

    options = dict(backend_options) if backend_options is not None else ({"vmap": True} if backend == "ray" else {})
    get_backend(backend, **options)  # an unknown name or option (or Ray missing) stops here, before any run
    from adamlab.runs.device import parse_device

    dev = parse_device(device)  # so does a device that is not available
    name = protocol_name(True if quick else protocol)
    t0 = time.perf_counter()
    proto = recipe.protocol(name)
    check_data(recipe)
    replicated = proto.replicate_option is not None
    tune_seeds = [0] if replicated else list(proto.tune_seeds)
    final_seeds = [0] if replicated else list(proto.seeds)
    common: dict[str, Any] = dict(batch_size=proto.batch_size, eval_every=proto.eval_every)
    hooked = recipe.hook is not None and bool(proto.hook_every)
    separate_hooks = hooked and proto.hook_seeds is not None
    times: dict[str, float] = {}

    def run(configs: list[Any], instances: list[Any], hooks: Sequence[Any], desc: str) -> None:
        if configs:
            # a hook needs a single run's model: hooked runs go to the serial backend by choice, not by
            # the vmap backend's fallback message
            chosen, chosen_options = (("serial", {}) if hooks and backend == "vmap" else (backend, options))
            run_configs(configs, db, chosen, problems=instances, hooks=hooks, quiet=quiet, desc=desc,
                        backend_options=chosen_options, checkpoint_every=checkpoint_every, device=dev)

    def grid(inst: list[Any], variant: Variant, lrs: list[float], seeds: list[int],
             hooks: Sequence[Any] = ()) -> list[Any]:
        return expand_grid(inst, [variant.optimizer], lrs, seeds, proto.steps, hparams=dict(variant.hparams),
                           hooks=hooks, instances=inst, **common)

    settings = recipe.settings_for(name)
    variants = recipe.variants_for(name)
    tune_inst = {s.label: _instances(s, proto, list(proto.tune_seeds)) for s in settings}
    final_inst = {s.label: _instances(s, proto, list(proto.seeds)) for s in settings}
    entries: list[VariantRuns] = []
    planned = log_plan(recipe, name, proto, settings, variants, tune_inst, final_inst, grid, tune_seeds,
                       final_seeds, log, calibrated=estimate)
    if dry_run:
        return Execution(recipe, name, proto, Path(store), [], time.perf_counter() - t0, backend, {})
    from adamlab.runner.progress import job_scope

    # one job for every phase: the progress lines give its ETA (runs left of all phases, from the plan)
    with borrowed(store) as db, job_scope(*planned):
        # 1. tuning: every tuned (setting, variant) in one call, so the backend batches what it can
        t = time.perf_counter()
        tune_configs, tune_problems = [], []
        for setting in settings:
            tune_problems += tune_inst[setting.label]
            for variant in variants:
                entry = VariantRuns(setting, variant, selected_lr=float(variant.lr or 0.0))
                if variant.lr is None:
                    configs = grid(tune_inst[setting.label], variant, list(proto.lr_grid), tune_seeds)
                    entry.tune_ids = [c.run_id for c in configs]
                    tune_configs += configs
                entries.append(entry)
        run(tune_configs, tune_problems, (), "tune")
        times["tune"] = time.perf_counter() - t
        # 2. selection by the runner's rule
        for entry in entries:
            if entry.variant.lr is None:
                entry.selected_lr, entry.lr_scores = select_lr(db, entry.tune_ids, recipe.criterion)
            log(f"  {entry.setting.label:<28} {entry.variant.label:<22} lr={entry.selected_lr:<10.4g}")
        # 3. final reruns (with the hook on them when it is not recorded separately: one call per
        #    setting then, as a hook belongs to one problem instance)
        t = time.perf_counter()
        final_configs, final_problems = [], []
        for setting in settings:
            inst = final_inst[setting.label]
            hooks = [recipe.hook(inst[0], proto.hook_every)] if hooked and not separate_hooks else []
            configs_of_setting = []
            for entry in (e for e in entries if e.setting is setting):
                configs = grid(inst, entry.variant, [entry.selected_lr], final_seeds, hooks)
                entry.final_ids = [c.run_id for c in configs]
                entry.final_seeds = [int(x) for x in proto.seeds] if replicated else [c.seed for c in configs]
                if hooks:
                    entry.hook_ids = list(entry.final_ids)
                configs_of_setting += configs
            if hooks:
                run(configs_of_setting, inst, hooks, f"final {setting.label}")
            else:
                final_configs += configs_of_setting
                final_problems += inst
        run(final_configs, final_problems, (), "final")
        times["final"] = time.perf_counter() - t
        # 4. hooked runs of a few seeds only
        if separate_hooks:
            t = time.perf_counter()
            for setting in settings:
                hook_seeds = [int(x) for x in proto.hook_seeds or ()]
                inst = _instances(setting, proto, hook_seeds) if replicated else final_inst[setting.label][:1]
                hooks = [recipe.hook(inst[0], proto.hook_every)]
                configs_of_setting = []
                for entry in (e for e in entries if e.setting is setting):
                    configs = grid(inst, entry.variant, [entry.selected_lr], [0] if replicated else hook_seeds,
                                   hooks)
                    entry.hook_ids = [c.run_id for c in configs]
                    configs_of_setting += configs
                run(configs_of_setting, inst, hooks, f"dissection {setting.label}")
            times["hooks"] = time.perf_counter() - t
    wall = time.perf_counter() - t0
    log(f"  wall time {wall:.1f} s (" + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())
        + f"; backend {backend}, device {dev})")
    return Execution(recipe, name, proto, Path(store), entries, wall, backend, times, str(dev))


def log_plan(recipe: Recipe, name: str, proto: Protocol, settings: Sequence[Setting], variants: Sequence[Variant],
             tune_inst: Mapping[str, list[Any]], final_inst: Mapping[str, list[Any]], grid: Callable[..., list[Any]],
             tune_seeds: list[int], final_seeds: list[int], log: Callable[[str], None], *,
             calibrated: bool = True) -> tuple[int, int, float | None]:
    """Log the recipe's phases with their size (runs x steps) and, ``calibrated``, a time estimate;
    return the totals (runs, steps, seconds or None) for the job's progress.

    The final reruns' configs are planned at a placeholder lr (the selected one is not known yet;
    it changes neither the size nor the time per step).
    """
    from adamlab.runner.estimate import about, calibrate, plan

    phases: list[tuple[str, list[Any], list[Any]]] = []
    tune, tune_problems, final, final_problems = [], [], [], []
    for setting in settings:
        tune_problems += tune_inst[setting.label]
        final_problems += final_inst[setting.label]
        for variant in variants:
            placeholder = float(variant.lr) if variant.lr is not None else float(proto.lr_grid[0])
            if variant.lr is None:
                tune += grid(tune_inst[setting.label], variant, list(proto.lr_grid), tune_seeds)
            final += grid(final_inst[setting.label], variant, [placeholder], final_seeds)
    phases += [("tune", tune, tune_problems), ("final", final, final_problems)]
    if recipe.hook is not None and proto.hook_every and proto.hook_seeds is not None:
        hooks: list[Any] = []
        hook_problems: list[Any] = []
        for setting in settings:
            inst = (_instances(setting, proto, [int(x) for x in proto.hook_seeds])
                    if proto.replicate_option is not None else final_inst[setting.label][:1])
            hook_problems += inst
            for variant in variants:
                lr = float(variant.lr) if variant.lr is not None else float(proto.lr_grid[0])
                seeds = [0] if proto.replicate_option is not None else [int(x) for x in proto.hook_seeds]
                hooks += grid(inst, variant, [lr], seeds)
        phases.append(("dissection", hooks, hook_problems))
    total_runs = total_steps = 0
    total_seconds: float | None = 0.0
    for phase, configs, problems in phases:
        if not configs:
            continue
        est = calibrate(configs, problems) if calibrated else plan(configs)
        total_runs += est.runs
        total_steps += est.steps
        total_seconds = None if total_seconds is None or est.seconds is None else total_seconds + est.seconds
        log(f"  plan {phase:<10} {est.describe()}")
    line = f"  plan total      {total_runs} runs, {total_steps:,} steps"
    if calibrated and total_seconds is not None:
        line += (f"; {about(total_seconds)} on this machine at the serial rate "
                 "(an upper bound for the batched backend; runs already in the store are skipped)")
    log(line)
    return total_runs, total_steps, total_seconds if calibrated else None
