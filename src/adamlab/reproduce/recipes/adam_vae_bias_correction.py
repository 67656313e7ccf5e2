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
Checked as effects: the -ELBO ratio without / with bias correction at beta2 = 0.9999 (bootstrap 95%
interval over the seeds, above 2%), and the count of lrs that diverged on the tuning seed (one seed:
no interval; more without bias correction).
"""

from __future__ import annotations

import math
from typing import Any

from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant, Verdict, register
from adamlab.reproduce.effects import point_effect
from adamlab.reproduce.recipes.common import means_effect
from adamlab.reproduce.summary import mean_of

SETTING = "MNIST VAE"


def _variants(beta1s: tuple[float, ...], beta2s: tuple[float, ...]) -> list[Variant]:
    out = []
    for b1 in beta1s:
        for b2 in beta2s:
            for opt, tag in (("adam", "bc"), ("adam-nobc", "no bc")):
                out.append(Variant(f"{tag} b1={b1:g} b2={b2:g}", opt, {"betas": [b1, b2]}))
    return out


INSTABILITY_MARGIN = 1.02  # "higher loss": more than 2% higher


def _instability(summary: dict[str, Any]) -> Verdict:
    variants = summary["settings"][SETTING]["variants"]
    high = [lab for lab in variants if lab.endswith("b2=0.9999") and lab.startswith("no bc")]
    if not high:
        raise ValueError("no variant without bias correction at beta2 = 0.9999 in this run")
    columns = [c for lab in high for c in ((SETTING, lab), (SETTING, lab.replace("no bc", "bc", 1)))]
    margin = math.log10(INSTABILITY_MARGIN)

    def combine(m: Any) -> Any:
        return (m[:, 0::2] - m[:, 1::2]).min(axis=1) - margin

    eff = means_effect(f"min over beta1 of mean log10(-ELBO without / with bias correction) at beta2 = 0.9999 "
                       f"- log10({INSTABILITY_MARGIN})", summary, columns, "train_loss", "min", combine, log10=True)
    parts = []
    for lab in high:
        bc = lab.replace("no bc", "bc", 1)
        nobc_v, bc_v = mean_of(summary, SETTING, lab, "train_loss"), mean_of(summary, SETTING, bc, "train_loss")
        parts.append(f"{lab}: {nobc_v:.4g} vs {bc}: {bc_v:.4g}")
    return Verdict(eff, "final training -ELBO at the selected lr: " + "; ".join(parts))


def _diverged_lrs(summary: dict[str, Any]) -> Verdict:
    variants = summary["settings"][SETTING]["variants"]
    parts = []
    for lab, v in variants.items():
        bad = [lr for lr, score in v["lr_scores"].items() if score is None]
        parts.append(f"{lab}: {len(bad)}/{len(v['lr_scores'])} lrs diverged")
    nobc_high = sum(1 for lab, v in variants.items() if lab.startswith("no bc") and lab.endswith("b2=0.9999")
                    for s in v["lr_scores"].values() if s is None)
    bc_high = sum(1 for lab, v in variants.items() if lab.startswith("bc") and lab.endswith("b2=0.9999")
                  for s in v["lr_scores"].values() if s is None)
    eff = point_effect("lrs diverged on the tuning seed at beta2 = 0.9999, without - with bias correction",
                       nobc_high - bc_high)
    return Verdict(eff, "; ".join(parts))


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
    cpu=Protocol(lr_grid=[1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2], tune_seeds=[0], seeds=[0, 1, 2, 3, 4],
                 steps=900, eval_every=75, problem_options={"eval_size": 2000},
                 note="CPU protocol: 1.5 epochs (the paper: 10 and 100); beta1 = 0.9, beta2 in {0.99, 0.9999}; "
                 "eval on 2,000 images", variants=_variants((0.9,), (0.99, 0.9999))),
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
), order=60)
