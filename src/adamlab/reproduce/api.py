"""``reproduce(name)``: run a recipe, write its store, figure(s) and JSON summary, and report."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from adamlab.reproduce.base import Recipe, get, protocol_name
from adamlab.reproduce.effects import seeds_to_settle
from adamlab.reproduce.engine import check_data, execute
from adamlab.reproduce.figures import plot_lr_sensitivity, plot_recipe
from adamlab.reproduce.report import effect_text
from adamlab.reproduce.summary import build_summary, format_table
from adamlab.util.files import write_json

#: Fewer final seeds than this give no claim verdict ("too few seeds"): an interval over 2 or 3 seeds
#: says little (the issue's "agree" from a bootstrap interval over 2 seeds).
MIN_SEEDS_FOR_VERDICT = 5


def default_out(name: str, protocol: str = "full") -> Path:
    """``./results/<name>/`` for the full protocol, ``./results/<name>-<protocol>/`` for the others
    (quick and deepobs), so a smoke test never lands next to a full run's store and figures."""
    return Path("results") / (name if protocol == "full" else f"{name}-{protocol}")


def withhold_verdicts(summary: dict[str, Any], n_seeds: int, minimum: int = MIN_SEEDS_FOR_VERDICT) -> None:
    """Give each claim a ``verdict``: ``"agree"`` / ``"disagree"`` when its effect's interval excludes
    zero on the paper's / the other side, ``"not settled at this budget (about N seeds would settle
    it)"`` when it contains zero, or ``"too few seeds (n < 5)"`` with fewer than ``minimum`` seeds; then
    ``judged`` is False and ``all_claims_agree`` None (no verdict), while ``agree`` keeps what the
    interval alone says. A claim checked without an effect keeps the two-way verdict of ``agree``."""
    judged = n_seeds >= minimum
    for claim in summary.get("claims", []):
        claim["judged"] = judged
        if not judged:
            claim["verdict"] = f"too few seeds ({n_seeds} < {minimum})"
            continue
        claim["verdict"] = "agree" if claim.get("agree") else "disagree"
        eff = claim.get("effect")
        if eff and not claim.get("agree"):
            est, low, high = (_finite(eff.get(k)) for k in ("estimate", "low", "high"))
            if not (high < 0):
                need = seeds_to_settle(est, low, high, int(eff.get("n") or 0))
                claim["verdict"] = "not settled at this budget" + (
                    f" (about {need} seeds would settle it at the measured effect and spread)" if need
                    else " (the effect is zero or undefined: more seeds would not settle it)")
    if not judged and "all_claims_agree" in summary:
        summary["all_claims_agree"] = None


def _finite(x: Any) -> float:
    """A JSON number of :meth:`Effect.to_dict` back to a float (None: nan, "inf"/"-inf": infinities)."""
    return math.nan if x is None else float(x)


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
    checkpoint_every: int | None = None,
    dry_run: bool = False,
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
        ``"full"`` (the recipe's own protocol, default), ``"quick"``, ``"cpu"`` (the results page's
        budget; a standalone recipe's full run) or ``"deepobs"`` (36 log-spaced lrs in [1e-5, 1e2],
        tune on 1 seed, rerun the best on 10 seeds).
    backend:
        Runner backend: ``"vmap"`` (default; runs that cannot be batched fall back to the serial loop,
        with the backend's message), ``"serial"`` or ``"ray"``.
    device:
        Where the runs train: ``"cpu"`` (None, the default), ``"cuda"``, ``"cuda:N"``, ``"mps"`` or
        ``"auto"``; an unavailable device is a ``ValueError`` before any run. Not part of the runs'
        identity, so a store's finished runs are reused whatever device trained them.
    checkpoint_every:
        Checkpoint runs every this many steps (besides the default: one per few minutes of work).
    dry_run:
        Print the plan (protocol, phases, runs x steps, time estimate) and return ``{"dry_run": True}``
        without training, drawing or writing anything.

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
        if which == "deepobs":
            raise ValueError(f"recipe {recipe.name!r} has its own experiment, not a learning-rate sweep: "
                             f"protocol {which!r} does not apply (use --quick or the full run)")
        return standalone(quick=which == "quick", out=out_dir, log=log)
    store_path = Path(store) if store is not None else out_dir / "store.sqlite"
    proto = recipe.protocol(which)
    check_data(recipe)  # a missing dataset stops here with adamlab.data's one-line error
    tag = {"quick": " [QUICK]", "deepobs": " [DeepOBS protocol]", "cpu": " [CPU protocol]"}.get(which, "")
    log(f"recipe {recipe.name}: {recipe.title}{tag}")
    log(f"protocol ({which}): {proto.describe()}")
    log(f"selection: {recipe.criterion}; settings: {', '.join(s.label for s in recipe.settings_for(which))}")
    log(f"methods: {', '.join(v.label for v in recipe.variants_for(which))}; backend: {backend}"
        + ("" if dev.type == "cpu" else f"; device: {dev}"))
    t0 = time.perf_counter()
    execution = execute(recipe, protocol=which, store=store_path, backend=backend, quiet=quiet, log=log,
                        device=dev, checkpoint_every=checkpoint_every, dry_run=dry_run)
    if dry_run:
        log(f"dry run: nothing trained; output would go to {out_dir}, store {store_path}")
        return {"dry_run": True, "recipe": recipe.name, "protocol": which, "out": str(out_dir)}
    summary = build_summary(execution)
    withhold_verdicts(summary, len(proto.seeds))
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
        mark = claim["verdict"] if claim["verdict"] != "disagree" else "DISAGREE"
        log(f"[{mark}] {claim['claim']}\n    measured: {claim['measured']}"
            f"\n    effect: {effect_text(claim.get('effect'))}")
    log(f"wall time: {summary['wall_time_s']:.1f} s with the {backend} backend on {dev} (compute time; all "
        f"{summary['n_runs']} runs of the recipe: {summary['training_time_s']:.1f} s of training, summed over "
        f"runs, a batched run counting its whole block's time); summary: {json_path}; figures: {', '.join(str(p) for p in figures)}; store: {store_path}")
    return summary
