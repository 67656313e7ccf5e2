"""Balles & Hennig's noisy quadratic (Dissecting Adam, ICML 2018, sec. 3, fig. 2).

    L(theta) = 1/2 theta^T Q theta,        grad L(theta) = Q theta,
    g(theta) = Q theta + nu Q zbar,        zbar = mean of B draws z_b ~ N(0, I_d),

so the stochastic gradient is g ~ N(grad L, nu^2 Q Q / B) (Q is symmetric); at the paper's
batch size B = 1 this is exactly N(grad L, nu^2 Q Q). The noise is realised through the loss
``1/2 theta^T Q theta + nu (Q zbar)^T theta`` of a batch, so a training loop just calls
``loss(model, batch).backward()``.

Q = R diag(lambda) R^T, with R the identity (``rotation="axis"``) or a Haar-random orthogonal
matrix (``"rotated"``: QR of a Gaussian matrix with the signs of R's diagonal fixed); lambda
``"well"``: U[0.1, 1.1]; ``"ill"``: 90% U[0, 1] and 10% U[30, 60], in a random order.
``instance_seed`` fixes Q; the ``seed`` of ``train_batches`` fixes the noise stream.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from adamlab.problems.base import Batch, Problem, Protocol, register
from adamlab.problems.options import check_choice, check_elements, check_float, check_int

SPECTRA = ("well", "ill")
ROTATIONS = ("axis", "rotated")

#: The largest dimension ``d`` (Q is d x d: 128 MiB, and a QR of seconds, at 4096).
MAX_D = 4096
INITS = ("ones", "normal")


def eigenvalues(d: int, spectrum: str, rng: np.random.Generator) -> np.ndarray:
    """Draw the eigenvalues of Q (Balles & Hennig 2018, sec. 3).

    Parameters
    ----------
    d:
        Dimension.
    spectrum:
        ``"well"``: lambda_i ~ U[0.1, 1.1]; ``"ill"``: round(0.9 d) values ~ U[0, 1] and
        round(0.1 d) values ~ U[30, 60], in random order.
    rng:
        The source of randomness.

    Returns
    -------
    numpy.ndarray
        ``d`` eigenvalues (float64).
    """
    if spectrum == "well":
        return rng.uniform(0.1, 1.1, size=d)
    n_large = int(round(0.1 * d))
    lam = np.concatenate([rng.uniform(0.0, 1.0, size=d - n_large), rng.uniform(30.0, 60.0, size=n_large)])
    return rng.permutation(lam)


def haar_orthogonal(d: int, rng: np.random.Generator) -> np.ndarray:
    """A Haar-distributed random orthogonal matrix (QR of a Gaussian, Mezzadri 2007 sign fix)."""
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


class QuadraticModel(nn.Module):
    """Holds the parameter vector ``theta`` of the quadratic; ``forward()`` returns it."""

    def __init__(self, theta0: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(theta0.clone())

    def forward(self) -> Tensor:
        return self.theta


@register
class NoisyQuadratic(Problem):
    """Noisy quadratic of Balles & Hennig 2018 (sec. 3, fig. 2): L = 1/2 theta^T Q theta, g ~ N(Q theta, nu^2 QQ).

    Options: ``d`` (100), ``spectrum`` ("well" | "ill"), ``rotation`` ("axis" | "rotated"),
    ``nu`` (noise scale >= 0; the paper uses 0, 0.1, 4.0), ``instance_seed`` (fixes Q),
    ``init`` ("ones": theta_0 = (1, ..., 1) as in DeepOBS's quadratic_deep -- the paper's own
    starting point is not restated here; "normal": theta_0 ~ N(0, I) drawn from the model seed).
    A batch is ``(z,)`` with ``z`` of shape ``[B, d]``; the noise covariance is nu^2 Q Q / B.
    The budget (1,000 steps, evaluated every 10) is our choice, not the paper's.
    """

    name: ClassVar[str] = "quadratic.noisy"
    description: ClassVar[str] = "Balles & Hennig's 100-d noisy quadratic, g ~ N(Q theta, nu^2 QQ)"
    protocol = Protocol(
        batch_size=1,
        steps=1000,
        eval_every=10,
        lr_schedule="constant",
        source="Balles & Hennig 2018, sec. 3 / fig. 2 (budget ours)",
    )
    default_options: ClassVar[dict[str, Any] | None] = {
        "d": 100,
        "spectrum": "well",
        "rotation": "rotated",
        "nu": 0.1,
        "instance_seed": 0,
        "init": "ones",
    }
    stochastic_forward: ClassVar[bool] = False
    loss_broadcasts: ClassVar[bool] = True
    criterion = None

    def __init__(self, *, root: str | None = None, **options: Any) -> None:
        super().__init__(root=root, **options)
        o = self.options
        self.d = check_int("d", o["d"], low=1)
        # Q is d x d, and its QR takes O(d^3): refused from the size, before anything is allocated
        check_elements(f"d={self.d}: Q is {self.d} x {self.d}", self.d * self.d, limit=MAX_D * MAX_D)
        check_choice("spectrum", o["spectrum"], SPECTRA)
        check_choice("rotation", o["rotation"], ROTATIONS)
        self.nu = check_float("nu", o["nu"], low=0.0)
        check_int("instance_seed", o["instance_seed"], low=0)
        check_choice("init", o["init"], INITS)
        rng = np.random.default_rng(o["instance_seed"])
        lam = eigenvalues(self.d, o["spectrum"], rng)
        if o["rotation"] == "rotated":
            r = haar_orthogonal(self.d, rng)
            q = (r * lam) @ r.T
            q = 0.5 * (q + q.T)
        else:
            q = np.diag(lam)
        #: Eigenvalues and Hessian in float64 (for references) and the float32 Hessian used in the loss.
        self.eigenvalues64: np.ndarray = lam
        self.hessian64: np.ndarray = q
        self.hessian: Tensor = torch.from_numpy(q).to(torch.float32)

    # -- exact quantities -----------------------------------------------------------------------
    def hessian_like(self, theta: Tensor) -> Tensor:
        """Q on ``theta``'s device and dtype (built from the float64 Q for float64 ``theta``)."""
        if theta.dtype == torch.float64:
            return torch.from_numpy(self.hessian64).to(theta.device)
        return self.hessian.to(theta.device, theta.dtype)

    def exact_loss(self, theta: Tensor) -> Tensor:
        """L(theta) = 1/2 theta^T Q theta; ``theta`` ``[d]``, or ``[K, d]`` for K runs (gives ``[K]``)."""
        return 0.5 * ((theta @ self.hessian_like(theta)) * theta).sum(-1)

    def exact_gradient(self, theta: Tensor) -> Tensor:
        """grad L(theta) = Q theta."""
        return self.hessian_like(theta) @ theta

    def noise_covariance(self, batch_size: int = 1) -> np.ndarray:
        """The covariance nu^2 Q Q / batch_size of the stochastic gradient (float64)."""
        return self.nu**2 * (self.hessian64 @ self.hessian64) / batch_size

    # -- the Problem contract -------------------------------------------------------------------
    def make_model(self, seed: int) -> nn.Module:
        if self.options["init"] == "ones":
            theta0 = torch.ones(self.d)
        else:
            gen = torch.Generator().manual_seed(int(seed))
            theta0 = torch.randn(self.d, generator=gen)
        return QuadraticModel(theta0)

    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[Batch]:
        bs = self.protocol.batch_size if batch_size is None else check_int("batch_size", batch_size, low=1)
        check_elements(f"batch_size={bs} x d={self.d}: one batch", bs * self.d)
        gen = torch.Generator().manual_seed(int(seed))
        while True:
            yield (torch.randn(bs, self.d, generator=gen),)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """1/2 theta^T Q theta + nu (Q zbar)^T theta, whose gradient is Q theta + nu Q zbar.

        It broadcasts over runs (:attr:`loss_broadcasts`): ``theta`` ``[K, d]`` with ``z`` ``[B, d]`` (one
        batch for all) or ``[K, B, d]`` gives the K losses. Q is symmetric, so zbar Q = (Q zbar)^T.
        """
        theta = model()
        z = batch[0].to(theta.device, theta.dtype)
        q = self.hessian_like(theta)
        noise = self.nu * (z.mean(-2) @ q)
        return 0.5 * ((theta @ q) * theta).sum(-1) + (noise * theta).sum(-1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """``loss`` (and ``train_loss``, the same number): the exact L(theta)."""
        with torch.no_grad():
            return {k: float(v) for k, v in self.evaluate_tensors(model).items()}

    def evaluate_tensors(self, model: nn.Module) -> dict[str, Tensor]:
        """:meth:`evaluate` as tensors (vmappable)."""
        value = self.exact_loss(model())
        return {"loss": value, "train_loss": value}
