"""Kingma & Ba 2015, sec. 6.4, fig. 4: bias correction in a VAE on MNIST.

Problem ``mnist.vae`` (500 softplus units, 50-d latent, batch 100). Methods: Adam with and without
bias correction (``adam``, ``adam-nobc``), with beta1 in {0, 0.9} and beta2 in {0.99, 0.999, 0.9999}
as in the paper's figure (quick: beta1 = 0.9, beta2 in {0.99, 0.9999}).
Protocol (full): lr grid 1e-5 ... 1e-1 (9 values); tune on seed 0; rerun on seeds 0, 1, 2; 10 epochs
(6,000 steps; the paper reports 10 and 100 epochs); beta1 in {0, 0.9}. Quick: beta1 = 0.9, beta2 in
{0.99, 0.9999}; lr grid {1e-3, 1e-2}; tune on seed 0; rerun on seeds 0, 1; 300 steps, evaluated every
50 steps on 1,000 train / 1,000 test images. Selection: lowest final training loss (-ELBO).
Claim (sec. 6.4): without bias correction, Adam is unstable when beta2 is close to 1 (it needs a
smaller lr and ends with a higher loss), while with beta2 = 0.99 bias correction matters little.
"""

from __future__ import annotations

import math
from typing import Any

from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant, register
from adamlab.reproduce.summary import mean_of

SETTING = "MNIST VAE"


def _variants(beta1s: tuple[float, ...], beta2s: tuple[float, ...]) -> list[Variant]:
    out = []
    for b1 in beta1s:
        for b2 in beta2s:
            for opt, tag in (("adam", "bc"), ("adam-nobc", "no bc")):
                out.append(Variant(f"{tag} b1={b1:g} b2={b2:g}", opt, {"betas": [b1, b2]}))
    return out


def _instability(summary: dict[str, Any]) -> tuple[bool, str]:
    variants = summary["settings"][SETTING]["variants"]
    high = [lab for lab in variants if lab.endswith("b2=0.9999") and lab.startswith("no bc")]
    parts, ok = [], bool(high)
    for lab in high:
        bc = lab.replace("no bc", "bc", 1)
        nobc_v, bc_v = mean_of(summary, SETTING, lab, "train_loss"), mean_of(summary, SETTING, bc, "train_loss")
        worse = math.isnan(nobc_v) or nobc_v > bc_v * 1.02
        ok = ok and worse
        parts.append(f"{lab}: {nobc_v:.4g} vs {bc}: {bc_v:.4g}")
    return ok, "final training -ELBO at the selected lr: " + "; ".join(parts)


def _diverged_lrs(summary: dict[str, Any]) -> tuple[bool, str]:
    variants = summary["settings"][SETTING]["variants"]
    parts = []
    for lab, v in variants.items():
        bad = [lr for lr, score in v["lr_scores"].items() if score is None]
        parts.append(f"{lab}: {len(bad)}/{len(v['lr_scores'])} lrs diverged")
    nobc_high = sum(1 for lab, v in variants.items() if lab.startswith("no bc") and lab.endswith("b2=0.9999")
                    for s in v["lr_scores"].values() if s is None)
    bc_high = sum(1 for lab, v in variants.items() if lab.startswith("bc") and lab.endswith("b2=0.9999")
                  for s in v["lr_scores"].values() if s is None)
    return nobc_high >= bc_high, "; ".join(parts)


RECIPE = register(Recipe(
    name="adam-vae-bias-correction",
    title="Kingma & Ba 2015 fig. 4: VAE on MNIST, Adam with vs without bias correction",
    settings=[Setting(SETTING, "mnist.vae")],
    variants=_variants((0.0, 0.9), (0.99, 0.999, 0.9999)),
    full=Protocol(lr_grid=[1e-5, 3.16228e-5, 1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1],
                  tune_seeds=[0], seeds=[0, 1, 2], steps=6000, eval_every=600,
                  note="beta1 in {0, 0.9}, beta2 in {0.99, 0.999, 0.9999}"),
    quick=Protocol(lr_grid=[1e-3, 1e-2], tune_seeds=[0], seeds=[0, 1], steps=300, eval_every=50,
                   problem_options={"eval_size": 1000}, note="beta1 = 0.9, beta2 in {0.99, 0.9999}; eval on "
                   "1,000 images", variants=_variants((0.9,), (0.99, 0.9999))),
    criterion="min:train_loss",
    metrics=["train_loss", "test_loss"],
    plot_metrics=["train_loss"],
    figure_cols=1,
    claims=[
        Claim("Without bias correction Adam is worse when beta2 is close to 1 (beta2 = 0.9999: higher final "
              "loss than with bias correction)", _instability),
        Claim("Without bias correction more learning rates diverge at beta2 = 0.9999", _diverged_lrs),
    ],
    datasets=["mnist"],
    doc=__doc__ or "",
))
