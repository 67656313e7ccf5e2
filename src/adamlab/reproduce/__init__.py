"""Reproduce the papers' experiments: one recipe per figure (layer ``reproduce``).

One job: a recipe is problem settings x optimizer variants x a tuning protocol, plus the paper's
claims; running it sweeps and selects (through :mod:`adamlab.runner` and :mod:`adamlab.selection`),
draws its figures and checks the claims. The demo lives here too (:mod:`adamlab.reproduce.demo`).

>>> from adamlab import reproduce                              # doctest: +SKIP
>>> reproduce.names()                                          # doctest: +SKIP
>>> summary = reproduce.reproduce("wilson", quick=True)        # doctest: +SKIP

Each recipe states its learning-rate grid, seeds, budget and selection rule (its docstring, the
command's output, the figure and the JSON summary), and checks the paper's claims on its numbers.
Each module of :mod:`adamlab.reproduce.recipes` registers one recipe (``register(RECIPE, order=...)``,
the order of ``adamlab reproduce --list``); the registry imports them on first use.

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from adamlab.reproduce.api import default_out, reproduce
from adamlab.reproduce.base import Claim, Protocol, Recipe, Setting, Variant, get, names, register

__all__ = ["Claim", "Protocol", "Recipe", "Setting", "Variant", "default_out", "get", "names", "register",
           "reproduce"]
