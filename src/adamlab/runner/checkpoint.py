"""Checkpoints of a run in progress, so a long run resumes bit for bit.

A checkpoint holds the model and optimizer ``state_dict``, the RNG states, the data position (batches
consumed), the step, and the metrics so far. It is written with ``torch.save`` through
:func:`adamlab.util.files.atomic_open` (a temporary file in the same directory, flushed to disk, then
moved into place atomically), and read back with
``torch.load(weights_only=True)`` (no unpickling of arbitrary objects).

Checkpoints are device-neutral: every tensor is saved from host memory (:func:`to_cpu`) and loaded with
``map_location="cpu"``; ``load_state_dict`` then copies the model and the optimizer state onto the run's
device. So a run interrupted on a GPU resumes on a CPU and the other way round.

A checkpoint that cannot be used -- unreadable, of another format or run, or one that loads but does
not fit the run's model and optimizer (other parameter names or shapes) -- is discarded: a
:class:`CheckpointWarning` names the file and why, the file is removed, and the run starts over
from step 0. So a bad checkpoint costs the time it saved, never a failed run.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from adamlab.util.files import atomic_open

FORMAT_VERSION = 1

#: What :func:`restore_checkpoint` needs in a payload besides ``format`` and ``run_id``.
FIELDS = ("model", "optimizer", "rng", "batches_consumed", "step", "loss_sum", "loss_n", "elapsed",
          "records", "started_at")


class CheckpointWarning(UserWarning):
    """A checkpoint was discarded (the message names the file and why); the run starts over."""


def rng_states() -> dict[str, Any]:
    """The torch RNG states (CPU, and CUDA when available)."""
    states: dict[str, Any] = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    # the CUDA states only on a machine with as many GPUs (a checkpoint moved from a GPU node to a laptop
    # or another node keeps its CPU state; the runs' own noise generators are restored by the caller)
    if "cuda" in states and torch.cuda.is_available() and len(states["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(states["cuda"])


def to_cpu(value: Any) -> Any:
    """``value`` with every tensor inside (dicts, lists, tuples) copied to host memory."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(to_cpu(v) for v in value)
    return value


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus a format version) atomically to ``path``, flushed to disk before the move.

    Tensors are saved from host memory (:func:`to_cpu`), so the file loads on any device."""
    with atomic_open(path, "wb", fsync=True) as fh:
        torch.save({"format": FORMAT_VERSION, **to_cpu(payload)}, fh)


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


def checkpoint_mismatch(payload: Mapping[str, Any], model: torch.nn.Module,
                        optimizer: torch.optim.Optimizer) -> str | None:
    """Why ``payload`` does not fit ``model`` and ``optimizer`` (None when it fits).

    Checks, without changing either: the payload's fields; the model's parameter and buffer names,
    shapes and dtypes; the optimizer's parameter groups (count and sizes); and that every tensor of
    the optimizer state that is not a scalar has its parameter's shape (every adamlab optimizer keeps
    elementwise state).
    """
    missing = [k for k in FIELDS if k not in payload]
    if missing:
        return f"it lacks {', '.join(missing)}"
    saved, own = payload["model"], model.state_dict()
    if not isinstance(saved, Mapping):
        return "its model state is not a state_dict"
    if set(saved) != set(own):
        diff = sorted(set(saved) ^ set(own))
        return f"its model has other parameters ({', '.join(diff[:4])}{', ...' if len(diff) > 4 else ''})"
    for name, tensor in own.items():
        other = saved[name]
        if not isinstance(other, torch.Tensor) or other.shape != tensor.shape or other.dtype != tensor.dtype:
            got = f"{tuple(other.shape)} {other.dtype}" if isinstance(other, torch.Tensor) else type(other).__name__
            return f"model tensor {name!r} is {got}, the run's is {tuple(tensor.shape)} {tensor.dtype}"
    opt = payload["optimizer"]
    if not isinstance(opt, Mapping) or not isinstance(opt.get("param_groups"), list) \
            or not isinstance(opt.get("state"), Mapping):
        return "its optimizer state is not a state_dict"
    groups = optimizer.param_groups
    sizes = [len(g.get("params", [])) for g in opt["param_groups"] if isinstance(g, Mapping)]
    if sizes != [len(g["params"]) for g in groups]:
        return f"its optimizer has parameter groups of sizes {sizes}, the run's {[len(g['params']) for g in groups]}"
    params = {i: p for i, p in zip((i for g in opt["param_groups"] for i in g["params"]),
                                   (p for g in groups for p in g["params"]), strict=True)}
    for index, state in opt["state"].items():
        if index not in params or not isinstance(state, Mapping):
            return f"its optimizer state names an unknown parameter {index!r}"
        shape = params[index].shape
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != shape:
                return (f"optimizer state {key!r} of parameter {index} is {tuple(value.shape)}, "
                        f"the parameter is {tuple(shape)}")
    return None


def discard_checkpoint(path: str | os.PathLike[str], why: str) -> None:
    """Warn (:class:`CheckpointWarning`, naming ``path`` and ``why``) and remove the file."""
    warnings.warn(f"checkpoint {str(path)!r} discarded: {why}; the run starts over from step 0",
                  CheckpointWarning, stacklevel=3)
    Path(path).unlink(missing_ok=True)


def restore_checkpoint(path: str | os.PathLike[str] | None, run_id: str, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer) -> dict[str, Any] | None:
    """Load the checkpoint of ``run_id`` at ``path`` into ``model`` and ``optimizer``; return its payload.

    Returns None when there is no checkpoint, or when the file cannot be used: then a
    :class:`CheckpointWarning` names it and why, it is removed, and ``model`` and ``optimizer`` are
    left untouched (the run starts over). The caller restores the RNG, data position and metrics from
    the payload.
    """
    if path is None or not Path(path).is_file():
        return None
    payload = load_checkpoint(path, run_id)
    if payload is None:
        discard_checkpoint(path, "it is unreadable, of another format, or of another run")
        return None
    why = checkpoint_mismatch(payload, model, optimizer)
    if why is None:
        try:
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:  # checked above; belt and braces
            why = f"it does not load ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
    if why is not None:
        discard_checkpoint(path, f"it does not fit run {run_id[:12]}: {why}")
        return None
    return payload
