"""The built-in recipes (importing this package registers them, in this order)."""

from adamlab.reproduce.recipes import (  # noqa: F401
    noisy_quadratic,
    wilson,
)
