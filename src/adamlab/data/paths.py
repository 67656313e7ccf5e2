"""Where data and processed caches live, and atomic file writes.

The data root is read-only for adamlab (it may be a shared folder): processed caches and the
checksum cache go to the cache directory instead.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO


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


@contextlib.contextmanager
def atomic_writer(path: Path, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file next to ``path``; on success ``os.replace`` it onto ``path``.

    A reader never sees a half-written file; on error the temporary file is removed.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
