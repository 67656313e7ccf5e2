"""The contract every test problem follows, and the registry of problems by name.

A problem bundles a model, a loss, a seeded data pipeline, an evaluation and a default
protocol (batch size, budget, eval cadence) taken from the paper it comes from. The runner,
the vectorised backend and the dissection code only ever use this interface.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from adamlab.util.registry import Registry

Batch = tuple[Tensor, ...]
"""One mini-batch: usually ``(inputs, targets)``; for synthetic problems whatever ``loss`` needs."""

LR_SCHEDULES = ("constant", "inv_sqrt", "step")


@dataclass(frozen=True)
class Protocol:
    """A problem's default training protocol, from its paper.

    Attributes
    ----------
    batch_size:
        Mini-batch size.
    steps:
        Default budget in optimizer steps (``--steps`` overrides it).
    eval_every:
        Evaluate (``Problem.evaluate``) every this many steps, and after the last step.
    lr_schedule:
        ``"constant"``, ``"inv_sqrt"`` (lr / sqrt(t), Adam paper 6.1) or ``"step"`` (step decay).
    source:
        Where the protocol comes from, e.g. ``"Kingma & Ba 2015, sec. 6.1"``.
    """

    batch_size: int
    steps: int
    eval_every: int
    lr_schedule: str = "constant"
    source: str = ""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {self.batch_size}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")
        if self.eval_every < 1:
            raise ValueError(f"eval_every must be >= 1, got {self.eval_every}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")


class Problem(ABC):
    """A named test problem.

    Subclasses set ``name``, ``description`` and ``protocol``, and implement ``make_model``,
    ``train_batches`` and ``loss``. All randomness flows from the ``seed`` arguments, so two calls
    with the same seed give identical models and identical batch streams.

    ``options`` are problem parameters (e.g. ``spectrum="ill"`` for the noisy quadratic); ``root``
    is the data directory (default: ``$ADAMLAB_DATA``, then ``~/.cache/adamlab``).
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    protocol: Protocol
    #: True when the loss uses randomness beyond the batch (e.g. dropout, VAE sampling).
    stochastic_forward: ClassVar[bool] = False
    #: True when all of that randomness is drawn through :mod:`adamlab.problems.noise` (the run's own
    #: generator), so that the batched backend can give every run of a block its own numbers.
    noise_from_run: ClassVar[bool] = False
    #: True when ``loss`` and ``evaluate_tensors`` also take a model whose parameters carry a leading run
    #: dimension ``[K, ...]`` (its forward pass returning ``[K, ...]``) with a batch shared by all runs or
    #: one per run ``[K, ...]``, and return ``[K]`` values: the batched backend then calls them directly,
    #: a few large tensor operations per step, instead of ``torch.func.vmap``.
    loss_broadcasts: ClassVar[bool] = False
    #: The problem's options and their defaults. ``None`` (the base default) accepts any options
    #: unchecked; a dict makes unknown options a ``ValueError`` and fills in the missing defaults,
    #: so ``self.options`` (and ``config()``) always holds every option.
    default_options: ClassVar[dict[str, Any] | None] = None
    #: For problems whose loss is ``criterion(model(inputs), targets) + regularization(model)``
    #: with a batch ``(inputs, targets)``: the data term, a mean over the batch (used for
    #: per-sample gradients with ``torch.func``). ``None`` where that form does not apply.
    criterion: Callable[[Tensor, Tensor], Tensor] | None = None
    #: Where the runner trains this problem's models (:meth:`set_device`); data-backed problems keep their
    #: data there when it fits. Not part of ``config()``: the device does not change what a run is.
    device: torch.device = torch.device("cpu")

    def __init__(self, *, root: str | None = None, **options: Any) -> None:
        self.root = root
        if self.default_options is not None:
            unknown = sorted(set(options) - set(self.default_options))
            if unknown:
                allowed = ", ".join(sorted(self.default_options)) or "none"
                raise ValueError(
                    f"unknown option(s) {', '.join(map(repr, unknown))} for problem "
                    f"{getattr(self, 'name', type(self).__name__)!r}; allowed options: {allowed}"
                )
            options = {**self.default_options, **options}
        self.options = options

    def set_device(self, device: torch.device | str) -> Problem:
        """Train on ``device`` from now on (the runner calls it; models are still built on the CPU by
        ``make_model`` and moved by the runner, so every device starts from the same weights). Returns self."""
        self.device = torch.device(device)
        return self

    # -- what every problem implements -------------------------------------------------------
    @abstractmethod
    def make_model(self, seed: int) -> nn.Module:
        """A freshly initialised model; same seed, same weights."""

    @abstractmethod
    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[Batch]:
        """An endless, seeded stream of training batches (reshuffled each epoch)."""

    @abstractmethod
    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        """Mean training loss over ``batch`` (a 0-dim tensor), in the model's current mode."""

    # -- optional, with sensible defaults ------------------------------------------------------
    def regularization(self, model: nn.Module) -> Tensor | None:
        """The regularisation term that ``loss`` adds to ``criterion`` (e.g. L2), or None."""
        return None

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Evaluation metrics, e.g. ``{"test_loss": ..., "test_accuracy": ...}``. Called under no_grad."""
        return {}

    def evaluate_tensors(self, model: nn.Module) -> dict[str, Tensor] | None:
        """``evaluate`` as 0-dim tensors, written without host synchronisation (no ``float()``), so that
        ``torch.func.vmap`` can evaluate a whole block of runs at once; None (the default) where the
        problem has no such form. A problem that defines it should define ``evaluate`` from it."""
        return None

    @property
    def steps_per_epoch(self) -> int | None:
        """Steps per pass over the training set at the default batch size; None for synthetic streams."""
        return None

    def config(self) -> dict[str, Any]:
        """JSON-serialisable description (name + options), used to hash runs."""
        return {"problem": self.name, **{k: v for k, v in sorted(self.options.items())}}


@dataclass(frozen=True)
class Entry:
    """A registered problem: its class (or factory), description and default protocol."""

    factory: Callable[..., Problem]
    description: str
    protocol: Protocol | None = None


#: The problems by name, registered by the modules of :mod:`adamlab.problems` (each decorates its
#: classes with :func:`register`); listed sorted by name.
REGISTRY: Registry[Entry] = Registry("problem", package="adamlab.problems", sort_names=True)


def register(cls: type[Problem]) -> type[Problem]:
    """Class decorator: register ``cls`` under ``cls.name``.

    A module of :mod:`adamlab.problems` is found and imported on first use of the registry; code
    elsewhere (a test, a plug-in) registers its own problems the same way.
    """
    REGISTRY.add(cls.name, Entry(cls, cls.description, getattr(cls, "protocol", None)))
    return cls


def names() -> list[str]:
    """Registered problem names, sorted."""
    return REGISTRY.names()


def entry(name: str) -> Entry:
    """The registry entry of ``name`` (class, description, protocol). Unknown names raise ``ValueError``."""
    return REGISTRY.get(name)


def get(name: str, **options: Any) -> Problem:
    """Build the problem registered as ``name``. Unknown names raise ``ValueError`` listing the known ones."""
    return REGISTRY.get(name).factory(**options)
