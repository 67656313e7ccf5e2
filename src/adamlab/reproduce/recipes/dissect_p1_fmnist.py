"""Balles & Hennig 2018, fig. 5, P1: the 2x2 grid on Fashion-MNIST (DeepOBS ``fmnist_2c2d``).

Problem ``fmnist.cnn`` (2 conv + 2 dense layers, batch 64). Methods: M-SGD, M-SSD, M-SVAG, M-SSD-VA
(beta = 0.9). Protocol (full): lr grid 1e-5 ... 1e0 (11 half-decade values), tune on seed 0, rerun on
seeds 0 ... 4, 20 epochs (18,740 steps; the paper's budget is longer), evaluated every epoch.
Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid {1e-3, 1e-1} (the sign methods'
and the gradient methods' choices of the CPU protocol), tune on seed 0, rerun on seeds 0, 1; 40 steps,
evaluated every 8 steps on 500 images. CPU protocol (docs/results.md): 5 lrs, 5 seeds, 400 steps. Selection: lowest final training loss (mean over tune seeds).
Claim (sec. 6): on P1 the sign-based methods (M-SSD, M-SSD-VA) outperform the non-sign ones.
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.dissect_paper import dissect_recipe

_GRID = [round(10 ** (-5 + k / 2), 12) for k in range(11)]

RECIPE = register(dissect_recipe(
    name="dissect-p1-fmnist",
    title="Balles & Hennig 2018 fig. 5 P1: Fashion-MNIST 2c2d, M-SGD / M-SSD / M-SVAG / M-SSD-VA",
    setting=Setting("P1 Fashion-MNIST 2c2d", "fmnist.cnn"),
    dataset="fashion_mnist",
    sign_wins=True,
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=20 * 937, eval_every=937),
    quick=Protocol(lr_grid=[1e-3, 1e-1], tune_seeds=[0], seeds=[0, 1], steps=40, eval_every=8,
                   problem_options={"eval_size": 500}, note="eval on 500 images"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=400,
                 eval_every=40, problem_options={"eval_size": 1000},
                 note="CPU protocol: 400 steps = 0.43 epochs (the paper: 100 epochs), eval on 1,000 images"),
    doc=__doc__ or "",
), order=70)
