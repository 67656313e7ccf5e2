"""IMDB bag-of-words logistic regression (Kingma & Ba 2015, sec. 6.1, fig. 1 right)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adamlab.problems.base import Protocol, register
from adamlab.problems.noise import Dropout
from adamlab.problems.supervised import COMMON_OPTIONS, DatasetProblem


def binary_logistic(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean logistic loss; ``outputs`` ``[B, 1]`` (or ``[B]``) logits, ``targets`` ``[B]`` in {0, 1}."""
    return F.binary_cross_entropy_with_logits(outputs.reshape(-1), targets.reshape(-1).to(outputs.dtype))


@register
class ImdbBowLogReg(DatasetProblem):
    """Kingma & Ba 2015, sec. 6.1: logistic regression on IMDB bags of words with input dropout.

    Input: the binary bag of words over the 10,000 most frequent words (``adamlab.data``, uint8),
    converted to float32 per batch; 50% dropout on the inputs (``dropout``); one logit, logistic
    loss; ``weight_decay`` 1e-4 L2 on the weights (our choice, as for ``mnist.logreg``);
    minibatch 128, lr_t = lr / sqrt(t); 160 epochs of 195 batches (fig. 1).
    """

    name: ClassVar[str] = "imdb.bow_logreg"
    description: ClassVar[str] = "IMDB 10,000-word bag-of-words logistic regression, 50% input dropout (6.1)"
    dataset: ClassVar[str] = "imdb"
    protocol = Protocol(
        batch_size=128, steps=160 * 195, eval_every=195, lr_schedule="inv_sqrt",
        source="Kingma & Ba 2015, sec. 6.1, fig. 1 (160 epochs)",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "dropout": 0.5, "weight_decay": 1e-4}
    criterion = staticmethod(binary_logistic)
    stochastic_forward: ClassVar[bool] = True
    noise_from_run: ClassVar[bool] = True

    def transform(self, inputs: Tensor) -> Tensor:
        return inputs.to(torch.float32)

    def predict(self, outputs: Tensor) -> Tensor:
        return (outputs.reshape(-1) > 0).to(torch.int64)

    def build_model(self) -> nn.Module:
        vocab = int(self.data(self.train_split)[0].shape[1])
        return nn.Sequential(Dropout(float(self.options["dropout"])), nn.Linear(vocab, 1))
