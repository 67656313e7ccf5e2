"""Kingma & Ba 2015, sec. 6.1, fig. 1 (right): logistic regression on IMDB bags of words, 50% input dropout.

Problem ``imdb.bow_logreg`` (10,000 most frequent words, batch 128, lr_t = lr / sqrt(t)). Methods: Adam,
SGD with Nesterov momentum 0.9, AdaGrad, RMSProp.
Protocol (full): lr grid 1e-4 ... 1e0 (9 values), tune on seed 0, rerun on seeds 0 ... 4, 160 epochs
(31,200 steps), evaluated every epoch. Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid {1e-2, 1e-1, 1}, tune on seed 0,
rerun on seeds 0, 1, 2, 600 steps (about 3 epochs), evaluated every 100 steps on 2,000 train / 2,000 test
reviews. Selection: lowest final training loss (mean over tune seeds).
Claim: with dropout noise, Adam is as fast as or faster than the others (the paper: AdaGrad does well
on these sparse features and Adam matches it; SGD with Nesterov is slower).
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.adam_paper import adam_paper_recipe

_GRID = [1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1, 3.16228e-1, 1.0]

RECIPE = register(adam_paper_recipe(
    name="adam-imdb-bow",
    title="Kingma & Ba 2015 fig. 1b: IMDB bag-of-words logistic regression with 50% input dropout",
    setting=Setting("IMDB BoW logreg", "imdb.bow_logreg"),
    dataset="imdb",
    others=["nesterov", "adagrad", "rmsprop"],
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=160 * 195, eval_every=195),
    quick=Protocol(lr_grid=[1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2], steps=600, eval_every=100,
                   problem_options={"eval_size": 2000}, note="eval on 2,000 reviews"),
    cpu=Protocol(lr_grid=[round(10 ** (k / 2), 12) for k in range(-6, 5)], tune_seeds=[0], seeds=[0, 1, 2, 3, 4],
                 steps=6 * 195, eval_every=98, problem_options={"eval_size": 5000},
                 note="CPU protocol: 6 epochs (the paper: 160), eval on 5,000 reviews"),
    doc=__doc__ or "",
), order=40)
