"""A new problem needs one module and its registration: nothing in adamlab names it.

The toy problem here is defined and registered in this file only, then used through the public API
(``adamlab.problems.get``/``names``) and the command line (``adamlab list``, ``adamlab run``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

from adamlab import problems
from adamlab.cli import main
from adamlab.problems import Batch, Problem, Protocol
from adamlab.problems.base import REGISTRY

NAME = "toy.problem"


class ToyProblem(Problem):
    """Least squares y = 2 x_1 - x_2 on 16 fixed points; ``scale`` multiplies the targets."""

    name: ClassVar[str] = NAME
    description: ClassVar[str] = "a toy least-squares problem (tests)"
    protocol = Protocol(batch_size=4, steps=12, eval_every=4, source="tests/problems/test_new_problem.py")
    default_options: ClassVar[dict[str, Any] | None] = {"scale": 1.0}

    def __init__(self, *, root: str | None = None, **options: Any) -> None:
        super().__init__(root=root, **options)
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 2, generator=gen)
        self.y = float(self.options["scale"]) * (2 * self.x[:, :1] - self.x[:, 1:])

    def make_model(self, seed: int) -> nn.Module:
        torch.manual_seed(seed)
        return nn.Linear(2, 1)

    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[Batch]:
        size = batch_size or self.protocol.batch_size
        gen = torch.Generator().manual_seed(seed)
        while True:
            perm = torch.randperm(16, generator=gen)
            for i in range(0, 16 - size + 1, size):
                yield self.x[perm[i:i + size]], self.y[perm[i:i + size]]

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        x, y = batch
        return ((model(x) - y) ** 2).mean()

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        return {"test_loss": float(self.loss(model, (self.x, self.y)))}


@pytest.fixture
def toy_problem() -> Iterator[str]:
    problems.register(ToyProblem)
    yield NAME
    REGISTRY.remove(NAME)


def test_built_through_the_public_api(toy_problem: str) -> None:
    assert toy_problem in problems.names()
    assert problems.names() == sorted(problems.names())  # still listed sorted, built-ins included
    assert "quadratic.noisy" in problems.names()
    p = problems.get(toy_problem, scale=3.0)
    assert isinstance(p, ToyProblem) and p.config() == {"problem": NAME, "scale": 3.0}
    with pytest.raises(ValueError, match="'bogus'"):
        problems.get(toy_problem, bogus=1)


def test_a_taken_name_is_refused(toy_problem: str) -> None:
    with pytest.raises(ValueError, match="already registered"):
        problems.register(ToyProblem)


def test_gone_after_removal() -> None:
    assert NAME not in problems.names()
    with pytest.raises(ValueError, match=f"unknown problem '{NAME}'; known problems: .*quadratic.noisy"):
        problems.get(NAME)


def test_listed_by_the_cli(toy_problem: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", toy_problem]) == 0
    out = capsys.readouterr().out
    assert "a toy least-squares problem (tests)" in out
    assert "batch 4, 12 steps, eval every 4, lr schedule constant" in out and "options: scale=1.0" in out


def test_run_by_the_cli(toy_problem: str, tmp_path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "toy.sqlite"
    assert main(["run", toy_problem, "--optimizer", "sgd", "--lr", "0.05", "--option", "scale=2",
                 "--store", str(store), "-q"]) == 0
    assert toy_problem in capsys.readouterr().out
    con = sqlite3.connect(store)
    try:
        assert con.execute("SELECT problem, steps FROM runs").fetchall() == [(NAME, 12)]
    finally:
        con.close()
