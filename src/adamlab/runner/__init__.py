"""Run one training, sweep a grid, tune and rerun, store results, plot them.

>>> from adamlab import runner                                                    # doctest: +SKIP
>>> res = runner.run("quadratic.noisy", "msvag", {"lr": 0.1}, seed=0, budget=500)  # doctest: +SKIP
>>> rep = runner.sweep("quadratic.noisy", ["sgd", "adam"], runner.parse_lr_grid("1e-3:1e0:4"),
...                    seeds=2, store="results/adamlab.sqlite")                   # doctest: +SKIP
"""

from adamlab.runner.backends import Backend, RunContext, get_backend, problem_key
from adamlab.runner.config import Budget, RunConfig, make_config
from adamlab.runner.hooks import RunHook
from adamlab.runner.parsing import parse_lr_grid
from adamlab.runner.result import RunResult
from adamlab.runner.schedules import Schedule
from adamlab.runner.store import DEFAULT_STORE, Store
from adamlab.runner.sweep import (
    Criterion,
    Selection,
    SweepReport,
    TuneReport,
    expand_grid,
    run_configs,
    select_best,
    select_lr,
    sweep,
    tune_and_rerun,
)
from adamlab.runner.train import execute, run

__all__ = [
    "DEFAULT_STORE",
    "Backend",
    "Budget",
    "Criterion",
    "RunConfig",
    "RunContext",
    "RunHook",
    "RunResult",
    "Schedule",
    "Selection",
    "Store",
    "SweepReport",
    "TuneReport",
    "execute",
    "expand_grid",
    "get_backend",
    "make_config",
    "parse_lr_grid",
    "problem_key",
    "run",
    "run_configs",
    "select_best",
    "select_lr",
    "sweep",
    "tune_and_rerun",
]
