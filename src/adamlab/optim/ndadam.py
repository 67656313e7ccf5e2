"""``NDAdam``: normalized direction-preserving Adam (Zhang, Ma, Li & Wu 2017, arXiv:1709.04546)."""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from adamlab import functional as F
from adamlab.optim import fast
from adamlab.optim import validation as V
from adamlab.optim.base import AdamlabOptimizer
from adamlab.optim.hyper import MAXIMIZE, Hyper
from adamlab.optim.registry import declare
from adamlab.optim.theory import adam_step_bound


class NDAdam(AdamlabOptimizer):
    r"""ND-Adam: each hidden unit's input weight vector stays on the unit sphere; see :mod:`adamlab.functional.ndadam`.

    .. math::
        g = \bar g - (\bar g \cdot w) w, \quad m \leftarrow \mathrm{EMA}_{\beta_1}(g), \quad
        v \leftarrow \mathrm{EMA}_{\beta_2}(\|g\|^2), \quad
        w \leftarrow \frac{w - \alpha \hat m / (\sqrt{\hat v} + \epsilon)}{\|w - \alpha \hat m / (\sqrt{\hat v} + \epsilon)\|}

    **Which tensors are weight vectors.** The param-group option ``normalized`` (default True). In a
    group with ``normalized=True`` every tensor with 2 or more dimensions is a stack of weight vectors
    along dimension 0: vector ``i`` is ``weight[i]`` flattened, i.e. the rows of a ``Linear`` weight
    ``(out, in)`` and the output channels of a ``Conv`` weight ``(out, in, *kernel)``, the paper's
    "input weights of a hidden unit". Tensors with fewer dimensions (biases, norm gains, scalars) and
    weights whose vectors have a single element (``Linear(1, n)``) are stepped with plain Adam, as the
    paper does for everything that is not such a vector. A group with ``normalized=False`` is all plain
    Adam: put there the output layer (the paper does not normalise it) and any tensor whose dimension 0
    is not its output unit (``ConvTranspose`` weights are ``(in, out, ...)``; embeddings)::

        NDAdam([{"params": [l.weight for l in hidden_layers], "lr": 0.05},
                {"params": other_params, "normalized": False}], lr=1e-3)

    The choice is made when a tensor's state is created (its first step): the second moment of a weight
    vector has shape ``(n, 1, ..., 1)``, one entry per vector, and the update rule reads it from there.
    Weights are expected on the unit sphere (the paper initialises them so); one that is not is put
    there by its first step (the rule uses :math:`w/\|w\|`), which changes the function a network
    without normalisation layers computes. The paper's other change, regularised softmax logits, is a
    change to the model and is not part of this optimizer.

    Defaults: Adam's, ``lr=1e-3, betas=(0.9, 0.999), eps=1e-8``. The authors' code uses 50x the base lr
    for the weight vectors; give them their own group and lr. ``weight_decay`` (L2) has no effect on
    weight vectors (the projection removes it exactly). No compiled kernel: the compiled path flattens
    each tensor and would lose its vectors, so ``fused=True`` warns once and uses the foreach path.
    """

    rule = F.ndadam
    hypers = (
        Hyper("lr", 1e-3, V.learning_rate),
        Hyper("betas", (0.9, 0.999), V.beta_pair, unpack=("beta1", "beta2")),
        Hyper("eps", 1e-8, V.nonnegative),
        Hyper("weight_decay", 0.0, V.nonnegative),
        Hyper("normalized", True, V.boolean, passed=False),  # read by initial_state
        MAXIMIZE,
    )
    #: Its constructor takes no ``differentiable=`` (its groups get ``differentiable=False``).
    options = ("foreach", "fused", "nonfinite")
    #: The param-group option that marks a group's tensors as weight vectors to keep on the unit sphere.
    normalize_key = "normalized"
    #: The step taken apart (:func:`adamlab.dissect.decompose`): Adam's pieces, plus the step back
    #: onto the sphere for weight vectors.
    pieces = F.ndadam_step_pieces
    #: What theory predicts for :mod:`adamlab.claims` (keys: :mod:`adamlab.optim.theory`). The property
    #: checks step one 1-D parameter vector, which ND-Adam steps with Adam: Adam's predictions. (On weight
    #: vectors ND-Adam is *not* invariant to a diagonal rescaling of the gradient: the projection and the
    #: one v per vector mix coordinates.) The ill-conditioning records (seed 000) are ND-Adam's own claim.
    theory = {
        "rescaling_invariance": lambda g: g["weight_decay"] == 0,
        "step_bound": True,
        "step_bound.value": lambda g: adam_step_bound(*g["betas"]),
        "constant_gradient_ratio": lambda g: g["weight_decay"] == 0,
        "cautiousness": True,
        "param_scale_lr_equivalence": lambda g: g["weight_decay"] == 0,
        "ill_conditioning": False,
        "ill_conditioning.why": "the rescaling is compensated by the output layer, which ND-Adam does not "
                                "normalise (its unit-sphere projection changes A and B differently)",
        "ill_conditioning_normalized": True,
        "ill_conditioning_normalized.why": "ND-Adam keeps each normalised input vector on the unit sphere",
    }

    def state_slots(self, group: dict[str, Any]) -> tuple[str | None, ...]:
        return ("exp_avg", "exp_avg_sq")

    def initial_state(self, name: str, param: Tensor, group: dict[str, Any]) -> Tensor:
        # A complex weight is stepped as its real pairs (like torch.optim), so its vectors are those of
        # the real view and their second moments are real: one per vector, not per real/imaginary part.
        real = torch.view_as_real(param) if param.is_complex() else param
        if name == "exp_avg_sq" and group["normalized"] and F.is_vector_weight(real.shape):
            if type(param) not in (Tensor, torch.nn.Parameter) and hasattr(param, "placements"):
                return _row_sharded_vector_state(param)
            return torch.zeros(F.vector_state_shape(real.shape), dtype=real.dtype, device=param.device)
        return super().initial_state(name, param, group)

    def step_kwargs(self, group: dict[str, Any], step: int) -> dict[str, Any]:
        beta1, beta2 = group["betas"]
        return F.adam_coefficients(step, beta1, beta2)

    @staticmethod
    def _use_compiled(group: dict[str, Any], params: list[Tensor], step: int) -> bool:
        if group.get("fused") is True:
            fast.warn_fallback("ND-Adam has no compiled kernel: its rule sums over each weight vector")
        return False


def _row_sharded_vector_state(param: Any) -> Tensor:
    """The per-vector second moment of a ``DTensor`` weight, sharded like its rows.

    ND-Adam sums over each weight vector ``w[i]`` (a row), which stays a local sum where every rank holds
    whole rows: ``Shard(0)`` (FSDP2's layout) or ``Replicate``. Any other placement splits vectors
    across ranks, which the rule cannot see: refused.
    """
    from torch.distributed.tensor import DTensor, Replicate, Shard

    if param.is_complex():
        raise ValueError("NDAdam: complex DTensor weights with normalized=True are not supported; put them in "
                         "a param group with normalized=False")
    if not all(isinstance(p, Replicate) or (isinstance(p, Shard) and p.dim == 0) for p in param.placements):
        raise ValueError(f"NDAdam: a normalized weight must keep its rows (weight vectors) whole on every rank; "
                         f"got placements {tuple(param.placements)}, allowed: Shard(0) (FSDP2's default) or "
                         "Replicate. Put this parameter in a param group with normalized=False, or shard it by rows")
    local = param.to_local()
    shape = F.vector_state_shape(param.shape)
    stride = tuple(math.prod(shape[i + 1:]) for i in range(len(shape)))
    return DTensor.from_local(torch.zeros(F.vector_state_shape(local.shape), dtype=local.dtype, device=local.device),
                              param.device_mesh, param.placements, run_check=False, shape=torch.Size(shape),
                              stride=stride)


declare("ndadam", NDAdam, {}, "ND-Adam: unit-norm weight vectors, one second moment per vector (Zhang et al.)", order=70)
