"""Take optimizer steps apart and measure gradient noise (layer ``dissect``: the toolkit).

One job: the measuring instruments, usable in any training loop.

- :func:`decompose` / :class:`StepRecorder`: direction, magnitude, gamma, eta_hat^2 and the applied update.
- :func:`gradient_stats`: per-coordinate mean, variance, eta^2, sign agreement, ideal gammas (torch.func).
- :class:`GradientStatsHook`: record the statistics every k steps during training.

The property checks and the seeds' claims that use this toolkit on real runs (``adamlab verify``)
live higher up, in :mod:`adamlab.claims`.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from adamlab.dissect.decompose import StepPieces, StepRecorder, decompose
from adamlab.dissect.hooks import GradientStatsHook
from adamlab.dissect.stats import GradientStats, gradient_stats, per_example_grads

__all__ = [
    "GradientStats", "GradientStatsHook", "StepPieces", "StepRecorder", "decompose", "gradient_stats",
    "per_example_grads",
]
