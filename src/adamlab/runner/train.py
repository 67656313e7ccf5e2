"""Train one run: the loop, evaluation cadence, divergence policy, hooks, schedules, checkpoints.

Determinism: the model comes from ``problem.make_model(seed)``, the data from
``problem.train_batches(seed, batch_size)``, the forward pass's noise (dropout masks, VAE samples) from the
run's own generator (:mod:`adamlab.problems.noise`, seeded from ``seed``), and the global torch RNG is
seeded with ``torch.manual_seed(seed)`` before the model is built. Same config, same machine -> identical
metrics; the batched backend gives each run the same weights, data and noise (its numbers agree to
rounding, see docs/scale.md).

The loop's records, eval points, epochs and divergence policy are those of
:class:`adamlab.runner.loop.LoopCore`, shared with the batched backend:

Metrics at each eval point (every ``eval_every`` steps, at step 0 and after the last step): ``step``,
``epoch`` (when the problem has epochs), ``batch_loss`` (mean training loss over the mini-batches since
the previous eval point), the problem's ``evaluate`` metrics, ``train_loss`` (the problem's own
``train_loss`` when ``evaluate`` gives one, e.g. the exact loss of the noisy quadratic, else
``batch_loss``), ``lr`` (after the schedule) and ``wall_time`` (seconds since the run started).

Divergence policy: if a training loss (or an ``evaluate`` metric) is not finite, the run stops and
is marked ``"diverged"``; ``diverged_step`` is the step at which it happened, and every metric recorded
before it (all finite) is kept, plus ``batch_loss`` since the last eval point when there is one.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from adamlab.problems import Problem
from adamlab.problems.noise import noise_seed, run_noise
from adamlab.runner.checkpoint import (
    restore_checkpoint,
    rng_states,
    save_checkpoint,
    staged_counter,
    staged_rows,
)
from adamlab.runner.hooks import RunHook
from adamlab.runner.loop import DEFAULT_CHUNK, CheckpointPolicy, LoopCore, MetricSink
from adamlab.runner.progress import note, run_bar
from adamlab.runs.config import Budget, RunConfig, make_config, train_set_size
from adamlab.runs.device import execution_record, parse_device
from adamlab.runs.result import RunResult, RunStatus, utcnow


def build_problem(name: str, options: dict[str, Any] | None = None) -> Problem:
    """``adamlab.problems.get(name, **options)``."""
    from adamlab import problems

    return problems.get(name, **(options or {}))


def execute(
    config: RunConfig,
    problem: Problem | None = None,
    *,
    hooks: Sequence[RunHook] = (),
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    stop_after: int | None = None,
    sink: MetricSink | None = None,
    chunk: int = DEFAULT_CHUNK,
    device: torch.device | str | None = None,
    checkpoint_seconds: float | None = None,
) -> RunResult:
    """Train the run described by ``config`` and return its :class:`RunResult`.

    Parameters
    ----------
    config:
        The run (see :func:`adamlab.runs.config.make_config`).
    problem:
        An already built problem matching ``config`` (else it is built from the registry).
    hooks:
        :class:`RunHook` objects; their metrics are recorded at their steps.
    checkpoint_path, checkpoint_every:
        Save a checkpoint every ``checkpoint_every`` steps to ``checkpoint_path``; if a checkpoint of
        this run exists there, resume from it (saying "resumed at step N" unless ``progress`` is off).
        The file is removed when the run ends.
    checkpoint_seconds:
        Also checkpoint (to ``checkpoint_path``) once this many seconds passed since the last checkpoint.
    progress:
        Show a tqdm bar over the steps with the current loss.
    stop_after:
        Testing aid: return (status ``"running"``) after this many steps, as if interrupted.
    sink, chunk:
        Stream the metrics to ``sink`` (the results store) whenever more than ``chunk`` eval points are
        held; the result then holds only the rest (see :mod:`adamlab.runner.loop`).
    device:
        Where to train (:func:`adamlab.runs.device.parse_device`: ``"cpu"``, the default, ``"cuda"``,
        ``"cuda:N"``, ``"mps"``, ``"auto"``). The model is built on the CPU and moved there with its
        optimizer state, the problem's data are held there when they fit, and the forward pass's noise
        comes from a generator there. The device is not part of the run's identity; a checkpoint taken on
        one device resumes on another (the noise then continues from a generator seeded from the seed and
        the step, as the generators of two devices cannot share a state).

    Exceptions from the problem or optimizer propagate (backends turn them into ``"failed"`` runs).
    """
    from adamlab.optim.registry import make_optimizer, optimizer_kwargs

    if checkpoint_every is not None and (int(checkpoint_every) < 1 or checkpoint_path is None):
        raise ValueError(f"checkpoint_every must be >= 1 and needs a checkpoint_path; got {checkpoint_every}")
    dev = parse_device(device)
    on_cpu = dev.type == "cpu"
    policy = CheckpointPolicy(checkpoint_every, checkpoint_seconds if checkpoint_path is not None else None,
                              config.steps)
    if problem is None:
        problem = build_problem(config.problem, dict(config.problem_options))
    problem.set_device(dev)
    started_at = utcnow()
    n_train = train_set_size(problem)

    torch.manual_seed(config.seed)
    model = problem.make_model(config.seed)  # on the CPU: every device starts from the same weights
    if not on_cpu:
        model = model.to(dev)
    hparams = optimizer_kwargs(config.hparams)
    optimizer = make_optimizer(config.optimizer, model.parameters(), **hparams)
    base_lrs = [float(g["lr"]) for g in optimizer.param_groups]
    batches = problem.train_batches(config.seed, config.batch_size)
    noise = run_noise(config.seed, dev)

    step = 0
    # None: start over. A checkpoint is resumed only with the metric rows it depends on still staged.
    ckpt = restore_checkpoint(checkpoint_path, config.run_id, model, optimizer, steps=config.steps,
                              staged=staged_counter(sink, config.run_id), noise=noise,
                              # taken on another kind of device, the noise generator's state does not fit
                              # this one's: reseed it from the run's seed and the step instead
                              reseed=lambda at: noise.generator.manual_seed((noise_seed(config.seed) + at) % (2**63)))
    core = LoopCore([config], n_train, sink=sink, chunk=chunk,
                    started_at=str(ckpt["started_at"]) if ckpt is not None else started_at,
                    elapsed=float(ckpt["elapsed"]) if ckpt is not None else 0.0)
    if ckpt is not None:
        for _ in range(int(ckpt["batches_consumed"])):  # data position (== step < steps): replay the stream
            next(batches)
        step = int(ckpt["step"])
        core.loss_sum.fill_(float(ckpt["loss_sum"]))
        core.loss_n = int(ckpt["loss_n"])
        core.records[0] = {int(r["step"]): dict(r) for r in ckpt["records"]}
        note(f"{config.label()}: resumed at step {step} of {config.steps} from {checkpoint_path}", quiet=not progress)
    core.begin(after_step=step if ckpt is not None else None)

    def evaluate(at: int) -> bool:
        """Record an eval point; False if a metric was not finite."""
        model.eval()
        with torch.no_grad():
            metrics = {k: float(v) for k, v in problem.evaluate(model).items()}
        model.train()
        return not core.eval_point(at, [metrics], [optimizer.param_groups[0]["lr"]])

    if ckpt is None:
        evaluate(0)
    model.train()
    bar = run_bar(config.steps, quiet=not progress, desc=config.label(), initial=step, runs=[config.run_id])
    consumed = int(ckpt["batches_consumed"]) if ckpt is not None else 0
    try:
        with noise.active():
            while core.active[0] and step < config.steps:
                if stop_after is not None and step >= stop_after:
                    return RunResult(config, RunStatus.RUNNING, core.sorted_records(0), started_at=core.started_at)
                batch = next(batches)
                if not on_cpu:
                    batch = tuple(part.to(dev, non_blocking=True) for part in batch)
                consumed += 1
                t = step + 1
                factor = core.lr_factor(t)
                for group, lr0 in zip(optimizer.param_groups, base_lrs, strict=True):
                    group["lr"] = lr0 * factor
                optimizer.zero_grad(set_to_none=True)
                loss = problem.loss(model, batch)
                value = float(loss.detach())
                if core.check_losses(t, value)[0]:
                    break
                loss.backward()
                optimizer.step()
                step = t
                core.add_losses(value)
                for hook in hooks:
                    if step % int(hook.every) == 0:
                        core.record(0, step, hook(step, model, optimizer, problem, batch))
                if core.is_eval_step(step):
                    if not evaluate(step):
                        break
                    rec = core.records[0].get(step, {})
                    bar.set_postfix_str(f"loss={rec.get('train_loss', value):.4g}", refresh=False)
                bar.update(1)
                if policy.due(step):
                    save_checkpoint(
                        checkpoint_path,  # type: ignore[arg-type]
                        {
                            "run_id": config.run_id,
                            "optimizer_class": type(optimizer).__name__,
                            "steps": config.steps,
                            "staged_rows": staged_rows(sink, config.run_id),
                            "model": model.state_dict(),
                            "optimizer": optimizer.state_dict(),
                            "rng": rng_states(),
                            "noise": noise.get_state(),
                            "noise_device": dev.type,
                            "batches_consumed": consumed,
                            "step": step,
                            "loss_sum": float(core.loss_sum[0]),
                            "loss_n": core.loss_n,
                            "elapsed": core.elapsed(),
                            "records": core.sorted_records(0),
                            "started_at": core.started_at,
                        },
                    )
                    policy.saved()
    finally:
        bar.close()
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)
    return core.result(0, execution={"backend": "serial", "block_size": 1, **execution_record(dev)})


def run(
    problem: str | tuple[str, dict[str, Any]] | Problem,
    optimizer: str,
    hparams: dict[str, Any] | None = None,
    seed: int = 0,
    budget: Budget | int | dict[str, Any] | None = None,
    *,
    batch_size: int | None = None,
    eval_every: int | None = None,
    schedule: Any = None,
    hooks: Sequence[RunHook] = (),
    checkpoint_path: str | os.PathLike[str] | None = None,
    checkpoint_every: int | None = None,
    progress: bool = False,
    device: torch.device | str | None = None,
) -> RunResult:
    """Train ``optimizer`` on ``problem`` for one seed and return the metrics.

    Parameters
    ----------
    problem:
        A registered name (``"quadratic.noisy"``), ``(name, options)``, or a Problem instance.
    optimizer:
        A short name from :func:`adamlab.optim.registry.names` (``"adam"``, ``"msvag"``, ...).
    hparams:
        Optimizer keyword arguments, e.g. ``{"lr": 0.01}``; they override the registry presets.
    seed:
        Seeds the model initialisation, the data stream and the global torch RNG.
    budget:
        Steps (an int), ``Budget(epochs=...)``, or None for the problem's default protocol.
    batch_size, eval_every, schedule:
        Override the problem's protocol. ``schedule`` is ``"constant"``, ``"inv_sqrt"``, ``"step"`` or
        ``{"name": "step", "gamma": 0.1, "every": 1000}`` (see :mod:`adamlab.runs.schedules`).
    hooks, checkpoint_path, checkpoint_every, progress, device:
        See :func:`execute` (``device`` defaults to the CPU).

    Returns
    -------
    RunResult
        Status ``"finished"`` or ``"diverged"`` (see the module's divergence policy).
    """
    from adamlab.runs.config import problem_name_and_options

    if isinstance(problem, Problem):
        instance = problem
    else:
        name, options = problem_name_and_options(problem)
        instance = build_problem(name, options)
    config = make_config(instance, optimizer, hparams, seed, budget, batch_size=batch_size,
                         eval_every=eval_every, schedule=schedule, hooks=hooks)
    return execute(config, instance, hooks=hooks, checkpoint_path=checkpoint_path,
                   checkpoint_every=checkpoint_every, progress=progress, device=device)
