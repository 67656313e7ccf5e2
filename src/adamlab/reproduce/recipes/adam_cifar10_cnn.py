"""Kingma & Ba 2015, sec. 6.3, fig. 3: CNN c64-c64-c128-1000 with dropout on CIFAR-10.

Problem ``cifar10.cnn`` (batch 128). Methods: Adam, SGD with Nesterov momentum 0.9, AdaGrad.
Protocol (full): lr grid 1e-5 ... 1e-1 (9 values), tune on seed 0, rerun on seeds 0, 1, 2, 45 epochs
(17,550 steps), evaluated every epoch. Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid {1e-3}, seeds 0, 1, 40 steps,
eval on 500 images (not timed here: no CIFAR data on the project's machine). Selection: lowest final training loss. Needs the
CIFAR-10 binary files (``adamlab data fetch cifar10``); without them the command stops with the data
error (exit code 2).
Claim (sec. 6.3): Adam and SGD with Nesterov momentum converge faster than AdaGrad; checked as: Adam's
final training loss is below, or within 5% of, the others'.
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.adam_paper import adam_paper_recipe

_GRID = [1e-5, 3.16228e-5, 1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1]

RECIPE = register(adam_paper_recipe(
    name="adam-cifar10-cnn",
    title="Kingma & Ba 2015 fig. 3: CIFAR-10 CNN c64-c64-c128-1000 with dropout",
    setting=Setting("CIFAR-10 CNN", "cifar10.cnn"),
    dataset="cifar10",
    others=["nesterov", "adagrad"],
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2], steps=45 * 390, eval_every=390),
    quick=Protocol(lr_grid=[1e-3], tune_seeds=[0], seeds=[0, 1], steps=40, eval_every=20,
                   problem_options={"eval_size": 500}, note="eval on 500 images"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1], tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=400, eval_every=50,
                 problem_options={"eval_size": 1000},
                 note="CPU protocol: 400 steps = 1 epoch (the paper: 45), eval on 1,000 images; not run here "
                 "(no CIFAR data on the project's machine)"),
    doc=__doc__ or "",
), order=90)
