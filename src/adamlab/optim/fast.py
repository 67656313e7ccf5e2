"""Fast steps: the functional rule compiled into one in-place pass over each tensor.

The math is not here. :func:`get_kernel`, the one builder of the update rules' compiled kernels (the
optimizers' and the vectorised backend's; :class:`adamlab.dissect.step_stats.StepStats` compiles its
statistics, which are not an update rule, itself), wraps a rule of :mod:`adamlab.functional` as

.. code-block:: python

    def kernel(param, grad, hyper, *states):      # contiguous tensors of one shape
        new_param, *new_states = rule(param, grad, *states, **static_kwargs,
                                      **{name: hyper[i] for i, name in enumerate(names)})
        param.copy_(new_param); states[k].copy_(new_states[k]) ...

and hands it to ``torch.compile`` (Inductor). The compiled kernel reads every input once and writes each
parameter and its state in place: no temporaries, one streaming pass per tensor, which is what bounds an
optimizer step on a CPU (about 28 bytes per parameter for Adam and M-SVAG).

One compile per rule, switches, dtype and device, for every model:

- tensors are passed as flat 1-D aliases, compiled with dynamic shapes and no duck sizing, so one
  compile serves every size (tensors of fewer than :data:`MIN_KERNEL_NUMEL` elements, which PyTorch
  would specialise on, non-contiguous ones and gradients of another dtype take the reference path);
- the OpenMP loop takes its thread count at run time: tensors of at least :data:`PARALLEL_MIN_NUMEL`
  elements run on all threads, smaller ones on one (no thread barrier per bias), same kernel;
- the per-step floats (those the rule declares, :func:`adamlab.functional.common.step_scalars`: ``lr``,
  the bias corrections, ``rho``, ...) go in one float64 vector, computed on the host exactly as in the
  reference path and rounded to the parameter dtype inside the kernel as PyTorch rounds a Python
  scalar, so a new step or an LR schedule never recompiles;
  everything else (betas, eps, switches) is a constant of the kernel and part of the cache key,
  together with the rule, which state slots are present, dtype, device and layout;
- after the first call (Dynamo traces, Inductor compiles) a kernel is called directly, without Dynamo
  and its guards (:class:`Kernel`): about 4 us a call instead of 22 us, which is what makes a
  two-tensor model's step as cheap as torch's fused Adam.

When compilation is not possible (no C++ compiler or Triton, unsupported platform, any compile error)
the caller falls back to the reference (loop or foreach) path; :func:`warn_fallback` emits ONE warning
per process. :func:`use_compiled` is the ``fused=`` policy, a pure function of the program (flags,
sizes, the step count, :data:`COMPILE_AFTER_ENV` and ``ADAMLAB_FUSED_MIN_NUMEL``), never of a measured
time; :func:`fast_step` undoes a failed first run of a group and sends the group to the reference path
for good; :func:`reset` forgets every kernel.
"""

from __future__ import annotations

import functools
import getpass
import hashlib
import importlib.util
import inspect
import json
import math
import operator
import os
import re
import shutil
import stat
import sys
import tempfile
import textwrap
import time
import types
import warnings
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from adamlab.functional.common import divides_by_reciprocal, step_scalars
from adamlab.util.files import write_json

#: ``fused=None`` (the default) uses the compiled path from the first step for a parameter group of at
#: least this many elements (and a compiler is available). At 1M parameters the compiled step saves
#: milliseconds per step over the loop path, so a compile of 1-10 s is repaid within a few thousand
#: steps; smaller groups start eager and switch at a fixed step (:data:`DEFAULT_COMPILE_AFTER_STEPS`).
#: Override per process with the environment variable ``ADAMLAB_FUSED_MIN_NUMEL``; ``fused=True``
#: forces the compiled path.
DEFAULT_MIN_NUMEL = 1_000_000

#: ``fused=None``: a group below :func:`min_numel` takes the reference path for its first this many steps
#: and the compiled path from the next one on (a fixed count, never a measured time: the path, and so
#: the last bits of every result, is a function of the program alone, the same on every rank and on a
#: busy or an idle machine). Override with ``ADAMLAB_FUSED_AFTER_STEPS`` (an integer >= 0).
#: 10, not more: at 7,850 parameters a reference step costs about 2.5 compiled ones, so 100 of them
#: would take a quarter of a 1,000-step run's whole budget against torch's fused Adam; 10 take 2-3%.
#: A run of at most 10 steps (a smoke test, an example) still never compiles.
DEFAULT_COMPILE_AFTER_STEPS = 10

#: Environment override of :data:`DEFAULT_COMPILE_AFTER_STEPS`.
COMPILE_AFTER_ENV = "ADAMLAB_FUSED_AFTER_STEPS"

#: Tensors with fewer elements take the reference path (a compiled kernel would specialise on sizes 0 and 1).
MIN_KERNEL_NUMEL = 2

#: Tensors with at least this many elements run on all OpenMP threads, smaller ones on one (like
#: ``at::parallel_for``'s grain size, 32768, in torch's own fused kernels). Parallel loops over small
#: tensors cost a thread barrier each, which on a busy 2-core host was measured at milliseconds.
PARALLEL_MIN_NUMEL = 32768

#: Environment switch: ``ADAMLAB_NO_COMPILE=1`` disables the compiled path everywhere.
NO_COMPILE_ENV = "ADAMLAB_NO_COMPILE"

KernelKey = tuple[Any, ...]
_KERNELS: dict[KernelKey, Kernel] = {}
_BROKEN: dict[KernelKey, str] = {}
_WARNED = False
#: Seconds spent compiling (first call of each kernel), by kernel key; the benchmark reports it.
COMPILE_SECONDS: dict[KernelKey, float] = {}


def min_numel() -> int:
    """The group size from which ``fused=None`` compiles (:data:`DEFAULT_MIN_NUMEL` or the env override)."""
    value = os.environ.get("ADAMLAB_FUSED_MIN_NUMEL")
    if value is None:
        return DEFAULT_MIN_NUMEL
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"ADAMLAB_FUSED_MIN_NUMEL must be an integer, got {value!r}") from None


def compile_after_steps() -> int:
    """The step count after which ``fused=None`` compiles a small group (:data:`DEFAULT_COMPILE_AFTER_STEPS` or the env override)."""
    value = os.environ.get(COMPILE_AFTER_ENV)
    if value is None:
        return DEFAULT_COMPILE_AFTER_STEPS
    try:
        steps = int(value)
    except ValueError:
        steps = -1
    if steps < 0:
        raise ValueError(f"{COMPILE_AFTER_ENV} must be an integer >= 0, got {value!r}")
    return steps


def compile_available(device: torch.device | None = None) -> tuple[bool, str]:
    """Whether a compiled kernel can be built here; ``(False, reason)`` otherwise."""
    if os.environ.get(NO_COMPILE_ENV, "") not in ("", "0"):
        return False, f"{NO_COMPILE_ENV} is set"
    device_type = device.type if device is not None else "cpu"
    if device_type == "cpu" and _have_snapshots():
        return True, ""  # kernels were compiled here before; checking the toolchain imports Inductor
    return _toolchain(device_type)


@functools.cache
def _have_snapshots() -> bool:
    folder = usable_snapshot_dir()
    try:
        return folder is not None and any(name.endswith(".json") for name in os.listdir(folder))
    except OSError:
        return False


@functools.cache
def _toolchain(device_type: str) -> tuple[bool, str]:
    try:
        import torch._dynamo as dynamo

        if not dynamo.is_dynamo_supported():
            return False, "torch.compile is not supported on this Python/platform"
    except Exception as exc:  # pragma: no cover - broken torch installs
        return False, f"torch._dynamo is unavailable ({exc})"
    if device_type == "cpu":
        from torch._inductor import config as inductor_config

        cxx = inductor_config.cpp.cxx
        cxx = cxx[-1] if isinstance(cxx, tuple) else cxx
        if not cxx or shutil.which(str(cxx)) is None:
            return False, f"no C++ compiler ({cxx!r} not found)"
    elif device_type == "cuda":
        from torch.utils._triton import has_triton

        if not has_triton():
            return False, "Triton is not installed (needed to compile CUDA kernels)"
    return True, ""


def warn_fallback(reason: str) -> None:
    """Warn once per process that the compiled path is off and the reference path is used instead."""
    global _WARNED
    if _WARNED:
        return
    _WARNED = True
    warnings.warn(
        f"adamlab: compiled optimizer step unavailable ({reason}); using the foreach/loop path instead. "
        "Its results differ from the compiled path's in the last bits, and steps are slower.",
        RuntimeWarning,
        stacklevel=4,
    )


def split_kwargs(kwargs: dict[str, Any], rule: Any) -> tuple[tuple[tuple[str, Any], ...], tuple[str, ...], list[float]]:
    """Split rule kwargs into the static part (cache key) and the per-step scalars (names, values).

    The per-step scalars are those the rule declares (:func:`adamlab.functional.common.step_scalars`;
    ``lr`` alone for an unmarked function).
    """
    static, names, values = [], [], []
    per_step = step_scalars(rule)
    for name in sorted(kwargs):
        value = kwargs[name]
        if name in per_step:
            names.append(name)
            values.append(float(value))
        else:
            static.append((name, value))
    return tuple(static), tuple(names), values


class Kernel:
    """One compiled in-place kernel of a rule: ``kernel(param, grad, hyper, *states) -> bool``.

    ``param``, ``grad`` and the present ``states`` are contiguous tensors of one shape (1-D flat aliases
    in the optimizers; ``[P, K, Q]`` stacks in the vectorised backend, size-1 dimensions left out);
    ``hyper`` holds the per-step (and per-run) hyperparameters named by ``names``, stacked on its first
    dimension: a 1-D float64 tensor in the optimizers (each entry is rounded to the parameter dtype
    inside the kernel, as PyTorch rounds a Python scalar), ``[len(names), *broadcast]`` in the
    vectorised backend. Returns False (nothing was changed) when compilation failed.

    The first call goes through Dynamo, which compiles (once: dynamic shapes, no duck sizing). Later
    calls skip Dynamo: the backend keeps the compiled graph and where each of its inputs comes from (a
    tensor argument, or one of its sizes), and :meth:`__call__` calls it directly. That bypasses Dynamo's
    guards, which is safe because everything they check is fixed by the cache key (rule, static
    kwargs, present states, dtype, device, layout) or checked by the callers (contiguous
    tensors of equal shapes, same dtype); Inductor's own size asserts stay on, except in the fast
    lane's calls (:func:`unchecked_call`). One call costs about 4 us (Inductor's runner) or 8 us (the
    AOT wrapper, off the CPU) instead of 22 us through Dynamo (idle host).
    """

    def __init__(self, key: KernelKey, rule: Callable[..., tuple[Any, ...]], static: dict[str, Any],
                 names: tuple[str, ...], present: tuple[bool, ...], device: torch.device) -> None:
        self.key = key
        self.broken: str | None = None
        self.compile_seconds: float | None = None
        self.direct: Callable[..., Any] | None = None
        #: The direct call without Inductor's per-call size and stride asserts, for the fast lane only,
        #: which checks every tensor itself before each step (:func:`unchecked_call`); None: use direct.
        self.unchecked: Callable[..., Any] | None = None
        #: Whether the kernel takes a size from the gradient (a rule without state: SGD): then the lane
        #: must pass the gradient flat, as the full path does.
        self.sizes_from_grad = True
        self.direct_level = ""
        self.hyper_buffer: tuple[Tensor, Any] | None = None
        self._snapshot_tried = False
        slot_of = [None] * len(present)
        j = 0
        for k, there in enumerate(present):
            if there:
                slot_of[k] = j
                j += 1

        def template(param: Tensor, grad: Tensor, hyper: Tensor, *states: Tensor) -> None:
            kwargs = {name: hyper[i] for i, name in enumerate(names)}
            olds = [None if s is None else states[s] for s in slot_of]
            new = rule(param, grad, *olds, **static, **kwargs)
            for old, value in zip((param, *olds), new, strict=True):
                if old is not None and value is not old:
                    old.copy_(value)

        # A fresh code object per key: Dynamo caches (and limits recompiles) per code object.
        code = template.__code__.replace(co_name=f"adamlab_fast_{len(_KERNELS)}")
        fresh = types.FunctionType(code, template.__globals__, code.co_name, None, template.__closure__)
        # dynamic_threads: the OpenMP loop takes its thread count at run time, so one compile serves
        # large tensors (all threads) and small ones (called with one thread, no barrier).
        options: dict[str, Any] = {"cpp.dynamic_threads": True} if device.type == "cpu" else {}
        reciprocal = divides_by_reciprocal(rule)
        self._make = lambda: torch.compile(fresh, dynamic=True, fullgraph=True,
                                           backend=functools.partial(_backend, self, options, reciprocal))
        self._compiled_fn: Callable[..., Any] | None = None

    def _compiled(self, *args: Any) -> Any:
        """The ``torch.compile`` wrapper (built on first use: creating it imports Dynamo)."""
        if self._compiled_fn is None:
            self._compiled_fn = self._make()
        return self._compiled_fn(*args)

    def __call__(self, param: Tensor, grad: Tensor, hyper: Tensor, *states: Tensor) -> bool:
        direct = self.direct
        if direct is not None:
            direct(param, grad, hyper, *states)
            return True
        if self.broken is not None:
            return False
        start = time.perf_counter()
        if self._load_snapshot():
            self.direct(param, grad, hyper, *states)  # type: ignore[misc]
            return True
        import torch._dynamo.config as dynamo_config  # here, not at import: a warm start never needs them
        import torch.fx.experimental._config as fx_config

        try:
            # No duck sizing: dimensions that happen to be equal at the first call (P == Q in a stack)
            # must not be assumed equal for the next model.
            # specialize_float: the static floats (betas, eps) are constants of the kernel, not inputs.
            with fx_config.patch(use_duck_shape=False), dynamo_config.patch(specialize_float=True):
                self._compiled(param, grad, hyper, *states)
        except Exception as exc:  # no compiler, Inductor error, unsupported op: compiling mutates nothing
            self.broken = describe_error(exc)
            _BROKEN[self.key] = self.broken
            warn_fallback(self.broken)
            return False
        if self.compile_seconds is None:
            self.compile_seconds = time.perf_counter() - start
            COMPILE_SECONDS[self.key] = self.compile_seconds
        self.arm()
        return True

    def capture(self, gm: torch.fx.GraphModule, compiled: Callable[..., Any]) -> None:
        """Keep ``compiled`` and where each graph input comes from, if every input is one of ours."""
        exprs = []
        for node in gm.graph.nodes:
            if node.op != "placeholder":
                continue
            grapharg = node.meta.get("grapharg")
            source = getattr(getattr(grapharg, "source", None), "name", None)
            match = None if not isinstance(source, str) else _SOURCE.fullmatch(source)
            if match is None:
                return  # an input Dynamo found elsewhere: keep the guarded path
            exprs.append(match.group(1) + match.group(2))
        self._pending = (compiled, exprs)

    def arm(self) -> None:
        """After a successful first call: switch to direct calls of the compiled graph.

        Two levels: Inductor's own runner (the innermost callable, ``CompiledFxGraph.current_callable``,
        about 4 us a call) where the graph's input mutations are all done inside the generated code and
        no input needs an alignment copy, else the AOT-autograd wrapper Dynamo would call (about 8 us).
        """
        pending = getattr(self, "_pending", None)
        if pending is None or self.broken is not None or os.environ.get(GUARDED_ENV, "") not in ("", "0"):
            return
        compiled, exprs = pending
        inner = inspect.unwrap(compiled)
        runner = getattr(inner, "current_callable", None)
        boxed = (self.key[7] == "cpu" and runner is not None and getattr(inner, "_boxed_call", False)
                 and not getattr(inner, "inputs_to_check", None) and type(inner).__name__ == "CompiledFxGraph")
        if boxed:
            func = getattr(runner, "__func__", None)
            source = _source_of(func)
            lean = None if func is None or source is None else unchecked_call(source, func.__globals__)
            self._use_boxed(runner, lean, exprs, "inductor")
            _save_snapshot(self.key, runner, exprs)
        else:
            # Built from Dynamo's own source names (``param``, ``states[1].size()[0]``, ...), nothing else.
            body = f"lambda param, grad, hyper, *states: run({', '.join(exprs)})"
            self.direct = eval(body, {"run": compiled})  # noqa: S307
            self.direct_level = "aot"

    def _use_boxed(self, run: Callable[..., Any], lean: Callable[..., Any] | None, exprs: list[str],
                   level: str) -> None:
        """Call Inductor's boxed runner ``run`` (and ``lean``, its :func:`unchecked_call`) directly, with
        the inputs rebuilt from Dynamo's own source names ``exprs`` (``param``, ``states[1].size()[0]``,
        ...), nothing else."""
        body = f"lambda param, grad, hyper, *states: run([{', '.join(exprs)}])"
        self.direct = eval(body, {"run": run})  # noqa: S307
        self.unchecked = None if lean is None else eval(body, {"run": lean})  # noqa: S307
        self.sizes_from_grad = any(e.startswith("grad.") for e in exprs)
        self.direct_level = level

    def _load_snapshot(self) -> bool:
        """Arm from the on-disk snapshot of an earlier process (:func:`_save_snapshot`), if there is one."""
        if self._snapshot_tried or os.environ.get(GUARDED_ENV, "") not in ("", "0"):
            return False
        self._snapshot_tried = True
        loaded = _load_snapshot(self.key)
        if loaded is None:
            return False
        run, exprs, lean = loaded
        self._use_boxed(run, lean, exprs, "snapshot")  # the snapshot's own input sources
        self.compile_seconds = 0.0
        COMPILE_SECONDS[self.key] = 0.0
        return True


#: ``L['param']``, ``L['states'][1]``, ``L['grad'].size()[0]``: the sources a direct call rebuilds.
_SOURCE = re.compile(r"L\['(param|grad|hyper|states)'\]((?:\[\d+\])?(?:\.size\(\)\[\d+\])?)")

#: ``ADAMLAB_FAST_GUARDED=1``: always call kernels through Dynamo (with its guards); for debugging.
GUARDED_ENV = "ADAMLAB_FAST_GUARDED"


#: ``ADAMLAB_KERNEL_CACHE``: where kernel snapshots go (default: ``adamlab/`` in Inductor's cache folder);
#: ``ADAMLAB_KERNEL_CACHE=0`` turns snapshots off.
SNAPSHOT_ENV = "ADAMLAB_KERNEL_CACHE"


def snapshot_dir() -> str | None:
    """The folder of kernel snapshots, next to Inductor's own cache (None when turned off)."""
    value = os.environ.get(SNAPSHOT_ENV, "")
    if value == "0":
        return None
    if value:
        return value
    base = os.environ.get("TORCHINDUCTOR_CACHE_DIR") or os.path.join(
        tempfile.gettempdir(), "torchinductor_" + "".join(c if c.isalnum() else "_" for c in getpass.getuser()))
    return os.path.join(base, "adamlab")


def private_path(path: str) -> bool:
    """Whether ``path`` (not a symlink) belongs to the current user and nobody else can write to it.

    A kernel snapshot's contents are executed, so its folder (and the compiled extensions it names) must
    be as private as the user's own code. False where the platform has no user ids.
    """
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return False
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return not stat.S_ISLNK(info.st_mode) and info.st_uid == getuid() and not info.st_mode & 0o022


_UNSAFE_WARNED: set[str] = set()


def usable_snapshot_dir(create: bool = False) -> str | None:
    """:func:`snapshot_dir` if it may be used: it exists (``create``: made, mode 0700) and is
    :func:`private_path`; else None, with one warning per folder that exists but is not private."""
    folder = snapshot_dir()
    if folder is None:
        return None
    if create and not os.path.exists(folder):
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
        except OSError:
            return None
    if not os.path.isdir(folder):
        return None
    if not private_path(folder):
        if folder not in _UNSAFE_WARNED:
            _UNSAFE_WARNED.add(folder)
            warnings.warn(f"adamlab: kernel snapshot folder {folder} is not private (it must belong to the "
                          "current user and be writable by nobody else); snapshots are not used. Set "
                          f"{SNAPSHOT_ENV} to a private folder, or {SNAPSHOT_ENV}=0.", RuntimeWarning, stacklevel=2)
        return None
    return folder


def snapshot_identity(key: KernelKey) -> dict[str, str]:
    """Everything a snapshot's kernel depends on: it is used only where all of it matches.

    The rule, its static arguments and state slots, torch's and Python's versions, the device, the
    dtypes, the layout, the strides (the kernels take contiguous tensors only) and the tensor type
    (plain ``torch.Tensor``: ``DTensor`` s are stepped on their local shards, other subclasses never
    reach a kernel). The rules' source and the CPU's instruction set are in the file name
    (:func:`_code_digest`).
    """
    return {"kernel": repr((key[0], key[1], *key[3:])),  # not id(rule), which changes from process to process
            "torch": torch.__version__, "python": sys.version.split()[0], "device": str(key[7]),
            "dtype": str(key[6]), "hyper_dtype": str(key[9]), "layout": str(key[8]), "strides": "contiguous",
            "tensor_type": "torch.Tensor"}


@functools.cache
def _code_digest() -> str:
    """What a kernel's generated code depends on besides its key: the rules' and this file's source,
    torch's version and the CPU (the compiled code is specialised to its instruction set)."""
    import adamlab.functional as functional

    digest = hashlib.sha256(torch.__version__.encode())
    folder = os.path.dirname(functional.__file__)
    for name in sorted(os.listdir(folder)) + [__file__]:
        path = name if os.path.isabs(name) else os.path.join(folder, name)
        if path.endswith(".py"):
            with open(path, "rb") as f:
                digest.update(f.read())
    try:
        with open("/proc/cpuinfo") as f:
            digest.update("".join(line for line in f if line.startswith(("flags", "model name"))).encode())
    except OSError:
        digest.update(os.uname().machine.encode() if hasattr(os, "uname") else b"")
    return digest.hexdigest()[:32]


def _snapshot_file(key: KernelKey, create: bool = False) -> str | None:
    folder = usable_snapshot_dir(create)
    if folder is None:
        return None
    stable = json.dumps(snapshot_identity(key), sort_keys=True)
    name = hashlib.sha256((stable + _code_digest()).encode()).hexdigest()[:40]
    return os.path.join(folder, f"{name}.json")


_ASSERT_LINE = re.compile(r"\s*assert_(size_stride|alignment)\(.*\)\s*")


def _source_of(func: Any) -> str | None:
    """The dedented source of Inductor's wrapper function ``func``, or None."""
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None


def unchecked_call(source: str, namespace: dict[str, Any]) -> Callable[..., Any] | None:
    """Inductor's wrapper ``call(self, args)`` from ``source`` without its ``assert_size_stride`` and
    ``assert_alignment`` lines, bound to ``self=None``; None when the source is not of that form.

    Only the fast lane (:class:`_Lane`) calls it: before every step it checks that each parameter,
    gradient and state is the contiguous tensor of the size and dtype the plan was built and verified
    on (the first calls went through the asserts), so the asserts -- five per tensor, about 1.6 us of a
    7,850-parameter step of about 40 us -- can only pass there. The generated code reads only the
    tensors' data pointers, so where the kernel's sizes come from the flat parameter or state views
    (``Kernel.sizes_from_grad`` is False) the lane also passes a contiguous gradient as it is.
    """
    lines = source.splitlines()
    kept = [line for line in lines if not _ASSERT_LINE.fullmatch(line)]
    if not lines or not lines[0].startswith("def call(") or len(kept) == len(lines):
        return None
    scope = dict(namespace)
    try:
        exec(compile("\n".join(kept) + "\n", "<adamlab unchecked call>", "exec"), scope)  # noqa: S102
    except SyntaxError:
        return None
    return functools.partial(scope["call"], None)


def _save_snapshot(key: KernelKey, runner: Callable[..., Any], exprs: list[str]) -> None:
    """Record where Inductor put this kernel (its C++ extension and the wrapper's ``call``), best effort.

    A later process with the same key and code digest (:func:`_code_digest`) then calls the kernel
    without importing Dynamo or Inductor at all: the first step of a warm start costs milliseconds.
    The snapshot holds paths into Inductor's own on-disk cache; it is read only from a private folder
    (:func:`usable_snapshot_dir`) and used only where its identity matches (:func:`snapshot_identity`).
    """
    path = _snapshot_file(key, create=True)
    func = getattr(runner, "__func__", None)
    if path is None or func is None:
        return
    try:
        extensions = {name: value.__self__.__file__ for name, value in func.__globals__.items()
                      if name.startswith("cpp_fused_") and hasattr(getattr(value, "__self__", None), "__file__")}
        source = _source_of(func)
        if source is None or not extensions or not all(os.path.exists(f) for f in extensions.values()):
            return
        write_json(path, {"version": 2, **snapshot_identity(key), "extensions": extensions,
                          "call": source, "exprs": exprs}, indent=None)
    except (OSError, TypeError, AttributeError):
        return


def _load_snapshot(key: KernelKey) -> tuple[Callable[..., Any], list[str], Callable[..., Any] | None] | None:
    """The kernel of :func:`_save_snapshot` as ``(call, exprs, unchecked call)``, or None (no snapshot, or it
    is stale)."""
    path = _snapshot_file(key)
    if path is None or key[7] != "cpu" or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
        if data.get("version") != 2 or any(data.get(k) != v for k, v in snapshot_identity(key).items()):
            return None  # another torch, dtype, layout, ...: compile afresh (and overwrite it)
        if not all(private_path(f) and private_path(os.path.dirname(f)) for f in data["extensions"].values()):
            return None  # extensions that someone else could have written are never loaded
        guards = torch._C._dynamo.guards  # type: ignore[attr-defined]
        # What Inductor's loader sets before loading one of its C++ extensions.
        os.environ["_TORCHINDUCTOR_PYOBJECT_TENSOR_DATA_PTR"] = str(guards._torchinductor_pyobject_tensor_data_ptr)
        namespace: dict[str, Any] = {"torch": torch, "aten": torch.ops.aten,
                                     "assert_size_stride": guards.assert_size_stride,
                                     "assert_alignment": guards.assert_alignment,
                                     "empty_strided_cpu": guards._empty_strided_cpu,
                                     "reinterpret_tensor": guards._reinterpret_tensor}
        for name, so_path in data["extensions"].items():
            module_name = f"adamlab_snapshot_{os.path.basename(so_path).split('.')[0]}.kernel"
            module = sys.modules.get(module_name)
            if module is None:
                spec = importlib.util.spec_from_file_location(module_name, so_path)
                if spec is None or spec.loader is None:
                    return None
                module = importlib.util.module_from_spec(spec)
                spec.loader.exec_module(module)
                sys.modules[module_name] = module
            namespace[name] = module.kernel
        lean = unchecked_call(data["call"], namespace)
        exec(compile(data["call"], path, "exec"), namespace)  # noqa: S102 - Inductor's own wrapper code
        call = namespace["call"]
        return functools.partial(call, None), list(data["exprs"]), lean
    except Exception:  # noqa: BLE001 - any problem with a snapshot: compile as if there were none
        return None


def __getattr__(name: str) -> Any:
    """``RECIPROCAL_RULES``: the rules of :mod:`adamlab.functional` (``module.qualname``) whose divisions by
    per-step scalars are compiled as products with the reciprocal. A view computed from the rules' own
    flag (:func:`adamlab.functional.common.divides_by_reciprocal`), which is what the kernels read."""
    if name == "RECIPROCAL_RULES":
        import adamlab.functional as functional

        return frozenset(f"{rule.__module__}.{rule.__qualname__}" for rule in vars(functional).values()
                         if callable(rule) and hasattr(rule, "__qualname__") and divides_by_reciprocal(rule))
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def describe_error(exc: BaseException) -> str:
    """One line for a compile error: the innermost exception Dynamo/Inductor wrapped, and its first line."""
    root: BaseException = exc
    while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
        root = inner
    message = str(root).strip().splitlines()
    return f"{type(root).__name__}: {message[0] if message else ''}"


def get_kernel(rule: Callable[..., tuple[Any, ...]], static: tuple[tuple[str, Any], ...], names: tuple[str, ...],
               present: tuple[bool, ...], dtype: torch.dtype, device: torch.device, layout: str = "N",
               hyper_dtype: torch.dtype = torch.float64) -> Kernel:
    """The compiled in-place kernel of ``rule`` (cached per process): the one builder of the update rules' kernels.

    ``static``: the rule's keyword arguments baked into the kernel (part of the key); ``names``: those
    passed at run time in ``hyper``; ``present``: which state slots of the rule get a tensor (the
    others get None); ``layout``: one letter per dimension of the tensors, ``"N"`` for the optimizers'
    1-D flat aliases, a subset of ``"PKQ"`` for the stacks of :func:`stacked_step` (``K`` the run axis;
    size-1 dimensions, which Dynamo would specialise on, are left out); ``hyper_dtype``: of ``hyper``
    (float64 in the optimizers: each value is rounded to ``dtype`` inside the kernel, as PyTorch rounds
    a Python scalar; the parameter dtype in the vectorised backend, rounded on the host: the same value).
    """
    key = (getattr(rule, "__module__", ""), getattr(rule, "__qualname__", repr(rule)), id(rule), static,
           names, present, dtype, device.type, layout, hyper_dtype)
    kernel = _KERNELS.get(key)
    if kernel is None:
        kernel = Kernel(key, rule, dict(static), names, present, device)
        _KERNELS[key] = kernel
    return kernel


def _backend(kernel: Kernel, options: dict[str, Any], reciprocal: bool, gm: torch.fx.GraphModule,
             example_inputs: list[Any]) -> Callable[..., Any]:
    """Inductor with ``options``, after :func:`scalar_division_to_reciprocal` when ``reciprocal``.

    A module-level function, so that tests can count or break compiles. The compiled graph is handed
    to ``kernel`` for direct calls (:meth:`Kernel.capture`).
    """
    from torch._inductor.compile_fx import compile_fx

    if reciprocal:
        scalar_division_to_reciprocal(gm)
    compiled = compile_fx(gm, example_inputs, config_patches=options)
    kernel.capture(gm, compiled)
    return compiled


def scalar_division_to_reciprocal(gm: torch.fx.GraphModule) -> int:
    r"""Rewrite ``tensor / scalar`` as ``tensor * (1 / scalar)`` in a captured graph; return the count.

    Adam's rule divides every element by two per-step scalars (:math:`1-\beta_1^t`, :math:`1-\beta_2^t`)
    besides its one true element-wise division. A vector division costs several multiplications, so
    three of them make the step compute-bound on a 2-core AVX2 CPU; torch's fused Adam likewise
    multiplies by precomputed reciprocals. The quotients move by at most about one unit in the last
    place, which the tests bound against the reference path. Only rules marked
    ``@update_rule(reciprocal_division=True)`` (:data:`RECIPROCAL_RULES`) get this rewrite, which makes
    the compiled path round differently from the eager one. M-SVAG's :math:`\rho s` amplifies the
    last-place round-off of ``m`` and ``v`` by up to :math:`10^4` in the first steps, so its rule is
    not rewritten here; instead it multiplies by its per-step reciprocals itself
    (:func:`adamlab.functional.dissected.corrected`), the same expression on every path.
    """
    count = 0
    for node in list(gm.graph.nodes):
        is_div = (node.op == "call_function" and node.target in (operator.truediv, torch.div, torch.true_divide)) or (
            node.op == "call_method" and node.target in ("div", "__truediv__", "true_divide"))
        if not is_div or len(node.args) != 2 or node.kwargs:
            continue
        num, den = node.args
        num_value = num.meta.get("example_value") if isinstance(num, torch.fx.Node) else num
        den_value = den.meta.get("example_value") if isinstance(den, torch.fx.Node) else den
        if not (isinstance(num_value, Tensor) and num_value.dim() >= 1):
            continue
        with gm.graph.inserting_before(node):
            if isinstance(den_value, Tensor) and den_value.dim() == 0:
                inverse = gm.graph.call_function(torch.reciprocal, (den,))
            elif isinstance(den_value, (float, torch.SymFloat)) and isinstance(den, torch.fx.Node):
                inverse = gm.graph.call_function(operator.truediv, (1.0, den))
            else:
                continue
            product = gm.graph.call_function(operator.mul, (num, inverse))
        product.meta.update(node.meta)
        node.replace_all_uses_with(product)
        gm.graph.erase_node(node)
        count += 1
    if count:
        gm.graph.lint()
        gm.recompile()
    return count


#: ``id(t) -> (weakref(t), data_ptr, flat alias)``; an entry goes when its tensor does.
_FLAT: dict[int, tuple[weakref.ref[Tensor], int, Tensor]] = {}


def _flat(t: Tensor) -> Tensor | None:
    """A 1-D alias of ``t`` (same storage, cached while ``t`` keeps its storage), or None if not contiguous.

    ``detach()`` drops the view's ``_base``: Dynamo guards on a view's base shape, and bases of
    different ranks (biases, matrices, conv kernels) would otherwise each cost a recompile.
    """
    key = id(t)
    hit = _FLAT.get(key)
    ptr = t.data_ptr()
    if hit is not None and hit[0]() is t and hit[1] == ptr and hit[2].numel() == t.numel():
        return hit[2]
    if not t.is_contiguous():
        return None
    flat = t.detach().view(-1)
    _FLAT[key] = (weakref.ref(t, lambda _, key=key: _FLAT.pop(key, None)), ptr, flat)
    return flat


def hyper_tensor(values: Sequence[float], device: torch.device, kernel: Kernel | None = None) -> Tensor:
    """The per-step scalars as one float64 vector.

    On the CPU the kernel's own buffer is refilled in place (kernels run synchronously there, so the
    buffer is free again when a call returns; this saves a tensor allocation per step). Elsewhere a
    fresh tensor per step (one host-to-device copy), because the device may still be reading the last.
    """
    values = list(values) if values else [0.0]
    if kernel is not None and device.type == "cpu":
        buffer = kernel.hyper_buffer
        if buffer is None or buffer[0].numel() != len(values):
            tensor = torch.tensor(values, dtype=torch.float64)
            kernel.hyper_buffer = buffer = (tensor, tensor.numpy())
        else:
            buffer[1][:] = values
        return buffer[0]
    return torch.tensor(values, dtype=torch.float64, device=device)


def fast_step(rule: Callable[..., tuple[Any, ...]], params: Sequence[Tensor], grads: Sequence[Tensor],
              states: Sequence[Sequence[Tensor] | None], kwargs: dict[str, Any],
              owner: tuple[Any, dict[str, Any]] | None = None,
              lane_slots: tuple[str | None, ...] | None = None) -> list[int]:
    """Run one step of ``rule`` over a bucket with the compiled kernel, in place.

    Parameters
    ----------
    rule:
        A rule of :mod:`adamlab.functional`, ``rule(param, grad, *states, **kwargs) -> (param, *states)``.
    params, grads:
        The bucket's parameters and gradients (same step, device and dtype). ``DTensor`` s (FSDP2,
        tensor parallelism) are stepped on their local shards, which is exact for an element-wise rule
        when the parameter, its gradient and its state share one mesh and one ``Shard``/``Replicate``
        placement (any other layout takes the reference path, on the ``DTensor`` s).
    states:
        One entry per state slot of the rule: the bucket's state tensors, or None where the rule gets None.
    kwargs:
        The rule's keyword arguments for this step (``rule_kwargs``).
    owner:
        ``(optimizer, param_group)``: keep the group's :class:`_Plan` between steps (it goes with the
        optimizer); without it, everything is worked out again.
    lane_slots:
        The optimizer's state names of ``states`` (``state_slots``), given when this bucket is the whole
        group (every parameter of the group, one step count, real dense plain tensors): after a verified
        run that left nothing to the reference path, the group gets a :class:`_Lane` for later steps.

    Returns
    -------
    The indices that the kernel did NOT update (tiny or non-contiguous tensors, or everything once
    the compiled path failed), for the caller's reference path.

    No half-stepped group: the first run of each plan keeps a copy of the tensors it writes; if any of
    its kernel calls fails, every tensor is restored, the whole bucket is returned for the reference
    path, and the group (``owner``) takes the reference path for the rest of the run
    (:func:`use_compiled`), with one warning.

    One kernel call per tensor. Tensors of fewer than :data:`PARALLEL_MIN_NUMEL` elements run with one
    OpenMP thread (no barrier per small tensor), larger ones with all of them: the same compiled kernel.
    """
    if not params:
        return []
    everything = list(range(len(params)))
    plain = all(_plain(p) for p in params)
    local = _local_tensors(params, grads, states)
    if local is None:
        return everything
    params, grads, states = local
    choice = _choice(*owner) if owner is not None else None
    slot = (params[0].device, params[0].dtype, len(params), params[0].data_ptr())
    plan = choice.plans.get(slot) if choice is not None else None
    if plan is None or not plan.valid(rule, params, states, kwargs):
        plan = _Plan(rule, params, states, kwargs)
        if choice is not None:
            choice.plans[slot] = plan
    try:
        left = plan.run(grads, kwargs)
    except CompiledStepFailed as failure:
        if choice is None:
            warn_fallback(failure.reason)
        else:
            choice.failed = failure.reason
            _warn_group_failed(owner[0], failure.reason)  # type: ignore[index]
        return everything
    if (lane_slots is not None and choice is not None and owner is not None and not left and plan.verified
            and plan.kernel.direct is not None and plain and LANES):
        choice.lane = _Lane.build(owner[0], owner[1], plan, lane_slots)
    return left


class CompiledStepFailed(RuntimeError):
    """A kernel call of a plan's first run failed; every tensor it had written was restored."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _local_tensors(params: Sequence[Tensor], grads: Sequence[Tensor], states: Sequence[Sequence[Tensor] | None]
                   ) -> tuple[list[Tensor], list[Tensor], list[list[Tensor] | None]] | None:
    """Plain tensors as they are; ``DTensor`` s as their local shards (see :func:`fast_step`); None if neither."""
    if all(_plain(p) for p in params) and all(_plain(g) for g in grads) and all(
            s is None or all(_plain(t) for t in s) for s in states):
        return list(params), list(grads), [None if s is None else list(s) for s in states]
    try:
        from torch.distributed.tensor import DTensor, Replicate, Shard
    except ImportError:  # pragma: no cover - torch built without distributed
        return None
    out_p, out_g, out_s = [], [], [None if s is None else [] for s in states]
    for i, p in enumerate(params):
        group = [p, grads[i], *(s[i] for s in states if s is not None)]
        if not all(isinstance(t, DTensor) for t in group):
            return None
        mesh, placements = p.device_mesh, p.placements
        if not all(isinstance(pl, (Shard, Replicate)) for pl in placements) or any(
                t.device_mesh != mesh or t.placements != placements or t.shape != p.shape for t in group[1:]):
            return None
        out_p.append(p.to_local())
        out_g.append(grads[i].to_local())
        for k, s in enumerate(states):
            if s is not None:
                out_s[k].append(s[i].to_local())  # type: ignore[union-attr]
    return out_p, out_g, out_s  # type: ignore[return-value]


def _plain(t: Tensor) -> bool:
    return type(t) is Tensor or type(t) is torch.nn.Parameter


class _Plan:
    """What :func:`fast_step` works out once per parameter group and reuses while nothing changes.

    The kernel, the flat aliases of the parameters and states, and which tensors run on one thread,
    on all threads, or on the reference path. :meth:`valid` checks (by identity and storage) that the
    group still has the same tensors and the same static hyperparameters; this is most of the saving
    on a two-tensor model, where the fixed work per step is all there is.
    """

    def __init__(self, rule: Callable[..., tuple[Any, ...]], params: Sequence[Tensor],
                 states: Sequence[Sequence[Tensor] | None], kwargs: dict[str, Any]) -> None:
        static, names, _ = split_kwargs(kwargs, rule)
        self.rule, self.static, self.names, self.n_kwargs = rule, static, names, len(kwargs)
        self.params = list(params)
        self.ptrs = [p.data_ptr() for p in params]
        self.numels = [p.numel() for p in params]
        self.state_ptrs = [None if s is None else [t.data_ptr() for t in s] for s in states]
        device, self.dtype = params[0].device, params[0].dtype
        self.device = device
        self.kernel = get_kernel(rule, static, names, tuple(s is not None for s in states), self.dtype, device)
        self.verified = False  # set after a first run in which every kernel call succeeded
        self.rest: list[int] = []
        self.small: list[tuple[int, Tensor, list[Tensor]]] = []
        self.large: list[tuple[int, Tensor, list[Tensor]]] = []
        for i, p in enumerate(params):
            n = p.numel()
            fp = _flat(p) if n >= MIN_KERNEL_NUMEL else None
            fs = [_flat(s[i]) for s in states if s is not None]
            if fp is None or any(f is None or f.dtype != self.dtype or f.numel() != n for f in fs):
                self.rest.append(i)
                continue
            big = n >= PARALLEL_MIN_NUMEL or device.type != "cpu"
            (self.large if big else self.small).append((i, fp, fs))  # type: ignore[arg-type]

    def valid(self, rule: Callable[..., tuple[Any, ...]], params: Sequence[Tensor],
              states: Sequence[Sequence[Tensor] | None], kwargs: dict[str, Any]) -> bool:
        """Whether the group still has the same memory (parameters and states) and static hyperparameters.

        By storage address and size, not tensor identity: a ``DTensor``'s ``to_local()`` is a new tensor
        object every step, over the same shard. The plan's flat aliases keep those storages alive, so an
        equal address is the same memory.
        """
        if rule is not self.rule or len(params) != len(self.params) or len(kwargs) != self.n_kwargs:
            return False
        if len(states) != len(self.state_ptrs):
            return False
        for p, ptr, n in zip(params, self.ptrs, self.numels, strict=True):
            if p.data_ptr() != ptr or p.numel() != n:
                return False
        for new, old in zip(states, self.state_ptrs, strict=True):
            if (new is None) != (old is None) or (new is not None and any(
                    t.data_ptr() != ptr for t, ptr in zip(new, old, strict=True))):  # type: ignore[arg-type]
                return False
        return all(name in kwargs and kwargs[name] == value for name, value in self.static)

    def run(self, grads: Sequence[Tensor], kwargs: dict[str, Any]) -> list[int]:
        """One step; raises :class:`CompiledStepFailed` (nothing changed) if the first run fails."""
        kernel = self.kernel
        if kernel.broken is not None:
            return list(range(len(self.params)))
        hyper = hyper_tensor([float(kwargs[name]) for name in self.names], self.device, kernel)
        dtype = self.dtype
        rest = list(self.rest)
        calls: list[tuple[bool, list[tuple[Tensor, Tensor, list[Tensor]]]]] = []
        for items, one_thread in ((self.small, True), (self.large, False)):
            batch = []
            for i, fp, fs in items:  # every check before the first write
                g = grads[i]
                if g.dtype != dtype or g.numel() != fp.numel() or g.device != fp.device or not _plain(g):
                    rest.append(i)
                    continue
                if g.dim() != 1 or not g.is_contiguous():
                    g = g.reshape(-1)  # a view when contiguous
                batch.append((fp, g, fs))
            if batch:
                calls.append((one_thread, batch))
        if self.verified:
            self._call(kernel, hyper, calls)
            return sorted(rest)
        written = [t for _, batch in calls for fp, _, fs in batch for t in (fp, *fs)]
        backup = [t.clone() for t in written]
        try:
            ok = self._call(kernel, hyper, calls)
            reason = None if ok else (kernel.broken or "the kernel did not compile")
        except Exception as exc:  # noqa: BLE001 - any failure: undo, then the reference path
            reason = describe_error(exc)
        if reason is not None:
            with torch.no_grad():
                for t, saved in zip(written, backup, strict=True):
                    t.copy_(saved)
            raise CompiledStepFailed(reason)
        self.verified = True
        return sorted(rest)

    @staticmethod
    def _call(kernel: Kernel, hyper: Tensor, calls: list[tuple[bool, list[tuple[Tensor, Tensor, list[Tensor]]]]]
              ) -> bool:
        for one_thread, batch in calls:
            threads = torch.get_num_threads() if one_thread else 1
            if threads > 1:
                torch.set_num_threads(1)
            try:
                for fp, g, fs in batch:
                    direct = kernel.direct
                    if direct is not None:  # the common case, without the extra Python frame
                        direct(fp, g, hyper, *fs)
                    elif not kernel(fp, g, hyper, *fs):
                        return False
            finally:
                if threads > 1:
                    torch.set_num_threads(threads)
        return True


class _Choice:
    """``fused=None`` bookkeeping of one parameter group: compiler availability, a failure, the plans,
    and the group's :class:`_Lane` (its fast lane, once a whole-group compiled step was verified)."""

    __slots__ = ("available", "failed", "group", "lane", "plans")

    def __init__(self, group: dict[str, Any]) -> None:
        self.available: tuple[torch.device, bool] | None = None  # compile_available, once per group and device
        self.failed: str | None = None  # the compiled path failed once: the reference path from then on
        self.plans: dict[tuple[Any, ...], _Plan] = {}
        self.lane: _Lane | None = None
        self.group = group  # kept alive: its id cannot be reused by another group while this entry exists


#: The attribute of an optimizer that holds ``(generation, {id(group): _Choice})``. On the optimizer, not
#: in a global table, so that the per-step lookup is one attribute read; not pickled or copied
#: (``Optimizer.__getstate__`` names what is), and worth nothing after :func:`reset` (a new generation).
_ATTRIBUTE = "_adamlab_fast_choices"
_GENERATION = [0]


def _choices(optimizer: Any) -> dict[int, _Choice]:
    held = optimizer.__dict__.get(_ATTRIBUTE)
    if held is None or held[0] != _GENERATION[0]:
        held = (_GENERATION[0], {})
        optimizer.__dict__[_ATTRIBUTE] = held
    return held[1]


def _choice(optimizer: Any, group: dict[str, Any]) -> _Choice:
    groups = _choices(optimizer)
    choice = groups.get(id(group))
    if choice is None or choice.group is not group:
        # A new group (add_param_group, load_state_dict): forget those the optimizer no longer has,
        # with their plans and the old state tensors these keep alive.
        live = {id(g) for g in optimizer.param_groups}
        for key in [k for k in groups if k not in live]:
            del groups[key]
        choice = groups[id(group)] = _Choice(group)
    return choice


#: The fast lane (:class:`_Lane`) on or off; tests turn it off to compare with the full path.
LANES = True


class _Lane:
    """A group's steady-state compiled step with the fewest host operations: :func:`lane_step`.

    Built by :func:`fast_step` after a verified whole-group run (every parameter of the group in one
    plan, all on the kernel, plain real dense tensors). Each step, :meth:`prepare` checks, before any
    write, everything the full path would decide differently on: the same group dict, state dict and
    parameter objects, each parameter's storage, shape, dtype and contiguity, each state tensor
    (object and storage) and step counter, each gradient (present, plain, dense, contiguous, same dtype
    and shape), the flags, the policy (:func:`use_compiled`), no failure, and the kernel's static
    hyperparameters. Any difference returns None, and the group takes the full path (which rebuilds the
    plan and, if it can, the lane). The lane then bumps the step counters with one ``_foreach_add_``
    (as torch's fused Adam does) and calls the kernel once per tensor: bit for bit the full path's step.
    """

    __slots__ = ("choice", "fused", "foreach", "group", "items", "kernel", "n_kwargs", "names", "numel",
                 "params", "state", "static", "steps", "device")

    @classmethod
    def build(cls, optimizer: Any, group: dict[str, Any], plan: _Plan, slots: tuple[str | None, ...]) -> _Lane | None:
        params = group["params"]
        if len(params) != len(plan.params) or any(p is not q for p, q in zip(params, plan.params, strict=True)):
            return None  # a parameter without a gradient, or another order: the full path
        by_index = {i: (fp, fs, True) for i, fp, fs in plan.small}
        by_index.update({i: (fp, fs, False) for i, fp, fs in plan.large})
        lane = cls()
        lane.choice = _choice(optimizer, group)
        lane.group, lane.state, lane.kernel, lane.device = group, optimizer.state, plan.kernel, plan.device
        lane.names, lane.static, lane.n_kwargs = plan.names, plan.static, plan.n_kwargs
        lane.fused, lane.foreach = group.get("fused"), group.get("foreach")
        lane.numel = sum(plan.numels)
        lane.params = []
        lane.steps = []
        lane.items = []
        for i, p in enumerate(params):
            if i not in by_index or p.is_complex():
                return None
            fp, fs, one = by_index[i]
            pstate = optimizer.state[p]
            step = pstate.get("step")
            if not isinstance(step, Tensor) or step.dim() != 0 or step.device.type != "cpu":
                return None
            named = tuple((name, pstate[name], pstate[name].data_ptr()) for name in slots if name is not None)
            lane.params.append((p, p.data_ptr(), p.numel(), p.dtype, pstate, step, named))
            lane.steps.append(step)
            lane.items.append((fp, fs, one))
        return lane

    def prepare(self, optimizer: Any, group: dict[str, Any]
                ) -> tuple[list[Tensor], list[float], Callable[..., Any]] | None:
        """The gradients, the per-step scalars and the kernel call of this step, or None (the full path);
        writes nothing."""
        if (group is not self.group or optimizer.state is not self.state or self.choice.failed is not None
                or group.get("differentiable") or group.get("fused") != self.fused
                or group.get("foreach") != self.foreach):
            return None
        params = group["params"]
        if len(params) != len(self.params):
            return None
        grads = []
        value = None
        # The unchecked call reads only each tensor's data pointer; where its sizes come from the flat
        # parameter or state views (not from the gradient), a contiguous gradient of the right numel
        # needs no flat view (about 0.7 us each).
        call = self.kernel.unchecked
        as_is = call is not None and not self.kernel.sizes_from_grad
        for p, (q, ptr, numel, dtype, pstate, step, named) in zip(params, self.params, strict=True):
            g = p.grad
            # The flat alias is this parameter's memory while storage, size, dtype and contiguity hold.
            if (p is not q or g is None or p.data_ptr() != ptr or p.numel() != numel or p.dtype is not dtype
                    or not p.is_contiguous() or pstate.get("step") is not step
                    or (type(g) is not Tensor and type(g) is not torch.nn.Parameter)  # as in _Plan.run
                    or g.layout is not torch.strided or g.dtype is not dtype or g.device != p.device
                    or g.numel() != numel):
                return None
            for name, t, tptr in named:
                if pstate.get(name) is not t or t.data_ptr() != tptr:
                    return None
            v = step.item()
            if value is None:
                value = v
            elif v != value:
                return None
            grads.append(g if (as_is or g.dim() == 1) and g.is_contiguous() else g.reshape(-1))  # a view when contiguous
        step = value + 1  # what the counter holds after this step's increment (exact below 2**24)
        if not 0 < step < 2**24:
            return None
        step = int(step)
        if (self.fused is None and step <= compile_after_steps() and self.numel < min_numel()) or self.kernel.direct is None:
            return None  # the policy: the reference path at this step
        kwargs = optimizer.rule_kwargs(group, step)
        if len(kwargs) != self.n_kwargs:
            return None
        for name, fixed in self.static:  # the kernel's constants (betas, eps, switches) unchanged
            if name not in kwargs or not kwargs[name] == fixed:
                return None
        return grads, [float(kwargs[name]) for name in self.names], call or self.kernel.direct

    def run(self, grads: list[Tensor], values: list[float], direct: Callable[..., Any]) -> None:
        """Take the prepared step: bump the step counters, then one kernel call per tensor (``direct``:
        the call :meth:`prepare` chose, the unchecked one where it has one)."""
        steps = self.steps
        if len(steps) == 1:
            steps[0].add_(1)
        else:
            torch._foreach_add_(steps, 1)
        hyper = hyper_tensor(values, self.device, self.kernel)
        threads = torch.get_num_threads()
        for (fp, fs, one), g in zip(self.items, grads, strict=True):
            if one and threads > 1:
                torch.set_num_threads(1)
                try:
                    direct(fp, g, hyper, *fs)  # type: ignore[misc]
                finally:
                    torch.set_num_threads(threads)
            else:
                direct(fp, g, hyper, *fs)  # type: ignore[misc]


def lane_step(optimizer: Any, group: dict[str, Any]) -> Callable[[], None] | None:
    """The group's fast-lane step for this step, ready to run (checked, nothing written yet), or None.

    None means the full path (:func:`fast_step` through the optimizer's bucketing): no lane yet, or
    anything changed since it was built (:class:`_Lane`).
    """
    held = optimizer.__dict__.get(_ATTRIBUTE)
    if held is None or held[0] != _GENERATION[0] or not LANES:
        return None
    choice = held[1].get(id(group))
    lane = None if choice is None else choice.lane
    if lane is None:
        return None
    optimizer.begin_group_step(group)
    prepared = lane.prepare(optimizer, group)
    if prepared is None:
        choice.lane = None  # type: ignore[union-attr]
        return None
    return functools.partial(lane.run, *prepared)


def _warn_group_failed(optimizer: Any, reason: str) -> None:
    warnings.warn(
        f"adamlab: the compiled step of {type(optimizer).__name__} failed ({reason}); the tensors it had "
        "written were restored, and this parameter group takes the foreach/loop path from this step on, "
        "for the rest of the run. Its results differ from the compiled path's in the last bits.",
        RuntimeWarning,
        stacklevel=5,
    )


def use_compiled(optimizer: Any, group: dict[str, Any], params: Sequence[Tensor], step: int = 1) -> bool:
    """Whether this group steps with the compiled kernel: the policy of ``fused``, in one place.

    A pure function of what the program states (flags, sizes, step count, environment), never of a
    measured time, so every rank of a job and every rerun of a program takes the same path:

    - ``fused=True``: yes (with one warning and the reference path where nothing can compile);
    - ``fused=False``, or ``fused=None`` with an explicit ``foreach``: no;
    - ``fused=None`` (default): yes from the first step for a group of at least :func:`min_numel`
      elements (``numel`` of a ``DTensor`` is its global size, the same on every rank); a smaller
      group takes the reference path for its first :func:`compile_after_steps` steps (``step`` is the
      1-based step about to be taken) and the compiled kernel from then on;
    - never again, for this group, once the compiled path failed (:func:`fast_step`).
    """
    fused = group.get("fused")
    if fused is False or (fused is None and group.get("foreach") is not None):
        return False
    choice = _choice(optimizer, group)
    if choice.failed is not None:
        return False
    if fused is None and step <= compile_after_steps() and sum(p.numel() for p in params) < min_numel():
        return False
    device = params[0].device
    if choice.available is not None and choice.available[0] == device:
        return choice.available[1]
    ok, reason = compile_available(device)
    if not ok:
        warn_fallback(reason)
    choice.available = (device, ok)
    return ok


def stacked_step(rule: Callable[..., tuple[Any, ...]], static: tuple[tuple[str, Any], ...],
                 names: tuple[str, ...], param: Tensor, grad: Tensor, states: Sequence[Tensor | None],
                 values: Sequence[Tensor], run_axis: int) -> bool:
    """One in-place step of ``rule`` on a stack of K runs' parameters (the vectorised backend).

    ``param`` has the K runs along ``run_axis``; ``values`` are the per-run hyperparameters named by
    ``names``, ``[K]`` tensors of the parameter dtype (rounded on the host as the optimizers' kernels
    round them inside). The stack is viewed as ``[P, K, Q]`` without its size-1 dimensions and the
    hyperparameters as ``[len(names), 1, K, 1]`` likewise, so one compile serves every stacked shape
    with the same pattern of size-1 dimensions. Returns False (nothing changed) when it cannot compile.
    """
    shape = param.shape
    k = shape[run_axis]
    outer = math.prod(shape[:run_axis])
    inner = math.prod(shape[run_axis + 1:])
    dims = (outer, k, inner)
    keep = [d for d in dims if d != 1]
    bshape = [d if i == 1 else 1 for i, d in enumerate(dims) if d != 1]
    if not all(t is None or t.is_contiguous() for t in (param, *states)):
        raise ValueError("stacked_step needs contiguous parameters and states (they are updated in place)")
    flat = [t if t is None else t.detach().contiguous().view(keep) for t in (param, grad, *states)]
    hyper = torch.stack([torch.as_tensor(v, dtype=param.dtype, device=param.device).reshape(-1).expand(k)
                         for v in values]).view(len(values), *bshape)
    present = tuple(s is not None for s in states)
    layout = "".join(letter for letter, d in zip("PKQ", dims, strict=True) if d != 1)
    kernel = get_kernel(rule, static, names, present, param.dtype, param.device, layout=layout,
                        hyper_dtype=param.dtype)
    return kernel(flat[0], flat[1], hyper, *(s for s in flat[2:] if s is not None))


def reset() -> None:
    """Forget compiled kernels, failures and the one-warning flag (for tests)."""
    global _WARNED
    _KERNELS.clear()
    _BROKEN.clear()
    _GENERATION[0] += 1
    _have_snapshots.cache_clear()
    _UNSAFE_WARNED.clear()
    _FLAT.clear()
    COMPILE_SECONDS.clear()
    _WARNED = False
