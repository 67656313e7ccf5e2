"""Kingma & Ba 2015, sec. 6.2, fig. 2: MLP 784-1000-1000-10 with ReLU and dropout 0.5 on MNIST.

Problem ``mnist.mlp`` (batch 128, constant lr). Methods: Adam, SGD with Nesterov momentum 0.9,
AdaGrad, RMSProp.
Protocol (full): lr grid 1e-5 ... 1e-1 (9 values), tune on seed 0, rerun on seeds 0 ... 4, 200 epochs
(93,600 steps), evaluated every epoch. Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid {1e-3, 1e-2, 1e-1}, tune on
seed 0, rerun on seeds 0, 1, 300 steps (0.64 epochs), evaluated every 50 steps on 2,000 train / 2,000 test examples.
Selection: lowest final training loss (mean over tune seeds; the training loss is the problem's
evaluation on the training subset, without dropout).
Claim: Adam converges as fast as or faster than the others (final training loss within 5%).
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.adam_paper import adam_paper_recipe

_GRID = [1e-5, 3.16228e-5, 1e-4, 3.16228e-4, 1e-3, 3.16228e-3, 1e-2, 3.16228e-2, 1e-1]

RECIPE = register(adam_paper_recipe(
    name="adam-mnist-mlp",
    title="Kingma & Ba 2015 fig. 2: MNIST MLP 2x1000 ReLU with dropout",
    setting=Setting("MNIST MLP + dropout", "mnist.mlp"),
    dataset="mnist",
    others=["nesterov", "adagrad", "rmsprop"],
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=200 * 468, eval_every=468),
    quick=Protocol(lr_grid=[1e-3, 1e-2, 1e-1], tune_seeds=[0], seeds=[0, 1], steps=300, eval_every=50,
                   problem_options={"eval_size": 2000}, note="eval on 2,000 examples"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2, 3, 4],
                 steps=2 * 468, eval_every=78, problem_options={"eval_size": 5000},
                 note="CPU protocol: 2 epochs (the paper: 200), eval on 5,000 examples"),
    doc=__doc__ or "",
), order=50)
