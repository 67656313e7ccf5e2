"""Training-time hooks: extra metrics recorded every k steps (e.g. gradient statistics)."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from adamlab.problems import Batch, Problem


@runtime_checkable
class RunHook(Protocol):
    """Called after optimizer step ``step`` whenever ``step % every == 0``.

    It receives the step (1-based), the model, the optimizer, the problem and the batch of that step,
    and returns metrics ``{name: value}`` that the runner records at that step. A hook may set a
    ``name`` attribute; the run's config (and so its hash) records ``name@every``. Hooks run with
    gradients enabled and the model in train mode; they should not change the model or optimizer.
    """

    every: int

    def __call__(
        self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, problem: Problem, batch: Batch
    ) -> dict[str, float]: ...
