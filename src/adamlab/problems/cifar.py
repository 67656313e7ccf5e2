"""The CIFAR problems: Kingma & Ba's CNN (Adam 6.3), DeepOBS cifar10_3c3d (Dissecting Adam P2)
and DeepOBS cifar100_allcnnc (P3).

Images are standardised per image as TensorFlow's ``per_image_standardization`` (DeepOBS's
preprocessing): (x - mean) / max(std, 1/sqrt(3072)) over each image's pixels and channels, after
scaling to [0, 1]. DeepOBS's training-time data augmentation (random crops, flips, colour jitter)
is not applied.
"""

from __future__ import annotations

from typing import Any, ClassVar

from torch import Tensor, nn

from adamlab.problems.base import Protocol, register
from adamlab.problems.layers import conv_same, init_layers, maxpool_same
from adamlab.problems.noise import Dropout
from adamlab.problems.options import check_float
from adamlab.problems.supervised import COMMON_OPTIONS, DatasetProblem, cross_entropy, scale_pixels


def standardize_images(x: Tensor) -> Tensor:
    """``uint8 [B, C, H, W]`` -> float32, each image standardised to zero mean and unit variance."""
    x = scale_pixels(x)
    flat = x.reshape(x.shape[0], -1)
    mean = flat.mean(1, keepdim=True)
    std = flat.std(1, unbiased=False, keepdim=True).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return ((flat - mean) / std).reshape(x.shape)


class _CifarProblem(DatasetProblem):
    def transform(self, inputs: Tensor) -> Tensor:
        return standardize_images(inputs)


@register
class Cifar10CNN(_CifarProblem):
    """Kingma & Ba 2015, sec. 6.3: CNN c64-c64-c128-1000 on CIFAR-10.

    Three stages of 5x5 convolution (same padding, ReLU) and 3x3 max-pooling with stride 2, then a
    fully connected layer of 1000 ReLUs and a 10-way softmax. Dropout on the input (``input_dropout``
    0.2) and on the fully connected layer (``dropout`` 0.5); the paper gives no rates, and whitens the
    inputs where we standardise per image. Minibatch 128, 45 epochs (fig. 3). torch's default init.
    """

    name: ClassVar[str] = "cifar10.cnn"
    description: ClassVar[str] = "CIFAR-10 CNN c64-c64-c128-1000 with dropout (Adam paper 6.3)"
    dataset: ClassVar[str] = "cifar10"
    protocol = Protocol(
        batch_size=128, steps=45 * 390, eval_every=390, lr_schedule="constant",
        source="Kingma & Ba 2015, sec. 6.3, fig. 3 (45 epochs)",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "input_dropout": 0.2, "dropout": 0.5}
    criterion = staticmethod(cross_entropy)
    stochastic_forward: ClassVar[bool] = True
    noise_from_run: ClassVar[bool] = True

    def validate_options(self) -> None:
        check_float("input_dropout", self.options["input_dropout"], low=0.0, high=1.0, high_open=True)

    def build_model(self) -> nn.Module:
        return nn.Sequential(
            Dropout(float(self.options["input_dropout"])),
            nn.Conv2d(3, 64, 5, padding=2), nn.ReLU(), maxpool_same(3, 2),  # 32 -> 16
            nn.Conv2d(64, 64, 5, padding=2), nn.ReLU(), maxpool_same(3, 2),  # 16 -> 8
            nn.Conv2d(64, 128, 5, padding=2), nn.ReLU(), maxpool_same(3, 2),  # 8 -> 4
            nn.Flatten(),
            nn.Linear(4 * 4 * 128, 1000), nn.ReLU(), Dropout(float(self.options["dropout"])),
            nn.Linear(1000, 10),
        )


@register
class Cifar10ThreeCThreeD(_CifarProblem):
    """Dissecting Adam P2 = DeepOBS ``cifar10_3c3d``: 3 conv + 3 dense layers on CIFAR-10.

    conv 64 5x5 valid, maxpool 3x3/2 same; conv 96 3x3 valid, maxpool 3x3/2 same; conv 128 3x3 same,
    maxpool 3x3/2 same; dense 512, 256, 10; ReLUs. Xavier-normal conv and Xavier-uniform dense
    weights, zero biases (DeepOBS); L2 ``weight_decay`` 0.002 on the weights. Minibatch 128,
    100 epochs (DeepOBS's recommended budget).
    """

    name: ClassVar[str] = "cifar10.3c3d"
    description: ClassVar[str] = "CIFAR-10 3c3d CNN (Dissecting Adam P2, DeepOBS cifar10_3c3d)"
    dataset: ClassVar[str] = "cifar10"
    protocol = Protocol(
        batch_size=128, steps=100 * 390, eval_every=390, lr_schedule="constant",
        source="Balles & Hennig 2018, P2; DeepOBS cifar10_3c3d (Schneider et al. 2019), 100 epochs",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "weight_decay": 0.002}
    criterion = staticmethod(cross_entropy)

    def build_model(self) -> nn.Module:
        model = nn.Sequential(
            nn.Conv2d(3, 64, 5), nn.ReLU(), maxpool_same(3, 2),  # 32 -> 28 -> 14
            nn.Conv2d(64, 96, 3), nn.ReLU(), maxpool_same(3, 2),  # 14 -> 12 -> 6
            conv_same(96, 128, 3), nn.ReLU(), maxpool_same(3, 2),  # 6 -> 6 -> 3
            nn.Flatten(),
            nn.Linear(3 * 3 * 128, 512), nn.ReLU(),
            nn.Linear(512, 256), nn.ReLU(),
            nn.Linear(256, 10),
        )
        for m in model.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.xavier_normal_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)
        return model


class GlobalMean(nn.Module):
    """Average over the spatial dimensions: ``[B, C, H, W] -> [B, C]``."""

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=(2, 3))


@register
class Cifar100AllCNNC(_CifarProblem):
    """Dissecting Adam P3 = DeepOBS ``cifar100_allcnnc``: All-CNN-C (Springenberg et al. 2015).

    dropout 0.2; 3 x conv 96 3x3 (the third with stride 2); dropout 0.5; 3 x conv 192 3x3 (the
    third with stride 2); dropout 0.5; conv 192 3x3 valid, conv 192 1x1, conv 100 1x1; ReLUs;
    global average. Xavier-normal weights, biases 0.1 (DeepOBS); L2 ``weight_decay`` 5e-4.
    Minibatch 256, 350 epochs (DeepOBS).
    """

    name: ClassVar[str] = "cifar100.allcnnc"
    description: ClassVar[str] = "CIFAR-100 All-CNN-C (Dissecting Adam P3, DeepOBS cifar100_allcnnc)"
    dataset: ClassVar[str] = "cifar100"
    protocol = Protocol(
        batch_size=256, steps=350 * 195, eval_every=195, lr_schedule="constant",
        source="Balles & Hennig 2018, P3; DeepOBS cifar100_allcnnc (Schneider et al. 2019), 350 epochs",
    )
    default_options: ClassVar[dict[str, Any] | None] = {**COMMON_OPTIONS, "weight_decay": 5e-4}
    criterion = staticmethod(cross_entropy)
    stochastic_forward: ClassVar[bool] = True
    noise_from_run: ClassVar[bool] = True

    def build_model(self) -> nn.Module:
        model = nn.Sequential(
            Dropout(0.2),
            conv_same(3, 96, 3), nn.ReLU(),
            conv_same(96, 96, 3), nn.ReLU(),
            conv_same(96, 96, 3, stride=2), nn.ReLU(),  # 32 -> 16
            Dropout(0.5),
            conv_same(96, 192, 3), nn.ReLU(),
            conv_same(192, 192, 3), nn.ReLU(),
            conv_same(192, 192, 3, stride=2), nn.ReLU(),  # 16 -> 8
            Dropout(0.5),
            nn.Conv2d(192, 192, 3), nn.ReLU(),  # 8 -> 6
            nn.Conv2d(192, 192, 1), nn.ReLU(),
            nn.Conv2d(192, 100, 1), nn.ReLU(),
            GlobalMean(),
        )
        init_layers(model, "xavier_normal", bias=0.1)
        return model

