"""Test problems of the Adam paper and of "Dissecting Adam", registered by name.

``get(name, **options)`` builds one, ``names()`` lists them; see :mod:`adamlab.problems.base`
for the contract. Importing this package registers the built-in problems:

- ``quadratic.noisy`` and ``leastsquares.wilson`` (synthetic, no files needed);
- ``mnist.logreg``, ``imdb.bow_logreg``, ``mnist.mlp``, ``mnist.vae``, ``cifar10.cnn`` (Kingma & Ba 2015);
- ``fmnist.cnn``, ``cifar10.3c3d``, ``cifar100.allcnnc``, ``tolstoi.char_rnn`` (Balles & Hennig 2018, P1-P4).
"""

# Registration happens on import (each module decorates its classes with @register).
from adamlab.problems import cifar, fmnist, imdb, leastsquares, mnist, quadratic, tolstoi  # noqa: E402, I001, F401
from adamlab.problems.base import Batch, Problem, Protocol, get, names, register

__all__ = ["Batch", "Problem", "Protocol", "get", "names", "register"]
