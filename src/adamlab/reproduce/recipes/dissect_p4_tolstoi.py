"""Balles & Hennig 2018, fig. 5, P4: the 2x2 grid on War and Peace (DeepOBS ``tolstoi_char_rnn``).

Problem ``tolstoi.char_rnn`` (2 x LSTM-128, sequences of 50 characters, batch 50). Methods: M-SGD,
M-SSD, M-SVAG, M-SSD-VA (beta = 0.9). Protocol (full): lr grid 1e-4 ... 1e2 (13 half-decade values),
tune on seed 0, rerun on seeds 0 ... 4, 5 epochs (5,225 steps; the paper's budget is longer),
evaluated every 500 steps on 2,000 sequences. Quick (a smoke test, at most 3 minutes on 2 idle cores; its numbers are not results): lr grid {1e-2, 10} (sign
methods need small, gradient methods large steps: M-SGD's EMA momentum steps by lr * m with m ~ g);
tune on seed 0; rerun on seeds 0, 1; 60 steps, evaluated every 10 steps on 200 sequences.
Selection: lowest final training loss (mean over tune seeds).
Claim (sec. 6): on P4 the non-sign methods (M-SGD, M-SVAG) outperform the sign-based ones.
"""

from adamlab.reproduce.base import Protocol, Setting, register
from adamlab.reproduce.recipes.dissect_paper import dissect_recipe

_GRID = [round(10 ** (-4 + k / 2), 12) for k in range(13)]

RECIPE = register(dissect_recipe(
    name="dissect-p4-tolstoi",
    title="Balles & Hennig 2018 fig. 5 P4: War and Peace char-RNN, M-SGD / M-SSD / M-SVAG / M-SSD-VA",
    setting=Setting("P4 Tolstoi char-RNN", "tolstoi.char_rnn"),
    dataset="tolstoi",
    sign_wins=False,
    full=Protocol(lr_grid=_GRID, tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=5 * 1045, eval_every=500),
    quick=Protocol(lr_grid=[1e-2, 10.0], tune_seeds=[0], seeds=[0, 1], steps=60, eval_every=10,
                   problem_options={"eval_size": 200}, note="eval on 200 sequences"),
    cpu=Protocol(lr_grid=[1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0], tune_seeds=[0], seeds=[0, 1, 2, 3, 4], steps=400,
                 eval_every=50, problem_options={"eval_size": 500},
                 note="CPU protocol: 400 steps = 0.38 epochs (the paper: 200 epochs), eval on 500 sequences"),
    doc=__doc__ or "",
), order=80)
