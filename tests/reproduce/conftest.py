"""Fixtures of the reproduce tests: tiny versions of the registered recipes."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from adamlab.reproduce import Recipe, get


def tiny(name: str, *, steps: int = 20, lr_grid: tuple[float, ...] = (1e-2, 1e-1), seeds: tuple[int, ...] = (0, 1),
         settings: int | None = None, variants: int | None = None, which: str = "quick", **proto: Any) -> Recipe:
    """The registered recipe ``name`` with a tiny ``which`` protocol (few steps, lrs, settings): the
    quick one by default, or ``which="deepobs"`` (the recipe's DeepOBS protocol, shrunk)."""
    recipe = get(name)
    quick = recipe.protocol(which)
    chosen = recipe.settings_for(which)
    if settings is not None:
        chosen = chosen[:settings]
    vs = recipe.variants_for(which)
    if variants is not None:
        vs = vs[:variants]
    eval_every = max(1, steps // 4)
    new_quick = replace(quick, lr_grid=list(lr_grid), tune_seeds=[0], seeds=list(seeds), steps=steps,
                        eval_every=eval_every, settings=chosen, variants=vs,
                        hook_every=quick.hook_every and max(1, steps // 4), **proto)
    return replace(recipe, **{which: new_quick})


@pytest.fixture
def tiny_recipe():
    """``tiny_recipe(name, **overrides) -> Recipe``: see :func:`tiny`."""
    return tiny
