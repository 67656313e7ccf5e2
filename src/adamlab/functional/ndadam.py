r"""ND-Adam: normalized direction-preserving Adam (Zhang, Ma, Li & Wu, arXiv:1709.04546, 2017/2018).

The paper (as we recall it; see "Uncertainty" below) observes two problems of Adam for the input weight
vector :math:`w_i \in \mathbb R^k` of a hidden unit :math:`i` (the :math:`i`-th row of a linear layer's
weight, or the :math:`i`-th output channel of a convolution): (1) Adam's per-coordinate second moments
rescale the coordinates of the update, so its *direction* leaves the span of the vector's past
gradients (where SGD's stays), and (2) with batch normalisation after the unit, the function
does not depend on :math:`\|w_i\|`, but the effective step size :math:`\alpha/\|w_i\|` does, so the
weight norm, and with it the effective learning rate, drifts: an ill-conditioning that Adam's invariance
to rescaled *gradients* does not remove. ND-Adam keeps each :math:`w_i` on the unit sphere, adapts one
second moment per vector, and steps along the tangent space. Its Algorithm, for each vector
:math:`w_i` with :math:`\|w_{i,0}\| = 1` and :math:`t = 1, 2, \ldots`:

.. math::
    \bar g_t = \nabla_{w_i} f_t(w_{i,t-1}), \qquad
    g_t = \bar g_t - (\bar g_t \cdot w_{i,t-1})\, w_{i,t-1} \quad\text{(projection onto the tangent space)},

    m_t = \beta_1 m_{t-1} + (1-\beta_1)\, g_t, \qquad
    v_t = \beta_2 v_{t-1} + (1-\beta_2)\, \|g_t\|_2^2 \quad\text{(one scalar per vector)},

    \hat m_t = \frac{m_t}{1-\beta_1^t}, \qquad \hat v_t = \frac{v_t}{1-\beta_2^t}, \qquad
    \bar w_{i,t} = w_{i,t-1} - \alpha_t \frac{\hat m_t}{\sqrt{\hat v_t} + \epsilon}, \qquad
    w_{i,t} = \frac{\bar w_{i,t}}{\|\bar w_{i,t}\|_2}.

Every other parameter (biases, batch-norm gains and shifts, the output layer, anything that is not a
hidden unit's input weight vector) is stepped with plain Adam (:func:`adamlab.functional.adam.adam`).

Conventions of this implementation
----------------------------------
- **Which tensors are weight vectors** is carried by the shape of ``exp_avg_sq``: a tensor holds weight
  vectors when ``exp_avg_sq`` has size 1 along the dimensions a vector spans, e.g. shape ``(n, 1, ..., 1)``
  for a weight of shape ``(n, ...)`` (:func:`vector_state_shape`: the vectors are the slices ``w[i]``, the
  paper's convention of one vector per output unit or output channel). All reductions are
  ``sum_to_size(exp_avg_sq.shape)``, so a batch of stacked runs (``(K, n, 1)`` against ``(K, n, k)``) also
  works. When ``exp_avg_sq`` has the parameter's shape, the tensor is stepped with Adam. Which tensors
  get vector state is the optimizer class's choice (:class:`adamlab.optim.NDAdam`: the ``normalized``
  param-group option).
- **Start off the sphere.** The algorithm assumes :math:`\|w_{i,t-1}\| = 1` (the paper initialises the
  weights so). We step from :math:`\hat w = w/\|w\|` with the gradient :math:`\|w\|\,\bar g`, which
  is the identity on the sphere (up to rounding) and, off it, is the algorithm started at
  :math:`\hat w`: for a unit followed by a normalisation layer (:math:`f(w) = f(w/\|w\|)`, the setting of
  the paper) :math:`\|w\|\,\nabla f(w) = \nabla f(\hat w)` exactly, so the trajectory does not depend
  on the initial norms at all. Without such a layer the first step changes the function the unit
  computes (it rescales the unit by :math:`1/\|w\|`). A zero vector stays defined: its direction is
  taken as 0 (so :math:`g_t = \bar g_t`), never NaN.
- **Weight decay** (L2, ``weight_decay``) adds :math:`\lambda w` to the gradient of a weight vector,
  which the projection removes exactly: it only acts on the Adam-stepped tensors (the norm is fixed
  anyway).
- **Left out:** the paper's second proposal, regularising the softmax logits (batch-normalised softmax
  / a logit scale or temperature, and an L2 penalty on the logits), is a change to the *model*, not to
  the optimizer; it is not here.

Uncertainty
-----------
This docstring is written from our recollection of the paper, checked against the authors' public code
(github.com/zj10/ND-Adam, which sums ``g * w`` and ``g * g`` over each vector's axes, keeps ``m`` per
coordinate and ``v`` per vector, and renormalises after the step). Points we are not sure of: whether
the paper's :math:`\epsilon` sits outside the root as above (the authors' PyTorch port folds the bias
corrections into the step size, i.e. :math:`\epsilon` on :math:`\sqrt{v_t}`, while their TensorFlow code
uses :math:`\sqrt{\hat v_t} + \epsilon` as above, which we follow), and the default learning rates: the
authors' TensorFlow code uses :math:`50\alpha` for the weight vectors and :math:`\alpha` for the other
parameters; here each param group has its own ``lr`` (give the normalised weights their own group).
The authors are Zijun Zhang, Lin Ma, Zongpeng Li and Chuan Wu.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, TypeVar

from adamlab.functional.adam import adam, adam_direction, adam_step_pieces
from adamlab.functional.common import ema, prepare_grad, safe_ratio, update_rule
from adamlab.functional.tensorlist import TensorList

T = TypeVar("T")

__all__ = ["holds_vectors", "is_vector_weight", "ndadam", "ndadam_step_pieces", "unit_vectors",
           "vector_state_shape", "vector_sum"]


def is_vector_weight(shape: Sequence[int]) -> bool:
    """Whether a parameter of ``shape`` is a stack of weight vectors ``w[i]`` (2 or more dims, each
    vector with at least 2 elements; a 1-element "vector" on the unit sphere could only flip its sign)."""
    return len(shape) >= 2 and math.prod(shape[1:]) > 1


def vector_state_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """Shape of ND-Adam's second moment for a weight of ``shape``: one entry per vector ``w[i]``."""
    return (int(shape[0]),) + (1,) * (len(shape) - 1)


def holds_vectors(param: Any, exp_avg_sq: Any) -> bool:
    """Whether ``param`` (or any tensor of its shape) is stepped as weight vectors: its second moment
    has another shape (one entry per vector)."""
    return tuple(exp_avg_sq.shape) != tuple(param.shape)


def vector_sum(x: T, like: Any) -> T:
    """Sum ``x`` over each weight vector: ``x.sum_to_size(like.shape)`` (tensor by tensor on a TensorList)."""
    if isinstance(x, TensorList):
        return TensorList(a.sum_to_size(b.shape) for a, b in zip(x, like, strict=True))  # type: ignore[return-value]
    return x.sum_to_size(like.shape)  # type: ignore[attr-defined]


def unit_vectors(w: T, like: Any) -> T:
    r""":math:`w_i / \|w_i\|_2` for every vector (a zero vector gives 0, never NaN)."""
    return safe_ratio(w, vector_sum(w * w, like).sqrt())


def _sphere_step(param: T, grad: T, exp_avg: T, exp_avg_sq: T, *, lr: Any, beta1: Any, beta2: Any, eps: Any,
                 weight_decay: float, maximize: bool, bias_correction1: Any,
                 bias_correction2: Any) -> tuple[T, T, T]:
    grad = prepare_grad(param, grad, weight_decay=weight_decay, maximize=maximize)
    norm = vector_sum(param * param, exp_avg_sq).sqrt()
    w = safe_ratio(param, norm)
    grad = grad.mul(norm.where(norm > 0, 1.0))  # the gradient at w/||w|| of a scale-invariant unit
    tangent = grad - vector_sum(grad * w, exp_avg_sq).mul(w)  # g - (g . w) w
    exp_avg = ema(exp_avg, tangent, beta1)
    exp_avg_sq = ema(exp_avg_sq, vector_sum(tangent * tangent, exp_avg_sq), beta2)
    sign, gamma = adam_direction(exp_avg, exp_avg_sq, eps=eps, bias_correction1=bias_correction1,
                                 bias_correction2=bias_correction2)
    return unit_vectors(w - lr * (sign * gamma), exp_avg_sq), exp_avg, exp_avg_sq


def _adam_step(param: T, grad: T, exp_avg: T, exp_avg_sq: T, **kwargs: Any) -> tuple[T, T, T]:
    new_param, exp_avg, exp_avg_sq, _ = adam(param, grad, exp_avg, exp_avg_sq, **kwargs)
    return new_param, exp_avg, exp_avg_sq


@update_rule(step_scalars=("lr", "bias_correction1", "bias_correction2"))
def ndadam(
    param: T,
    grad: T,
    exp_avg: T,
    exp_avg_sq: T,
    *,
    lr: Any,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    eps: Any = 1e-8,
    weight_decay: float = 0.0,
    maximize: bool = False,
    bias_correction1: Any = 1.0,
    bias_correction2: Any = 1.0,
) -> tuple[T, T, T]:
    r"""One ND-Adam step (module docstring); returns ``(param, exp_avg, exp_avg_sq)``.

    Weight vectors (``exp_avg_sq`` of shape :func:`vector_state_shape`) take the sphere step

    .. math::
        g = \bar g - (\bar g\cdot\hat w)\hat w, \quad m \leftarrow \mathrm{EMA}_{\beta_1}(g), \quad
        v \leftarrow \mathrm{EMA}_{\beta_2}(\|g\|^2), \quad
        w \leftarrow \frac{\hat w - \alpha\, \hat m/(\sqrt{\hat v}+\epsilon)}{\|\hat w - \alpha\, \hat m/(\sqrt{\hat v}+\epsilon)\|},

    with :math:`\hat w = w/\|w\|` and :math:`\bar g` multiplied by :math:`\|w\|` (the identity on the
    sphere; see "Start off the sphere"); every other tensor the Adam step of :func:`~adamlab.functional.adam.adam`
    (the same function, not a copy). ``bias_correction1`` and ``bias_correction2`` are
    :math:`1-\beta_1^t` and :math:`1-\beta_2^t` (:func:`~adamlab.functional.adam.adam_coefficients`).
    A :class:`TensorList` may mix both kinds.
    """
    kwargs = dict(lr=lr, beta1=beta1, beta2=beta2, eps=eps, weight_decay=weight_decay, maximize=maximize,
                  bias_correction1=bias_correction1, bias_correction2=bias_correction2)
    if not isinstance(param, TensorList):
        step = _sphere_step if holds_vectors(param, exp_avg_sq) else _adam_step
        return step(param, grad, exp_avg, exp_avg_sq, **kwargs)
    columns = (param, grad, exp_avg, exp_avg_sq)
    out: list[list[Any]] = [[None] * len(param) for _ in range(3)]
    kinds = [holds_vectors(p, v) for p, v in zip(param, exp_avg_sq, strict=True)]
    for kind, step in ((True, _sphere_step), (False, _adam_step)):
        index = [i for i, k in enumerate(kinds) if k is kind]
        if index:
            parts = step(*(TensorList(c.items[i] for i in index) for c in columns), **kwargs)
            for j, part in enumerate(parts):
                for i, value in zip(index, part, strict=True):
                    out[j][i] = value
    return TensorList(out[0]), TensorList(out[1]), TensorList(out[2])  # type: ignore[return-value]


def ndadam_step_pieces(
    param: Any,
    grad: Any,
    exp_avg: Any,
    exp_avg_sq: Any,
    *,
    lr: Any,
    eps: Any = 1e-8,
    weight_decay: float = 0.0,
    bias_correction1: Any = 1.0,
    bias_correction2: Any = 1.0,
    **rest: Any,
) -> dict[str, Any]:
    r"""An ND-Adam step taken apart (arguments as :func:`ndadam`'s, state after the step).

    Weight vectors: direction :math:`\operatorname{sign}(\hat m)`, magnitude :math:`\alpha`,
    :math:`\gamma = |\hat m|/(\sqrt{\hat v}+\epsilon)` (one :math:`\hat v` per vector), and ``decay`` the
    step back onto the sphere, :math:`\delta = (w_t - \bar w_t) + (\hat w_{t-1} - w_{t-1})`, which needs
    ``param`` (the parameter before the step). No :math:`\hat\eta^2` (there is no per-coordinate second
    moment). Other tensors: :func:`~adamlab.functional.adam.adam_step_pieces`.
    """
    coeffs = dict(bias_correction1=bias_correction1, bias_correction2=bias_correction2)
    if not holds_vectors(exp_avg, exp_avg_sq):
        return adam_step_pieces(param, grad, exp_avg, exp_avg_sq, lr=lr, eps=eps, weight_decay=weight_decay,
                                **coeffs)
    if param is None:
        raise ValueError("previous: ND-Adam's step back onto the unit sphere needs the parameters before the "
                         "step; use StepRecorder(optimizer)")
    sign, gamma = adam_direction(exp_avg, exp_avg_sq, eps=eps, **coeffs)
    w = unit_vectors(param, exp_avg_sq)
    moved = w - lr * (sign * gamma)
    decay = (unit_vectors(moved, exp_avg_sq) - moved) + (w - param)
    return dict(kind="sign", direction=sign, magnitude=float(lr), gamma=gamma, decay=decay)
