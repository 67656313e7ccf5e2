"""The shared machinery of the data-backed problems: lazy data, seeded batches, L2, evaluation.

A :class:`DatasetProblem` has a loss of the form ``criterion(model(inputs), targets) +
regularization(model)`` on batches ``(inputs, targets)`` whose inputs are already converted
(floats in [0, 1], standardised images, ...), so per-sample gradients can be taken with
``torch.func`` on ``criterion`` alone.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from adamlab.problems.base import Batch, Problem
from adamlab.problems.datasets import fixed_subset, load_cached, on_device, shuffled_batches
from adamlab.problems.options import check_float, check_int

#: Options every data-backed problem understands.
COMMON_OPTIONS: dict[str, Any] = {"eval_size": 10_000}


def cross_entropy(outputs: Tensor, targets: Tensor) -> Tensor:
    """Mean softmax cross-entropy; ``outputs`` ``[..., C]`` logits, ``targets`` ``[...]`` class ids."""
    return F.cross_entropy(outputs.reshape(-1, outputs.shape[-1]), targets.reshape(-1))


def scale_pixels(x: Tensor) -> Tensor:
    """``uint8`` pixels to float32 in [0, 1] (x / 255)."""
    return x.to(torch.float32).div_(255.0)


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a parameterless model)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


class DatasetProblem(Problem):
    """A supervised problem on a dataset from :mod:`adamlab.data`.

    Subclasses set ``dataset`` and ``criterion`` and implement ``build_model``; they may override
    ``transform`` (raw batch -> model input), ``prepare`` (reshape a whole split once, e.g. text
    into sequences) and ``predict`` (outputs -> predicted labels).

    Options (plus each subclass's own): ``eval_size`` -- evaluation uses a fixed random subset
    (seed 0) of at most this many training and test examples, in batches of ``eval_batch_size``;
    ``weight_decay`` where a subclass declares it -- the L2 term ``weight_decay / 2 * sum ||W||^2``
    over weight matrices and filters (not biases), TensorFlow's ``l2_loss`` convention as in DeepOBS.
    """

    dataset: ClassVar[str]
    train_split: ClassVar[str] = "train"
    test_split: ClassVar[str] = "test"
    eval_batch_size: ClassVar[int] = 1000
    default_options: ClassVar[dict[str, Any] | None] = dict(COMMON_OPTIONS)

    def __init__(self, *, root: str | None = None, **options: Any) -> None:
        super().__init__(root=root, **options)
        check_int("eval_size", self.options["eval_size"], low=1)
        if "weight_decay" in self.options:
            check_float("weight_decay", self.options["weight_decay"], low=0.0)
        if "dropout" in self.options:
            check_float("dropout", self.options["dropout"], low=0.0, high=1.0, high_open=True)
        self.validate_options()

    # -- hooks --------------------------------------------------------------------------------
    def validate_options(self) -> None:
        """Check subclass-specific options (raise ValueError naming the option)."""

    @abstractmethod
    def build_model(self) -> nn.Module:
        """A freshly initialised model, drawing from torch's global RNG (seeded by ``make_model``)."""

    def transform(self, inputs: Tensor) -> Tensor:
        """Convert a raw batch of inputs (storage dtype) into the model's input."""
        return inputs

    def prepare(self, inputs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Reshape a whole split once after loading (default: unchanged)."""
        return inputs, targets

    def predict(self, outputs: Tensor) -> Tensor:
        """Predicted labels from model outputs (default: argmax over the last dimension)."""
        return outputs.argmax(-1)

    # -- data -----------------------------------------------------------------------------------
    def data(self, split: str) -> tuple[Tensor, Tensor]:
        """The (prepared, raw-dtype) ``(inputs, targets)`` of ``split``, loaded lazily and cached; held on
        the problem's ``device`` when it fits there (:func:`adamlab.problems.datasets.on_device`)."""
        inputs, targets = load_cached(self.dataset, split, self.root)
        if self.device.type != "cpu":
            inputs, targets = on_device(inputs, targets, self.device)
        return self.prepare(inputs, targets)

    # -- the Problem contract -------------------------------------------------------------------
    def make_model(self, seed: int) -> nn.Module:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(seed))
            return self.build_model()

    def train_batches(self, seed: int, batch_size: int | None = None) -> Iterator[Batch]:
        bs = self.protocol.batch_size if batch_size is None else check_int("batch_size", batch_size, low=1)
        inputs, targets = self.data(self.train_split)
        device = None if self.device.type == "cpu" else self.device
        return shuffled_batches(inputs, targets, bs, seed, self.transform, device=device)

    def loss(self, model: nn.Module, batch: Batch) -> Tensor:
        inputs, targets = batch[0], batch[1]
        device = model_device(model)
        assert self.criterion is not None
        value = self.criterion(model(inputs.to(device)), targets.to(device))
        reg = self.regularization(model)
        return value if reg is None else value + reg

    def regularization(self, model: nn.Module) -> Tensor | None:
        """``weight_decay / 2 * sum ||W||^2`` over parameters with >= 2 dims; None without L2."""
        wd = float(self.options.get("weight_decay", 0.0))
        if wd == 0.0:
            return None
        weights = [p for p in model.parameters() if p.dim() > 1]
        return 0.5 * wd * torch.stack([w.square().sum() for w in weights]).sum()

    @property
    def steps_per_epoch(self) -> int | None:
        """Full batches per pass over the training split (loads the data on first use)."""
        n = int(self.data(self.train_split)[0].shape[0])
        return max(n // self.protocol.batch_size, 1)

    def evaluate(self, model: nn.Module) -> dict[str, float]:
        """Data loss (without the L2 term) and accuracy on fixed subsets of train and test.

        Returns ``train_loss``, ``train_accuracy``, ``test_loss``, ``test_accuracy``; the model is
        put in eval mode (no dropout) and restored afterwards.
        """
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                metrics: dict[str, float] = {}
                for prefix, split in (("train", self.train_split), ("test", self.test_split)):
                    loss, acc = self._evaluate_split(model, split)
                    metrics[f"{prefix}_loss"] = loss
                    metrics[f"{prefix}_accuracy"] = acc
                return metrics
        finally:
            model.train(was_training)

    def _evaluate_split(self, model: nn.Module, split: str) -> tuple[float, float]:
        assert self.criterion is not None
        inputs, targets = self.data(split)
        idx = fixed_subset(int(inputs.shape[0]), int(self.options["eval_size"]))
        device = model_device(model)
        total_loss, correct, count = 0.0, 0, 0
        for chunk in idx.split(self.eval_batch_size):
            chunk = chunk.to(inputs.device)  # raw rows to the model's device, converted there (as in training)
            x = self.transform(inputs.index_select(0, chunk).to(device))
            y = targets.index_select(0, chunk).to(device)
            out = model(x)
            units = y.numel()
            total_loss += float(self.criterion(out, y)) * units
            correct += int((self.predict(out) == y).sum())
            count += units
        return total_loss / count, correct / count
