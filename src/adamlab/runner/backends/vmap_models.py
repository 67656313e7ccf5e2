"""Stacked models: the parameters of K copies of one model, and their batched forward pass.

Two layouts, chosen by :func:`stack_models`:

- :class:`WideLinearStack` for ``nn.Linear`` and ``nn.Sequential`` stacks of ``Linear`` layers and
  element-wise activations fed the SAME batch: the first layer of all K runs is one wide matrix
  product ``x @ W[in, K*out]`` (the fastest form measured on CPU, /work/shared/notes/performance.md),
  the later layers one batched product per layer.
- :class:`VmapStack` for any other model without buffers: ``torch.func.vmap`` over
  ``torch.func.functional_call`` with per-run parameters ``[K, ...]``.

Both give per-run parameter views (name -> ``[K, *shape]``) so the problem's own ``loss`` and
``regularization`` can be evaluated per run with ``functional_call`` + ``vmap``, and a list of
``(tensor, run_axis)`` for :class:`~adamlab.runner.backends.vmap_optim.StackedOptimizer`.
Gradients come from ordinary autograd on the sum of the K losses: runs share no parameters, so the
gradient of run k's slice is exactly the gradient of run k's loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from adamlab.runner.backends.vmap_optim import NotVectorizable

#: Parameter-free modules that act element-wise (or row-wise) and so work on ``[K, B, h]`` as on ``[B, h]``.
ELEMENTWISE = (nn.ReLU, nn.Tanh, nn.Sigmoid, nn.Softplus, nn.GELU, nn.ELU, nn.LeakyReLU, nn.Identity, nn.SiLU)


class _Call(nn.Module):
    """Wraps ``fn(model, *args)`` as a module, so ``functional_call`` can swap the model's parameters."""

    def __init__(self, model: nn.Module, fn: Any) -> None:
        super().__init__()
        self.model = model
        self.fn = fn

    def forward(self, *args: Any) -> Any:
        return self.fn(self.model, *args)


class Stack:
    """Common part: the template model and per-run views."""

    def __init__(self, template: nn.Module, k: int) -> None:
        self.template = template
        self.k = k
        self.names = [n for n, _ in template.named_parameters()]
        self.shapes = [tuple(p.shape) for _, p in template.named_parameters()]

    # provided by subclasses
    def run_params(self) -> dict[str, Tensor]:
        """Per-run parameter views, name -> ``[K, *shape]`` (differentiable)."""
        raise NotImplementedError

    def leaves(self) -> list[tuple[Tensor, int]]:
        """The stacked leaf tensors and their run axis."""
        raise NotImplementedError

    def forward(self, x: Tensor, shared: bool = True, noise: Sequence[Tensor] | None = None) -> Tensor:
        """Outputs of all runs: ``[K, *output_shape]``; ``x`` is one input for all runs (``shared``) or
        one per run, ``[K, *input_shape]``; ``noise`` as in :meth:`call`."""
        return self.call(lambda model, inp: model(inp), x, per_run=not shared, noise=noise)

    def call(self, fn: Any, *args: Any, per_run: bool = False, noise: Sequence[Tensor] | None = None) -> Any:
        """``fn(model_k, *args)`` for every run k, stacked: ``[K, ...]``. The args are shared by all runs,
        or (``per_run``) tensors / tuples of tensors with a leading run dimension. ``noise``: tensors
        ``[K, ...]`` that run k's draws of :mod:`adamlab.problems.noise` return, in order."""
        from adamlab.problems import noise as noise_source

        wrapper = _Call(self.template, fn)

        def one(params: dict[str, Tensor], drawn: Any, *inner: Any) -> Any:
            named = {f"model.{n}": p for n, p in params.items()}
            if drawn is None:
                return functional_call(wrapper, named, inner)
            with noise_source.replay(drawn):
                return functional_call(wrapper, named, inner)

        in_dims = (0, None if noise is None else 0, *([0 if per_run else None] * len(args)))
        return vmap(one, in_dims=in_dims)(self.run_params(), None if noise is None else list(noise), *args)

    def call_broadcast(self, fn: Any, *args: Any) -> Any:
        """``fn(model, *args)`` once, with the model's parameters replaced by the per-run views
        ``[K, *shape]`` (for problems whose loss broadcasts over a leading run dimension)."""
        wrapper = _Call(self.template, fn)
        return functional_call(wrapper, {f"model.{n}": p for n, p in self.run_params().items()}, args)

    def squared_norms(self) -> dict[str, Tensor]:
        """Per-run sums of squares of each parameter, name -> ``[K]`` (differentiable)."""
        return {n: v.square().sum(tuple(range(1, v.dim()))) for n, v in self.run_params().items()}

    def load_run(self, k: int, model: nn.Module) -> nn.Module:
        """Copy run ``k``'s parameters into ``model`` (same architecture as the template)."""
        views = self.run_params()
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(views[name][k])
        return model


class VmapStack(Stack):
    """K copies in one flat leaf ``[K, P]``; forward is ``vmap(functional_call)``."""

    def __init__(self, models: Sequence[nn.Module]) -> None:
        template = models[0]
        super().__init__(template, len(models))
        if list(template.buffers()):
            raise NotVectorizable("the model has buffers (e.g. batch-norm statistics) that its forward pass updates")
        flats = [torch.cat([p.detach().reshape(-1) for p in m.parameters()]) for m in models]
        self.flat = torch.stack(flats).requires_grad_(True)

    def run_params(self) -> dict[str, Tensor]:
        out, offset = {}, 0
        for name, shape in zip(self.names, self.shapes, strict=True):
            n = 1
            for s in shape:
                n *= s
            out[name] = self.flat[:, offset:offset + n].view(self.k, *shape)
            offset += n
        return out

    def leaves(self) -> list[tuple[Tensor, int]]:
        return [(self.flat, 0)]


def _layers(model: nn.Module) -> list[nn.Module] | None:
    """The layer list of a Linear / Sequential-of-Linear-and-activations model, else None."""
    if isinstance(model, nn.Linear):
        return [model]
    if type(model) is not nn.Sequential:
        return None
    layers = list(model)
    start = 1 if layers and isinstance(layers[0], nn.Flatten) else 0
    if start == len(layers) or not isinstance(layers[start], nn.Linear):
        return None
    if not all(isinstance(m, (nn.Linear, *ELEMENTWISE)) for m in layers[start:]):
        return None
    if any(list(m.buffers()) for m in layers):
        return None
    return layers


class WideLinearStack(Stack):
    """Linear stacks with a shared input: first layer as one wide GEMM, later layers as ``bmm``.

    Leaves: ``first`` of shape ``[in + 1, K, out]`` (rows ``:in`` the transposed weights, row ``in``
    the biases; run axis 1), and ``rest`` ``[K, P_rest]`` with the later layers' parameters (run axis 0).
    """

    def __init__(self, models: Sequence[nn.Module]) -> None:
        template = models[0]
        super().__init__(template, len(models))
        layers = _layers(template)
        if layers is None:
            raise NotVectorizable("not a stack of Linear layers and element-wise activations")
        self.layers = layers
        self.flatten = isinstance(layers[0], nn.Flatten)
        per_model = [_layers(m) for m in models]
        first_index = 1 if self.flatten else 0
        first = layers[first_index]
        assert isinstance(first, nn.Linear)
        self.has_bias = first.bias is not None
        self.in_features, self.out_features = first.in_features, first.out_features
        rows = []
        for ls in per_model:
            assert ls is not None
            lin = ls[first_index]
            w = lin.weight.detach().t()
            b = lin.bias.detach().unsqueeze(0) if lin.bias is not None else torch.zeros_like(w[:1])
            rows.append(torch.cat([w, b], 0))
        self.first = torch.stack(rows, 1).contiguous().requires_grad_(True)  # [in+1, K, out]
        self.first_index = first_index
        self.first_prefix = "" if isinstance(template, nn.Linear) else f"{first_index}."
        rest_names = [n for n in self.names if not n.startswith(self.first_prefix + "weight")
                      and not n.startswith(self.first_prefix + "bias")] if self.first_prefix else []
        self.rest_names = rest_names
        params_of = [dict(m.named_parameters()) for m in models]
        if rest_names:
            flats = [torch.cat([d[n].detach().reshape(-1) for n in rest_names]) for d in params_of]
            self.rest: Tensor | None = torch.stack(flats).requires_grad_(True)
        else:
            self.rest = None

    def run_params(self) -> dict[str, Tensor]:
        out: dict[str, Tensor] = {}
        fin = self.in_features
        out[f"{self.first_prefix}weight"] = self.first[:fin].permute(1, 2, 0)
        if self.has_bias:
            out[f"{self.first_prefix}bias"] = self.first[fin]
        if self.rest is not None:
            shapes = dict(zip(self.names, self.shapes, strict=True))
            offset = 0
            for name in self.rest_names:
                shape = shapes[name]
                n = 1
                for s in shape:
                    n *= s
                out[name] = self.rest[:, offset:offset + n].view(self.k, *shape)
                offset += n
        return out

    def leaves(self) -> list[tuple[Tensor, int]]:
        out = [(self.first, 1)]
        if self.rest is not None:
            out.append((self.rest, 0))
        return out

    def squared_norms(self) -> dict[str, Tensor]:
        # one pass over the first leaf, sliced only after the reduction (cheap backward)
        fin = self.in_features
        rows = self.first.square().sum(2)  # [in + 1, K]
        out = {f"{self.first_prefix}weight": rows[:fin].sum(0)}
        if self.has_bias:
            out[f"{self.first_prefix}bias"] = rows[fin]
        if self.rest is not None:
            views = self.run_params()
            for name in self.rest_names:
                v = views[name]
                out[name] = v.square().sum(tuple(range(1, v.dim())))
        return out

    def forward(self, x: Tensor, shared: bool = True, noise: Sequence[Tensor] | None = None) -> Tensor:
        if noise:
            raise NotVectorizable("the wide linear layout takes no noise (no dropout in its layers)")
        fin, k, fout = self.in_features, self.k, self.out_features
        if not shared:  # one input per run [K, B, ...]: one batched product
            x = x.flatten(2) if self.flatten else x
            if self.has_bias:
                ones = torch.ones(*x.shape[:2], 1, dtype=x.dtype, device=x.device)
                h = torch.bmm(torch.cat([x, ones], 2), self.first.permute(1, 0, 2))
            else:
                h = torch.bmm(x, self.first[:fin].permute(1, 0, 2))
            return self._rest(h)
        if self.flatten:
            x = x.flatten(1)
        if self.has_bias:
            # [x, 1] @ [W; b]: one product over the whole leaf, so its gradient needs no slicing
            ones = torch.ones(x.shape[0], 1, dtype=x.dtype, device=x.device)
            h = torch.cat([x, ones], 1) @ self.first.view(fin + 1, k * fout)
        else:
            h = x @ self.first[:fin].reshape(fin, k * fout)
        return self._rest(h.view(x.shape[0], k, fout).transpose(0, 1))  # [K, B, out]

    def _rest(self, h: Tensor) -> Tensor:
        """The layers after the first, on ``h`` of shape ``[K, B, out]``."""
        views = self.run_params() if self.rest is not None else {}
        for i, layer in enumerate(self.layers[self.first_index + 1:], start=self.first_index + 1):
            if isinstance(layer, nn.Linear):
                weight = views[f"{i}.weight"]  # [K, out, in]
                if layer.bias is not None:
                    h = torch.baddbmm(views[f"{i}.bias"].unsqueeze(1), h, weight.transpose(1, 2))
                else:
                    h = torch.bmm(h, weight.transpose(1, 2))
            else:
                h = layer(h)
        return h


def stack_models(models: Sequence[nn.Module], *, wide: bool = True) -> Stack:
    """The fastest applicable stacked layout for these K same-architecture models."""
    if wide and _layers(models[0]) is not None:
        return WideLinearStack(models)
    return VmapStack(models)
