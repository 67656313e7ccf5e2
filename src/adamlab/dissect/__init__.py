"""Take optimizer steps apart, measure gradient noise, and check the seeds' claims.

- :func:`decompose` / :class:`StepRecorder`: direction, magnitude, gamma, eta_hat^2 and the applied update.
- :func:`gradient_stats`: per-coordinate mean, variance, eta^2, sign agreement, ideal gammas (torch.func).
- :func:`verify`: property checks on real optimizer runs (``adamlab verify``).
- :class:`GradientStatsHook`: record the statistics every k steps during training.
"""

from adamlab.dissect.decompose import StepPieces, StepRecorder, decompose
from adamlab.dissect.hooks import GradientStatsHook
from adamlab.dissect.properties import PROPERTIES, Record, verify
from adamlab.dissect.stats import GradientStats, gradient_stats, per_example_grads

__all__ = [
    "PROPERTIES", "GradientStats", "GradientStatsHook", "Record", "StepPieces", "StepRecorder", "decompose",
    "gradient_stats", "per_example_grads", "verify",
]
