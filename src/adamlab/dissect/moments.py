r"""Per-example gradient moments in the training backward pass, by module hooks (no per-example gradients kept).

For a mini-batch of :math:`n` examples and a parameter :math:`\theta`, a :class:`MomentRecorder` accumulates

.. math::
    S_1 = \sum_{k=1}^n g^{(k)}, \qquad S_2 = \sum_{k=1}^n \big(g^{(k)}\big)^2 \quad\text{(elementwise)},

where :math:`g^{(k)} = \nabla_\theta \ell_k` is the gradient of example :math:`k`'s own loss. A module's
per-example gradient is a product of what the module saw in the forward pass (its input :math:`a_k`) and the
signal backpropagated to its output (:math:`\delta_k = \partial \ell_k / \partial y_k`), so both sums come
from module hooks during the ordinary ``loss.backward()``:

=================  ===================================================================================
module             rule (per example :math:`k`; sums over positions :math:`t` inside an example)
=================  ===================================================================================
``Linear``         :math:`G_k = \sum_t \delta_{kt} a_{kt}^\top`; for 2-d inputs
                   :math:`S_2 = (\delta^{\odot 2})^\top a^{\odot 2}` -- one extra matrix product
``Conv1d/2d``      :math:`G_k = \delta_k\, U(a_k)^\top` with :math:`U` the unfolded input (per group)
``Embedding``      row :math:`v` of :math:`G_k` is :math:`\sum_{t:\,i_{kt} = v} \delta_{kt}`
``LayerNorm``      :math:`\sum_t \delta_{kt} \odot \hat x_{kt}` (weight), :math:`\sum_t \delta_{kt}` (bias)
``BatchNorm``      eval mode only: as LayerNorm with :math:`\hat x` from the running statistics
bias terms         :math:`\sum_t \delta_{kt}`
=================  ===================================================================================

Where no closed form of :math:`S_2` exists (inputs with positions, convolutions), per-example gradients
are formed for at most ``chunk_elements / layer size`` examples at a time, so memory stays
O(parameters + activations), never O(batch x parameters). Any other module with parameters falls back
to ``torch.func`` on that module alone (``vmap`` of the vector-Jacobian product over the recorded inputs
and output signals; single-tensor input and output); the modules that fell back are listed in
:attr:`MomentRecorder.fell_back`, and those that could not be handled at all (BatchNorm in training mode,
a module called twice in one forward pass, a parameter shared between modules, several inputs) in
:attr:`MomentRecorder.skipped`, with the reason.

Loss reduction. :math:`\delta` is the gradient of the loss the caller differentiates. With
``reduction="mean"`` (:math:`L = \frac1n\sum_k \ell_k`, PyTorch's default) every backpropagated signal
carries a factor :math:`1/n`, undone here by multiplying it by :math:`n`; with ``reduction="sum"``
(:math:`L = \sum_k \ell_k`) nothing is rescaled. The batch dimension is dimension 0 of every input.

Dropout in training mode: the hooks see the real activations of the real forward pass, so each example
keeps its own mask, exactly as in the step.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from adamlab.dissect.stats import (
    GradientStats,
    check_sample,
    empirical_sign_agreement,
    per_example_grads,
    resample_weights,
    stats_from_moments,
)

REDUCTIONS = ("mean", "sum")
CHUNK_ELEMENTS = 1 << 22  # at most this many numbers of per-example gradients at a time
CONV_CHUNK_EXAMPLES = 32  # examples per grouped convolution of the Conv rule (a constant: same bits everywhere)
_BATCHNORM = nn.modules.batchnorm._BatchNorm
#: The autograd nodes of ``nn.Linear`` on a 2-d input (with and without bias), whose weight (and bias)
#: gradients give S_1 (the Linear rule reads them instead of a second matrix product).
_LINEAR_NODES = ("AddmmBackward0", "MmBackward0")
BATCHNORM_TRAINING = ("BatchNorm in training mode couples the examples (no per-example gradient); "
                      "call .eval() on it")


@dataclass
class Moments:
    """Accumulated :math:`S_1 = \\sum_k g^{(k)}`, :math:`S_2 = \\sum_k (g^{(k)})^2` and the count :math:`n`."""

    s1: Tensor
    s2: Tensor
    n: int = 0

    def mean(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """:math:`\\bar g = S_1/n` (:func:`moment_mean`; float64 unless ``dtype`` says otherwise)."""
        return moment_mean(self.s1, self.n, dtype)

    def variance(self, dtype: torch.dtype = torch.float64) -> Tensor:
        """Unbiased per-example variance (:func:`moment_variance`; float64 unless ``dtype`` says otherwise)."""
        return moment_variance(self.s1, self.s2, self.n, dtype)


def moment_mean(s1: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The per-example mean :math:`\\bar g = S_1/n`, in ``dtype`` (a fresh tensor)."""
    return s1.to(dtype, copy=True).div_(n)


def moment_variance(s1: Tensor, s2: Tensor, n: int, dtype: torch.dtype) -> Tensor:
    """The unbiased per-example variance :math:`(S_2 - S_1^2/n)/(n-1)`, clamped at 0, in ``dtype``.

    Two fresh tensors, the operations in place (see :mod:`adamlab.dissect.stats`). With the mean, the
    one place the moments become statistics: :class:`Moments` and the fused kernel of
    :class:`adamlab.dissect.step_stats.StepStats` both call it."""
    s1_sq = s1.to(dtype, copy=True).square_().div_(n)
    return s2.to(dtype, copy=True).sub_(s1_sq).div_(n - 1).clamp_(min=0.0)


def _supported(module: nn.Module) -> str | None:
    """Why ``module`` has no closed-form rule (None: it has one)."""
    if isinstance(module, nn.Linear):
        return None
    if isinstance(module, (nn.Conv1d, nn.Conv2d)):
        if isinstance(module.padding, str) or module.padding_mode != "zeros":
            return "convolution with string padding or a non-zero padding mode"
        return None
    if isinstance(module, nn.Embedding):
        return "Embedding with scale_grad_by_freq" if module.scale_grad_by_freq else None
    if isinstance(module, nn.LayerNorm):
        return None
    if isinstance(module, _BATCHNORM):
        return None
    return f"no rule for {type(module).__name__}"


def _in_func_transform() -> bool:
    """Whether a ``torch.func`` transform (vmap, grad, ...) is running: the modules it calls (a recorder's
    fallback, :func:`~adamlab.dissect.stats.per_example_grads`, a user's vmap) are not the model's forward
    pass, so every recorder's hooks stand aside."""
    return torch._C._functorch.peek_interpreter_stack() is not None


def _chunks(n: int, size: int, most: int | None = None) -> Iterable[slice]:
    step = max(1, min(n, CHUNK_ELEMENTS // max(1, size), most or n))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


class MomentRecorder:
    """Accumulate per-example gradient moments of ``model``'s parameters in each backward pass.

    Parameters
    ----------
    model:
        The network. Every module with parameters of its own gets a forward hook; ``Linear``,
        ``Conv1d/2d``, ``Embedding``, ``LayerNorm``, ``BatchNorm`` (eval mode) use their closed forms,
        any other falls back to ``torch.func`` on that module.
    reduction:
        ``"mean"`` (default) or ``"sum"``: how the differentiated loss combines the examples' losses.
    dtype:
        Accumulation dtype of :math:`S_1, S_2` (default: each parameter's dtype). float64 avoids the
        cancellation in :math:`S_2 - S_1^2/n` when :math:`\\eta^2` is tiny (below about 1e-4 in float32).
    names:
        Only these parameter names (default: all trainable parameters).
    keep_buffers:
        Write :math:`S_1, S_2` into buffers kept across :meth:`reset` (one flat block per dtype and
        device, the parameters in model order) instead of fresh tensors at every step: no allocation
        per step, and :class:`~adamlab.dissect.step_stats.StepStats` reads a block without copying it.
        :meth:`moments` then returns views that the next step after a :meth:`reset` overwrites (as
        ``.grad`` is overwritten); default False.

    Use ``with MomentRecorder(model) as rec: loss.backward()`` or :meth:`attach` / :meth:`detach`;
    :attr:`enabled` switches recording off between sampled steps at almost no cost; :meth:`moments`
    returns what was accumulated since the last :meth:`reset`.
    """

    def __init__(self, model: nn.Module, *, reduction: str = "mean", dtype: torch.dtype | None = None,
                 names: Iterable[str] | None = None, keep_buffers: bool = False) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
        self.model = model
        self.reduction = reduction
        self.dtype = dtype
        self.keep_buffers = bool(keep_buffers)
        self._slots: dict[str, tuple[Tensor, Tensor]] = {}  # keep_buffers: parameter -> (S_1, S_2) views
        self.enabled = True
        wanted = set(names) if names is not None else None
        self._params: dict[str, tuple[str, nn.Module, str]] = {}  # full name -> (module name, module, local)
        owners: dict[int, list[str]] = {}
        for mname, module in model.named_modules(remove_duplicate=False):
            for local, p in module.named_parameters(recurse=False):
                full = f"{mname}.{local}" if mname else local
                owners.setdefault(id(p), []).append(full)
        self.skipped: dict[str, str] = {}
        self.fell_back: dict[str, str] = {}
        self._modules: dict[str, nn.Module] = {}
        for mname, module in model.named_modules():
            own = [(local, p) for local, p in module.named_parameters(recurse=False)
                   if p.requires_grad and (wanted is None or (f"{mname}.{local}" if mname else local) in wanted)]
            if not own:
                continue
            shared = [local for local, p in own if len(owners[id(p)]) > 1]
            if shared:
                self.skipped[mname] = f"parameter {shared[0]!r} is shared with another module"
                continue
            self._modules[mname] = module
            reason = _supported(module)
            if reason is not None:
                self.fell_back[mname] = reason
            for local, _ in own:
                self._params[f"{mname}.{local}" if mname else local] = (mname, module, local)
        self._locals_of: dict[str, list[str]] = {}  # module name -> its recorded parameters' local names
        self._handles: list[Any] = []
        self._calls: dict[str, int] = {}
        self._moments: dict[str, Moments] = {}
        self._pending: list[tuple[str, nn.Module, Tensor, Tensor]] = []

    # -- lifecycle ---------------------------------------------------------------------------------
    def attach(self) -> MomentRecorder:
        """Register the forward hooks (idempotent)."""
        if not self._handles:
            for mname, module in self._modules.items():
                self._handles.append(module.register_forward_hook(self._forward_hook(mname)))
        return self

    def detach(self) -> None:
        """Remove every hook."""
        for h in self._handles:
            h.remove()
        self._handles.clear()

    def __enter__(self) -> MomentRecorder:
        self.reset()
        return self.attach()

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    def reset(self) -> None:
        """Forget the accumulated moments."""
        self._moments.clear()
        self._calls.clear()
        self._pending.clear()

    @property
    def names(self) -> list[str]:
        """The parameters recorded, in model order."""
        return list(self._params)

    def moments(self) -> dict[str, Moments]:
        """``{parameter name: Moments}`` accumulated since the last :meth:`reset` (modules in
        :attr:`skipped`, and modules called more than once per forward pass, left out)."""
        while self._pending:
            mname, module, a, d = self._pending.pop(0)
            self._fallback(mname, module, a, d)
            for local in self._locals(mname):
                full = f"{mname}.{local}" if mname else local
                if full in self._moments:
                    self._moments[full].n += int(a.shape[0])
        return {k: v for k, v in self._moments.items() if self._params[k][0] not in self.skipped}

    # -- hooks -------------------------------------------------------------------------------------
    def _forward_hook(self, mname: str) -> Callable[..., None]:
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            if not self.enabled or not torch.is_grad_enabled() or _in_func_transform():
                return
            if isinstance(module, _BATCHNORM):
                if module.training or module.running_mean is None:
                    self.skipped[mname] = BATCHNORM_TRAINING
                    return
                if self.skipped.get(mname) == BATCHNORM_TRAINING:
                    del self.skipped[mname]
            if mname in self.skipped:
                return
            if len(inputs) != 1 or not isinstance(inputs[0], Tensor) or not isinstance(output, Tensor):
                self.skipped[mname] = "not a single tensor input and output"
                return
            calls = self._calls.get(mname, 0) + 1
            self._calls[mname] = calls
            if calls > 1:
                self.skipped[mname] = "called more than once in a forward pass (contributions add per example)"
                return
            if not output.requires_grad:
                return
            a = inputs[0].detach()
            node = output.grad_fn
            if (isinstance(module, nn.Linear) and a.dim() == 2 and type(node).__name__ in _LINEAR_NODES
                    and (self.dtype is None or self.dtype == module.weight.dtype)):
                # After the node has run: its gradients for the weight (and bias) are S_1 / n, so S_1
                # costs no second matrix product (grad_inputs: (bias,) input, weight.t()).
                def on_node(grad_inputs: tuple[Tensor | None, ...], grad_outputs: tuple[Tensor, ...]) -> None:
                    self._calls[mname] = 0
                    self._accumulate(mname, module, a, grad_outputs[0].detach(), grad_inputs)

                node.register_hook(on_node)
                return

            def on_grad(d: Tensor) -> None:
                self._calls[mname] = 0
                self._accumulate(mname, module, a, d.detach())

            output.register_hook(on_grad)

        return hook

    def _slot(self, mname: str, local: str, dtype: torch.dtype) -> tuple[Tensor, Tensor] | None:
        """With ``keep_buffers``: the kept (S_1, S_2) of a parameter that has no moments yet since the last
        reset, when they hold ``dtype`` (the block of its dtype and device is made at first use)."""
        full = f"{mname}.{local}" if mname else local
        if not self.keep_buffers or full in self._moments or full not in self._params:
            return None

        def key(name: str) -> tuple[torch.dtype, torch.device]:
            p = getattr(self._params[name][1], self._params[name][2])
            return self.dtype or p.dtype, p.device

        kept = self._slots.get(full)
        param = getattr(self._params[full][1], self._params[full][2])
        if kept is not None and (kept[0].shape != param.shape or (kept[0].dtype, kept[0].device) != key(full)):
            self._slots.clear()  # the model was moved, cast or rebuilt since: new blocks
        if full not in self._slots:
            block = [k for k in self._params if key(k) == key(full)]  # model order
            sizes = [getattr(self._params[k][1], self._params[k][2]).shape for k in block]
            total = sum(s.numel() for s in sizes)
            flat = [torch.empty(total, dtype=key(full)[0], device=key(full)[1]) for _ in range(2)]
            start = 0
            for k, shape in zip(block, sizes, strict=True):
                self._slots[k] = tuple(f[start:start + shape.numel()].view(shape) for f in flat)  # type: ignore[assignment]
                start += shape.numel()
        slot = self._slots[full]
        return slot if slot[0].dtype == dtype else None

    def _add(self, mname: str, local: str, per_sum: Tensor, per_sq: Tensor, n: int) -> None:
        full = f"{mname}.{local}" if mname else local
        if full not in self._params:
            return
        dtype = self.dtype or per_sum.dtype
        m = self._moments.get(full)
        if m is None:
            slot = self._slot(mname, local, dtype)
            if slot is None:  # every caller passes freshly computed sums: no copy needed
                self._moments[full] = Moments(per_sum.to(dtype), per_sq.to(dtype), n)
                return
            for kept, value in zip(slot, (per_sum, per_sq), strict=True):
                if value is not kept:  # the Linear rule writes into the slot itself
                    kept.copy_(value)
            self._moments[full] = Moments(slot[0], slot[1], n)
        else:
            m.s1 += per_sum.to(dtype)
            m.s2 += per_sq.to(dtype)
            m.n += n

    def _add_per_example(self, mname: str, local: str, g: Tensor, *, scratch: bool = False) -> None:
        """Add per-example gradients ``g`` of shape (n, *param.shape); ``scratch``: ``g`` is a temporary
        nobody else holds, squared in place (no second n x parameter-size buffer)."""
        s1 = g.sum(0)
        self._add(mname, local, s1, (g.square_() if scratch else g.square()).sum(0), 0)

    def _accumulate(self, mname: str, module: nn.Module, a: Tensor, d: Tensor,
                    node_grads: tuple[Tensor | None, ...] = ()) -> None:
        n = int(a.shape[0])
        scale = n if self.reduction == "mean" else 1
        if self.reduction == "mean":
            d = d * n
        if self.dtype is not None:
            d = d.to(self.dtype)
            a = a.to(self.dtype) if a.is_floating_point() else a  # Embedding's indices stay integers
        if mname in self.fell_back:  # torch.func cannot run inside the backward pass: after it
            self._pending.append((mname, module, a, d))
            return
        if isinstance(module, nn.Linear):
            self._linear(mname, module, a, d, node_grads, scale)
        elif isinstance(module, (nn.Conv1d, nn.Conv2d)):
            self._conv(mname, module, a, d)
        elif isinstance(module, nn.Embedding):
            self._embedding(mname, module, a, d)
        elif isinstance(module, nn.LayerNorm):
            xhat = F.layer_norm(a, module.normalized_shape, None, None, module.eps)
            self._affine(mname, xhat, d, len(module.normalized_shape))
        else:  # BatchNorm in eval mode, checked in the forward hook
            shape = (1, -1) + (1,) * (a.dim() - 2)
            rm = module.running_mean.to(a.dtype).reshape(shape)
            rv = module.running_var.to(a.dtype).reshape(shape)
            xhat = (a - rm) / torch.sqrt(rv + module.eps)
            self._affine(mname, xhat.movedim(1, -1), d.movedim(1, -1), 1)
        for local in self._locals(mname):
            full = f"{mname}.{local}" if mname else local
            if full in self._moments:
                self._moments[full].n += n

    def _locals(self, mname: str) -> list[str]:
        cached = self._locals_of.get(mname)
        if cached is None:
            cached = self._locals_of[mname] = [local for m, _, local in self._params.values() if m == mname]
        return cached

    def _linear(self, mname: str, module: nn.Linear, a: Tensor, d: Tensor,
                node_grads: tuple[Tensor | None, ...] = (), scale: int = 1) -> None:
        """``node_grads``: the gradients autograd's addmm/mm node computed ((bias,) input, weight.t()),
        the reduced loss's, so ``scale`` times them is S_1 (recomputed where one is missing)."""
        n = a.shape[0]
        if a.dim() == 2:
            gw = node_grads[-1] if node_grads else None
            d_sq = d.square()
            slot = self._slot(mname, "weight", d.dtype) if a.dtype == d.dtype else None
            out1, out2 = slot if slot is not None else (None, None)
            s1 = (torch.mul(gw.t(), scale, out=out1) if gw is not None and gw.dtype == d.dtype
                  else torch.mm(d.t(), a, out=out1))
            self._add(mname, "weight", s1, torch.mm(d_sq.t(), a.square(), out=out2), 0)
            if module.bias is not None:
                gb = node_grads[0] if len(node_grads) == 3 else None
                slot = self._slot(mname, "bias", d.dtype)
                out1, out2 = slot if slot is not None else (None, None)
                s1 = (torch.mul(gb, scale, out=out1) if gb is not None and gb.dtype == d.dtype
                      else torch.sum(d, 0, out=out1))
                self._add(mname, "bias", s1, torch.sum(d_sq, 0, out=out2), 0)
            return
        a3, d3 = a.reshape(n, -1, a.shape[-1]), d.reshape(n, -1, d.shape[-1])
        for c in _chunks(n, module.weight.numel()):
            self._add_per_example(mname, "weight", torch.einsum("nto,nti->noi", d3[c], a3[c]), scratch=True)
        if module.bias is not None:
            self._add_per_example(mname, "bias", d3.sum(1))

    def _conv(self, mname: str, module: nn.Conv1d | nn.Conv2d, a: Tensor, d: Tensor) -> None:
        n = a.shape[0]
        if isinstance(module, nn.Conv1d):
            a, d = a.unsqueeze(-2), d.unsqueeze(-2)
            ks, dil, pad, st = (1, *module.kernel_size), (1, *module.dilation), (0, *module.padding), (1, *module.stride)
        else:
            ks, dil, pad, st = module.kernel_size, module.dilation, module.padding, module.stride
        groups, cout = module.groups, module.out_channels
        shape = module.weight.shape
        if groups == 1:
            # Per-example weight gradients as one grouped convolution (examples as groups): channel
            # (k, o) of conv(a_k as a batch of C_in one-channel images, kernel delta_{k,o}) at offset
            # (i, j) is sum_t delta_{k,o,t} a_{k,c}[t * stride + (i, j) * dilation] -- the im2col-free form
            # of G_k = delta_k U(a_k)^T.
            # At most CONV_CHUNK_EXAMPLES groups per call: oneDNN's grouped convolution is 1.5-2.5x
            # faster per example in chunks of 8-32 than with 64-128 groups (2026-12-03, the 2c2d and
            # 3c3d layers at batch 128). The sums over examples run on the convolution's own layout
            # (C_in, examples, C_out, k, k), without permuting the per-example gradients first.
            for c in _chunks(n, module.weight.numel(), CONV_CHUNK_EXAMPLES):
                m = c.stop - c.start
                kernel = d[c].reshape(m * cout, 1, *d.shape[2:])
                g = F.conv2d(a[c].transpose(0, 1), kernel, padding=pad, stride=dil, dilation=st, groups=m)
                g = g[..., :ks[0], :ks[1]].unflatten(1, (m, cout))
                s1 = g.sum(1).transpose(0, 1).reshape(shape)
                self._add(mname, "weight", s1, g.square_().sum(1).transpose(0, 1).reshape(shape), 0)
        else:
            u = F.unfold(a, ks, dilation=dil, padding=pad, stride=st)  # (n, C_in * K, L)
            u = u.reshape(n, groups, -1, u.shape[-1])
            dd = d.reshape(n, groups, cout // groups, -1)
            for c in _chunks(n, module.weight.numel()):
                g = torch.einsum("ngol,ngil->ngoi", dd[c], u[c]).reshape(-1, *shape)
                self._add_per_example(mname, "weight", g, scratch=True)
        if module.bias is not None:
            self._add_per_example(mname, "bias", d.reshape(n, cout, -1).sum(-1))

    def _embedding(self, mname: str, module: nn.Embedding, idx: Tensor, d: Tensor) -> None:
        n, vocab = idx.shape[0], module.num_embeddings
        rows = idx.reshape(n, -1)
        dd = d.reshape(n, rows.shape[1], -1)
        example = torch.arange(n, device=idx.device).unsqueeze(1).expand_as(rows)
        keep = torch.ones_like(rows, dtype=torch.bool) if module.padding_idx is None else rows != module.padding_idx
        keys = (example * vocab + rows)[keep]
        uniq, inverse = torch.unique(keys, return_inverse=True)
        per = torch.zeros(uniq.numel(), dd.shape[-1], dtype=dd.dtype, device=dd.device)
        per.index_add_(0, inverse, dd[keep])
        target = uniq % vocab
        s1 = torch.zeros(module.weight.shape, dtype=dd.dtype, device=dd.device).index_add_(0, target, per)
        s2 = torch.zeros(module.weight.shape, dtype=dd.dtype, device=dd.device).index_add_(0, target, per.square())
        self._add(mname, "weight", s1, s2, 0)

    def _affine(self, mname: str, xhat: Tensor, d: Tensor, k: int) -> None:
        """Elementwise affine over the last ``k`` dims: weight ``sum_t d * xhat``, bias ``sum_t d``."""
        n = d.shape[0]
        inner = tuple(range(1, d.dim() - k))
        module = self._modules[mname]
        if getattr(module, "weight", None) is not None:
            gw = (d * xhat).sum(inner) if inner else d * xhat
            self._add_per_example(mname, "weight", gw.reshape(n, *module.weight.shape))
        if getattr(module, "bias", None) is not None:
            gb = d.sum(inner) if inner else d
            self._add_per_example(mname, "bias", gb.reshape(n, *module.bias.shape))

    def _fallback(self, mname: str, module: nn.Module, a: Tensor, d: Tensor) -> None:
        """``torch.func`` on the module alone: per-example vector-Jacobian products, in chunks."""
        params = {local: p.detach() for local, p in module.named_parameters(recurse=False)
                  if (f"{mname}.{local}" if mname else local) in self._params}
        size = sum(p.numel() for p in params.values())

        def inner(p: dict[str, Tensor], x: Tensor, dy: Tensor) -> Tensor:
            out = functional_call(module, p, (x.unsqueeze(0),))
            return (out * dy.unsqueeze(0)).sum()

        per_example = vmap(grad(inner), in_dims=(None, 0, 0), randomness="different")
        for c in _chunks(a.shape[0], size):
            g = per_example(params, a[c], d[c])
            for local, value in g.items():
                self._add_per_example(mname, local, value)


def backward_stats(
    model: nn.Module,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    inputs: Tensor,
    targets: Tensor,
    *,
    batch_size: int | None = None,
    sign_agreement: Iterable[str] | bool = False,
    resamples: int = 256,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
) -> GradientStats:
    """:func:`~adamlab.dissect.stats.gradient_stats` at the cost of one forward and backward pass.

    The same statistics, defined by the same equations (:func:`~adamlab.dissect.stats.stats_from_moments`),
    from the moments a :class:`MomentRecorder` accumulates in one ``loss_fn(model(inputs), targets).backward()``
    (``loss_fn`` mean-reduced). Parameters of modules the recorder skipped (a module called twice, a
    shared parameter, several inputs) come from :func:`~adamlab.dissect.stats.per_example_grads`; they and
    the modules that fell back are listed in ``fell_back``. ``.grad`` of the parameters is left untouched.

    Parameters
    ----------
    sign_agreement:
        The empirical sign agreement needs per-example gradients, so it is priced separately: False
        (default) computes none, True all parameters, or an iterable of parameter names. Only those
        names have ``rho_empirical`` and ``gamma_sign``.
    batch_size, resamples, generator:
        As in :func:`~adamlab.dissect.stats.gradient_stats`.
    dtype:
        Accumulation dtype (see :class:`MomentRecorder`; default: the parameters').

    Raises
    ------
    ValueError
        As :func:`~adamlab.dissect.stats.gradient_stats`, and for an unknown name in ``sign_agreement``.
    """
    n, b = check_sample(inputs, targets, batch_size, resamples)
    trainable = [k for k, p in model.named_parameters() if p.requires_grad]
    if not trainable:
        raise ValueError("model: has no trainable parameters (nothing to take gradients of)")
    for name, module in model.named_modules():
        if isinstance(module, _BATCHNORM) and module.training:
            raise ValueError(
                f"model: BatchNorm module {name or type(module).__name__!r} is in training mode, so one "
                "example's output depends on the others and per-example gradients are undefined; "
                "call model.eval() first")
    asked = list(trainable) if sign_agreement is True else list(sign_agreement or [])
    unknown = sorted(set(asked) - set(trainable))
    if unknown:
        raise ValueError(f"sign_agreement: unknown parameter name(s) {unknown}; allowed: {trainable}")
    params = [p for _, p in model.named_parameters() if p.requires_grad]
    with MomentRecorder(model, reduction="mean", dtype=dtype) as rec, torch.enable_grad():
        loss = loss_fn(model(inputs), targets)
        grads = torch.autograd.grad(loss, params, allow_unused=True)
    del grads
    moments = rec.moments()
    fell_back = dict(rec.fell_back)
    missing = [k for k in trainable if k not in moments]
    per_example = {}
    wanted = sorted(set(missing) | set(asked), key=trainable.index)
    if wanted:
        per_example = per_example_grads(model, loss_fn, inputs, targets, names=wanted)
    means, variances = {}, {}
    for name in trainable:
        if name in moments:
            m = moments[name]
            means[name], variances[name] = m.mean(), m.variance()
        elif name in per_example:
            g = per_example[name].detach().to(torch.float64)
            means[name], variances[name] = g.mean(0), g.var(0, unbiased=True)
            module = name.rpartition(".")[0]
            fell_back[module] = rec.skipped.get(module, "no hook fired") + "; whole-model torch.func"
    weights = resample_weights(n, b, resamples, generator, inputs.device) if asked else None
    rho = {k: empirical_sign_agreement(per_example[k], weights) for k in asked}
    return stats_from_moments(means, variances, n, b, rho_empirical=rho, fell_back=fell_back)
