"""``reproduce(name)``: run a recipe, write its store, figure(s) and JSON summary, and report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adamlab.reproduce.base import Recipe, get
from adamlab.reproduce.engine import check_data, execute
from adamlab.reproduce.figures import plot_lr_sensitivity, plot_recipe
from adamlab.reproduce.summary import build_summary, format_table, write_json


def default_out(name: str) -> Path:
    """``./results/<name>/``."""
    return Path("results") / name


def reproduce(
    name: str | Recipe,
    *,
    quick: bool = False,
    out: str | os.PathLike[str] | None = None,
    store: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run recipe ``name``; write its figures, ``<out>/summary.json`` and the store.

    Figures: ``<name>.png|.pdf`` (learning curves at the selected lrs), ``<name>_lr.png|.pdf`` (the
    tuning scores against the lr) and any recipe-specific ones (``<name>_dissection`` for the noisy
    quadratic).

    Parameters
    ----------
    name:
        A recipe from :func:`adamlab.reproduce.names`, or a :class:`Recipe` (e.g. a registered one with
        a smaller protocol, made with ``dataclasses.replace``).
    quick:
        The reduced budget of the recipe (marked "QUICK" on the figure and in the JSON).
    out:
        Output folder (default ``./results/<name>/``).
    store:
        SQLite results store (default ``<out>/store.sqlite``); finished runs in it are reused.
    quiet:
        No progress bars.
    log:
        Where the report lines go (``print`` by default).

    Returns
    -------
    dict
        The JSON summary (see :mod:`adamlab.reproduce.summary`).
    """
    recipe = name if isinstance(name, Recipe) else get(name)
    out_dir = Path(out) if out is not None else default_out(recipe.name)
    standalone = getattr(recipe, "run_standalone", None)
    if standalone is not None:  # its own experiment loop, no sweep (adamlab.reproduce.recipes.standalone)
        return standalone(quick=quick, out=out_dir, log=log)
    store_path = Path(store) if store is not None else out_dir / "store.sqlite"
    protocol = recipe.protocol(quick)
    check_data(recipe)  # a missing dataset stops here with adamlab.data's one-line error
    log(f"recipe {recipe.name}: {recipe.title}{' [QUICK]' if quick else ''}")
    log(f"protocol: {protocol.describe()}")
    log(f"selection: {recipe.criterion}; settings: {', '.join(s.label for s in recipe.settings_for(quick))}")
    log(f"methods: {', '.join(v.label for v in recipe.variants_for(quick))}")
    t0 = time.perf_counter()
    execution = execute(recipe, quick=quick, store=store_path, quiet=quiet, log=log)
    summary = build_summary(execution)
    figures = plot_recipe(execution, summary, out_dir) + plot_lr_sensitivity(execution, summary, out_dir)
    if recipe.extra_figures is not None:
        figures += recipe.extra_figures(execution, summary, out_dir)
    summary["figures"] = [str(p) for p in figures]
    summary["compute_time_s"] = round(time.perf_counter() - t0, 2)
    json_path = write_json(out_dir / "summary.json", summary)
    log("")
    log(format_table(summary, list(recipe.metrics)))
    log("")
    for claim in summary["claims"]:
        log(f"[{'agree' if claim['agree'] else 'DISAGREE'}] {claim['claim']}\n    measured: {claim['measured']}")
    log(f"compute time: {summary['compute_time_s']:.1f} s (all {summary['n_runs']} runs of the recipe: "
        f"{summary['training_time_s']:.1f} s of training); summary: {json_path}; "
        f"figures: {', '.join(str(p) for p in figures)}; store: {store_path}")
    return summary
