"""``reproduce(name)``: run a recipe, write its store, figure(s) and JSON summary, and report."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adamlab.reproduce.base import Recipe, get, protocol_name
from adamlab.reproduce.engine import check_data, execute
from adamlab.reproduce.figures import plot_lr_sensitivity, plot_recipe
from adamlab.reproduce.report import effect_text
from adamlab.reproduce.summary import build_summary, format_table
from adamlab.util.files import write_json


def default_out(name: str, protocol: str = "full") -> Path:
    """``./results/<name>/`` (``./results/<name>-deepobs/`` for the DeepOBS protocol)."""
    return Path("results") / (f"{name}-deepobs" if protocol == "deepobs" else name)


def reproduce(
    name: str | Recipe,
    *,
    quick: bool = False,
    out: str | os.PathLike[str] | None = None,
    store: str | os.PathLike[str] | None = None,
    quiet: bool = False,
    log: Callable[[str], None] = print,
    protocol: str | None = None,
    backend: str = "vmap",
    device: Any = None,
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
        The reduced budget of the recipe (marked "QUICK" on the figure and in the JSON); the same as
        ``protocol="quick"``.
    out:
        Output folder (default :func:`default_out`).
    store:
        SQLite results store (default ``<out>/store.sqlite``); finished runs in it are reused.
    quiet:
        No progress bars.
    log:
        Where the report lines go (``print`` by default).
    protocol:
        ``"full"`` (the recipe's own protocol, default), ``"quick"`` or ``"deepobs"`` (36 log-spaced
        lrs in [1e-5, 1e2], tune on 1 seed, rerun the best on 10 seeds).
    backend:
        Runner backend: ``"vmap"`` (default; runs that cannot be batched fall back to the serial loop,
        with the backend's message), ``"serial"`` or ``"ray"``.
    device:
        Where the runs train: ``"cpu"`` (None, the default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
        ``"auto"``; an unavailable device is a ``ValueError`` before any run. Not part of the runs'
        identity, so a store's finished runs are reused whatever device trained them.

    Returns
    -------
    dict
        The JSON summary (see :mod:`adamlab.reproduce.summary`).
    """
    recipe = name if isinstance(name, Recipe) else get(name)
    if quick and protocol not in (None, "quick"):
        raise ValueError(f"quick=True conflicts with protocol={protocol!r}; give one of them")
    which = protocol_name("quick" if quick else (protocol or "full"))
    out_dir = Path(out) if out is not None else default_out(recipe.name, which)
    from adamlab.runs.device import parse_device

    dev = parse_device(device)  # an unavailable device stops here, before any run
    standalone = getattr(recipe, "run_standalone", None)
    if standalone is not None and dev.type != "cpu":
        raise ValueError(f"recipe {recipe.name!r} runs its own experiment loop on the CPU; "
                         f"--device {device} does not apply to it (use --device cpu)")
    if standalone is not None:  # its own experiment loop, no sweep (adamlab.reproduce.recipes.standalone)
        if which not in ("quick", "full"):
            raise ValueError(f"recipe {recipe.name!r} has its own experiment, not a learning-rate sweep: "
                             f"protocol {which!r} does not apply (use --quick or the full run)")
        return standalone(quick=which == "quick", out=out_dir, log=log)
    store_path = Path(store) if store is not None else out_dir / "store.sqlite"
    proto = recipe.protocol(which)
    check_data(recipe)  # a missing dataset stops here with adamlab.data's one-line error
    tag = {"quick": " [QUICK]", "deepobs": " [DeepOBS protocol]"}.get(which, "")
    log(f"recipe {recipe.name}: {recipe.title}{tag}")
    log(f"protocol ({which}): {proto.describe()}")
    log(f"selection: {recipe.criterion}; settings: {', '.join(s.label for s in recipe.settings_for(which))}")
    log(f"methods: {', '.join(v.label for v in recipe.variants_for(which))}; backend: {backend}"
        + ("" if dev.type == "cpu" else f"; device: {dev}"))
    t0 = time.perf_counter()
    execution = execute(recipe, protocol=which, store=store_path, backend=backend, quiet=quiet, log=log,
                        device=dev)
    summary = build_summary(execution)
    figures = plot_recipe(execution, summary, out_dir) + plot_lr_sensitivity(execution, summary, out_dir)
    if recipe.extra_figures is not None:
        figures += recipe.extra_figures(execution, summary, out_dir)
    summary["figures"] = [str(p) for p in figures]
    summary["compute_time_s"] = summary["wall_time_s"] = round(time.perf_counter() - t0, 2)
    json_path = write_json(out_dir / "summary.json", summary)
    log("")
    log(format_table(summary, list(recipe.metrics)))
    log("")
    for claim in summary["claims"]:
        log(f"[{'agree' if claim['agree'] else 'DISAGREE'}] {claim['claim']}\n    measured: {claim['measured']}"
            f"\n    effect: {effect_text(claim.get('effect'))}")
    log(f"wall time: {summary['wall_time_s']:.1f} s with the {backend} backend on {dev} (compute time; all "
        f"{summary['n_runs']} runs of the recipe: {summary['training_time_s']:.1f} s of training, summed over "
        f"runs, a batched run counting its whole block's time); summary: {json_path}; figures: {', '.join(str(p) for p in figures)}; store: {store_path}")
    return summary
