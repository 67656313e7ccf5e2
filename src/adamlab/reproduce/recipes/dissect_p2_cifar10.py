"""Balles & Hennig 2018, fig. 5, P2: the 2x2 grid on CIFAR-10 (DeepOBS ``cifar10_3c3d``).

Problem ``cifar10.3c3d`` (batch 128 as in DeepOBS). Methods: M-SGD, M-SSD, M-SVAG, M-SSD-VA (beta =
0.9). Protocol (full): lr grid 1e-5 ... 1e0 (11 half-decade values), tune on seed 0, rerun on seeds
0 ... 4, 20 epochs at the problem's steps per epoch, evaluated every 500 steps. Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid
{1e-3, 1e-1}, tune on seed 0, rerun on seeds 0, 1, 50 steps, eval on 500 images (not timed here). Selection: lowest
final training loss. Needs the CIFAR-10 binary files (``adamlab data fetch cifar10``); without them
the command stops with the data error (exit code 2).
Claim (sec. 6): on P2 there is no clear winner between sign and non-sign methods (M-SVAG is best
in test accuracy in the paper); we report the ordering without a pass/fail claim.
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.dissect_paper import dissect_recipe

_GRID = [round(10 ** (-5 + k / 2), 12) for k in range(11)]

RECIPE = register(dissect_recipe(
    name="dissect-p2-cifar10",
    title="Balles & Hennig 2018 fig. 5 P2: CIFAR-10 3c3d, M-SGD / M-SSD / M-SVAG / M-SSD-VA",
    setting=Setting("P2 CIFAR-10 3c3d", "cifar10.3c3d"),
    dataset="cifar10",
    sign_wins=None,
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=20 * 390, eval_every=500),
    quick=Protocol(lr_grid=[1e-3, 1e-1], tune_seeds=[0], seeds=[0, 1], steps=50, eval_every=25,
                   problem_options={"eval_size": 500}, note="eval on 500 images"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0], tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=300,
                 eval_every=50, problem_options={"eval_size": 1000},
                 note="CPU protocol: 300 steps = 0.77 epochs (the paper: 100 epochs), eval on 1,000 images; not run "
                 "here (no CIFAR data on the project's machine)"),
    doc=__doc__ or "",
), order=100)
