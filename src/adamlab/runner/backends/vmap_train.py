"""Train a block of K runs together: the serial training loop of :mod:`adamlab.runner.train`, batched.

A block holds runs that share the problem, optimizer name and switches, steps, batch size, eval
cadence and schedule; they differ in numeric hyperparameters (lr, betas, eps, ...) and seed. Each run
starts from ``make_model(seed)``, reads ``train_batches(seed, batch_size)`` and draws its forward
pass's noise (dropout masks, VAE samples) from its own generator (:mod:`adamlab.problems.noise`), as in
the serial loop (one stream per distinct seed; with one seed the batch is shared, with several each run
gets its own seed's batch, stacked along a leading run dimension). Per step: the batch(es), the noise
of every run, the K per-run losses (the problem's loss of each run's parameters), one backward pass of
their sum, one stacked optimizer step. Evaluation is batched over the block too: one batched pass for
:class:`~adamlab.problems.supervised.DatasetProblem`'s own ``evaluate``, ``torch.func.vmap`` of
``problem.evaluate_tensors`` where a problem defines it, else one run at a time. Records, eval points,
epochs and the divergence policy are :class:`adamlab.runner.loop.LoopCore`'s, the serial loop's own.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from adamlab.problems import Problem
from adamlab.problems import noise as noise_source
from adamlab.problems.supervised import DatasetProblem, cross_entropy
from adamlab.runner.backends.vmap_models import Stack, stack_models
from adamlab.runner.backends.vmap_optim import NotVectorizable, StackedOptimizer
from adamlab.runner.checkpoint import (
    discard_checkpoint,
    load_checkpoint,
    rng_states,
    save_checkpoint,
    set_rng_states,
)
from adamlab.runner.loop import DEFAULT_CHUNK, CheckpointPolicy, LoopCore, MetricSink
from adamlab.runner.progress import note, run_bar
from adamlab.runs.config import RunConfig, train_set_size
from adamlab.runs.device import execution_record, parse_device
from adamlab.runs.result import RunResult


def _standard_supervised(problem: Problem) -> bool:
    """Whether the loss is ``criterion(model(x), y) + regularization(model)`` (DatasetProblem's own)."""
    return (isinstance(problem, DatasetProblem) and problem.criterion is not None
            and type(problem).loss is DatasetProblem.loss)


def _standard_evaluate(problem: Problem) -> bool:
    return (isinstance(problem, DatasetProblem) and problem.criterion is not None
            and type(problem).evaluate is DatasetProblem.evaluate
            and type(problem)._evaluate_split is DatasetProblem._evaluate_split)


def check_problem(problem: Problem, configs: Sequence[RunConfig]) -> None:
    """Raise :class:`NotVectorizable` for what this backend cannot batch."""
    if problem.stochastic_forward and not problem.noise_from_run:
        raise NotVectorizable(f"problem {problem.name!r} draws random numbers in its forward pass (dropout or "
                              "sampling), which a batched run cannot reproduce")
    if any(c.hooks for c in configs):
        raise NotVectorizable("runs with hooks need the model and optimizer objects of a single run")


class _BatchedEval:
    """``DatasetProblem.evaluate`` for K runs at once: same subsets, chunks, criterion and predict."""

    def __init__(self, problem: DatasetProblem, device: torch.device | None = None) -> None:
        from adamlab.problems.datasets import fixed_subset

        self.problem = problem
        self.splits = []
        dev = torch.device("cpu") if device is None else device
        for prefix, split in (("train", problem.train_split), ("test", problem.test_split)):
            inputs, targets = problem.data(split)
            idx = fixed_subset(int(inputs.shape[0]), int(problem.options["eval_size"])).to(inputs.device)
            # raw rows to the device, converted there (as the serial evaluation does), once per block
            chunks = [(problem.transform(inputs.index_select(0, c).to(dev)), targets.index_select(0, c).to(dev))
                      for c in idx.split(problem.eval_batch_size)]
            self.splits.append((prefix, chunks))

    @torch.no_grad()
    def __call__(self, stack: Stack) -> dict[str, Tensor]:
        assert self.problem.criterion is not None
        criterion = self.problem.criterion
        predict = vmap(self.problem.predict)
        out: dict[str, Tensor] = {}
        dev = stack.leaves()[0][0].device
        for prefix, chunks in self.splits:
            loss = torch.zeros(stack.k, dtype=torch.float64)
            correct = torch.zeros(stack.k, dtype=torch.int64)
            count = 0
            for x, y in chunks:
                x, y = x.to(dev), y.to(dev)
                outputs = stack.forward(x)
                units = y.numel()
                loss += per_run_criterion(criterion, outputs, y).double().cpu() * units
                correct += (predict(outputs) == y).reshape(stack.k, -1).sum(1).cpu()
                count += units
            out[f"{prefix}_loss"] = loss / count
            out[f"{prefix}_accuracy"] = correct.double() / count
        return out


def per_run_criterion(criterion: Any, outputs: Tensor, targets: Tensor, shared_targets: bool = True) -> Tensor:
    """``criterion(outputs[k], targets)`` (or ``targets[k]`` when not ``shared_targets``) for every run k: ``[K]``.

    ``torch.func.vmap`` of the criterion in general. For adamlab's mean cross-entropy
    (:func:`adamlab.problems.supervised.cross_entropy`) one un-reduced call over all runs, averaged per
    run, gives the same numbers about 5x faster (vmap decomposes ``nll_loss``).
    """
    k = outputs.shape[0]
    if criterion is cross_entropy and outputs.dim() == 3 and targets.dim() in (1, 2):
        # [K, B, C] -> the "spatial" layout [B, C, K] with targets [B, K]: one kernel, ~10x faster on CPU
        per_run_targets = targets.t() if shared_targets is False else targets.view(-1, 1).expand(-1, k)
        per_sample = F.cross_entropy(outputs.permute(1, 2, 0), per_run_targets, reduction="none")
        return per_sample.mean(0)
    return vmap(criterion, in_dims=(0, None if shared_targets else 0))(outputs, targets)


def per_run_regularization(problem: Problem, stack: Stack) -> Tensor:
    """``problem.regularization`` of every run: ``[K]``.

    ``vmap`` over ``functional_call`` in general; for :meth:`DatasetProblem.regularization` itself
    (``weight_decay / 2`` times the summed squares of the parameters with two or more dimensions) the
    same sum taken directly on the per-run views, which saves the vmap overhead every step.
    """
    if isinstance(problem, DatasetProblem) and type(problem).regularization is DatasetProblem.regularization:
        wd = float(problem.options.get("weight_decay", 0.0))
        norms = stack.squared_norms()
        squares = torch.stack([norms[n] for n, shape in zip(stack.names, stack.shapes, strict=True)
                               if len(shape) > 1]).sum(0)
        return 0.5 * wd * squares
    return stack.call(lambda m: problem.regularization(m))


def _batch_losses(problem: Problem, stack: Stack, batch: Any, reg_needed: bool, shared: bool,
                  noise: Sequence[Tensor] | None = None) -> Tensor:
    """The K per-run training losses: ``[K]``. ``batch`` is shared by all runs, or (not ``shared``) a
    tuple of tensors with a leading run dimension; ``noise`` holds each run's draws (``[K, ...]``)."""
    if _standard_supervised(problem):
        assert problem.criterion is not None
        dev = stack.leaves()[0][0].device
        inputs, targets = batch[0].to(dev), batch[1].to(dev)
        losses = per_run_criterion(problem.criterion, stack.forward(inputs, shared, noise=noise), targets, shared)
        if reg_needed:
            losses = losses + per_run_regularization(problem, stack)
        return losses
    if problem.loss_broadcasts and noise is None:  # a few tensor operations over [K, ...], no vmap
        return stack.call_broadcast(lambda m, b: problem.loss(m, b), tuple(batch))
    return stack.call(lambda m, b: problem.loss(m, b), tuple(batch), per_run=not shared, noise=noise)


class _Evaluator:
    """The block's eval-point metrics: batched where the problem allows, else one run at a time."""

    def __init__(self, problem: Problem, stack: Stack, eval_model: torch.nn.Module,
                 device: torch.device | None = None) -> None:
        self.problem, self.stack, self.eval_model = problem, stack, eval_model
        self.batched = (_BatchedEval(problem, device) if _standard_evaluate(problem)  # type: ignore[arg-type]
                        else None)
        with torch.no_grad():
            self.tensors = self.batched is None and problem.evaluate_tensors(stack.load_run(0, eval_model)) is not None

    def __call__(self, active: Sequence[bool]) -> dict[str, Tensor] | list[dict[str, float]]:
        template = self.stack.template
        template.eval()
        try:
            if self.batched is not None:
                return self.batched(self.stack)
            if self.tensors:
                try:
                    with torch.no_grad():
                        if self.problem.loss_broadcasts:
                            return self.stack.call_broadcast(lambda m: self.problem.evaluate_tensors(m))
                        return self.stack.call(lambda m: self.problem.evaluate_tensors(m))
                except Exception:  # noqa: BLE001 - not vmappable after all: one run at a time from now on
                    self.tensors = False
            out: list[dict[str, float]] = []
            for run, on in enumerate(active):
                if not on:
                    out.append({})
                    continue
                model = self.stack.load_run(run, self.eval_model)
                model.eval()
                with torch.no_grad():
                    out.append({key: float(v) for key, v in self.problem.evaluate(model).items()})
            return out
        finally:
            template.train()


class _BlockNoise:
    """Each run's forward-pass noise for one step, drawn from its own generator in the serial loop's order."""

    def __init__(self, configs: Sequence[RunConfig], device: torch.device | None = None) -> None:
        self.noises = [noise_source.run_noise(c.seed, device) for c in configs]  # each on the block's device
        self.requests: list[noise_source.Request] | None = None

    def learn(self, problem: Problem, stack: Stack, eval_model: torch.nn.Module, batch: Any, shared: bool) -> None:
        """Which tensors one forward pass draws: a pass of run 0 with a throwaway generator."""
        model = stack.load_run(0, eval_model)
        model.train()
        single = batch if shared else tuple(part[0] for part in batch)
        log: list[noise_source.Request] = []
        with noise_source.recording(log), torch.no_grad():
            problem.loss(model, single)
        self.requests = log

    def draw(self) -> list[Tensor]:
        """The step's noise, one ``[K, ...]`` tensor per draw (a loop over runs: each has its own generator)."""
        assert self.requests is not None
        per_run = [n.draw_like(self.requests) for n in self.noises]
        return [torch.stack(parts) for parts in zip(*per_run, strict=True)]


def same_batch(a: Any, b: Any) -> bool:
    """Whether two batches are the very same tensors (a full batch that every seed's stream yields)."""
    if isinstance(a, tuple | list) and isinstance(b, tuple | list):
        return len(a) == len(b) and all(x is y for x, y in zip(a, b, strict=True))
    return a is b


def train_block(configs: Sequence[RunConfig], problem: Problem, *, wide: bool = True,
                compiled: bool | None = None, sink: MetricSink | None = None,
                chunk: int = DEFAULT_CHUNK, device: torch.device | str | None = None,
                checkpoint_path: str | os.PathLike[str] | None = None,
                checkpoint_every: int | None = None, checkpoint_seconds: float | None = None,
                progress: bool = False) -> Iterator[RunResult]:
    """Train ``configs`` (one block, see the module docstring) together; yield each run's result when it ends.

    Raises :class:`NotVectorizable` before any result is yielded when the block cannot be batched.
    ``sink``/``chunk`` stream the metrics as in :class:`~adamlab.runner.loop.LoopCore`. ``device`` (None:
    the CPU) is where the block trains: the models are built on the CPU, as the serial loop builds them,
    and moved there, with the optimizer state, the batches, the evaluation chunks and the runs' noise.

    Checkpoints: with ``checkpoint_path``, the whole block (stacked parameters, optimizer state, RNG and
    noise states, data position, every run's records and status) is saved every ``checkpoint_every``
    steps and/or every ``checkpoint_seconds`` seconds (:class:`~adamlab.runner.loop.CheckpointPolicy`);
    a block that finds its checkpoint there resumes from it ("resumed at step N") and ends bit-identical
    to an uninterrupted block. The file is removed when the block ends. ``progress``: a bar over the
    block's steps (periodic lines off a terminal).
    """
    first = configs[0]
    for c in configs:
        same = (c.problem, dict(c.problem_options), c.optimizer, c.steps, c.batch_size, c.eval_every,
                dict(c.schedule))
        if same != (first.problem, dict(first.problem_options), first.optimizer, first.steps,
                    first.batch_size, first.eval_every, dict(first.schedule)):
            raise ValueError("a vmap block must share problem, optimizer, steps, batch size, eval and schedule")
    check_problem(problem, configs)
    dev = parse_device(device)
    on_cpu = dev.type == "cpu"
    problem.set_device(dev)
    k = len(configs)
    seeds = list(dict.fromkeys(c.seed for c in configs))  # distinct seeds, first-seen order
    run_seed = torch.tensor([seeds.index(c.seed) for c in configs])
    models = []
    for seed in seeds:  # what the serial loop does before building each run's model
        torch.manual_seed(seed)
        models.append(problem.make_model(seed) if on_cpu else problem.make_model(seed).to(dev))
    template = models[0]
    if not list(template.parameters()):
        raise NotVectorizable("the model has no parameters")
    stack = stack_models([models[int(i)] for i in run_seed], wide=wide and _standard_supervised(problem)
                         and not problem.stochastic_forward)
    stack.template.train()
    eval_model = problem.make_model(first.seed) if on_cpu else problem.make_model(first.seed).to(dev)
    p0 = next(template.parameters())
    from adamlab.optim.registry import optimizer_kwargs

    if compiled is None:  # the optimizers' own policy: compile from fast.min_numel() elements on
        from adamlab.optim import fast

        compiled = k * sum(p.numel() for p in template.parameters()) >= fast.min_numel()
    optimizer = StackedOptimizer(first.optimizer, [optimizer_kwargs(c.hparams) for c in configs],
                                 p0.dtype, p0.device, compiled=compiled)
    optimizer.trial()
    for leaf, axis in stack.leaves():
        optimizer.add_param(leaf, axis)
    reg_needed = _standard_supervised(problem) and problem.regularization(template) is not None
    evaluator = _Evaluator(problem, stack, eval_model, dev)
    block_noise = _BlockNoise(configs, dev) if problem.stochastic_forward else None
    streams = [problem.train_batches(seed, first.batch_size) for seed in seeds]  # each seed's own order
    shared = len(seeds) == 1
    if not shared:  # streams that yield the same batch object for every seed (a full batch) are shared
        probe = [problem.train_batches(seed, first.batch_size) for seed in seeds[:2]]
        shared = same_batch(next(probe[0]), next(probe[1]))
    execution = {"backend": "vmap", "block_size": k, **execution_record(dev)}

    def next_batch() -> Any:
        """The step's batch: shared when all runs have one seed, else stacked per run ``[K, ...]``."""
        drawn = [next(stream) for stream in streams]
        if len(drawn) == 1 or all(same_batch(d, drawn[0]) for d in drawn):  # a full batch, the same for every seed
            batch = drawn[0]
            return batch if on_cpu else tuple(part.to(dev, non_blocking=True) for part in batch)
        if on_cpu:
            return tuple(torch.stack(parts).index_select(0, run_seed) for parts in zip(*drawn, strict=True))
        return tuple(torch.stack([p.to(dev, non_blocking=True) for p in parts]).index_select(0, run_seed.to(dev))
                     for parts in zip(*drawn, strict=True))

    leaves = [leaf for leaf, _ in stack.leaves()]
    policy = CheckpointPolicy(checkpoint_every, checkpoint_seconds if checkpoint_path is not None else None,
                              first.steps)
    ident = block_ident(configs)
    ckpt = _load_block(checkpoint_path, ident, leaves, optimizer, block_noise)
    core = LoopCore(configs, train_set_size(problem), sink=sink, chunk=chunk,
                    started_at=None if ckpt is None else str(ckpt["started_at"]),
                    elapsed=0.0 if ckpt is None else float(ckpt["elapsed"]))
    step = 0
    if ckpt is None:
        core.begin()
        for run in core.eval_point(0, evaluator(core.active), optimizer.lrs()):
            yield core.result(run, execution=execution)
    else:
        step = int(ckpt["step"])
        _restore_block(ckpt, core, leaves, optimizer, block_noise)
        for stream in streams:  # data position: replay each seed's stream
            for _ in range(step):
                next(stream)
        set_rng_states(ckpt["rng"])
        core.begin(after_step=step)
        note(f"{first.problem} / {first.optimizer}: block of {k} runs resumed at step {step} of {first.steps} "
             f"from {checkpoint_path}", quiet=not progress)
        for run in range(k):
            if not core.active[run]:  # ended before the checkpoint: its result was not committed
                yield core.result(run, execution=execution)
    bar = run_bar(first.steps, quiet=not progress, desc=f"{first.optimizer} x{k}", initial=step,
                  runs=[c.run_id for c in configs])
    try:
        yield from _steps(core, step, first.steps, next_batch, optimizer, leaves, block_noise, problem, stack,
                          eval_model, shared, reg_needed, evaluator, execution, bar, policy,
                          lambda at: _save_block(checkpoint_path, ident, at, core, leaves, optimizer,
                                                 block_noise))
    finally:
        bar.close()
    if checkpoint_path is not None:
        Path(checkpoint_path).unlink(missing_ok=True)


def _steps(core: LoopCore, step: int, steps: int, next_batch: Any, optimizer: StackedOptimizer,
           leaves: list[Tensor], block_noise: _BlockNoise | None, problem: Problem, stack: Stack,
           eval_model: torch.nn.Module, shared: bool, reg_needed: bool, evaluator: _Evaluator,
           execution: dict[str, Any], bar: Any, policy: CheckpointPolicy, save: Any) -> Iterator[RunResult]:
    """The block's steps from ``step`` on (see :func:`train_block`)."""
    k = core.k
    while core.any_active and step < steps:
        batch = next_batch()
        t = step + 1
        optimizer.set_lr_factor(core.lr_factor(t))
        for leaf in leaves:
            leaf.grad = None
        drawn = None
        if block_noise is not None:
            if block_noise.requests is None:
                block_noise.learn(problem, stack, eval_model, batch, shared)
            drawn = block_noise.draw()
        losses = _batch_losses(problem, stack, batch, reg_needed, shared=shared, noise=drawn)
        values = losses.detach().double().cpu()
        ended, finite = core.check_losses(t, values)
        for run in ended:
            yield core.result(run, execution=execution)
        if not core.any_active:
            break
        if finite is not None:
            losses = torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses))
        losses.sum().backward()
        optimizer.step([leaf.grad for leaf in leaves])
        step = t
        core.add_losses(values, finite)
        if core.is_eval_step(step):
            for run in core.eval_point(step, evaluator(core.active), optimizer.lrs()):
                yield core.result(run, execution=execution)
            bar.set_postfix_str(f"{sum(core.active)}/{k} runs active", refresh=False)
        bar.update(1)
        if policy.enabled and core.any_active and policy.due(step):
            save(step)
            policy.saved()
    for run in range(k):
        if core.active[run]:
            yield core.result(run, execution=execution)


#: Format of a block checkpoint (bumped when its fields change).
BLOCK_FORMAT = "block-1"


def block_ident(configs: Sequence[RunConfig]) -> str:
    """The block's identity in its checkpoint: a hash of its run ids in order."""
    return BLOCK_FORMAT + ":" + hashlib.sha256("\n".join(c.run_id for c in configs).encode()).hexdigest()


def _save_block(path: str | os.PathLike[str] | None, ident: str, step: int, core: LoopCore, leaves: list[Tensor],
                optimizer: StackedOptimizer, block_noise: _BlockNoise | None) -> None:
    """Write the block's state after ``step`` (atomically, through :func:`adamlab.runner.checkpoint.save_checkpoint`)."""
    if path is None:
        return
    save_checkpoint(path, {
        "run_id": ident,
        "step": step,
        "leaves": [leaf.detach().clone() for leaf in leaves],
        "opt_step": optimizer.step_count,
        "opt_states": [[None if s is None else s.clone() for s in states] for states in optimizer.state_tensors()],
        "rng": rng_states(),
        "noise": [] if block_noise is None else [n.get_state() for n in block_noise.noises],
        "loss_sum": core.loss_sum.clone(),
        "loss_n": core.loss_n,
        "records": [core.sorted_records(run) for run in range(core.k)],
        "status": [str(getattr(s, "value", s)) for s in core.status],
        "diverged_step": [-1 if d is None else int(d) for d in core.diverged_step],
        "active": [bool(a) for a in core.active],
        "elapsed": core.elapsed(),
        "started_at": core.started_at,
    })


def _load_block(path: str | os.PathLike[str] | None, ident: str, leaves: list[Tensor],
                optimizer: StackedOptimizer, block_noise: _BlockNoise | None) -> dict[str, Any] | None:
    """The block's checkpoint at ``path`` when there is one that fits, else None (an unfit one is discarded)."""
    if path is None or not Path(path).is_file():
        return None
    payload = load_checkpoint(path, ident)
    if payload is None:
        discard_checkpoint(path, "it is unreadable, of another format, or of another block")
        return None
    saved, states = payload.get("leaves"), payload.get("opt_states")
    fits = (isinstance(saved, list) and len(saved) == len(leaves)
            and all(isinstance(a, Tensor) and a.shape == b.shape and a.dtype == b.dtype
                    for a, b in zip(saved, leaves, strict=True))
            and isinstance(states, list) and len(states) == len(optimizer.state_tensors())
            and all(len(a) == len(b) and all((x is None) == (y is None) and (x is None or x.shape == y.shape)
                                             for x, y in zip(a, b, strict=True))
                    for a, b in zip(states, optimizer.state_tensors(), strict=True))
            and len(payload.get("noise", [])) == (0 if block_noise is None else len(block_noise.noises)))
    if not fits:
        discard_checkpoint(path, "its tensors do not fit this block")
        return None
    return payload


def _restore_block(payload: dict[str, Any], core: LoopCore, leaves: list[Tensor], optimizer: StackedOptimizer,
                   block_noise: _BlockNoise | None) -> None:
    """Put a checked checkpoint's state back into the block (the caller replays the data and sets the RNG)."""
    from adamlab.runs.result import RunStatus

    with torch.no_grad():
        for leaf, value in zip(leaves, payload["leaves"], strict=True):
            leaf.copy_(value)
        for states, values in zip(optimizer.state_tensors(), payload["opt_states"], strict=True):
            for state, value in zip(states, values, strict=True):
                if state is not None:
                    state.copy_(value)
    optimizer.step_count = int(payload["opt_step"])
    if block_noise is not None:
        for noise, state in zip(block_noise.noises, payload["noise"], strict=True):
            noise.set_state(state)
    core.loss_sum.copy_(payload["loss_sum"])
    core.loss_n = int(payload["loss_n"])
    core.records = [{int(r["step"]): dict(r) for r in records} for records in payload["records"]]
    core.status = [RunStatus(s) for s in payload["status"]]
    core.diverged_step = [None if d < 0 else int(d) for d in payload["diverged_step"]]
    core.active = [bool(a) for a in payload["active"]]
