"""Fast steps: the functional rule compiled into one in-place pass over each tensor.

The math is not here. :func:`compiled_kernel` wraps a rule of :mod:`adamlab.functional` as

.. code-block:: python

    def kernel(params, grads, *state_lists, *scalars):   # lists of flat tensors
        for j in range(len(params)):
            new_param, *new_states = rule(params[j], grads[j], *states_j, **static_kwargs, **scalars)
            params[j].copy_(new_param); states_j[k].copy_(new_states[k]) ...

and hands it to ``torch.compile`` (Inductor). The compiled kernel reads every input once and writes each
parameter and its state in place: no temporaries, one streaming pass per tensor, which is what bounds an
optimizer step on a CPU (about 28 bytes per parameter for Adam and M-SVAG).

How recompiles are avoided (at most two compiles, serial and parallel, per rule, switches, dtype and
device, for every model):

- every tensor is passed as a flat 1-D alias and the kernel is compiled with ``dynamic=True`` and without
  duck sizing, so one compile serves all tensor sizes (tensors of fewer than :data:`MIN_KERNEL_NUMEL`
  elements, which PyTorch would specialise on, and non-contiguous ones take the reference path);
- tensors of at least :data:`PARALLEL_MIN_NUMEL` elements go one per call to an OpenMP-parallel kernel;
  smaller ones go :data:`CHUNK` per call (a short last chunk padded with private scratch tensors) to a
  serial kernel, so one compile of each serves every model and there is no thread barrier per small tensor;
- the per-step floats (:data:`STEP_SCALARS`: ``lr``, the bias corrections, ``rho``) are passed as 0-dim
  float64 tensors, computed on the host exactly as in the reference path, so a new step or a learning-rate
  schedule never recompiles. Everything else (betas, eps, switches) is part of the cache key, together
  with the rule, which state slots are present, dtype and device;
- compiled kernels are cached at module level (:data:`_KERNELS`) and each key gets its own code object,
  so Dynamo's per-code-object recompile limit is never shared between rules.

When compilation is not possible (no C++ compiler, unsupported platform, any compile error) the caller
falls back to the reference (loop or foreach) path; :func:`warn_fallback` emits ONE warning per process.
"""

from __future__ import annotations

import functools
import operator
import os
import shutil
import time
import types
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.fx.experimental._config as fx_config
from torch import Tensor

from adamlab.functional.common import step_scalars

#: Keyword arguments of a rule that change from step to step (or under an LR schedule). They are passed
#: to compiled kernels as 0-dim float64 tensors so that the kernel is compiled once.
STEP_SCALARS = frozenset({"lr", "bias_correction1", "bias_correction2", "bias_correction", "rho"})

#: ``fused=None`` (the default) uses the compiled path for a parameter group when the group has at least
#: this many elements (and a compiler is available). Measured on 2 CPU threads (benchmarks/README.md):
#: at 1M parameters the compiled step was 5-50x faster than the loop path, but it carries ~0.4 ms of
#: fixed call overhead per step and its first step pays a one-time compile of 1-15 s per rule, which
#: small models (and every test that steps an optimizer) should not pay. Override per process with the
#: environment variable ``ADAMLAB_FUSED_MIN_NUMEL``; ``fused=True`` forces the compiled path.
DEFAULT_MIN_NUMEL = 1_000_000

#: Tensors with fewer elements take the reference path (a compiled kernel would specialise on sizes 0 and 1).
MIN_KERNEL_NUMEL = 2

#: Small tensors per call of the serial kernel. A call has a fixed Python/guard overhead (tens of
#: microseconds), so small tensors (biases, norms) go CHUNK at a time; a fixed length (a short chunk is
#: padded with scratch tensors) keeps it to one compile per rule for every model.
CHUNK = 8

#: Tensors with at least this many elements get the OpenMP-parallel kernel, one tensor per call (like
#: ``at::parallel_for``'s grain size, 32768, in torch's own fused kernels). Parallel loops over small
#: tensors cost a thread barrier each, which on a busy 2-core host was measured at milliseconds.
PARALLEL_MIN_NUMEL = 32768

#: Rules (``module.qualname``) whose divisions by per-step scalars are compiled as multiplications by
#: the reciprocal (see :func:`scalar_division_to_reciprocal`).
RECIPROCAL_RULES = frozenset({"adamlab.functional.adam.adam"})

#: Size of a scratch padding slot (>= 2 so that Dynamo keeps it symbolic).
PAD_NUMEL = 2

#: Environment switch: ``ADAMLAB_NO_COMPILE=1`` disables the compiled path everywhere.
NO_COMPILE_ENV = "ADAMLAB_NO_COMPILE"

KernelKey = tuple[Any, ...]
_KERNELS: dict[KernelKey, Callable[..., None]] = {}
_BROKEN: dict[KernelKey, str] = {}
_PADDING: dict[KernelKey, list[list[Tensor]]] = {}
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


def compile_available(device: torch.device | None = None) -> tuple[bool, str]:
    """Whether a compiled kernel can be built here; ``(False, reason)`` otherwise."""
    if os.environ.get(NO_COMPILE_ENV, "") not in ("", "0"):
        return False, f"{NO_COMPILE_ENV} is set"
    return _toolchain(device.type if device is not None else "cpu")


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
    return True, ""


def warn_fallback(reason: str) -> None:
    """Warn once per process that the compiled path is off and the reference path is used instead."""
    global _WARNED
    if _WARNED:
        return
    _WARNED = True
    warnings.warn(
        f"adamlab: compiled optimizer step unavailable ({reason}); using the foreach/loop path instead. "
        "Results are identical, steps are slower.",
        RuntimeWarning,
        stacklevel=4,
    )


def split_kwargs(kwargs: dict[str, Any], rule: Any = None) -> tuple[tuple[tuple[str, Any], ...], tuple[str, ...], list[float]]:
    """Split rule kwargs into the static part (cache key) and the per-step scalars (names, values).

    The per-step scalars are those the rule declares (:func:`adamlab.functional.common.step_scalars`);
    :data:`STEP_SCALARS` when no rule is given.
    """
    static, names, values = [], [], []
    per_step = STEP_SCALARS if rule is None else step_scalars(rule)
    for name in sorted(kwargs):
        value = kwargs[name]
        if name in per_step:
            names.append(name)
            values.append(float(value))
        else:
            static.append((name, value))
    return tuple(static), tuple(names), values


def _template(rule: Callable[..., tuple[Any, ...]], static: dict[str, Any], names: tuple[str, ...],
              n_states: int) -> Callable[..., None]:
    def kernel(params: list[Tensor], grads: list[Tensor], *rest: Any) -> None:
        states, scalars = rest[:n_states], rest[n_states:]
        kwargs = dict(zip(names, scalars, strict=True))
        for j in range(len(params)):  # unrolled by Dynamo: one fused loop per tensor, one call per chunk
            olds = (params[j], *(None if s is None else s[j] for s in states))
            new = rule(params[j], grads[j], *olds[1:], **static, **kwargs)
            for old, value in zip(olds, new, strict=True):
                if old is not None and value is not old:
                    old.copy_(value)

    return kernel


def compiled_kernel(rule: Callable[..., tuple[Any, ...]], static: tuple[tuple[str, Any], ...],
                    names: tuple[str, ...], present: tuple[bool, ...], dtype: torch.dtype,
                    device: torch.device, parallel: bool = True) -> tuple[KernelKey, Callable[..., None]]:
    """The compiled in-place kernel of ``rule`` for these static kwargs (cached per process).

    The kernel takes lists of flat tensors (parameters, gradients, each state) and the per-step scalars,
    and updates them in place. ``parallel``: one OpenMP-parallel loop (used one tensor per call, for
    tensors of at least :data:`PARALLEL_MIN_NUMEL` elements); otherwise a serial kernel (used for
    :data:`CHUNK` small tensors per call).
    """
    key = (getattr(rule, "__module__", ""), getattr(rule, "__qualname__", repr(rule)), id(rule), static,
           names, present, dtype, device.type, parallel)
    kernel = _KERNELS.get(key)
    if kernel is None:
        base = _template(rule, dict(static), names, len(present))
        # A fresh code object per key: Dynamo caches (and limits recompiles) per code object.
        code = base.__code__.replace(co_name=f"adamlab_fast_{len(_KERNELS)}")
        fresh = types.FunctionType(code, base.__globals__, code.co_name, base.__defaults__, base.__closure__)
        # dynamic_threads: always emit the OpenMP loop. Otherwise Inductor decides serial vs parallel
        # from the size seen at the first compile, and its on-disk cache then reuses that decision for
        # every size (a first compile on a small tensor would make every later step single-threaded).
        options: dict[str, Any] = {}
        if device.type == "cpu":
            options = {"cpp.dynamic_threads": True} if parallel else {"cpp.threads": 1}
        reciprocal = f"{key[0]}.{key[1]}" in RECIPROCAL_RULES
        kernel = torch.compile(fresh, dynamic=True, fullgraph=True,
                               backend=functools.partial(_backend, options, reciprocal))
        _KERNELS[key] = kernel
    return key, kernel


def _backend(options: dict[str, Any], reciprocal: bool, gm: torch.fx.GraphModule,
             example_inputs: list[Any]) -> Callable[..., Any]:
    """Inductor with ``options``, after :func:`scalar_division_to_reciprocal` when ``reciprocal``.

    A module-level function, so that tests can count or break compiles.
    """
    from torch._inductor.compile_fx import compile_fx

    if reciprocal:
        scalar_division_to_reciprocal(gm)
    return compile_fx(gm, example_inputs, config_patches=options)


def scalar_division_to_reciprocal(gm: torch.fx.GraphModule) -> int:
    r"""Rewrite ``tensor / scalar`` as ``tensor * (1 / scalar)`` in a captured graph; return the count.

    Adam's rule divides every element by two per-step scalars (:math:`1-\beta_1^t`, :math:`1-\beta_2^t`)
    besides its one true element-wise division. A vector division costs several multiplications, so
    three of them make the step compute-bound on a 2-core AVX2 CPU; torch's fused Adam likewise
    multiplies by precomputed reciprocals. The quotients move by at most about one unit in the last
    place, which the tests bound against the reference path. Only rules in :data:`RECIPROCAL_RULES` get
    this: in M-SVAG, :math:`s = (v - m^2)/(1-\rho)` amplifies the last-place round-off of ``m`` and ``v``
    by up to :math:`10^4` in the first steps, so there every division stays a division.
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


def _flat(t: Tensor) -> Tensor | None:
    """A 1-D alias of ``t`` (same storage), or None when ``t`` is not contiguous.

    ``detach()`` drops the view's ``_base``: Dynamo guards on a view's base shape, and bases of
    different ranks (biases, matrices, conv kernels) would otherwise each cost a recompile.
    """
    return t.view(-1).detach() if t.is_contiguous() else None


def fast_step(rule: Callable[..., tuple[Any, ...]], params: Sequence[Tensor], grads: Sequence[Tensor],
              states: Sequence[Sequence[Tensor] | None], kwargs: dict[str, Any]) -> list[int]:
    """Run one step of ``rule`` over a bucket with the compiled kernel, in place.

    Parameters
    ----------
    rule:
        A rule of :mod:`adamlab.functional`, ``rule(param, grad, *states, **kwargs) -> (param, *states)``.
    params, grads:
        The bucket's parameters and gradients (same step, device and dtype).
    states:
        One entry per state slot of the rule: the bucket's state tensors, or None where the rule gets None.
    kwargs:
        The rule's keyword arguments for this step (``rule_kwargs``).

    Returns
    -------
    The indices that the kernel did NOT update (tiny or non-contiguous tensors, or everything once
    compilation failed), for the caller's reference path.
    """
    if not params:
        return []
    static, names, values = split_kwargs(kwargs, rule)
    present = tuple(s is not None for s in states)
    device, dtype = params[0].device, params[0].dtype
    scalars = [torch.tensor(v, dtype=torch.float64, device=device) for v in values]
    rest: list[int] = []
    small: list[tuple[int, Tensor, Tensor, list[Tensor | None]]] = []
    large: list[tuple[int, Tensor, Tensor, list[Tensor | None]]] = []
    for i, (p, g) in enumerate(zip(params, grads, strict=True)):
        fp = _flat(p) if p.numel() >= MIN_KERNEL_NUMEL else None
        fs = [None if s is None else _flat(s[i]) for s in states]
        if fp is None or any(f is None for f, s in zip(fs, states, strict=True) if s is not None):
            rest.append(i)
        else:
            (large if p.numel() >= PARALLEL_MIN_NUMEL else small).append((i, fp, g.reshape(-1).detach(), fs))
    # Small tensors: CHUNK per call, serial (no OpenMP barrier per tensor); large: one per call, parallel.
    for items, parallel, width in ((small, False, CHUNK), (large, True, 1)):
        if not items:
            continue
        key, kernel = compiled_kernel(rule, static, names, present, dtype, device, parallel)
        for start in range(0, len(items), width):
            chunk = items[start:start + width]
            done = key not in _BROKEN and _call(key, kernel, *_columns(key, chunk, width, present, dtype, device),
                                                scalars)
            if not done:  # nothing from this chunk on was touched
                rest += [c[0] for c in items[start:]]
                break
    return sorted(rest)


def _columns(key: KernelKey, chunk: list[tuple[int, Tensor, Tensor, list[Tensor | None]]], width: int,
             present: tuple[bool, ...], dtype: torch.dtype,
             device: torch.device) -> tuple[list[Tensor], list[Tensor], list[list[Tensor] | None]]:
    """The kernel's list arguments for ``chunk``, padded to ``width`` with scratch tensors."""
    pad = _padding(key, width - len(chunk), present, dtype, device)
    flat_params = [c[1] for c in chunk] + pad[0]
    flat_grads = [c[2] for c in chunk] + pad[1]
    flat_states = [None if not there else [c[3][k] for c in chunk] + pad[2 + k] for k, there in enumerate(present)]
    return flat_params, flat_grads, flat_states


def _padding(key: KernelKey, n: int, present: tuple[bool, ...], dtype: torch.dtype,
             device: torch.device) -> list[list[Tensor]]:
    """``n`` private scratch slots (param, grad, states) that fill a short chunk up to :data:`CHUNK`.

    Every chunk then has the same length, so one compiled kernel serves every parameter group. The
    scratch tensors are updated like parameters and never read.
    """
    if n == 0:
        return [[] for _ in range(2 + len(present))]
    cache = _PADDING.get(key)
    if cache is None:
        cache = [[torch.zeros(PAD_NUMEL, dtype=dtype, device=device) for _ in range(CHUNK)]
                 for _ in range(2 + len(present))]
        _PADDING[key] = cache
    return [column[:n] for column in cache]


def _call(key: KernelKey, kernel: Callable[..., None], params: list[Tensor], grads: list[Tensor],
          states: list[list[Tensor] | None], scalars: list[Tensor]) -> bool:
    """Run the kernel (timing the first call, which compiles); on failure mark the key broken, warn once."""
    first = key not in COMPILE_SECONDS
    start = time.perf_counter() if first else 0.0
    try:
        # No duck sizing: slots whose sizes happen to be equal at the first call must not be assumed
        # equal forever (that would recompile for the next model or chunk).
        with fx_config.patch(use_duck_shape=False):
            kernel(params, grads, *states, *scalars)
    except Exception as exc:  # no compiler, Inductor error, unsupported op: compiling mutates nothing
        root: BaseException = exc
        while (inner := getattr(root, "inner_exception", None) or root.__cause__) is not None:
            root = inner  # Dynamo wraps the backend's error
        message = str(root).strip().splitlines()
        _BROKEN[key] = f"{type(root).__name__}: {message[0] if message else ''}"
        warn_fallback(_BROKEN[key])
        return False
    if first:
        COMPILE_SECONDS[key] = time.perf_counter() - start
    return True


def reset() -> None:
    """Forget compiled kernels, failures and the one-warning flag (for tests)."""
    global _WARNED
    _KERNELS.clear()
    _BROKEN.clear()
    _PADDING.clear()
    COMPILE_SECONDS.clear()
    _WARNED = False
