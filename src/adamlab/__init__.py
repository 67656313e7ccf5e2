"""adamlab: Adam and its relatives for PyTorch.

Subpackages are imported lazily so that ``import adamlab`` stays cheap. The layers, bottom to top
(imports only go down; each package's one job is in docs/architecture.md):

- :mod:`adamlab.util` -- the atomic file writer, the registry mechanism, summary statistics
- :mod:`adamlab.plotting` -- the figure style
- :mod:`adamlab.functional` -- pure update rules, the single source of every equation
- :mod:`adamlab.optim` -- drop-in ``torch.optim.Optimizer`` classes
- :mod:`adamlab.dissect` -- take steps apart, gradient statistics, training hooks
- :mod:`adamlab.data` -- dataset readers for the original formats
- :mod:`adamlab.problems` -- the papers' test problems
- :mod:`adamlab.runs` -- what a run is: configuration, id, result, status, schedules
- :mod:`adamlab.store` -- the SQLite results store
- :mod:`adamlab.selection` -- learning-rate selection
- :mod:`adamlab.runner` -- run, sweep, resume: the training loop and its backends
- :mod:`adamlab.analysis` -- plots, the benchmark report, export
- :mod:`adamlab.claims` -- the seeds' claims and property checks on real runs
- :mod:`adamlab.reproduce` -- one recipe per paper figure, and the demo
- :mod:`adamlab.commands` and :mod:`adamlab.cli` -- the ``adamlab`` command
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
