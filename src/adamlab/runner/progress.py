"""Progress bars (tqdm): one per sweep (runs done / total, ETA) and one per run (steps, loss)."""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm


class _Null:
    """A do-nothing bar for ``quiet`` mode."""

    def update(self, n: int = 1) -> None: ...
    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None: ...
    def set_description_str(self, s: str = "", refresh: bool = True) -> None: ...
    def close(self) -> None: ...
    def __enter__(self) -> _Null:
        return self

    def __exit__(self, *exc: Any) -> None: ...


def sweep_bar(total: int, *, quiet: bool, desc: str = "sweep", initial: int = 0) -> Any:
    """Bar over the runs of a sweep (position 0); ``initial`` runs were already done (no bar if all were)."""
    if quiet or initial >= total:
        return _Null()
    return tqdm(total=total, initial=initial, desc=desc, unit="run", position=0, dynamic_ncols=True,
                file=sys.stderr)


def run_bar(total: int, *, quiet: bool, desc: str) -> Any:
    """Bar over the steps of one run (position 1, removed when done)."""
    if quiet:
        return _Null()
    return tqdm(total=total, desc=desc, unit="step", position=1, leave=False, dynamic_ncols=True,
                mininterval=0.2, file=sys.stderr)
