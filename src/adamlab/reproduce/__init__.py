"""Reproduce the papers' experiments: one recipe per figure (problem x optimizers x protocol).

>>> from adamlab import reproduce                              # doctest: +SKIP
>>> reproduce.names()                                          # doctest: +SKIP
>>> summary = reproduce.reproduce("wilson", quick=True)        # doctest: +SKIP

Each recipe states its learning-rate grid, seeds, budget and selection rule (its docstring, the
command's output, the figure and the JSON summary), and checks the paper's claims on its numbers.
"""

from adamlab.reproduce.api import default_out, reproduce
from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant, get, names, register

__all__ = ["Claim", "Protocol", "Recipe", "Setting", "Variant", "default_out", "get", "names", "register",
           "reproduce"]
