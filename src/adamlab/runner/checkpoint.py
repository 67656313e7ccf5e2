"""Checkpoints of a run in progress, so a long run resumes bit for bit.

A checkpoint holds the model and optimizer ``state_dict``, the RNG states, the data position (batches
consumed), the step, and the metrics so far. It is written with ``torch.save`` to a temporary file in
the same directory, then moved into place with ``os.replace`` (atomic), and read back with
``torch.load(weights_only=True)`` (no unpickling of arbitrary objects).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT_VERSION = 1


def rng_states() -> dict[str, Any]:
    """The torch RNG states (CPU, and CUDA when available)."""
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus a format version) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save({"format": FORMAT_VERSION, **payload}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: str | os.PathLike[str], run_id: str) -> dict[str, Any] | None:
    """Read the checkpoint at ``path`` if it exists and belongs to ``run_id``; else ``None``.

    A checkpoint of another run or format, or an unreadable one, is ignored (the run starts over).
    """
    path = Path(path)
    if not path.is_file():
        return None
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - a torn or foreign file means: start over
        return None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT_VERSION:
        return None
    if payload.get("run_id") != run_id:
        return None
    return payload
