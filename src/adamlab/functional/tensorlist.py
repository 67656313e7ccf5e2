"""A list of tensors that behaves like one tensor, so one rule serves the loop and foreach paths.

The update rules in this package are written once, with operators and ``Tensor`` methods only
(``a * b``, ``m.sqrt()``, ``x.sign()``, ``a.maximum(b)``, ``x.where(cond, y)``...). Called on plain
tensors they are the per-tensor (for-loop) path. Called on :class:`TensorList` arguments they run
over a whole parameter group at once: arithmetic maps to PyTorch's multi-tensor ``torch._foreach_*``
kernels (one launch per op on CUDA), and any other method is applied tensor by tensor. Either way
each element sees the same sequence of IEEE operations, so both paths give identical results.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["TensorList", "copy_into"]


def _items(x: Any, n: int) -> Sequence[Any]:
    return x.items if isinstance(x, TensorList) else [x] * n


class TensorList:
    """A group of tensors on which element-wise math acts tensor by tensor."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Tensor]) -> None:
        self.items: list[Tensor] = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self.items)

    def __repr__(self) -> str:
        return f"TensorList({len(self.items)} tensors)"

    # -- arithmetic: torch._foreach_* where PyTorch has an exact multi-tensor equivalent ----------
    def _foreach(self, op: Callable[..., list[Tensor]], dunder: str, other: Any) -> TensorList:
        if isinstance(other, TensorList):
            return TensorList(op(self.items, other.items))
        if isinstance(other, (int, float)):
            return TensorList(op(self.items, other))
        # A tensor operand (e.g. a 0-dim hyperparameter): broadcast it tensor by tensor.
        return self._map(dunder, other)

    def __add__(self, other: Any) -> TensorList:
        return self._foreach(torch._foreach_add, "__add__", other)

    def __sub__(self, other: Any) -> TensorList:
        return self._foreach(torch._foreach_sub, "__sub__", other)

    def __mul__(self, other: Any) -> TensorList:
        return self._foreach(torch._foreach_mul, "__mul__", other)

    def __truediv__(self, other: Any) -> TensorList:
        return self._foreach(torch._foreach_div, "__truediv__", other)

    # Reflected operators: scalar OP list. Computed per tensor so rounding matches ``scalar OP tensor``.
    def __radd__(self, other: Any) -> TensorList:
        return TensorList(other + t for t in self.items)

    def __rsub__(self, other: Any) -> TensorList:
        return TensorList(other - t for t in self.items)

    def __rmul__(self, other: Any) -> TensorList:
        return TensorList(other * t for t in self.items)

    def __rtruediv__(self, other: Any) -> TensorList:
        return TensorList(other / t for t in self.items)

    def __neg__(self) -> TensorList:
        return TensorList(torch._foreach_neg(self.items))

    def __gt__(self, other: Any) -> TensorList:
        return self._map("__gt__", other)

    def __ge__(self, other: Any) -> TensorList:
        return self._map("__ge__", other)

    def __lt__(self, other: Any) -> TensorList:
        return self._map("__lt__", other)

    def __le__(self, other: Any) -> TensorList:
        return self._map("__le__", other)

    def sqrt(self) -> TensorList:
        return TensorList(torch._foreach_sqrt(self.items))

    def abs(self) -> TensorList:
        return TensorList(torch._foreach_abs(self.items))

    def sign(self) -> TensorList:
        return TensorList(torch._foreach_sign(self.items))

    def maximum(self, other: TensorList) -> TensorList:
        return TensorList(torch._foreach_maximum(self.items, other.items))

    # -- everything else: the Tensor method of the same name, tensor by tensor ------------------------
    def _map(self, name: str, *args: Any) -> TensorList:
        n = len(self.items)
        columns = [_items(a, n) for a in args]
        return TensorList(getattr(t, name)(*(c[i] for c in columns)) for i, t in enumerate(self.items))

    def __getattr__(self, name: str) -> Callable[..., TensorList]:
        if name.startswith("_") or not hasattr(Tensor, name):
            raise AttributeError(name)
        return lambda *args: self._map(name, *args)


def copy_into(targets: Tensor | TensorList, values: Tensor | TensorList) -> None:
    """Write ``values`` into ``targets`` in place (the one mutation an optimizer step does)."""
    if isinstance(targets, TensorList):
        torch._foreach_copy_(targets.items, _items(values, len(targets)))
    elif targets is not values:
        targets.copy_(values)
