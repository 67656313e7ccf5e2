"""Wilson et al. 2017's separable least-squares problem (The Marginal Value of Adaptive Gradient
Methods in Machine Learning, NeurIPS 2017, sec. 3.3).

Labels y_i = +1 with probability p > 1/2, else -1. Example i has features

    x_i1 = y_i,   x_i2 = x_i3 = 1,
    x_ij = 1 for j = 4 + 5(i-1), ..., 4 + 5(i-1) + 2(1 - y_i)   (1 "unique" feature if y_i = 1, 5 if -1),
    0 otherwise,

so every example owns its unique features. Then X sign(X^T y) = 4 y when the training set has more
positives than negatives (Lemma 3.1's condition with c = 4), and adaptive methods started at 0 move
along u = sign(X^T y): u_1 = u_2 = u_3 = 1 and u = y_i on i's unique features. A test point's own
unique features were never seen, so u^T x = y + 2 > 0: such methods label every test point +1 and
their test error is the fraction of negatives (chance, for p near 1/2). Gradient descent from 0
stays in the row space of X and reaches the minimum-norm solution X^+ y, which classifies the
test points correctly.

Training and test points are generated together (test points get unique features of their own,
columns never active in training), so the dimension is 3 + 5 (n + n_test). Labels are redrawn
(from the same seeded stream) until the training set has strictly more positives than negatives.
The loss is the mean squared error 1/(2B) ||X_B w - y_B||^2; the model is a bias-free linear map
started at w = 0, as in the lemma, whatever the seed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from adamlab.problems.base import Batch, Problem, Protocol, register
from adamlab.problems.datasets import shuffled_batches
from adamlab.problems.options import check_elements, check_float, check_int


def wilson_data(n: int, n_test: int, p: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate the data of Wilson et al.'s construction (sec. 3.3; features in the module docstring).

    Parameters
    ----------
    n, n_test:
        Numbers of training and test points.
    p:
        P[y = +1], in (1/2, 1).
    seed:
        Seed of the generator (labels are redrawn until the training set has more positives
        than negatives; at most 1,000 tries).

    Returns
    -------
    tuple of numpy.ndarray
        ``(X_train [n, D], y_train [n], X_test [n_test, D], y_test [n_test])`` in float64 with
        labels in {-1, +1} and D = 3 + 5 (n + n_test).
    """
    rng = np.random.default_rng(seed)
    total = n + n_test
    for _ in range(1000):
        y = np.where(rng.random(total) < p, 1.0, -1.0)
        if (y[:n] > 0).sum() > (y[:n] < 0).sum():
            break
    else:  # pragma: no cover - needs p barely above 1/2 and bad luck 1,000 times
        raise ValueError(f"could not draw a training set with more positives than negatives (n={n}, p={p})")
    dim = 3 + 5 * total
    x = np.zeros((total, dim))
    x[:, 0] = y
    x[:, 1:3] = 1.0
    for i in range(total):
        start = 3 + 5 * i
        width = 1 if y[i] > 0 else 5
        x[i, start : start + width] = 1.0
    return x[:n], y[:n], x[n:], y[n:]


def half_squared_error(outputs: Tensor, targets: Tensor) -> Tensor:
    """1/(2B) sum_b (outputs_b - targets_b)^2 for outputs ``[B, 1]`` (or ``[B]``) and targets ``[B]``."""
    return 0.5 * (outputs.reshape(-1) - targets.reshape(-1)).square().mean()


@register
class WilsonLeastSquares(Problem):
    """Wilson et al. 2017, sec. 3.3: separable least squares where adaptive methods generalise at chance.

    Options: ``n`` (training points, 100), ``n_test`` (100), ``p`` (P[y = +1], in (1/2, 1); 0.6),
    ``data_seed`` (fixes the data, 0). Full batch by default (``batch_size = n``).
    ``evaluate`` returns ``train_loss``, ``train_error``, ``test_loss``, ``test_error`` and
    ``test_accuracy`` (errors are fractions of sign(x^T w) != y, with sign(0) counted as +1).
    """

    name: ClassVar[str] = "leastsquares.wilson"
    description: ClassVar[str] = "Wilson et al.'s separable least squares: Adam generalises at chance, SGD does not"
    protocol = Protocol(
        batch_size=100,
        steps=2000,
        eval_every=20,
        lr_schedule="constant",
        source="Wilson et al. 2017, sec. 3.3 (full batch; budget ours)",
    )
    default_options: ClassVar[dict[str, Any] | None] = {"n": 100, "n_test": 100, "p": 0.6, "data_seed": 0}
    criterion = staticmethod(half_squared_error)

    def __init__(self, *, root: str | None = None, **options: Any) -> None:
        super().__init__(root=root, **options)
        o = self.options
        n = check_int("n", o["n"], low=1)
        n_test = check_int("n_test", o["n_test"], low=1)
        p = check_float("p", o["p"], low=0.5, high=1.0, low_open=True, high_open=True)
        check_int("data_seed", o["data_seed"], low=0)
        total = n + n_test
        check_elements(f"n={n} + n_test={n_test}: the data matrix {total} x {3 + 5 * total}", total * (3 + 5 * total))
        x, y, xt, yt = wilson_data(n, n_test, p, o["data_seed"])
        self.x_train64, self.y_train64, self.x_test64, self.y_test64 = x, y, xt, yt
        self.x_train = torch.from_numpy(x).to(torch.float32)
        self.y_train = torch.from_numpy(y).to(torch.float32)
        self.x_test = torch.from_numpy(xt).to(torch.float32)
        self.y_test = torch.from_numpy(yt).to(torch.float32)
        self.dim = x.shape[1]
        if n != type(self).protocol.batch_size:
            self.protocol = Protocol(
                batch_size=n,
                steps=type(self).protocol.steps,
                eval_every=type(self).protocol.eval_every,
                lr_schedule="constant",
                source=type(self).protocol.source,
            )

    def adaptive_direction(self) -> np.ndarray:
        """u = sign(X^T y), the direction of Lemma 3.1 (float64)."""
        return np.sign(self.x_train64.T @ self.y_train64)

    def min_norm_solution(self) -> np.ndarray:
        """The minimum-norm least-squares solution X^+ y (float64, via the pseudo-inverse)."""
        return np.linalg.pinv(self.x_train64) @ self.y_train64

    def make_model(self, seed: int) -> nn.Module:
        """A bias-free linear model with w = 0 (Lemma 3.1's start; ``seed`` is not used)."""
        model = nn.Linear(self.dim, 1, bias=False)
        with torch.no_grad():
            model.weight.zero_()
        return model

    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[Batch]:
        bs = self.protocol.batch_size if batch_size is None else check_int("batch_size", batch_size, low=1)
        if bs >= self.x_train.shape[0]:
            batch = (self.x_train, self.y_train)
            while True:
                yield batch
        yield from shuffled_batches(self.x_train, self.y_train, bs, seed)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """1/(2B) ||X_B w - y_B||^2."""
        device = model.weight.device
        return half_squared_error(model(batch[0].to(device)), batch[1].to(device))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        with torch.no_grad():
            return {k: float(v) for k, v in self.evaluate_tensors(model).items()}

    def evaluate_tensors(self, model: nn.Module) -> dict[str, Tensor]:
        """:meth:`evaluate` as tensors (vmappable)."""
        out: dict[str, Tensor] = {}
        device = next(model.parameters()).device
        for prefix, x, y in (("train", self.x_train, self.y_train), ("test", self.x_test, self.y_test)):
            pred = model(x.to(device)).squeeze(-1)
            y = y.to(device, pred.dtype)
            out[f"{prefix}_loss"] = 0.5 * (pred - y).square().mean()
            labels = torch.where(pred >= 0, 1.0, -1.0).to(pred.dtype)
            out[f"{prefix}_error"] = (labels != y).to(torch.float32).mean()
        out["test_accuracy"] = 1.0 - out["test_error"].double()
        return out
