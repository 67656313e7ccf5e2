"""The one matplotlib backend choice: Agg (files only, no window) unless the user chose a backend.

Every figure adamlab draws gets ``pyplot`` from :func:`pyplot`, so the choice is made here and
nowhere else. The user's choice wins: ``MPLBACKEND``, a ``backend`` line in a matplotlibrc, a
``matplotlib.use(...)`` call, or a backend already in use (a notebook's inline backend, or pyplot
already imported). Only when nothing chose one is Agg selected, so that drawing works on a machine
without a display and never opens a window.
"""

from __future__ import annotations

import os
from typing import Any

#: The backend used when the user chose none.
DEFAULT_BACKEND = "Agg"


def _chosen_backend(matplotlib: Any) -> str | None:
    """The backend the user (or an earlier import of pyplot) chose, or None when none was chosen."""
    try:
        return matplotlib.get_backend(auto_select=False)  # matplotlib >= 3.10
    except TypeError:
        pass
    getter = getattr(matplotlib.rcParams, "_get_backend_or_none", None)  # matplotlib >= 3.5
    if getter is not None:
        return getter()
    return os.environ.get("MPLBACKEND") or None


def use_backend() -> str:
    """Select :data:`DEFAULT_BACKEND` unless a backend was chosen already; return the backend in use."""
    import matplotlib

    if _chosen_backend(matplotlib) is None:
        matplotlib.use(DEFAULT_BACKEND)
    return str(matplotlib.get_backend())


def pyplot() -> Any:
    """``matplotlib.pyplot``, after :func:`use_backend`: how every figure of adamlab starts."""
    use_backend()
    import matplotlib.pyplot as plt

    return plt
