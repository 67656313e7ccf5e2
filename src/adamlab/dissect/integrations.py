"""The :class:`~adamlab.dissect.monitor.Monitor` in other people's loops: adamlab's runner (results store),
PyTorch Lightning and Hugging Face ``Trainer``.

- :class:`MonitorHook`: a runner hook (:class:`adamlab.runner.hooks.RunHook`), so ``adamlab`` runs and the
  Dissecting Adam recipes write the monitor's metrics into the results store.
- :func:`lightning_callback`: a ``lightning.pytorch.Callback`` (or ``pytorch_lightning``), built when one of
  them is installed.
- :func:`huggingface_callback`: a ``transformers.TrainerCallback``, built when ``transformers`` is installed.

TensorBoard is the Monitor's own ``tensorboard=logdir`` option (extra ``adamlab[tensorboard]``).
Neither Lightning nor transformers is a dependency of adamlab: the factories import them when called and
raise ImportError naming the package otherwise.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from adamlab.dissect.monitor import SAMPLE, Monitor


class MonitorHook:
    """Runner hook: the monitor's overall (and, with ``per_layer``, per-layer) metrics every ``every`` steps.

    The runner calls it after optimizer step ``step`` when ``step % every == 0``. On its first call for a
    model it attaches a :class:`Monitor` (from then on the statistics come from each sampled step's own
    backward pass) and measures that first point with one extra forward and backward pass on the step's
    batch (at the parameters after the step; no step norm), which leaves the random state and the
    buffers as they were, so the run trains as it would unmonitored. Metric names are the monitor's, prefixed
    ``dx_`` (``dx_eta2_median``, ``dx_gamma_corr/0``, ...).

    Parameters
    ----------
    every:
        Period in steps (>= 1).
    per_layer:
        Record each module's values too (default False: overall values only).
    sample:
        As :class:`Monitor`'s.
    name:
        Recorded in the run's config as ``name@every``.
    """

    prefix = "dx_"

    def __init__(self, every: int = 1, *, per_layer: bool = False, sample: int | None = SAMPLE,
                 name: str = "dissect") -> None:
        if int(every) < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        self.every = int(every)
        self.per_layer = per_layer
        self.sample = sample
        self.name = name
        self.monitor: Monitor | None = None

    def __call__(self, step: int, model: nn.Module, optimizer: torch.optim.Optimizer, problem: Any,
                 batch: Any) -> dict[str, float]:
        mon = self.monitor
        if mon is None or mon.model is not model or mon.optimizer is not optimizer:
            if mon is not None:
                mon.close()
            mon = self.monitor = Monitor(model, optimizer, self.every, per_layer=self.per_layer,
                                         sample=self.sample)
            mon.step = step
            metrics = self._first(mon, model, problem, batch)
            mon.recorder.reset()
            mon.recorder.enabled = (step + 1) % self.every == 0
        else:
            last = mon.history[-1] if mon.history else {}
            metrics = {k: v for k, v in last.items() if k != "step"} if last.get("step") == float(step) else {}
        return {f"{self.prefix}{k}": v for k, v in metrics.items()}

    @staticmethod
    def _first(mon: Monitor, model: nn.Module, problem: Any, batch: Any) -> dict[str, float]:
        """The first point, from an extra forward and backward pass that leaves no trace in the run: the
        random state (dropout draws) and the buffers (BatchNorm's running statistics) are restored, so
        a monitored run trains bit for bit like an unmonitored one."""
        params = [p for p in model.parameters() if p.requires_grad]
        buffers = [(b, b.detach().clone()) for b in model.buffers()]
        devices = sorted({p.device.index or 0 for p in params if p.device.type == "cuda"})
        mon.recorder.reset()
        mon.recorder.enabled = True
        with torch.random.fork_rng(devices=devices), torch.enable_grad():
            loss = problem.loss(model, batch)
            torch.autograd.grad(loss, params, allow_unused=True)  # .grad stays the step's
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        metrics = mon.record()
        return metrics

    def close(self) -> None:
        """Detach the monitor."""
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None


def lightning_callback(every: int = 1, **monitor_options: Any) -> Any:
    """A Lightning ``Callback`` that runs a :class:`Monitor` on the module and its first optimizer.

    It logs the metrics through ``trainer.logger.log_metrics`` (when a logger is set) and keeps the
    monitor as ``callback.monitor``. ``monitor_options`` go to :class:`Monitor`.
    """
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError as exc:
            raise ImportError("lightning_callback needs 'lightning' (or 'pytorch_lightning') installed") from exc

    class DissectCallback(Callback):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.monitor: Monitor | None = None

        def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
            logger = trainer.logger

            def log(step: int, metrics: dict[str, float]) -> None:
                if logger is not None:
                    logger.log_metrics({f"dissect/{k}": v for k, v in metrics.items()}, step=step)

            self.monitor = Monitor(pl_module, trainer.optimizers[0], every, callback=log, **monitor_options)

        def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
            if self.monitor is not None:
                self.monitor.close()

    return DissectCallback()


def huggingface_callback(every: int = 1, **monitor_options: Any) -> Any:
    """A ``transformers.TrainerCallback`` that runs a :class:`Monitor` on the Trainer's model and optimizer.

    The per-example gradient is that of each sequence's share of the batch loss, times the batch size
    (``reduction="mean"``); metrics are also passed to ``callback.history``. ``monitor_options`` go to
    :class:`Monitor`.
    """
    try:
        from transformers import TrainerCallback
    except ImportError as exc:
        raise ImportError("huggingface_callback needs 'transformers' installed") from exc

    class DissectTrainerCallback(TrainerCallback):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            self.monitor: Monitor | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, optimizer: Any = None,
                           **kwargs: Any) -> None:
            if model is not None and optimizer is not None:
                self.monitor = Monitor(model, optimizer, every, **monitor_options)

        def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.monitor is not None:
                self.monitor.close()

    return DissectTrainerCallback()


__all__ = ["MonitorHook", "huggingface_callback", "lightning_callback"]
