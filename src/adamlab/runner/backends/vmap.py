"""The ``vmap`` backend: runs that differ only in hyperparameters are trained together in one batch.

Select it with ``sweep(..., backend="vmap")`` or ``adamlab sweep --backend vmap``.

Grouping. Configs are split into blocks that share the problem (and its options), the optimizer
name and its non-numeric switches, steps, batch size, eval cadence and lr schedule. Runs of one block
differ in numeric hyperparameters (lr, betas, eps, weight decay, ...) and seed. A block is as large as
the memory budget allows (:func:`runs_per_block`: option ``memory_mb``, 1024 by default, over an
estimate of one run's parameters, optimizer state, activations and noise), at most ``max_block`` runs
when that option is given and never more than :data:`MAX_BLOCK` -- thousands of runs for the noisy
quadratic, Wilson's least squares and the logistic regressions. Each run starts from
``make_model(seed)`` and reads the batch stream ``train_batches(seed, batch_size)`` -- exactly what the
serial backend gives it. With one seed per block the batch is shared (fastest: one wide matrix
product for linear models); with several, each run gets its own seed's batch.

Per block: the K models are stacked (:mod:`~adamlab.runner.backends.vmap_models`: one wide matrix
product for linear models, ``torch.func.vmap`` over ``functional_call`` otherwise), the K losses are
the problem's loss of each run's parameters, one backward pass gives every run's gradient, and one
call of the optimizer's functional rule from :mod:`adamlab.functional` updates all runs
(:mod:`~adamlab.runner.backends.vmap_optim`). Metrics are those of the serial loop, equal up to
floating-point rounding (the batched matrix products sum in another order; see docs/scale.md for the
tolerance). Each result records ``execution = {"backend": "vmap", "block_size": K}`` (plus the device's
record, :func:`adamlab.runs.device.execution_record`, on an accelerator). On ``context.device`` the stacked
parameters, the optimizer state, the data (when they fit), the evaluation chunks and every run's noise
generator live on that device.

Commits. :meth:`VmapBackend.run_blocks` yields the results of a block together when the block ends,
and the sweep writes them in ONE store transaction (:meth:`adamlab.store.core.Store.record_many`), so
a kill -9 loses the block's work since its last checkpoint and nothing else, and a resumed sweep
continues it from that checkpoint (the same runs form the same block again).

Fallback. Runs that cannot be batched -- a forward pass that draws from torch's global RNG (the
LSTM's dropout; problems whose noise comes from :mod:`adamlab.problems.noise` batch), hooks, a model
with buffers, an optimizer without a functional rule, a switch that differs inside a block -- are run
by the serial backend, and ONE warning per sweep lists why (the command line shows it as one line).
Checkpoints: a block is checkpointed whole (:func:`~adamlab.runner.backends.vmap_train.train_block`)
every ``checkpoint_every`` steps and, in a sweep, by default every few minutes of work; an interrupted
block resumes from its checkpoint ("resumed at step N") and ends bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch

from adamlab.data.errors import DataIntegrityError, DataNotFoundError
from adamlab.problems import Problem
from adamlab.runner.backends import RunContext, problem_key
from adamlab.runner.backends.serial import SerialBackend
from adamlab.runner.backends.vmap_optim import NotVectorizable
from adamlab.runner.backends.vmap_train import same_batch
from adamlab.runs.config import RunConfig, canonical_json
from adamlab.runs.result import RunResult

#: Block size where no problem is at hand to size it (the Ray head plans blocks without the data).
DEFAULT_MAX_BLOCK = 64
#: Never more runs per block: the per-eval-point bookkeeping is linear in K, and a block is the unit
#: that a kill -9 loses.
MAX_BLOCK = 4096
#: Memory budget of one block, MiB (option ``memory_mb``).
DEFAULT_MEMORY_MB = 1024


def _is_number(value: Any) -> bool:
    if isinstance(value, list | tuple):  # betas
        return all(_is_number(v) for v in value)
    return isinstance(value, int | float) and not isinstance(value, bool)


def block_key(config: RunConfig, *, strict: bool = False) -> str:
    """What the runs of one block share: all but the numeric hyperparameters' values.

    ``strict=True``: all but the learning rate (for rules that branch on another setting, e.g.
    ``weight_decay != 0``).
    """
    switches = {k: (None if (_is_number(v) and (not strict or k == "lr")) else v)
                for k, v in sorted(config.hparams.items())}
    return canonical_json({
        "problem": problem_key(config.problem, config.problem_options), "optimizer": config.optimizer,
        "switches": switches, "steps": config.steps, "batch_size": config.batch_size,
        "eval_every": config.eval_every, "schedule": dict(config.schedule), "hooks": list(config.hooks),
    })


def plan_blocks(configs: Sequence[RunConfig], max_block: int | None = DEFAULT_MAX_BLOCK, *, strict: bool = False,
                size: Callable[[Sequence[RunConfig]], int] | None = None) -> list[list[RunConfig]]:
    """Group ``configs`` into blocks (see the module docstring), keeping first-seen order.

    A block holds at most ``size(configs of the group)`` runs when ``size`` is given (capped by
    ``max_block`` unless that is None), else ``max_block``; a group is cut into even blocks.
    """
    groups: dict[str, list[RunConfig]] = {}
    for config in configs:
        groups.setdefault(block_key(config, strict=strict), []).append(config)
    blocks = []
    for members in groups.values():
        limit = size(members) if size is not None else (max_block or DEFAULT_MAX_BLOCK)
        if max_block is not None:
            limit = min(limit, max_block)
        limit = max(1, limit)
        n_blocks = -(-len(members) // limit)
        per = -(-len(members) // n_blocks)  # even blocks: 650 runs at a limit of 640 -> 325 + 325
        for start in range(0, len(members), per):
            blocks.append(members[start:start + per])
    return blocks


def _numel(value: Any) -> int:
    if isinstance(value, torch.Tensor):
        return value.numel()
    if isinstance(value, list | tuple):
        return sum(_numel(v) for v in value)
    if isinstance(value, dict):
        return sum(_numel(v) for v in value.values())
    return 0


def run_bytes(problem: Problem, config: RunConfig, own_batch: bool = False) -> int:
    """Estimated memory of one run inside a block, in bytes.

    Parameters, gradient, up to three state tensors and the step's temporaries (8 copies of the
    parameters), 4 copies of the activations of one training batch (the outputs of every module and
    the noise drawn) and 2 of one evaluation chunk, plus the run's own copy of the batch when the
    block's runs have different seeds (``own_batch``) and the seeds' batches differ.
    """
    from adamlab.problems import noise as noise_source

    model = problem.make_model(config.seed)
    params = list(model.parameters())
    itemsize = params[0].element_size() if params else 4
    n_params = sum(p.numel() for p in params)
    acts = kept = batch_numel = 0  # kept: activations an evaluation pass has too (not dropout's)

    def hook(module: Any, _inputs: Any, output: Any) -> None:
        nonlocal acts, kept
        acts += _numel(output)
        if not isinstance(module, noise_source.Dropout):
            kept += _numel(output)

    leaves = [m for m in model.modules() if not list(m.children())] or [model]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        batch = next(iter(problem.train_batches(config.seed, config.batch_size)))
        log: list[Any] = []
        with torch.no_grad(), noise_source.recording(log):
            problem.loss(model, batch)
        acts += sum(math.prod(shape) for _, shape, _ in log)
        if own_batch:
            other = next(iter(problem.train_batches(config.seed + 1, config.batch_size)))
            batch_numel = 0 if same_batch(batch, other) else _numel(batch)
    except Exception:  # noqa: BLE001 - an estimate only: the batched path reports real errors itself
        pass
    finally:
        for h in handles:
            h.remove()
    eval_rows = getattr(problem, "eval_batch_size", 0)
    eval_acts = kept * eval_rows // max(1, config.batch_size)
    return itemsize * (8 * n_params + 4 * acts + 2 * eval_acts + batch_numel) + 4096


def runs_per_block(problem: Problem, config: RunConfig, memory_mb: float = DEFAULT_MEMORY_MB,
                   own_batch: bool = False) -> int:
    """How many runs like ``config`` fit in a block of ``memory_mb`` MiB (1 to :data:`MAX_BLOCK`)."""
    per_run = run_bytes(problem, config, own_batch)
    return int(max(1, min(MAX_BLOCK, memory_mb * 2**20 // per_run)))


class VmapBackend:
    """Trains blocks of runs together; falls back to the serial backend where it cannot (one warning)."""

    name = "vmap"

    def __init__(self, max_block: int | None = None, wide: bool = True, compile: bool | None = None,
                 memory_mb: float = DEFAULT_MEMORY_MB, chunk: int | None = None, threads: int | None = None) -> None:
        if max_block is not None and (isinstance(max_block, bool) or int(max_block) != max_block or max_block < 1):
            raise ValueError(f"max_block must be an integer >= 1; got {max_block!r}")
        if isinstance(memory_mb, bool) or not float(memory_mb) > 0:
            raise ValueError(f"memory_mb must be a number > 0; got {memory_mb!r}")
        if chunk is not None and (isinstance(chunk, bool) or int(chunk) != chunk or chunk < 1):
            raise ValueError(f"chunk must be an integer >= 1; got {chunk!r}")
        if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 1):
            raise ValueError(f"threads must be an integer >= 1; got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self.max_block = None if max_block is None else int(max_block)
        self.wide = bool(wide)
        self.compile = compile
        self.memory_mb = float(memory_mb)
        self.chunk = chunk
        #: Why runs of the last ``run`` call went serial: reason -> number of runs.
        self.fallbacks: dict[str, int] = {}

    def plan(self, configs: Sequence[RunConfig], context: RunContext, *, strict: bool = False) -> list[list[RunConfig]]:
        """The blocks of ``configs``: sized by memory (:func:`runs_per_block`), capped by ``max_block``."""
        def size(members: Sequence[RunConfig]) -> int:
            own_batch = len({c.seed for c in members}) > 1
            try:
                k = runs_per_block(context.problem_for(members[0]), members[0], self.memory_mb, own_batch)
            except Exception:  # noqa: BLE001 - the block itself reports the problem's error
                return DEFAULT_MAX_BLOCK
            if k == 1 and len(members) > 1:
                self._alone(members[0].problem)
            return k

        return plan_blocks(configs, self.max_block, strict=strict, size=size)

    def _alone(self, problem: str) -> None:
        """Say once per problem that its runs train one at a time (a block of one is not batched)."""
        said = self.__dict__.setdefault("_said_alone", set())
        if problem in said:
            return
        said.add(problem)
        warnings.warn(f"vmap backend: runs of {problem} train one at a time: two of them need more than a "
                      f"block's memory budget of {self.memory_mb:g} MiB (option memory_mb); the serial "
                      f"backend does the same with less overhead", RuntimeWarning, stacklevel=3)

    def run(self, configs: Sequence[RunConfig], context: RunContext) -> Iterator[RunResult]:
        for results in self.run_blocks(configs, context):
            yield from results

    def run_blocks(self, configs: Sequence[RunConfig], context: RunContext) -> Iterator[list[RunResult]]:
        """Like :meth:`run`, but the results of a block come together, as one list, when it ends
        (serial fallback runs come one per list)."""
        from adamlab.runner.backends.vmap_train import block_ident, train_block

        self.fallbacks = {}
        serial: list[RunConfig] = []
        queue = [(block, False) for block in self.plan(configs, context)]
        chunk = self.chunk if self.chunk is not None else context.chunk
        while queue:
            block, strict = queue.pop(0)
            results: list[RunResult] = []
            threads = torch.get_num_threads()
            try:
                problem = context.problem_for(block[0])
                context.start(block)
                if self.threads is not None:
                    torch.set_num_threads(self.threads)
                path = context.block_checkpoint_path(block_ident(block)[-16:])
                for result in train_block(block, problem, wide=self.wide, compiled=self.compile,
                                          sink=context.metrics_sink, chunk=chunk, device=context.device,
                                          checkpoint_path=path, checkpoint_every=context.checkpoint_every,
                                          checkpoint_seconds=context.checkpoint_seconds,
                                          progress=context.progress):
                    results.append(result)
            except (KeyboardInterrupt, DataIntegrityError, DataNotFoundError):
                raise  # bad data is not a reason to go serial: it stops the sweep as itself
            except NotVectorizable as err:
                done = {r.run_id for r in results}
                left = [c for c in block if c.run_id not in done]
                finer = self.plan(left, context, strict=True)
                if not strict and len(finer) > 1:  # retry with only the lr varying inside a block
                    queue[:0] = [(b, True) for b in finer]
                else:
                    self._fallback(str(err), left, serial)
            except Exception as err:  # noqa: BLE001 - the serial backend reports a run's own error
                reason = f"the batched path failed ({type(err).__name__}: {err})"
                done = {r.run_id for r in results}
                self._fallback(reason, [c for c in block if c.run_id not in done], serial)
            finally:
                torch.set_num_threads(threads)
            if results:
                yield results
        if serial:
            self._warn(len(configs))
            for result in SerialBackend().run(serial, context):
                yield [result]

    def _fallback(self, reason: str, configs: list[RunConfig], serial: list[RunConfig]) -> None:
        if configs:
            label = f"{configs[0].problem} / {configs[0].optimizer}: {reason}"
            self.fallbacks[label] = self.fallbacks.get(label, 0) + len(configs)
            serial.extend(configs)

    def _warn(self, total: int) -> None:
        n = sum(self.fallbacks.values())
        reasons = "; ".join(f"{why} ({count} runs)" for why, count in self.fallbacks.items())
        warnings.warn(f"vmap backend: {n} of {total} runs cannot be vectorised and run serially instead -- "
                      f"{reasons}", RuntimeWarning, stacklevel=2)


def make_backend(**options: Any) -> VmapBackend:
    """Build the vmap backend. Options: ``max_block`` (at most this many runs per block; default: as many
    as ``memory_mb`` allows, up to :data:`MAX_BLOCK`), ``memory_mb`` (memory budget of a block, default
    1024), ``wide`` (use the wide-matrix layout for linear models, default True; False forces
    ``torch.func.vmap``), ``compile`` (step with the rule compiled by ``torch.compile``: True, False, or
    None = when a block's stacked parameters reach ``adamlab.optim.fast.min_numel()`` elements, the
    optimizers' own policy), ``chunk`` (eval-point records a block holds before streaming them to the
    store; default the context's), ``threads`` (torch threads while a block trains; default: leave
    torch's setting. On a busy host, 1 avoids OpenMP barriers on the small tensors of e.g. the quadratic:
    measured 3.7 s against 26 s for 640 runs at a load average of 4 on 2 cores)."""
    known = {"max_block", "wide", "compile", "memory_mb", "chunk", "threads"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise ValueError(f"the vmap backend takes options {', '.join(sorted(known))}; got {unknown}")
    return VmapBackend(**options)
