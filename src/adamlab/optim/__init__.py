"""Drop-in ``torch.optim.Optimizer`` classes. The math of each lives in :mod:`adamlab.functional`.

Every public ``torch.optim.Optimizer`` subclass defined in a module of this package is exported here
(so a new optimizer is one new module), together with :func:`make_optimizer`.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from torch.optim import Optimizer

from adamlab.optim.registry import make_optimizer


def _export_optimizers() -> list[str]:
    exported: dict[str, type] = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Optimizer) and obj.__module__ == module.__name__
                    and not name.startswith("_")):
                if name in exported:
                    raise ImportError(f"adamlab.optim: two modules define {name!r}")
                exported[name] = obj
    globals().update(exported)
    return sorted(exported)


__all__ = [*_export_optimizers(), "make_optimizer"]
