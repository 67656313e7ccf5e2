"""Dissecting Adam P1 = DeepOBS ``fmnist_2c2d`` on Fashion-MNIST."""

from __future__ import annotations

from typing import ClassVar

from torch import Tensor, nn

from adamlab.problems.base import Protocol, register
from adamlab.problems.layers import init_layers, maxpool_same
from adamlab.problems.supervised import DatasetProblem, cross_entropy, scale_pixels


@register
class FmnistCNN(DatasetProblem):
    """Balles & Hennig 2018, P1 (DeepOBS ``fmnist_2c2d``): 2 conv + 2 dense layers on Fashion-MNIST.

    conv 32 5x5 same, ReLU, maxpool 2x2/2; conv 64 5x5 same, ReLU, maxpool 2x2/2; dense 1024 ReLU;
    dense 10. Truncated-normal (std 0.05) weights, biases 0.05 (DeepOBS). No L2. Pixels in [0, 1].
    Minibatch 64 as in Balles & Hennig; budget 100 epochs of 937 batches (DeepOBS's epochs).
    """

    name: ClassVar[str] = "fmnist.cnn"
    description: ClassVar[str] = "Fashion-MNIST 2c2d CNN (Dissecting Adam P1, DeepOBS fmnist_2c2d)"
    dataset: ClassVar[str] = "fashion_mnist"
    protocol = Protocol(
        batch_size=64, steps=100 * 937, eval_every=937, lr_schedule="constant",
        source="Balles & Hennig 2018, P1 (batch 64); DeepOBS fmnist_2c2d, 100 epochs",
    )
    criterion = staticmethod(cross_entropy)

    def transform(self, inputs: Tensor) -> Tensor:
        return scale_pixels(inputs).unsqueeze(1)

    def build_model(self) -> nn.Module:
        model = nn.Sequential(
            nn.Conv2d(1, 32, 5, padding=2), nn.ReLU(), maxpool_same(2, 2),  # 28 -> 14
            nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), maxpool_same(2, 2),  # 14 -> 7
            nn.Flatten(),
            nn.Linear(7 * 7 * 64, 1024), nn.ReLU(),
            nn.Linear(1024, 10),
        )
        init_layers(model, "truncated_normal", bias=0.05, std=0.05)
        return model
