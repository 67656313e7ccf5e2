"""Balles & Hennig 2018, fig. 5, P3: the 2x2 grid on CIFAR-100 (DeepOBS ``cifar100_allcnnc``).

Problem ``cifar100.allcnnc``. Methods: M-SGD, M-SSD, M-SVAG, M-SSD-VA (beta = 0.9). Protocol (full):
lr grid 1e-5 ... 1e0 (11 half-decade values), tune on seed 0, rerun on seeds 0 ... 4, 20 epochs,
evaluated every 500 steps. Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid {1e-3, 1e-1}, tune on seed 0,
rerun on seeds 0, 1, 20 steps, eval on 500 images (not timed here). Selection: lowest final training loss. Needs the CIFAR-100 binary
files (``adamlab data fetch cifar100``); without them the command stops with the data error (exit 2).
Claim (sec. 6): on P3 the non-sign methods (M-SGD, M-SVAG) outperform the sign-based ones.
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.dissect_paper import dissect_recipe

_GRID = [round(10 ** (-5 + k / 2), 12) for k in range(11)]

RECIPE = register(dissect_recipe(
    name="dissect-p3-cifar100",
    title="Balles & Hennig 2018 fig. 5 P3: CIFAR-100 All-CNN-C, M-SGD / M-SSD / M-SVAG / M-SSD-VA",
    setting=Setting("P3 CIFAR-100 All-CNN-C", "cifar100.allcnnc"),
    dataset="cifar100",
    sign_wins=False,
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=20 * 390, eval_every=500),
    quick=Protocol(lr_grid=[1e-3, 1e-1], tune_seeds=[0], seeds=[0, 1], steps=20, eval_every=10,
                   problem_options={"eval_size": 500}, note="eval on 500 images"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=300,
                 eval_every=50, problem_options={"eval_size": 1000},
                 note="CPU protocol: 300 steps = 0.77 epochs (the paper: 350 epochs), eval on 1,000 images; not run "
                 "here (no CIFAR data on the project's machine)"),
    doc=__doc__ or "",
), order=110)
