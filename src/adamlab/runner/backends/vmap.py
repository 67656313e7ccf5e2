"""The ``vmap`` backend: runs that differ only in hyperparameters are trained together in one batch.

Select it with ``sweep(..., backend="vmap")`` or ``adamlab sweep --backend vmap``.

Grouping. Configs are split into blocks that share the problem (and its options), the optimizer
name and its non-numeric switches, steps, batch size, eval cadence and lr schedule; at most
``max_block`` runs each. Runs of one block differ in numeric hyperparameters (lr, betas, eps, weight
decay, ...) and seed. Each run starts from ``make_model(seed)`` and reads the batch stream
``train_batches(seed, batch_size)`` -- exactly what the serial backend gives it. With one seed per
block the batch is shared (fastest: one wide matrix product for linear models); with several, each
run gets its own seed's batch.

Per block: the K models are stacked (:mod:`~adamlab.runner.backends.vmap_models`: one wide matrix
product for linear models, ``torch.func.vmap`` over ``functional_call`` otherwise), the K losses are
the problem's loss of each run's parameters, one backward pass gives every run's gradient, and one
call of the optimizer's functional rule from :mod:`adamlab.functional` updates all runs
(:mod:`~adamlab.runner.backends.vmap_optim`). Metrics are those of the serial loop, equal up to
floating-point rounding (the batched matrix products sum in another order).

Fallback. Runs that cannot be batched -- a stochastic forward pass (dropout, sampling), hooks, a model
with buffers, an optimizer without a functional rule, a switch that differs inside a block -- are run
by the serial backend, and ONE warning per sweep lists why. Checkpoints are not written: an
interrupted block restarts from step 0 on resume and reproduces the same results.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from adamlab.data.errors import DataIntegrityError, DataNotFoundError
from adamlab.runner.backends import RunContext, problem_key
from adamlab.runner.backends.serial import SerialBackend
from adamlab.runner.backends.vmap_optim import NotVectorizable
from adamlab.runner.config import RunConfig, canonical_json
from adamlab.runner.result import RunResult

DEFAULT_MAX_BLOCK = 64


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


def plan_blocks(configs: Sequence[RunConfig], max_block: int = DEFAULT_MAX_BLOCK, *,
                strict: bool = False) -> list[list[RunConfig]]:
    """Group ``configs`` into blocks (see the module docstring), keeping first-seen order."""
    groups: dict[str, list[RunConfig]] = {}
    for config in configs:
        groups.setdefault(block_key(config, strict=strict), []).append(config)
    blocks = []
    for members in groups.values():
        for start in range(0, len(members), max_block):
            blocks.append(members[start:start + max_block])
    return blocks


class VmapBackend:
    """Trains blocks of runs together; falls back to the serial backend where it cannot (one warning)."""

    name = "vmap"

    def __init__(self, max_block: int = DEFAULT_MAX_BLOCK, wide: bool = True, compile: bool | None = None) -> None:
        if isinstance(max_block, bool) or int(max_block) != max_block or max_block < 1:
            raise ValueError(f"max_block must be an integer >= 1; got {max_block!r}")
        self.max_block = int(max_block)
        self.wide = bool(wide)
        self.compile = compile
        #: Why runs of the last ``run`` call went serial: reason -> number of runs.
        self.fallbacks: dict[str, int] = {}

    def run(self, configs: Sequence[RunConfig], context: RunContext) -> Iterator[RunResult]:
        from adamlab.runner.backends.vmap_train import train_block

        self.fallbacks = {}
        serial: list[RunConfig] = []
        queue = [(block, False) for block in plan_blocks(configs, self.max_block)]
        while queue:
            block, strict = queue.pop(0)
            done: set[str] = set()
            try:
                problem = context.problem_for(block[0])
                if context.on_start is not None:
                    for config in block:
                        context.on_start(config)
                for result in train_block(block, problem, wide=self.wide, compiled=self.compile):
                    done.add(result.run_id)
                    yield result
            except (KeyboardInterrupt, DataIntegrityError, DataNotFoundError):
                raise  # bad data is not a reason to go serial: it stops the sweep as itself
            except NotVectorizable as err:
                left = [c for c in block if c.run_id not in done]
                finer = plan_blocks(left, self.max_block, strict=True)
                if not strict and len(finer) > 1:  # retry with only the lr varying inside a block
                    queue[:0] = [(b, True) for b in finer]
                else:
                    self._fallback(str(err), left, serial)
            except Exception as err:  # noqa: BLE001 - the serial backend reports a run's own error
                reason = f"the batched path failed ({type(err).__name__}: {err})"
                self._fallback(reason, [c for c in block if c.run_id not in done], serial)
        if serial:
            self._warn(len(configs))
            yield from SerialBackend().run(serial, context)

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
    """Build the vmap backend. Options: ``max_block`` (runs per block, default 64), ``wide`` (use the
    wide-matrix layout for linear models, default True; False forces ``torch.func.vmap``), ``compile``
    (step with the rule compiled by ``torch.compile``: True, False, or None = when a block's stacked
    parameters reach ``adamlab.optim.fast.min_numel()`` elements, the optimizers' own policy)."""
    unknown = sorted(set(options) - {"max_block", "wide", "compile"})
    if unknown:
        raise ValueError(f"the vmap backend takes options max_block, wide, compile; got {unknown}")
    return VmapBackend(**options)
