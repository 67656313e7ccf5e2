"""Test problems of the Adam paper and of "Dissecting Adam", registered by name."""

from adamlab.problems.base import Batch, Problem, Protocol, get, names, register

__all__ = ["Batch", "Problem", "Protocol", "get", "names", "register"]
