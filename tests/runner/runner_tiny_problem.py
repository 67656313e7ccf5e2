"""A tiny registered problem for the runner tests (no data files, milliseconds per run)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from adamlab.problems import Batch, Problem, Protocol
from adamlab.problems import base as problems_base

NAME = "tiny.regression"


class TinyRegression(Problem):
    """Linear regression y = X w* + noise, d = 5, 64 training points; optional dropout on the inputs.

    ``steps_per_epoch`` is 64 / 8 = 8. ``evaluate`` gives ``test_loss`` and ``test_accuracy``
    (fraction of test points with sign(prediction) == sign(target)).
    """

    name: ClassVar[str] = NAME
    description: ClassVar[str] = "tiny linear regression (runner tests)"
    protocol = Protocol(batch_size=8, steps=40, eval_every=10, lr_schedule="constant", source="tests")

    default_options: ClassVar[dict[str, Any] | None] = {"dropout": 0.0}

    def __init__(self, *, root: str | None = None, **options: Any) -> None:
        super().__init__(root=root, **options)  # the base class rejects unknown options
        self.dropout = float(self.options["dropout"])
        g = torch.Generator().manual_seed(1234)
        w = torch.randn(5, 1, generator=g)
        self.x = torch.randn(64, 5, generator=g)
        self.y = self.x @ w + 0.1 * torch.randn(64, 1, generator=g)
        self.x_test = torch.randn(32, 5, generator=g)
        self.y_test = self.x_test @ w

    @property
    def steps_per_epoch(self) -> int:
        return 8

    def make_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Sequential(nn.Dropout(self.dropout), nn.Linear(5, 1))

    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[Batch]:
        bs = batch_size or self.protocol.batch_size
        g = torch.Generator().manual_seed(seed)
        while True:
            perm = torch.randperm(64, generator=g)
            for i in range(0, 64 - bs + 1, bs):
                idx = perm[i : i + bs]
                yield self.x[idx], self.y[idx]

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        pred = model(self.x_test)
        return {
            "test_loss": float(((pred - self.y_test) ** 2).mean()),
            "test_accuracy": float((torch.sign(pred) == torch.sign(self.y_test)).float().mean()),
        }


def ensure_registered() -> None:
    """Register the tiny problem once (tests and subprocesses call this)."""
    if NAME not in problems_base.REGISTRY:
        problems_base.register(TinyRegression)
