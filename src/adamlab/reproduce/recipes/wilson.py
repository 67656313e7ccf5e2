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
the minimum-norm solution and classify the test set correctly. Checked as effects with a bootstrap 95%
interval over the data draws: min(0.12 - the largest distance of an adaptive method's mean test error
from 0.4, 0.05 - the largest mean test error of SGD / momentum) > 0, and 0.01 - the largest mean train
error > 0. DeepOBS protocol (``--protocol deepobs``): 36 lrs in [1e-5, 1e2], tune on draw 0, rerun on
draws 0 ... 9, 2,000 steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant, Verdict, register
from adamlab.reproduce.recipes.common import means_effect
from adamlab.reproduce.summary import mean_of

SETTING = "n=100, p=0.6, full batch"
ADAPTIVE = ("adagrad", "rmsprop", "adam")
NON_ADAPTIVE = ("sgd", "momentum")
CHANCE = 0.4  # 1 - p: the expected fraction of negatives in the test set


CHANCE_TOLERANCE = 0.12  # an adaptive method "is at chance" within this of 1 - p
NEAR_ZERO = 0.05  # SGD and momentum "reach ~0 test error": at most this
FIT = 0.01  # "fits the training set": mean train error at most this


def _adaptive_at_chance(summary: dict[str, Any]) -> Verdict:
    methods = ADAPTIVE + NON_ADAPTIVE
    k = len(ADAPTIVE)

    def combine(m: Any) -> Any:
        at_chance = CHANCE_TOLERANCE - np.abs(m[:, :k] - CHANCE).max(axis=1)
        near_zero = NEAR_ZERO - m[:, k:].max(axis=1)
        return np.minimum(at_chance, near_zero)

    eff = means_effect(f"min({CHANCE_TOLERANCE} - max over adaptive of abs(mean test error - {CHANCE}), "
                       f"{NEAR_ZERO} - max over sgd/momentum of mean test error)", summary,
                       [(SETTING, v) for v in methods], "test_error", "min", combine)
    errs = {v: mean_of(summary, SETTING, v, "test_error") for v in methods}
    text = ", ".join(f"{v} {errs[v]:.3f}" for v in errs) + f" (chance = 1 - p = {CHANCE})"
    return Verdict(eff, f"mean test error: {text}")


def _all_fit(summary: dict[str, Any]) -> Verdict:
    methods = ADAPTIVE + NON_ADAPTIVE
    eff = means_effect(f"{FIT} - max over the methods of the mean train error", summary,
                       [(SETTING, v) for v in methods], "train_error", "min", lambda m: FIT - m.max(axis=1))
    errs = {v: mean_of(summary, SETTING, v, "train_error") for v in methods}
    return Verdict(eff, "mean train error: " + ", ".join(f"{v} {e:.3f}" for v, e in errs.items()))


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
), order=20)
