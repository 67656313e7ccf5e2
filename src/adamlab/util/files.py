"""The one atomic file writer and the one JSON writer.

Every file adamlab writes for a user (figures, tables, reports, summaries, checkpoints, kernel snapshots,
downloads) goes through :func:`atomic_path`: the data go to a fresh temporary name in the target's
folder, and only a complete file is moved onto the target with ``os.replace`` (atomic on POSIX). A
crash leaves either the old file or the new one, never a torn one, and no temporary behind.

Permission policy: the temporary file is created by the writer (``open``, ``savefig``, ``torch.save``),
not by ``mkstemp``, so the result has the permissions of an ordinary new file (``0o666`` minus the
umask), whatever wrote it.
"""

from __future__ import annotations

import contextlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], *, fsync: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path`` to write; on success move it onto ``path``.

    The folder of ``path`` is created if needed. On an exception the temporary file is removed and
    ``path`` is left as it was. ``fsync=True`` flushes the finished file to disk before the move
    (for files that must survive a power cut, such as checkpoints).
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.part"
    try:
        yield tmp
        if fsync:
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "w", *, fsync: bool = False,
                **open_kwargs: Any) -> Iterator[IO[Any]]:
    """``open(path, mode)`` that lands atomically (see :func:`atomic_path`); ``mode`` is ``"w"`` or ``"wb"``."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_open mode must be 'w' or 'wb'; got {mode!r}")
    if "b" not in mode:
        open_kwargs.setdefault("encoding", "utf-8")
    with atomic_path(path, fsync=fsync) as tmp, open(tmp, mode, **open_kwargs) as handle:
        yield handle


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns the path."""
    with atomic_open(path, "w") as handle:
        handle.write(text)
    return Path(path)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_open(path, "wb") as handle:
        handle.write(data)
    return Path(path)


def write_json(path: str | os.PathLike[str], data: Any, *, indent: int | None = 2, sort_keys: bool = False,
               default: Any = None) -> Path:
    """The one JSON writer: ``data`` as JSON (UTF-8, trailing newline) at ``path``, atomically.

    ``allow_nan`` stays on (Python's ``NaN``/``Infinity`` tokens), as the readers here are Python's.
    """
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=default)
    return write_text(path, text + "\n")
