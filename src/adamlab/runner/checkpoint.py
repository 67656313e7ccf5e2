"""Checkpoints of a run in progress, so a long run resumes bit for bit.

A checkpoint holds the model and optimizer ``state_dict``, the RNG states, the data position (batches
consumed), the step, and the metrics so far. It is written with ``torch.save`` through
:func:`adamlab.util.files.atomic_open` (a temporary file in the same directory, flushed to disk, then
moved into place atomically), and read back with
``torch.load(weights_only=True)`` (no unpickling of arbitrary objects).

Checkpoints are device-neutral: every tensor is saved from host memory (:func:`to_cpu`) and loaded with
``map_location="cpu"``; ``load_state_dict`` then copies the model and the optimizer state onto the run's
device. So a run interrupted on a GPU resumes on a CPU and the other way round.

A checkpoint that cannot be used is discarded: a :class:`CheckpointWarning` names the file and why,
the file is removed, and the run starts over from step 0. So a bad checkpoint costs the time it saved,
never a failed run, a hang or a wrong result. Before anything is loaded, :func:`checkpoint_problem`
checks that the checkpoint

- is readable, of this format and of this run (``run_id``, optimizer class, run length);
- fits the run's model and optimizer (parameter names, shapes and dtypes; parameter groups; the
  optimizer's hyperparameters equal the run's, except the scheduled ``lr``; its state is the state of
  this optimizer, see :func:`adamlab.optim.state_dict.check_loadable`);
- is consistent in itself: ``0 < step < steps``, ``batches_consumed == step`` (one batch per step),
  every optimizer ``state["step"] == step``, finite parameters and state, the loss accumulator within
  range, records at steps ``0 .. step`` with numeric values, RNG states of the right shape;
- still has the metrics it depends on: a run that streams its records to the store saved how many rows
  it had staged (``staged_rows``); if fewer of them are left (another attempt, without this
  checkpoint, started the run over and discarded them), resuming would lose the run's early
  metrics, so the checkpoint is discarded instead.
"""

from __future__ import annotations

import copy
import math
import os
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from adamlab.optim.state_dict import check_loadable
from adamlab.util.files import atomic_open

#: 2: ``optimizer_class``, ``steps`` and ``staged_rows`` (a version-1 file is discarded).
FORMAT_VERSION = 2

#: What :func:`restore_checkpoint` needs in a payload besides ``format`` and ``run_id``.
FIELDS = ("model", "optimizer", "rng", "batches_consumed", "step", "loss_sum", "loss_n", "elapsed",
          "records", "started_at", "optimizer_class", "steps", "staged_rows")


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
    try:
        with atomic_open(path, "wb", fsync=True) as fh:
            torch.save({"format": FORMAT_VERSION, **to_cpu(payload)}, fh)
    except OSError as err:  # ENOSPC and the like: name the file
        raise OSError(err.errno, f"cannot write checkpoint {str(path)!r}: {err.strerror or err}") from None
    except RuntimeError as err:  # torch.save wraps a failed write (e.g. a full disk)
        raise OSError(f"cannot write checkpoint {str(path)!r}: {' '.join(str(err).split())[:200]}") from None


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
    the optimizer state that is not a scalar has its parameter's shape, or that shape with some
    dimensions reduced to 1 (ND-Adam's per-row statistics).
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
            if isinstance(value, torch.Tensor) and value.dim() > 0 and not _fits(value.shape, shape):
                return (f"optimizer state {key!r} of parameter {index} is {tuple(value.shape)}, "
                        f"the parameter is {tuple(shape)}")
    return None


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _real(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """Lists as tuples, recursively (a group saved with a tuple may come back as a list)."""
    if isinstance(value, (list, tuple)):
        return tuple(_plain(v) for v in value)
    return value


def _counters_problem(payload: Mapping[str, Any], steps: int) -> str | None:
    step = payload["step"]
    if not _integer(step) or not 0 < step < steps:
        return f"its step {step!r} is not an integer in 1 .. {steps - 1} (the run has {steps} steps)"
    if payload["steps"] != steps:
        return f"it is of a run of {payload['steps']!r} steps, this run has {steps}"
    if payload["batches_consumed"] != step or not _integer(payload["batches_consumed"]):
        return f"batches_consumed {payload['batches_consumed']!r} is not its step {step} (one batch per step)"
    if not _integer(payload["loss_n"]) or not 0 <= payload["loss_n"] <= step:
        return f"loss_n {payload['loss_n']!r} is not an integer in 0 .. {step}"
    if not _real(payload["loss_sum"]):
        return f"loss_sum {payload['loss_sum']!r} is not a finite number"
    if not _real(payload["elapsed"]) or payload["elapsed"] < 0:
        return f"elapsed {payload['elapsed']!r} is not a finite number >= 0"
    if not isinstance(payload["started_at"], str):
        return "started_at is not a string"
    if not _integer(payload["staged_rows"]) or payload["staged_rows"] < 0:
        return f"staged_rows {payload['staged_rows']!r} is not an integer >= 0"
    records = payload["records"]
    if not isinstance(records, list):
        return "its records are not a list"
    for rec in records:
        if not isinstance(rec, Mapping) or not all(isinstance(k, str) for k in rec) \
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rec.values()):
            return "a record is not a mapping of metric names to numbers"
        at = rec.get("step")
        if not isinstance(at, (int, float)) or at != int(at) or not 0 <= at <= step:
            return f"a record's step {at!r} is not an integer in 0 .. {step}"
    rng = payload["rng"]
    reference = torch.get_rng_state()
    if not isinstance(rng, Mapping) or not isinstance(rng.get("torch"), torch.Tensor) \
            or rng["torch"].shape != reference.shape or rng["torch"].dtype != reference.dtype:
        return "its RNG state is not a torch RNG state"
    noise = payload.get("noise")
    noise_on_cpu = payload.get("noise_device", "cpu") == "cpu"  # another device's state has its own shape
    if noise is not None and (not isinstance(noise, torch.Tensor) or noise.dtype != reference.dtype
                              or (noise_on_cpu and noise.shape != reference.shape)):
        return "its noise generator state is not a torch generator state"
    return None


def _tensors_problem(payload: Mapping[str, Any]) -> str | None:
    for name, tensor in payload["model"].items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return f"model tensor {name!r} is not finite"
    for index, state in payload["optimizer"]["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point() \
                    and not bool(torch.isfinite(value).all()):
                return f"optimizer state {key!r} of parameter {index} is not finite"
    return None


def _optimizer_problem(payload: Mapping[str, Any], optimizer: torch.optim.Optimizer) -> str | None:
    if payload["optimizer_class"] != type(optimizer).__name__:
        return f"its optimizer is {payload['optimizer_class']!r}, the run's is {type(optimizer).__name__!r}"
    if hasattr(optimizer, "validate_group"):  # an adamlab optimizer
        try:
            check_loadable(optimizer, payload["optimizer"])
        except ValueError as err:
            return str(err)
    for index, (saved, own) in enumerate(zip(payload["optimizer"]["param_groups"], optimizer.param_groups,
                                             strict=True)):
        for key, value in own.items():
            if key in ("params", "lr", "initial_lr", "param_names"):
                continue
            if key not in saved or _plain(saved[key]) != _plain(value):
                return (f"its param group {index} has {key}={saved.get(key, '(missing)')!r}, "
                        f"the run's optimizer has {key}={value!r}")
    step = payload["step"]
    for index, state in payload["optimizer"]["state"].items():
        counter = state.get("step")
        skips = getattr(optimizer, "nonfinite", "propagate") == "skip"  # a skipped step does not count
        if counter is not None and (float(counter) > step or (float(counter) != step and not skips)):
            return f"optimizer state 'step' of parameter {index} is {float(counter):g}, the checkpoint's step is {step}"
    return None


def checkpoint_problem(payload: Mapping[str, Any], model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                       *, steps: int | None = None,
                       staged: Callable[[int], int] | None = None) -> str | None:
    """Why ``payload`` cannot be resumed by this run (None when it can); see the module docstring.

    Parameters
    ----------
    payload:
        A checkpoint of this run's id (:func:`load_checkpoint`).
    model, optimizer:
        The run's freshly built model and optimizer (not changed).
    steps:
        The run's length (None: the checkpoint's own ``steps``).
    staged:
        ``staged(step)``: how many metric rows of the run are staged in the store at steps up to
        ``step`` now (None: the run streams nothing).
    """
    why = checkpoint_mismatch(payload, model, optimizer)
    if why is None:
        limit = int(payload["steps"]) if steps is None and _integer(payload["steps"]) else steps
        why = _counters_problem(payload, int(limit) if limit is not None else 0)
    if why is None:
        why = _tensors_problem(payload) or _optimizer_problem(payload, optimizer)
    if why is None and staged is not None:
        have = staged(int(payload["step"]))
        if have < int(payload["staged_rows"]):
            why = (f"the metrics it depends on are gone ({int(payload['staged_rows'])} rows staged up to step "
                   f"{payload['step']} when it was saved, {have} now: another attempt started the run over)")
    return why


def staged_counter(sink: Any, run_id: str) -> Callable[[int], int] | None:
    """``staged(step)`` for :func:`checkpoint_problem`: the rows of ``run_id`` that ``sink`` holds
    staged at steps up to ``step`` (None when the sink cannot count them, or there is no sink)."""
    count = getattr(sink, "staged_count", None)
    if count is None:
        return None
    return lambda step: int(count(run_id, up_to_step=step))


def staged_rows(sink: Any, run_id: str) -> int:
    """How many metric rows of ``run_id`` ``sink`` holds staged now (0 without a counting sink)."""
    count = getattr(sink, "staged_count", None)
    return 0 if count is None else int(count(run_id))


def _fits(state: torch.Size, param: torch.Size) -> bool:
    """A state tensor has its parameter's shape, or that shape with some dimensions reduced to 1 (a
    statistic kept per row or per column, as ND-Adam's)."""
    return len(state) == len(param) and all(s in (p, 1) for s, p in zip(state, param, strict=True))


def discard_checkpoint(path: str | os.PathLike[str], why: str) -> None:
    """Warn (:class:`CheckpointWarning`, naming ``path`` and ``why``) and remove the file."""
    warnings.warn(f"checkpoint {str(path)!r} discarded: {why}; the run starts over from step 0",
                  CheckpointWarning, stacklevel=3)
    Path(path).unlink(missing_ok=True)


def restore_checkpoint(path: str | os.PathLike[str] | None, run_id: str, model: torch.nn.Module,
                       optimizer: torch.optim.Optimizer, *, steps: int | None = None,
                       staged: Callable[[int], int] | None = None,
                       noise: Any = None, reseed: Callable[[int], Any] | None = None) -> dict[str, Any] | None:
    """Load the checkpoint of ``run_id`` at ``path`` into ``model``, ``optimizer``, the torch RNG and
    ``noise`` (the run's noise generator, when given; a state saved on another kind of device does not
    fit it, so ``reseed(step)`` is called instead); return its payload.

    Returns None when there is no checkpoint, or when the file cannot be used
    (:func:`checkpoint_problem`, with ``steps`` and ``staged``): then a :class:`CheckpointWarning`
    names it and why, it is removed, and ``model``, ``optimizer``, the RNG and ``noise`` are as they
    were (the run starts over). The caller restores the data position and metrics from the payload.
    """
    if path is None or not Path(path).is_file():
        return None
    payload = load_checkpoint(path, run_id)
    if payload is None:
        discard_checkpoint(path, "it is unreadable, of another format, or of another run")
        return None
    why = checkpoint_problem(payload, model, optimizer, steps=steps, staged=staged)
    if why is None:
        saved = (copy.deepcopy(model.state_dict()), copy.deepcopy(optimizer.state_dict()), rng_states(),
                 None if noise is None else noise.get_state())
        try:
            model.load_state_dict(payload["model"])
            optimizer.load_state_dict(payload["optimizer"])
            set_rng_states(payload["rng"])
            if noise is not None and payload.get("noise") is not None:
                if payload.get("noise_device", "cpu") == noise.generator.device.type:
                    noise.set_state(payload["noise"])
                elif reseed is not None:  # saved on another kind of device (docs/runner.md, Devices)
                    reseed(int(payload["step"]))
        except (RuntimeError, ValueError, KeyError, TypeError) as err:  # checked above; belt and braces
            why = f"it does not load ({type(err).__name__}: {' '.join(str(err).split())[:200]})"
            model.load_state_dict(saved[0])
            optimizer.load_state_dict(saved[1])
            set_rng_states(saved[2])
            if noise is not None:
                noise.set_state(saved[3])
    if why is not None:
        discard_checkpoint(path, f"it does not fit run {run_id[:12]}: {why}")
        return None
    return payload
