"""Kingma & Ba 2015, sec. 6.1, fig. 1 (left): L2-regularised logistic regression on MNIST.

Problem ``mnist.logreg`` (batch 128, lr_t = lr / sqrt(t), weight decay 1e-4). Methods: Adam, SGD with
Nesterov momentum 0.9, AdaGrad.
Protocol (full): lr grid 1e-4 ... 1e0 (9 log-spaced values), tune on seed 0, rerun on seeds 0 ... 4,
45 epochs (21,060 steps), evaluated every epoch on 10,000 train / 10,000 test examples.
Quick: lr grid {1e-3, 1e-2, 1e-1, 1, 10}, tune on seed 0, rerun on seeds 0, 1, 2, 600 steps (1.3 epochs: a
77,000-example subset of the stream), evaluated every 100 steps on 2,000 train / 2,000 test examples.
Selection: lowest final training loss (mean over tune seeds).
Claim: Adam converges as fast as SGD with Nesterov momentum and faster than AdaGrad; checked as: Adam's
final training loss is below, or within 5% of, every other method's.
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.adam_paper import adam_paper_recipe

_GRID = [1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1, 3.16228e-1, 1.0]

RECIPE = register(adam_paper_recipe(
    name="adam-mnist-logreg",
    title="Kingma & Ba 2015 fig. 1a: logistic regression on MNIST (Adam vs Nesterov SGD vs AdaGrad)",
    setting=Setting("MNIST logreg", "mnist.logreg"),
    dataset="mnist",
    others=["nesterov", "adagrad"],
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=45 * 468, eval_every=468),
    quick=Protocol(lr_grid=[1e-3, 1e-2, 1e-1, 1.0, 10.0], tune_seeds=[0], seeds=[0, 1, 2], steps=600, eval_every=100,
                   problem_options={"eval_size": 2000}, note="eval on 2,000 examples"),
    doc=__doc__ or "",
), order=30)
