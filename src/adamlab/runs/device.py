"""Where runs execute: parsing ``--device``, the availability check, the record of a run's device, determinism.

A device is ``"cpu"`` (the default), ``"cuda"`` (the current CUDA device), ``"cuda:N"``, ``"mps"`` (Apple
silicon) or ``"auto"`` (CUDA if available, else MPS, else the CPU). The device is *how* a run is executed,
not *what* it is: it is not part of a :class:`~adamlab.runs.config.RunConfig` nor of its run id, so a
resumed sweep on another device skips the runs already done, and the store records the device in each
run's ``execution`` (:func:`device_record`).

Determinism. The model is initialised on the CPU from the run's seed and then moved, and the data order
comes from a CPU generator, so every device starts from the same weights and reads the same batches.
The results on one device are not bit-identical to those on another (other kernels, other summation
orders, and the forward pass's noise comes from the device's own generator). On the CPU the same
program gives the same bits. On CUDA, cuDNN's autotuned convolutions and kernels that accumulate with
atomics (``index_add_``, ``scatter_add_``, the backward of ``index_select`` / embeddings) may differ
from one run to the next in the last bits; :func:`set_deterministic` (``--deterministic``) makes PyTorch
use deterministic algorithms (and raise where an operation has none), at some cost in speed.
"""

from __future__ import annotations

import os
import platform
import re
from typing import Any

import torch

#: The device names ``--device`` accepts (``cuda:N`` for any index N >= 0).
DEVICE_CHOICES = ("cpu", "cuda", "cuda:N", "mps", "auto")
#: The default device: every result of the CPU-only releases is unchanged.
DEFAULT_DEVICE = "cpu"
#: The environment setting that makes cuBLAS deterministic (read when cuBLAS starts).
CUBLAS_WORKSPACE = ":4096:8"

_SPEC = re.compile(r"^(cpu|cuda|mps|auto|cuda:(\d+))$")


class DeviceUnavailableError(ValueError):
    """The device asked for is not available here (the message is one line, naming it and why)."""


def _allowed() -> str:
    return ", ".join(DEVICE_CHOICES)


def parse_device(spec: str | torch.device | None = None) -> torch.device:
    """The device named by ``spec`` (None: :data:`DEFAULT_DEVICE`), checked and resolved.

    Parameters
    ----------
    spec:
        ``"cpu"``, ``"cuda"``, ``"cuda:N"``, ``"mps"``, ``"auto"`` or a ``torch.device`` of those kinds.

    Returns
    -------
    torch.device
        ``cpu``, ``cuda:N`` (``"cuda"`` resolves to the current CUDA device) or ``mps``.

    Raises
    ------
    ValueError
        ``spec`` is not one of the allowed forms.
    DeviceUnavailableError
        The device does not exist here (a ``ValueError``: the CLI prints its one line and exits 2).
    """
    if spec is None:
        spec = DEFAULT_DEVICE
    text = str(spec).strip().lower()
    match = _SPEC.match(text)
    if match is None:
        raise ValueError(f"device must be one of {_allowed()}; got {str(spec)!r}")
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if text == "cpu":
        return torch.device("cpu")
    if text == "mps":
        if not _mps_available():
            raise DeviceUnavailableError(f"device 'mps' is not available here (torch {torch.__version__} sees no "
                                         f"Apple MPS device); use --device cpu or auto")
        return torch.device("mps")
    if not torch.cuda.is_available():
        why = ("this torch build has no CUDA" if torch.version.cuda is None
               else f"torch {torch.__version__} (CUDA {torch.version.cuda}) finds no usable GPU")
        raise DeviceUnavailableError(f"device {text!r} is not available here: {why}; use --device cpu or auto")
    count = torch.cuda.device_count()
    index = int(match.group(2)) if match.group(2) is not None else torch.cuda.current_device()
    if index >= count:
        raise DeviceUnavailableError(f"device {text!r} is not available here: there are {count} CUDA device(s), "
                                     f"cuda:0 to cuda:{count - 1}")
    return torch.device("cuda", index)


def setup_device(spec: str | torch.device | None = None, deterministic: bool = False) -> torch.device:
    """What ``--device SPEC [--deterministic]`` does before any training: :func:`parse_device` (an
    unavailable device raises :class:`DeviceUnavailableError`, one line), then :func:`set_deterministic`
    when asked. Returns the device."""
    device = parse_device(spec)
    if deterministic:
        set_deterministic(True)
    return device


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def is_cpu(device: torch.device | str | None) -> bool:
    """Whether ``device`` (None: the default) is the CPU."""
    return device is None or torch.device(device).type == "cpu"


def device_name(device: torch.device) -> str:
    """A human name: the GPU's model (``"NVIDIA H200"``), ``"Apple MPS"``, or the CPU's processor."""
    if device.type == "cuda":
        return str(torch.cuda.get_device_name(device))
    if device.type == "mps":
        return "Apple MPS"
    return platform.processor() or platform.machine() or "cpu"


def device_record(device: torch.device | str | None) -> dict[str, Any]:
    """Where a run ran, for its ``execution`` record in the store.

    Returns ``{"device": "cuda:0", "device_type": "cuda", "device_name": "NVIDIA H200",
    "torch": "2.13.0", "cuda": "12.8" or None, "deterministic": bool}``.
    """
    dev = torch.device("cpu") if device is None else torch.device(device)
    return {
        "device": str(dev),
        "device_type": dev.type,
        "device_name": device_name(dev),
        "torch": torch.__version__,
        "cuda": torch.version.cuda if dev.type == "cuda" else None,
        "deterministic": bool(torch.are_deterministic_algorithms_enabled()),
    }


def execution_record(device: torch.device | str | None) -> dict[str, Any]:
    """What a run's ``execution`` adds about its device: :func:`device_record` for a run on an accelerator or
    with deterministic algorithms on, else nothing (a plain CPU run's record stays as it always was, and a
    record without ``device`` means the CPU)."""
    if is_cpu(device) and not torch.are_deterministic_algorithms_enabled():
        return {}
    return device_record(device)


def device_label(execution: dict[str, Any] | None) -> str | None:
    """Where a stored run ran, from its ``execution`` record: ``"cuda:0 (NVIDIA H200)"``, ``"cpu"`` (a record
    without a device: runs on the CPU record none), or None for a run without a record (not trained yet)."""
    if execution is None:
        return None
    device = execution.get("device")
    if device is None:
        return "cpu"
    name = execution.get("device_name")
    return f"{device} ({name})" if name and str(device) != "cpu" else str(device)


def set_deterministic(enabled: bool = True) -> None:
    """Make PyTorch use deterministic algorithms (``--deterministic``), or stop doing so.

    Sets ``torch.use_deterministic_algorithms(enabled)``, ``torch.backends.cudnn.deterministic = enabled``
    and, when enabling, ``torch.backends.cudnn.benchmark = False`` (no autotuning, which may pick other kernels
    from one run to the next); with ``enabled`` it also sets ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless it is set
    (cuBLAS reads it when it starts, so call this before the first CUDA operation). An operation that has
    no deterministic implementation on the device then raises a ``RuntimeError`` naming it.
    """
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", CUBLAS_WORKSPACE)
    torch.use_deterministic_algorithms(bool(enabled))
    torch.backends.cudnn.deterministic = bool(enabled)
    if enabled:
        torch.backends.cudnn.benchmark = False
