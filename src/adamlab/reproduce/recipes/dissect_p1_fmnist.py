"""Balles & Hennig 2018, fig. 5, P1: the 2x2 grid on Fashion-MNIST (DeepOBS ``fmnist_2c2d``).

Problem ``fmnist.cnn`` (2 conv + 2 dense layers, batch 64). Methods: M-SGD, M-SSD, M-SVAG, M-SSD-VA
(beta = 0.9). Protocol (full): lr grid 1e-5 ... 1e0 (11 half-decade values), tune on seed 0, rerun on
seeds 0 ... 4, 20 epochs (18,740 steps; the paper's budget is longer), evaluated every epoch.
Quick: lr grid {1e-4, 1e-3, 1e-2, 1e-1, 1} for every method; tune on seed 0;
rerun on seeds 0, 1; 250 steps (16,000 of the 60,000 training images), evaluated every 50 steps on
1,000 train / 1,000 test images. Selection: lowest final training loss (mean over tune seeds).
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
    quick=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1], steps=250, eval_every=50,
                   problem_options={"eval_size": 1000}, note="eval on 1,000 images"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=400,
                 eval_every=40, problem_options={"eval_size": 1000},
                 note="CPU protocol: 400 steps = 0.43 epochs (the paper: 100 epochs), eval on 1,000 images"),
    doc=__doc__ or "",
), order=70)
