"""Where data and processed caches live.

The data root is read-only for adamlab (it may be a shared folder): processed caches and the
checksum cache go to the cache directory instead. Files are written through
:mod:`adamlab.util.files` (the one atomic writer).
"""

from __future__ import annotations

import os
from pathlib import Path


def data_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The data root: ``root`` if given, else ``$ADAMLAB_DATA``, else ``~/.cache/adamlab``."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("ADAMLAB_DATA")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/adamlab").expanduser()


def cache_dir() -> Path:
    """The processed-cache directory: ``$ADAMLAB_CACHE``, else ``~/.cache/adamlab/processed``."""
    env = os.environ.get("ADAMLAB_CACHE")
    if env:
        return Path(env).expanduser()
    return Path("~/.cache/adamlab/processed").expanduser()

