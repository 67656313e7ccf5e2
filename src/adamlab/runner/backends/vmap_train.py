"""Train a block of K runs together: the serial training loop of :mod:`adamlab.runner.train`, batched.

A block holds runs that share the problem, optimizer name and switches, steps, batch size, eval
cadence and schedule; they differ in numeric hyperparameters (lr, betas, eps, ...) and seed. Each run
starts from ``make_model(seed)`` and reads ``train_batches(seed, batch_size)``, as in the serial loop
(one stream per distinct seed; with one seed the batch is shared, with several each run gets its own
seed's batch, stacked along a leading run dimension). Per step: the batch(es), the K
per-run losses (the problem's loss of each run's parameters), one backward pass of their sum, one
stacked optimizer step. The records are those of the serial loop: eval points at step 0, every
``eval_every`` steps and after the last step, ``batch_loss`` averaged since the previous eval point,
``lr`` after the schedule, ``epoch`` and ``wall_time``, and the same divergence policy per run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from adamlab.problems import Problem
from adamlab.problems.supervised import DatasetProblem, cross_entropy
from adamlab.runner.backends.vmap_models import Stack, stack_models
from adamlab.runner.backends.vmap_optim import NotVectorizable, StackedOptimizer
from adamlab.runner.config import RunConfig, train_set_size
from adamlab.runner.result import RunResult, RunStatus, utcnow
from adamlab.runner.schedules import Schedule


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
    if problem.stochastic_forward:
        raise NotVectorizable(f"problem {problem.name!r} draws random numbers in its forward pass (dropout or "
                              "sampling), which a batched run cannot reproduce")
    if any(c.hooks for c in configs):
        raise NotVectorizable("runs with hooks need the model and optimizer objects of a single run")


class _BatchedEval:
    """``DatasetProblem.evaluate`` for K runs at once: same subsets, chunks, criterion and predict."""

    def __init__(self, problem: DatasetProblem) -> None:
        from adamlab.problems.datasets import fixed_subset

        self.problem = problem
        self.splits = []
        for prefix, split in (("train", problem.train_split), ("test", problem.test_split)):
            inputs, targets = problem.data(split)
            idx = fixed_subset(int(inputs.shape[0]), int(problem.options["eval_size"]))
            chunks = [(problem.transform(inputs.index_select(0, c)), targets.index_select(0, c))
                      for c in idx.split(problem.eval_batch_size)]
            self.splits.append((prefix, chunks))

    @torch.no_grad()
    def __call__(self, stack: Stack) -> list[dict[str, float]]:
        assert self.problem.criterion is not None
        criterion = self.problem.criterion
        predict = vmap(self.problem.predict)
        out: list[dict[str, float]] = [{} for _ in range(stack.k)]
        for prefix, chunks in self.splits:
            loss = torch.zeros(stack.k, dtype=torch.float64)
            correct = torch.zeros(stack.k, dtype=torch.int64)
            count = 0
            for x, y in chunks:
                dev = stack.leaves()[0][0].device
                x, y = x.to(dev), y.to(dev)
                outputs = stack.forward(x)
                units = y.numel()
                loss += per_run_criterion(criterion, outputs, y).double().cpu() * units
                correct += (predict(outputs) == y).reshape(stack.k, -1).sum(1).cpu()
                count += units
            for k in range(stack.k):
                out[k][f"{prefix}_loss"] = float(loss[k]) / count
                out[k][f"{prefix}_accuracy"] = int(correct[k]) / count
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


def _batch_losses(problem: Problem, stack: Stack, batch: Any, reg_needed: bool, shared: bool) -> Tensor:
    """The K per-run training losses: ``[K]``. ``batch`` is shared by all runs, or (not ``shared``) a
    tuple of tensors with a leading run dimension."""
    if _standard_supervised(problem):
        assert problem.criterion is not None
        dev = stack.leaves()[0][0].device
        inputs, targets = batch[0].to(dev), batch[1].to(dev)
        losses = per_run_criterion(problem.criterion, stack.forward(inputs, shared), targets, shared)
        if reg_needed:
            losses = losses + per_run_regularization(problem, stack)
        return losses
    return stack.call(lambda m, b: problem.loss(m, b), tuple(batch), per_run=not shared)


def train_block(configs: Sequence[RunConfig], problem: Problem, *, wide: bool = True,
                compiled: bool | None = None) -> Iterator[RunResult]:
    """Train ``configs`` (one block, see the module docstring) together; yield each run's result when it ends.

    Raises :class:`NotVectorizable` before any result is yielded when the block cannot be batched.
    """
    first = configs[0]
    for c in configs:
        same = (c.problem, dict(c.problem_options), c.optimizer, c.steps, c.batch_size, c.eval_every,
                dict(c.schedule))
        if same != (first.problem, dict(first.problem_options), first.optimizer, first.steps,
                    first.batch_size, first.eval_every, dict(first.schedule)):
            raise ValueError("a vmap block must share problem, optimizer, steps, batch size, eval and schedule")
    check_problem(problem, configs)
    k = len(configs)
    started_at = utcnow()
    t0 = time.perf_counter()
    schedule = Schedule(**first.schedule)
    n_train = train_set_size(problem)
    seeds = list(dict.fromkeys(c.seed for c in configs))  # distinct seeds, first-seen order
    run_seed = torch.tensor([seeds.index(c.seed) for c in configs])
    models = []
    for seed in seeds:  # what the serial loop does before building each run's model
        torch.manual_seed(seed)
        models.append(problem.make_model(seed))
    template = models[0]
    if not list(template.parameters()):
        raise NotVectorizable("the model has no parameters")
    stack = stack_models([models[int(i)] for i in run_seed], wide=wide and _standard_supervised(problem))
    eval_model = problem.make_model(first.seed)
    p0 = next(template.parameters())
    from adamlab.runner.train import _optimizer_kwargs

    if compiled is None:  # the optimizers' own policy: compile from fast.min_numel() elements on
        from adamlab.optim import fast

        compiled = k * sum(p.numel() for p in template.parameters()) >= fast.min_numel()
    optimizer = StackedOptimizer(first.optimizer, [_optimizer_kwargs(dict(c.hparams)) for c in configs],
                                 p0.dtype, p0.device, compiled=compiled)
    optimizer.trial()
    for leaf, axis in stack.leaves():
        optimizer.add_param(leaf, axis)
    reg_needed = _standard_supervised(problem) and problem.regularization(template) is not None
    batched_eval = _BatchedEval(problem) if _standard_evaluate(problem) else None  # type: ignore[arg-type]
    streams = [problem.train_batches(seed, first.batch_size) for seed in seeds]  # each seed's own order

    def next_batch() -> Any:
        """The step's batch: shared when all runs have one seed, else stacked per run ``[K, ...]``."""
        drawn = [next(stream) for stream in streams]
        if len(drawn) == 1:
            return drawn[0]
        return tuple(torch.stack(parts).index_select(0, run_seed) for parts in zip(*drawn, strict=True))

    records: list[dict[int, dict[str, float]]] = [{} for _ in range(k)]
    status = [RunStatus.FINISHED] * k
    diverged_step: list[int | None] = [None] * k
    active = [True] * k
    loss_sum = torch.zeros(k, dtype=torch.float64)
    loss_n = 0

    def epoch_of(at: int) -> dict[str, float]:
        return {} if n_train is None else {"epoch": at * first.batch_size / n_train}

    def record(run: int, at: int, values: dict[str, float]) -> None:
        rec = records[run].setdefault(at, {"step": float(at)})
        rec.update({key: float(v) for key, v in values.items()})

    def evaluate(at: int) -> list[bool]:
        if batched_eval is not None:
            metrics = batched_eval(stack)
        else:
            metrics = []
            for run in range(k):
                if not active[run]:
                    metrics.append({})
                    continue
                model = stack.load_run(run, eval_model)
                model.eval()
                with torch.no_grad():
                    metrics.append({key: float(v) for key, v in problem.evaluate(model).items()})
                model.train()
        lrs = optimizer.lrs()
        ok = []
        wall = time.perf_counter() - t0
        for run in range(k):
            if not active[run]:
                ok.append(True)
                continue
            finite = {key: v for key, v in metrics[run].items() if math.isfinite(v)}
            point: dict[str, float] = {**epoch_of(at), **finite, "lr": lrs[run]}
            if loss_n:
                mean = float(loss_sum[run]) / loss_n
                point["batch_loss"] = mean
                point.setdefault("train_loss", mean)
            point["wall_time"] = wall
            record(run, at, point)
            ok.append(len(finite) == len(metrics[run]))
        return ok

    def finish(run: int) -> RunResult:
        active[run] = False
        return RunResult(configs[run], status[run], [records[run][s] for s in sorted(records[run])],
                         diverged_step=diverged_step[run], wall_time=time.perf_counter() - t0,
                         started_at=started_at, finished_at=utcnow())

    for run, good in enumerate(evaluate(0)):
        if not good:
            status[run], diverged_step[run] = RunStatus.DIVERGED, 0
            yield finish(run)
    step = 0
    leaves = [leaf for leaf, _ in stack.leaves()]
    while any(active) and step < first.steps:
        batch = next_batch()
        t = step + 1
        optimizer.set_lr_factor(schedule.factor(t))
        for leaf in leaves:
            leaf.grad = None
        losses = _batch_losses(problem, stack, batch, reg_needed, shared=len(seeds) == 1)
        values = losses.detach().double().cpu()
        finite = torch.isfinite(values)
        if not bool(finite.all()):
            for run in range(k):
                if active[run] and not bool(finite[run]):
                    status[run], diverged_step[run] = RunStatus.DIVERGED, t
                    if loss_n:
                        record(run, step, {**epoch_of(step), "batch_loss": float(loss_sum[run]) / loss_n})
                    yield finish(run)
            if not any(active):
                break
            losses = torch.where(torch.isfinite(losses), losses, torch.zeros_like(losses))
        losses.sum().backward()
        optimizer.step([leaf.grad for leaf in leaves])
        step = t
        loss_sum += torch.where(finite, values, torch.zeros_like(values))
        loss_n += 1
        if step % first.eval_every == 0 or step == first.steps:
            ok = evaluate(step)
            loss_sum.zero_()
            loss_n = 0
            for run in range(k):
                if active[run] and not ok[run]:
                    status[run], diverged_step[run] = RunStatus.DIVERGED, step
                    yield finish(run)
    for run in range(k):
        if active[run]:
            yield finish(run)

