"""Test problems of the Adam paper and of "Dissecting Adam", registered by name (layer ``problems``).

One job: a problem is a model, a loss, a seeded data pipeline, an evaluation and its paper's default
protocol. ``get(name, **options)`` builds one, ``names()`` lists them (sorted); see
:mod:`adamlab.problems.base` for the contract. Each module of this package registers its problems
(``@register``); the registry imports every module on first use, so a new problem is one new module,
with no list to edit:

- ``quadratic.noisy`` and ``leastsquares.wilson`` (synthetic, no files needed);
- ``mnist.logreg``, ``imdb.bow_logreg``, ``mnist.mlp``, ``mnist.vae``, ``cifar10.cnn`` (Kingma & Ba 2015);
- ``fmnist.cnn``, ``cifar10.3c3d``, ``cifar100.allcnnc``, ``tolstoi.char_rnn`` (Balles & Hennig 2018, P1-P4).

Layers, bottom to top (imports only go down; docs/architecture.md): util < plotting < functional
< optim < dissect < data < problems < runs < store < selection < runner < analysis < claims < reproduce
< commands < cli.
"""

from adamlab.problems.base import Batch, Problem, Protocol, get, names, register

__all__ = ["Batch", "Problem", "Protocol", "get", "names", "register"]
