"""Execution: run one training, sweep a grid, tune and rerun (layer ``runner``).

One job: it trains runs (the loop core in :mod:`adamlab.runner.loop`, serial / vmap / ray backends,
checkpoints) and writes them to the store; it does not analyse them (that is :mod:`adamlab.analysis`). The names of the layers below it that a training script needs are
re-exported here (``Store`` from :mod:`adamlab.store`, ``Criterion`` and ``select_best`` from
:mod:`adamlab.selection`, ``RunConfig`` and ``parse_lr_grid`` from :mod:`adamlab.runs`).

>>> from adamlab import runner                                                    # doctest: +SKIP
>>> res = runner.run("quadratic.noisy", "msvag", {"lr": 0.1}, seed=0, budget=500)  # doctest: +SKIP
>>> rep = runner.sweep("quadratic.noisy", ["sgd", "adam"], runner.parse_lr_grid("1e-3:1e0:4"),
...                    seeds=2, store="results/adamlab.sqlite")                   # doctest: +SKIP

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from adamlab.runner.backends import Backend, RunContext, get_backend
from adamlab.runner.hooks import RunHook
from adamlab.runner.sweep import SweepReport, TuneReport, expand_grid, run_configs, sweep, tune_and_rerun
from adamlab.runner.train import execute, run
from adamlab.runs.config import Budget, RunConfig, make_config, problem_key
from adamlab.runs.parsing import parse_lr_grid
from adamlab.runs.result import RunResult
from adamlab.runs.schedules import Schedule
from adamlab.selection.lr import Criterion, Selection, select_best, select_lr
from adamlab.store.core import DEFAULT_STORE, Store

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
