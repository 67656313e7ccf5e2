"""The random numbers of a forward pass (dropout masks, VAE samples), drawn from each run's own generator.

A problem's loss draws its noise with :func:`uniform` and :func:`normal` instead of torch's global RNG.
Where the numbers come from depends on the active *source*:

- none (a problem used on its own): torch's global RNG, as ``torch.rand`` would;
- :meth:`RunNoise.active` (the serial training loop): the run's own ``torch.Generator``, seeded from the
  run's seed by :func:`noise_seed`;
- :func:`replay` (the batched loop, inside ``torch.func.vmap``): tensors drawn beforehand, run by run, from
  each run's generator with the same shapes in the same order (:meth:`RunNoise.draw_like`).

So run k of a batched block sees exactly the numbers the serial loop gives it, and both backends agree.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor

_SOURCE: contextvars.ContextVar[Any] = contextvars.ContextVar("adamlab_noise_source", default=None)

#: A draw request: ``(kind, shape, dtype)`` with kind ``"uniform"`` or ``"normal"``.
Request = tuple[str, tuple[int, ...], torch.dtype]


def noise_seed(seed: int) -> int:
    """The seed of a run's noise generator: a fixed mix of the run seed (not the data stream's seed)."""
    return (int(seed) * 6364136223846793005 + 1442695040888963407) % (2**63)


def _draw(kind: str, shape: tuple[int, ...], dtype: torch.dtype, generator: torch.Generator | None) -> Tensor:
    fn = torch.rand if kind == "uniform" else torch.randn
    if generator is not None and generator.device.type != "cpu":  # a run's generator on its device
        return fn(shape, generator=generator, dtype=dtype, device=generator.device)
    return fn(shape, generator=generator, dtype=dtype)


class _Generator:
    def __init__(self, generator: torch.Generator | None, log: list[Request] | None = None) -> None:
        self.generator, self.log = generator, log

    def take(self, kind: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        if self.log is not None:
            self.log.append((kind, shape, like.dtype))
        if self.generator is None:
            fn = torch.rand if kind == "uniform" else torch.randn
            return fn(shape, dtype=like.dtype, device=like.device)
        return _draw(kind, shape, like.dtype, self.generator).to(like.device)


class _Replay:
    def __init__(self, tensors: Sequence[Tensor]) -> None:
        self.tensors, self.index = list(tensors), 0

    def take(self, kind: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
        if self.index >= len(self.tensors):
            raise RuntimeError("the forward pass drew more random tensors than were prepared for it")
        out = self.tensors[self.index]
        self.index += 1
        if tuple(out.shape) != tuple(shape):
            raise RuntimeError(f"prepared noise of shape {tuple(out.shape)} where {tuple(shape)} was drawn")
        return out.to(like.device)


def uniform(shape: Sequence[int], *, like: Tensor) -> Tensor:
    """U[0, 1) numbers of ``shape`` in ``like``'s dtype and device, from the active source."""
    return _take("uniform", tuple(int(s) for s in shape), like)


def normal(shape: Sequence[int], *, like: Tensor) -> Tensor:
    """N(0, 1) numbers of ``shape`` in ``like``'s dtype and device, from the active source."""
    return _take("normal", tuple(int(s) for s in shape), like)


def _take(kind: str, shape: tuple[int, ...], like: Tensor) -> Tensor:
    source = _SOURCE.get()
    if source is None:
        source = _Generator(None)
    return source.take(kind, shape, like)


@contextmanager
def _using(source: Any) -> Iterator[None]:
    token = _SOURCE.set(source)
    try:
        yield
    finally:
        _SOURCE.reset(token)


def from_generator(generator: torch.Generator) -> Any:
    """A context manager: draws come from ``generator`` (e.g. a fixed-seed evaluation)."""
    return _using(_Generator(generator))


def replay(tensors: Sequence[Tensor]) -> Any:
    """A context manager: the draws return ``tensors`` in order (the batched loop, inside vmap)."""
    return _using(_Replay(tensors))


@contextmanager
def recording(log: list[Request]) -> Iterator[None]:
    """Draw from a throwaway generator and append each request to ``log`` (to learn a pass's draws)."""
    with _using(_Generator(torch.Generator().manual_seed(0), log)):
        yield


class RunNoise:
    """One run's noise generator, seeded with :func:`noise_seed` of the run's seed, on the run's device.

    On an accelerator the generator is the device's own (its numbers differ from the CPU generator's with
    the same seed, but they are drawn where they are used, without a host copy per step).
    """

    def __init__(self, seed: int, device: torch.device | str | None = None) -> None:
        dev = torch.device("cpu") if device is None else torch.device(device)
        self.generator = (torch.Generator() if dev.type == "cpu"
                          else torch.Generator(device=dev)).manual_seed(noise_seed(seed))

    def active(self) -> Any:
        """A context manager: the forward passes inside draw from this run's generator."""
        return _using(_Generator(self.generator))

    def draw_like(self, requests: Sequence[Request]) -> list[Tensor]:
        """The tensors that the serial loop's draws ``requests`` would give, in order."""
        return [_draw(kind, shape, dtype, self.generator) for kind, shape, dtype in requests]

    def get_state(self) -> Tensor:
        return self.generator.get_state()

    def set_state(self, state: Tensor) -> None:
        self.generator.set_state(state)


def run_noise(seed: int, device: torch.device | str | None = None) -> RunNoise:
    """The noise generator of the run with seed ``seed``, on ``device`` (None: the CPU)."""
    return RunNoise(seed, device)


class Dropout(torch.nn.Module):
    """Inverted dropout whose mask comes from :func:`uniform` (the run's own generator in the runner).

    In training mode each element is kept with probability ``1 - p`` and scaled by ``1/(1 - p)``
    (``torch.nn.Dropout``'s rule); in eval mode, or with ``p = 0``, it is the identity.
    """

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"dropout p must be in [0, 1); got {p!r}")
        self.p = float(p)

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = uniform(x.shape, like=x) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"
