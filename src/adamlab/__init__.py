"""adamlab: Adam and its relatives for PyTorch.

Subpackages are imported lazily so that ``import adamlab`` stays cheap:

- :mod:`adamlab.functional` -- pure update rules, the single source of every equation
- :mod:`adamlab.optim` -- drop-in ``torch.optim.Optimizer`` classes
- :mod:`adamlab.dissect` -- take steps apart, gradient statistics, property checks
- :mod:`adamlab.data` -- dataset readers for the original formats
- :mod:`adamlab.problems` -- the papers' test problems
- :mod:`adamlab.runner` -- runs, sweeps, the results store, plots
- :mod:`adamlab.reproduce` -- one recipe per paper figure
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
