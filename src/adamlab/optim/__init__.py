"""Drop-in ``torch.optim.Optimizer`` classes. The math of each lives in :mod:`adamlab.functional`.

Every public ``torch.optim.Optimizer`` subclass defined in a module of this package is exported here
(so a new optimizer is one new module, which also declares its registry names:
:mod:`adamlab.optim.registry`), together with :func:`make_optimizer`. A module that fails to import is
an error naming it (:class:`adamlab.util.registry.RegistryImportError`).
"""

from __future__ import annotations

import inspect
import sys

from torch.optim import Optimizer

from adamlab.optim.registry import make_optimizer
from adamlab.util.registry import import_package_modules


def _export_optimizers() -> list[str]:
    exported: dict[str, type] = {}
    for module_name in import_package_modules(__name__):
        module = sys.modules[module_name]
        for name, obj in vars(module).items():
            if (inspect.isclass(obj) and issubclass(obj, Optimizer) and obj.__module__ == module.__name__
                    and not name.startswith("_")):
                if name in exported:
                    raise ImportError(f"adamlab.optim: two modules define {name!r}")
                exported[name] = obj
    globals().update(exported)
    return sorted(exported)


__all__ = [*_export_optimizers(), "make_optimizer"]
