"""The MNIST problems of Kingma & Ba 2015 (Adam, sec. 6.1, 6.2 and 6.4).

Pixels are scaled to [0, 1] (x / 255). Budgets are counted at 468 full batches of 128 per epoch.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import adamlab.problems.noise as noise
from adamlab.problems.base import Batch, Protocol, register
from adamlab.problems.datasets import fixed_subset
from adamlab.problems.noise import Dropout
from adamlab.problems.supervised import (
    COMMON_OPTIONS,
    DatasetProblem,
    cross_entropy,
    model_device,
    scale_pixels,
)


def flat_pixels(x: Tensor) -> Tensor:
    """``uint8 [B, 28, 28]`` -> float32 ``[B, 784]`` in [0, 1]."""
    return scale_pixels(x).reshape(x.shape[0], -1)


@register
class MnistLogReg(DatasetProblem):
    """Kingma & Ba 2015, sec. 6.1: L2-regularised multiclass logistic regression on MNIST.

    784 inputs -> 10 softmax outputs; minibatch 128, lr_t = lr / sqrt(t); 45 epochs (fig. 1).
    The paper gives no L2 strength: ``weight_decay`` defaults to 1e-4 (our choice), applied as
    ``weight_decay / 2 ||W||^2`` to the weight matrix. torch's default Linear init (seeded).
    """

    name: ClassVar[str] = "mnist.logreg"
    description: ClassVar[str] = "MNIST L2-regularised logistic regression (Adam paper 6.1)"
    dataset: ClassVar[str] = "mnist"
    protocol = Protocol(
        batch_size=128, steps=45 * 468, eval_every=468, lr_schedule="inv_sqrt",
        source="Kingma & Ba 2015, sec. 6.1, fig. 1 (45 epochs)",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "weight_decay": 1e-4}
    criterion = staticmethod(cross_entropy)

    def transform(self, inputs: Tensor) -> Tensor:
        return flat_pixels(inputs)

    def build_model(self) -> nn.Module:
        return nn.Linear(784, 10)


@register
class MnistMLP(DatasetProblem):
    """Kingma & Ba 2015, sec. 6.2: MLP 784-1000-1000-10 with ReLU and dropout on MNIST.

    Dropout (``dropout``, default 0.5; the paper does not state the rate) after each hidden layer;
    minibatch 128; constant lr; 200 epochs (fig. 2). torch's default init (seeded).
    """

    name: ClassVar[str] = "mnist.mlp"
    description: ClassVar[str] = "MNIST MLP, 2 x 1000 ReLU with dropout (Adam paper 6.2)"
    dataset: ClassVar[str] = "mnist"
    protocol = Protocol(
        batch_size=128, steps=200 * 468, eval_every=468, lr_schedule="constant",
        source="Kingma & Ba 2015, sec. 6.2, fig. 2 (200 epochs)",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "dropout": 0.5}
    criterion = staticmethod(cross_entropy)
    stochastic_forward: ClassVar[bool] = True
    noise_from_run: ClassVar[bool] = True

    def transform(self, inputs: Tensor) -> Tensor:
        return flat_pixels(inputs)

    def build_model(self) -> nn.Module:
        p = float(self.options["dropout"])
        return nn.Sequential(
            nn.Linear(784, 1000), nn.ReLU(), Dropout(p),
            nn.Linear(1000, 1000), nn.ReLU(), Dropout(p),
            nn.Linear(1000, 10),
        )


class VAE(nn.Module):
    """Kingma & Welling's VAE: 784 -> 500 softplus -> (mu, log sigma^2) in R^50 -> 500 softplus -> 784.

    ``forward(x)`` returns ``(logits, mu, logvar)`` with z = mu + sigma * eps, eps ~ N(0, I) drawn by
    :func:`adamlab.problems.noise.normal` (the run's own generator in the runner).
    """

    def __init__(self, hidden: int = 500, latent: int = 50) -> None:
        super().__init__()
        self.enc = nn.Linear(784, hidden)
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_logvar = nn.Linear(hidden, latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, 784)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = F.softplus(self.enc(x))
        mu, logvar = self.enc_mu(h), self.enc_logvar(h)
        z = mu + torch.exp(0.5 * logvar) * noise.normal(mu.shape, like=mu)
        logits = self.dec_out(F.softplus(self.dec(z)))
        return logits, mu, logvar


def negative_elbo(model: nn.Module, x: Tensor) -> Tensor:
    """Mean over the batch of -ELBO = BCE(x, decoder(z)) summed over pixels + KL(q(z|x) || N(0, I)).

    KL = -1/2 sum(1 + log sigma^2 - mu^2 - sigma^2) (Kingma & Welling 2014, appendix B); one sample of z.
    """
    logits, mu, logvar = model(x)
    rec = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)
    kl = -0.5 * (1 + logvar - mu.square() - logvar.exp()).sum(-1)
    return (rec + kl).mean()


@register
class MnistVAE(DatasetProblem):
    """Kingma & Ba 2015, sec. 6.4 (bias-correction experiment): VAE on MNIST.

    One hidden layer of 500 softplus units in encoder and decoder, a 50-d spherical Gaussian latent,
    Bernoulli decoder on the [0, 1] grey values; loss: -ELBO per example with one z sample.
    Minibatch 100 as in Kingma & Welling 2014 (the Adam paper does not restate it); 100 epochs
    (the paper reports losses after 10 and 100 epochs). ``criterion`` is None (not a
    ``criterion(model(x), y)`` loss). ``evaluate`` gives ``train_loss`` and ``test_loss`` (-ELBO on
    fixed subsets, with a fixed sampling generator (seed 0) so repeated evaluations agree).
    """

    name: ClassVar[str] = "mnist.vae"
    description: ClassVar[str] = "MNIST VAE, 500 softplus / 50-d latent (Adam paper 6.4, bias correction)"
    dataset: ClassVar[str] = "mnist"
    protocol = Protocol(
        batch_size=100, steps=100 * 600, eval_every=600, lr_schedule="constant",
        source="Kingma & Ba 2015, sec. 6.4, fig. 4 (100 epochs; batch 100 from Kingma & Welling 2014)",
    )
    criterion = None
    stochastic_forward: ClassVar[bool] = True
    noise_from_run: ClassVar[bool] = True

    def transform(self, inputs: Tensor) -> Tensor:
        return flat_pixels(inputs)

    def build_model(self) -> nn.Module:
        return VAE()

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        return negative_elbo(model, batch[0].to(model_device(model)))

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad(), noise.from_generator(torch.Generator().manual_seed(0)):
                out: dict[str, float] = {}
                for prefix, split in (("train", self.train_split), ("test", self.test_split)):
                    out[f"{prefix}_loss"] = self._elbo_split(model, split)
                return out
        finally:
            model.train(was_training)

    def _elbo_split(self, model: nn.Module, split: str) -> float:
        inputs, _ = self.data(split)
        idx = fixed_subset(int(inputs.shape[0]), int(self.options["eval_size"]))
        device = model_device(model)
        total = 0.0
        for chunk in idx.split(self.eval_batch_size):
            x = self.transform(inputs.index_select(0, chunk.to(inputs.device)).to(device))
            total += float(negative_elbo(model, x)) * x.shape[0]
        return total / int(idx.numel())
