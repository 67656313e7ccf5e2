"""The figure of docs/dissect.md: the erf approximation, and measured gamma against the ideal gamma.

Regenerate with ``python -m scripts.dissect_figures [--out docs/figures/dissect_gamma.png]`` (about 10 s
on 2 CPU cores; no data download: the small model trains on synthetic data).

Left: :math:`2\\rho - 1 = \\operatorname{erf}(1/(\\sqrt2\\eta))` for Gaussian gradients, its approximation
:math:`(1+\\eta^2)^{-1/2}` (seed 002), Monte Carlo points of :math:`2\\rho - 1`, and the gradient factor
:math:`1/(1+\\eta^2)`. Right: after training a small MLP, the per-coordinate gamma of Adam and M-SSD-VA
(from :func:`adamlab.dissect.decompose`) against the ideal :math:`2\\rho - 1` of each one's direction,
measured from per-example gradients (:func:`adamlab.dissect.gradient_stats`); see :func:`measured_vs_ideal`.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from adamlab.dissect.decompose import decompose
from adamlab.dissect.stats import gaussian_sign_agreement, gradient_stats, ideal_gamma_grad, ideal_gamma_sign
from adamlab.plotting import pyplot, write_figure

DEFAULT_OUT = Path("docs/figures/dissect_gamma.png")


def _data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 10, generator=g)
    w = torch.randn(10, 3, generator=torch.Generator().manual_seed(123))
    logits = x @ w + 1.5 * torch.randn(n, 3, generator=g)  # label noise: a noisy gradient
    return x, logits.argmax(1)


def measured_vs_ideal(optimizer: str, *, steps: int = 300, batch: int = 32, lr: float = 1e-4,
                      beta: float = 0.99, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Train a 10-32-3 MLP, then return (gamma of the optimizer, ideal gamma of its direction) per coordinate.

    Adam's gamma, :math:`|\\hat m|/\\sqrt{\\hat v}`, estimates the noise of one mini-batch gradient
    (:math:`v - m^2 \\approx \\sigma^2`), so its ideal is :math:`2\\rho - 1` at the batch size. M-SSD-VA
    steps along :math:`\\operatorname{sign}(m)` and estimates the variance of :math:`m`,
    :math:`\\rho_\\infty \\sigma^2` with :math:`\\rho_\\infty = (1-\\beta)/(1+\\beta)`: its ideal is
    :math:`2\\rho - 1` at the effective batch size :math:`b (1+\\beta)/(1-\\beta)`. Both use the
    Gaussian :math:`\\rho`; ``beta`` is the EMA decay of both moments (``betas=(beta, beta)`` for Adam).
    """
    from adamlab.optim.registry import make_optimizer

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3))
    extra = {"betas": (beta, beta)} if optimizer == "adam" else {"beta": beta}
    opt = make_optimizer(optimizer, model.parameters(), lr=lr, **extra)
    x, y = _data(4096, seed)
    g = torch.Generator().manual_seed(seed + 1)
    for _ in range(steps):
        idx = torch.randint(0, x.shape[0], (batch,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    effective = batch if optimizer == "adam" else round(batch * (1 + beta) / (1 - beta))
    stats = gradient_stats(model, F.cross_entropy, x[:2048], y[:2048], batch_size=effective,
                           resamples=1, generator=torch.Generator().manual_seed(seed + 2))
    gammas = torch.cat([p.gamma.reshape(-1).double() for p in decompose(opt)])
    ideal = torch.cat([stats.gamma_sign_gaussian[n].reshape(-1) for n, _ in model.named_parameters()])
    return gammas, ideal


def make_figure(out: str | os.PathLike[str] = DEFAULT_OUT) -> Path:
    """Draw the two panels and save a PNG atomically; returns the path."""
    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4.2))
    eta = torch.logspace(-2, 2, 400, dtype=torch.float64)
    exact = ideal_gamma_sign(gaussian_sign_agreement(torch.ones_like(eta), eta))
    left.plot(eta, exact, lw=2.2, label=r"$2\rho-1=\mathrm{erf}(1/(\sqrt{2}\eta))$")
    left.plot(eta, (1 + eta**2) ** -0.5, "--", lw=2, label=r"$(1+\eta^2)^{-1/2}$ (approximation)")
    left.plot(eta, ideal_gamma_grad(eta**2), ":", lw=2, label=r"$1/(1+\eta^2)$ (gradient direction)")
    g = torch.Generator().manual_seed(0)
    mc_eta = torch.logspace(-1, 1.3, 12, dtype=torch.float64)
    draws = 1 + mc_eta * torch.randn(20000, mc_eta.numel(), dtype=torch.float64, generator=g)
    left.plot(mc_eta, 2 * (draws > 0).double().mean(0) - 1, "ko", ms=4, label=r"Monte Carlo $2\rho-1$")
    gap = (exact - (1 + eta**2) ** -0.5).abs()
    i = int(gap.argmax())
    left.annotate(f"max gap {float(gap[i]):.3f}\nat $\\eta$={float(eta[i]):.2f}", (float(eta[i]), float(exact[i])),
                  xytext=(0.05, 0.1), textcoords="axes fraction", arrowprops={"arrowstyle": "->", "lw": 0.8})
    left.set_xscale("log")
    left.set_xlabel(r"noise-to-signal ratio $\eta = \sigma/|\nabla\mathcal{L}|$")
    left.set_ylabel(r"optimal $\gamma$")
    left.set_title("Optimal variance adaptation (seed 002)")
    left.legend(fontsize=8, loc="upper right")
    left.grid(alpha=0.3)

    for name, color, label in (("adam", "tab:orange", r"Adam, ideal for $g$ (batch 32)"),
                               ("mssdva", "tab:blue", r"M-SSD-VA, ideal for $m$ (batch 32$\cdot$199)")):
        gamma, ideal = measured_vs_ideal(name)
        corr = float(torch.corrcoef(torch.stack([gamma, ideal]))[0, 1])
        err = float((gamma - ideal).abs().median())
        right.scatter(ideal, gamma, s=7, alpha=0.4, color=color,
                      label=f"{label}\ncorr {corr:.2f}, median |error| {err:.3f}")
    right.plot([0, 1], [0, 1], "k--", lw=1, label="measured = ideal")
    right.set_xlabel(r"ideal $\gamma = 2\rho - 1$ (per-example gradients, Gaussian $\rho$)")
    right.set_ylabel(r"optimizer's $\gamma$ (decompose)")
    right.set_title(r"Measured vs ideal $\gamma$, 10-32-3 MLP, $\beta = 0.99$")
    right.set_xlim(-0.02, 1.02)
    right.set_ylim(-0.02, 1.02)
    right.legend(fontsize=8, loc="upper left", markerscale=3)
    right.grid(alpha=0.3)
    fig.tight_layout()

    try:
        return write_figure(fig, out, dpi=110, fmt="png")
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.dissect_figures", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(DEFAULT_OUT), help=f"output PNG (default {DEFAULT_OUT})")
    args = parser.parse_args(argv)
    print(make_figure(args.out))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
