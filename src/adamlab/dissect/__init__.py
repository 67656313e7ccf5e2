"""Take optimizer steps apart and measure gradient noise (layer ``dissect``: the toolkit).

One job: the measuring instruments, usable in any training loop.

- :func:`decompose` / :class:`StepRecorder`: direction, magnitude, gamma, eta_hat^2 and the applied update.
- :func:`gradient_stats`: per-coordinate mean, variance, eta^2, sign agreement, ideal gammas (torch.func:
  per-example gradients materialised; the reference).
- :class:`MomentRecorder` / :func:`backward_stats`: the same statistics from per-example moments accumulated
  by module hooks in one backward pass (memory O(parameters)); the empirical sign agreement only where asked.
- :class:`StepStats`: every coordinate's statistics at every step, one fused compiled pass into kept buffers.
- :class:`Monitor`: eta^2, rho, ideal and measured gamma per layer, live in any training loop (CSV,
  TensorBoard); :class:`MonitorHook` for the runner, Lightning / Hugging Face callbacks in ``integrations``.
- :class:`GradientStatsHook`: record the statistics every k steps during training (torch.func path).

The property checks and the seeds' claims that use this toolkit on real runs (``adamlab verify``)
live higher up, in :mod:`adamlab.claims`.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from adamlab.dissect.decompose import StepPieces, StepRecorder, decompose
from adamlab.dissect.hooks import GradientStatsHook
from adamlab.dissect.integrations import MonitorHook
from adamlab.dissect.moments import MomentRecorder, backward_stats
from adamlab.dissect.monitor import Monitor
from adamlab.dissect.stats import GradientStats, gradient_stats, per_example_grads
from adamlab.dissect.step_stats import StepStats

__all__ = [
    "GradientStats", "GradientStatsHook", "MomentRecorder", "Monitor", "MonitorHook", "StepPieces", "StepRecorder", "StepStats",
    "backward_stats", "decompose", "gradient_stats", "per_example_grads",
]
