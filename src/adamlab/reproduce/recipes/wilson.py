"""Wilson et al. 2017, sec. 3.3: on separable least squares, adaptive methods generalise at chance.

Problem: ``leastsquares.wilson`` (n = 100 training and 100 test points, P[y = +1] = 0.6, full batch,
w_0 = 0). Methods: SGD, heavy-ball momentum (0.9), AdaGrad, RMSProp, Adam (paper defaults otherwise).

Protocol (full): lr grid 1e-4 ... 1e0 (9 log-spaced values); tune on data draws 0, 1; rerun the best
lr on data draws 0 ... 4 (a "seed" is a new draw of the data set, ``data_seed``, because full-batch
training from w = 0 is deterministic); 2,000 steps. Quick: lr grid {1e-3, 1e-2, 1e-1, 1}; tune on draw
0; rerun on draws 0, 1, 2; 500 steps. Selection: lowest final training loss (mean over the tune
draws). The methods are ordered by final test error.

Claim (Wilson et al., Lemma 3.1 and sec. 3.3): every method fits the training set, but the adaptive
methods (AdaGrad, RMSProp, Adam) move along sign(X^T y) and label every test point +1, so their test
error is the fraction of negatives (about 1 - p = 0.4, chance), while SGD and momentum converge to
the minimum-norm solution and classify the test set correctly.
"""

from __future__ import annotations

from typing import Any

from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant, register
from adamlab.reproduce.summary import mean_of

SETTING = "n=100, p=0.6, full batch"
ADAPTIVE = ("adagrad", "rmsprop", "adam")
NON_ADAPTIVE = ("sgd", "momentum")
CHANCE = 0.4  # 1 - p: the expected fraction of negatives in the test set


def _adaptive_at_chance(summary: dict[str, Any]) -> tuple[bool, str]:
    errs = {v: mean_of(summary, SETTING, v, "test_error") for v in ADAPTIVE + NON_ADAPTIVE}
    adaptive_chance = all(abs(errs[v] - CHANCE) <= 0.12 for v in ADAPTIVE)
    sgd_good = all(errs[v] <= 0.05 for v in NON_ADAPTIVE)
    text = ", ".join(f"{v} {errs[v]:.3f}" for v in errs) + f" (chance = 1 - p = {CHANCE})"
    return adaptive_chance and sgd_good, f"mean test error: {text}"


def _all_fit(summary: dict[str, Any]) -> tuple[bool, str]:
    errs = {v: mean_of(summary, SETTING, v, "train_error") for v in ADAPTIVE + NON_ADAPTIVE}
    return all(e <= 0.01 for e in errs.values()), "mean train error: " + ", ".join(
        f"{v} {e:.3f}" for v, e in errs.items())


RECIPE = register(Recipe(
    name="wilson",
    title="Wilson et al. 2017 sec. 3.3: separable least squares, adaptive methods generalise at chance",
    settings=[Setting(SETTING, "leastsquares.wilson", {"n": 100, "n_test": 100, "p": 0.6})],
    variants=[Variant("sgd", "sgd"), Variant("momentum", "momentum"), Variant("adagrad", "adagrad"),
              Variant("rmsprop", "rmsprop"), Variant("adam", "adam")],
    full=Protocol(lr_grid=[1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1, 3.16228e-1, 1.0],
                  tune_seeds=[0, 1], seeds=[0, 1, 2, 3, 4], steps=2000, eval_every=50,
                  replicate_option="data_seed"),
    quick=Protocol(lr_grid=[1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2], steps=500, eval_every=25,
                   replicate_option="data_seed"),
    criterion="min:train_loss",
    order="min:test_error",
    metrics=["test_error", "train_error", "train_loss", "test_loss"],
    plot_metrics=["train_loss", "test_error"],
    claims=[
        Claim("Adaptive methods (AdaGrad, RMSProp, Adam) generalise at chance (test error ~ 1 - p), "
              "while SGD and momentum reach ~0 test error", _adaptive_at_chance),
        Claim("All methods fit the training set (zero training error)", _all_fit),
    ],
    doc=__doc__ or "",
))
