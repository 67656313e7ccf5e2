"""Small building blocks shared by the problems' networks (TensorFlow-style "same" padding, inits).

DeepOBS defines its networks in TensorFlow, whose ``padding="SAME"`` pads ``max((ceil(n/s) - 1) s + k - n, 0)``
in total, the extra element on the right/bottom. PyTorch pads symmetrically, so strided layers here
pad explicitly with :class:`SamePad2d` to give the same outputs as the original networks.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """(before, after) padding of TensorFlow's ``SAME`` mode for one spatial dimension."""
    out = math.ceil(size / stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class SamePad2d(nn.Module):
    """Pad an NCHW tensor as TensorFlow's ``SAME`` mode would before a ``kernel``/``stride`` layer.

    ``value`` is the fill: 0 before convolutions, ``-inf`` before max-pooling.
    """

    def __init__(self, kernel: int, stride: int, value: float = 0.0) -> None:
        super().__init__()
        self.kernel, self.stride, self.value = kernel, stride, value

    def forward(self, x: Tensor) -> Tensor:
        top, bottom = same_padding(x.shape[-2], self.kernel, self.stride)
        left, right = same_padding(x.shape[-1], self.kernel, self.stride)
        if top == bottom == left == right == 0:
            return x
        return F.pad(x, (left, right, top, bottom), value=self.value)

    def extra_repr(self) -> str:
        return f"kernel={self.kernel}, stride={self.stride}, value={self.value}"


def conv_same(in_ch: int, out_ch: int, kernel: int, stride: int = 1) -> nn.Module:
    """A convolution with TensorFlow ``SAME`` padding."""
    if stride == 1 and kernel % 2 == 1:
        return nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2)
    return nn.Sequential(SamePad2d(kernel, stride), nn.Conv2d(in_ch, out_ch, kernel, stride=stride))


def maxpool_same(kernel: int, stride: int) -> nn.Module:
    """Max-pooling with TensorFlow ``SAME`` padding (pads with -inf, so padding is never the max)."""
    return nn.Sequential(SamePad2d(kernel, stride, value=-math.inf), nn.MaxPool2d(kernel, stride))


def truncated_normal_(tensor: Tensor, std: float) -> Tensor:
    """TensorFlow's ``truncated_normal(stddev=std)``: N(0, std^2) redrawn outside two std."""
    return nn.init.trunc_normal_(tensor, mean=0.0, std=std, a=-2 * std, b=2 * std)


def init_layers(model: nn.Module, weight_init: str, bias: float, std: float = 0.05) -> None:
    """Initialise every Conv2d/Linear of ``model``: weights by ``weight_init``, biases to ``bias``.

    ``weight_init`` is ``"xavier_normal"``, ``"xavier_uniform"`` or ``"truncated_normal"`` (with ``std``).
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Linear)):
            if weight_init == "xavier_normal":
                nn.init.xavier_normal_(module.weight)
            elif weight_init == "xavier_uniform":
                nn.init.xavier_uniform_(module.weight)
            elif weight_init == "truncated_normal":
                truncated_normal_(module.weight, std)
            else:
                raise ValueError(f"weight_init must be xavier_normal, xavier_uniform or truncated_normal, "
                                 f"got {weight_init!r}")
            if module.bias is not None:
                nn.init.constant_(module.bias, bias)
