"""Pure update rules: one function per method, tensors in, tensors out.

This package is the single source of every equation in adamlab. A rule takes the parameter, its
gradient and its state tensors (positionally) plus scalar hyperparameters (keywords), and returns the
new parameter and new state without mutating anything. Per-step scalars such as bias corrections are
computed on the host by the ``*_coefficients`` helpers and passed in, so a compiled rule is not
recompiled every step. The rules use only operators and ``Tensor`` methods, so they also run on
:class:`TensorList` groups (foreach path), under ``torch.compile``, and under ``torch.func.vmap``.

What a rule knows about itself lives next to it:

- :func:`~adamlab.functional.common.update_rule` marks a rule with the names of its per-step scalar
  keywords (read back by :func:`~adamlab.functional.common.step_scalars`, for every compiled path) and
  whether a compiled kernel may divide by those scalars as products with their reciprocals
  (:func:`~adamlab.functional.common.divides_by_reciprocal`);
- ``<name>_step_pieces(param_before, grad, *state_after, **rule_kwargs)`` takes one step of the rule
  apart for :func:`adamlab.dissect.decompose`: it returns a dict with ``kind`` (``"sign"`` or
  ``"grad"``), ``direction`` :math:`d`, ``magnitude``, ``gamma`` and optionally ``eta2``,
  ``eta2_unbiased`` and ``decay`` (the part of the update that is not :math:`-\\text{magnitude}\\, d \\odot
  \\gamma`), built from the same ``*_direction`` helpers the rule calls.

Every module of this package lists its public names in ``__all__``; they are all exported here, so a
new rule is one new module.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any


def _export_all() -> list[str]:
    """Import every submodule and bind its ``__all__`` here (a rule named like its module, e.g.
    ``adam``, replaces the submodule attribute, as an explicit import would)."""
    exported: dict[str, Any] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name in getattr(module, "__all__", ()):
            value = getattr(module, name)
            if name in exported and exported[name] is not value:
                raise ImportError(f"adamlab.functional: {name!r} is exported by two modules")
            exported[name] = value
    globals().update(exported)
    return sorted(exported)


__all__ = _export_all()
