"""Pure update rules: one function per method, tensors in, tensors out.

This package is the single source of every equation in adamlab. A rule takes the parameter, its
gradient and its state tensors (positionally) plus scalar hyperparameters (keywords), and returns the
new parameter and new state without mutating anything. Per-step scalars such as bias corrections are
computed on the host by the ``*_coefficients`` helpers and passed in, so a compiled rule is not
recompiled every step. The rules use only operators and ``Tensor`` methods, so they also run on
:class:`TensorList` groups (foreach path), under ``torch.compile``, and under ``torch.func.vmap``.
"""

from adamlab.functional.adagrad import adagrad, adagrad_denominator, adagrad_lr
from adamlab.functional.adam import adam, adam_coefficients, adam_direction
from adamlab.functional.adamax import adamax
from adamlab.functional.averaging import debiased_average, temporal_average
from adamlab.functional.common import (
    RHO_MAX,
    bias_correction,
    ema,
    msvag_rho,
    nan_sign,
    prepare_grad,
    safe_ratio,
)
from adamlab.functional.dissected import (
    PRESETS,
    direction_variance,
    dissected,
    dissected_coefficients,
    dissected_pieces,
    mssd,
    mssdva,
    msvag,
    ssd,
    svag,
    variance_adaptation_factor,
)
from adamlab.functional.rmsprop import rmsprop, rmsprop_denominator
from adamlab.functional.sgd import sgd, sgd_direction
from adamlab.functional.tensorlist import TensorList, copy_into

__all__ = [
    "PRESETS", "RHO_MAX", "TensorList", "adagrad", "adagrad_denominator", "adagrad_lr", "adam", "adam_coefficients",
    "adam_direction", "adamax", "bias_correction", "copy_into", "debiased_average", "direction_variance",
    "dissected", "dissected_coefficients", "dissected_pieces", "ema", "msvag", "msvag_rho", "mssd",
    "mssdva", "nan_sign", "prepare_grad", "rmsprop", "rmsprop_denominator", "safe_ratio", "sgd", "sgd_direction", "ssd", "svag", "temporal_average",
    "variance_adaptation_factor",
]
