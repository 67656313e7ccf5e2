"""The JSON summary of a recipe run: final metrics over seeds, selected lrs, ordering, claims, time.

Layout::

    {"recipe", "title", "quick", "protocol_name", "backend", "protocol": {...}, "selection",
     "compute_time_s", "wall_time_s", "phase_times_s", "training_time_s", "n_runs", "store",
     "settings": {label: {"problem", "options", "order_metric", "ordering": [variant, ...],
                          "variants": {label: {"optimizer", "hparams", "selected_lr", "lr_scores",
                                               "n_runs", "n_diverged", "final": {metric: stats},
                                               "seeds": [...], "per_seed": {metric: [value or null]}}}}},
     "claims": [{"claim", "agree", "measured", "effect"}], "all_claims_agree", "figures"}

``wall_time_s`` (= ``compute_time_s``) is the wall time of this invocation (runs already in the store
are reused, not rerun); ``training_time_s`` is the summed wall time of all the recipe's runs as recorded
in the store (the total compute of the recipe, whichever invocation ran them).

``stats`` is ``{"mean", "std", "min", "max", "n"}`` over the final reruns (finished runs only; a
diverged run counts in ``n_diverged`` and makes the variant rank last in ``ordering``), computed by
:func:`adamlab.util.stats.summarize` (sample sd, ``ddof = 1``); see :func:`stats` for a single value. ``per_seed``
holds the final value of each rerun in the order of ``seeds`` (the seeds, or the data draws of a
replicated recipe; null where the run diverged or failed): the samples of the claims' effects.
``effect`` is ``{"what", "estimate", "low", "high", "level", "n"}`` (:mod:`adamlab.reproduce.effects`;
``agree`` means ``low > 0``), or null for a check that gives no effect.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from adamlab.reproduce.base import Verdict
from adamlab.reproduce.engine import Execution
from adamlab.runs.result import RunStatus
from adamlab.selection.lr import Criterion
from adamlab.store import borrowed
from adamlab.util.stats import summarize


def stats(values: list[float | None]) -> dict[str, float | int | None]:
    """Mean, sample standard deviation, min, max and count of the finite ``values``
    (:func:`adamlab.util.stats.summarize`); all None when there is none. ``std`` of one value is
    undefined (NaN in :mod:`adamlab.util.stats`): None here, as every undefined number in a summary."""
    s = summarize(values)
    if s.n == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "n": 0}
    return {"mean": s.mean, "std": s.sd if s.n > 1 else None, "min": s.min, "max": s.max, "n": s.n}


def _hook_average(metrics: dict[str, tuple[list[int], list[float]]], name: str) -> float | None:
    """Mean of a hook metric over the second half of its recorded steps (the run's late phase)."""
    steps, values = metrics.get(name, ([], []))
    if not values:
        return None
    half = values[len(values) // 2:]
    return float(np.mean(half))


def build_summary(execution: Execution) -> dict[str, Any]:
    """Summarise an :class:`Execution` (reads the final metrics from its store)."""
    recipe, protocol = execution.recipe, execution.protocol
    metric, mode = recipe.order_metric()
    settings: dict[str, Any] = {}
    with borrowed(execution.store) as db:
        status = db.statuses([i for r in execution.runs for i in (*r.final_ids, *r.hook_ids)])
        wanted = {i for r in execution.runs for i in (*r.tune_ids, *r.final_ids, *r.hook_ids)}
        run_time = sum(float(row["wall_time"] or 0.0) for row in db.runs(run_ids=sorted(wanted)))
        for entry in execution.runs:
            s = settings.setdefault(entry.setting.label, {
                "problem": entry.setting.problem,
                "options": {**dict(entry.setting.options), **dict(protocol.problem_options)},
                "order_metric": f"{mode}:{metric}",
                "variants": {},
            })
            per_seed = {m: db.final_values(entry.final_ids, m) for m in recipe.metrics}
            final = {m: stats(per_seed[m]) for m in recipe.metrics}
            hooked = [i for i in entry.hook_ids if status.get(i) == RunStatus.FINISHED]
            curves = db.curves(hooked, list(recipe.hook_metrics)) if recipe.hook_metrics else {}
            hook = {}
            for m in recipe.hook_metrics:
                hook[m] = stats([_hook_average(curves[i], m) for i in hooked])
            s["variants"][entry.variant.label] = {
                "optimizer": entry.variant.optimizer,
                "hparams": dict(entry.variant.hparams),
                "selected_lr": entry.selected_lr,
                "tuned": entry.variant.lr is None,
                "lr_scores": {f"{lr:g}": (None if not math.isfinite(v) else v) for lr, v in entry.lr_scores.items()},
                "n_runs": len(entry.final_ids),
                "n_diverged": sum(status.get(i) == RunStatus.DIVERGED for i in entry.final_ids),
                "final": final,
                "seeds": list(entry.final_seeds),
                "per_seed": per_seed,
                **({"dissection": hook} if hook else {}),
            }
    for s in settings.values():
        s["ordering"] = ordering(s, metric, mode)
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "title": recipe.title,
        "quick": execution.quick,
        "protocol_name": execution.protocol_name,
        "backend": execution.backend,
        "protocol": {
            "description": protocol.describe(),
            "lr_grid": list(protocol.lr_grid),
            "tune_seeds": list(protocol.tune_seeds),
            "seeds": list(protocol.seeds),
            "replicate_option": protocol.replicate_option,
            "steps": protocol.steps,
            "batch_size": protocol.batch_size,
            "eval_every": protocol.eval_every,
            "problem_options": dict(protocol.problem_options),
            "hook_seeds": None if protocol.hook_seeds is None else list(protocol.hook_seeds),
        },
        "selection": selection_rule(recipe.criterion, replicated=protocol.replicate_option is not None),
        "compute_time_s": round(execution.wall_time, 2),
        "wall_time_s": round(execution.wall_time, 2),
        "phase_times_s": {k: round(v, 2) for k, v in execution.phase_times.items()},
        "training_time_s": round(run_time, 2),
        "n_runs": len(wanted),
        "store": str(execution.store),
        "settings": settings,
    }
    summary["claims"] = [check_claim(claim, summary) for claim in recipe.claims]
    summary["all_claims_agree"] = all(c["agree"] for c in summary["claims"])
    return summary


def check_claim(claim: Any, summary: dict[str, Any]) -> dict[str, Any]:
    """``{"claim", "agree", "measured", "effect"}`` of one claim on ``summary``.

    ``agree`` is the effect's verdict (its interval excludes zero); a number the check needs but the
    summary lacks makes it "could not be checked" (disagree).
    """
    try:
        verdict = claim.check(summary)
    except (KeyError, TypeError, ValueError, IndexError) as err:  # a missing number: cannot check
        return {"claim": claim.text, "agree": False, "measured": f"could not be checked: {err!r}", "effect": None}
    if isinstance(verdict, Verdict):
        return {"claim": claim.text, "agree": verdict.agree, "measured": verdict.measured,
                "effect": verdict.effect.to_dict()}
    agree, measured = verdict
    return {"claim": claim.text, "agree": bool(agree), "measured": measured, "effect": None}


def selection_rule(criterion: str, *, replicated: bool = False) -> str:
    """Human-readable selection rule of a criterion such as ``"min:train_loss"`` (the runner's words)."""
    return Criterion.parse(criterion).describe("the tune data draws" if replicated else "the tune seeds")


def ordering(setting: dict[str, Any], metric: str, mode: str) -> list[str]:
    """Variant labels from best to worst by the mean final ``metric``; diverged or missing ones last."""
    def key(label: str) -> tuple[int, float]:
        v = setting["variants"][label]
        mean = v["final"].get(metric, {}).get("mean")
        if mean is None or v["n_diverged"]:
            return (1, 0.0)
        return (0, mean if mode == "min" else -mean)

    return sorted(setting["variants"], key=key)


def mean_of(summary: dict[str, Any], setting: str, variant: str, metric: str) -> float:
    """The mean final ``metric`` of ``variant`` in ``setting`` (``inf``-like worst when diverged)."""
    v = summary["settings"][setting]["variants"][variant]
    mean = v["final"][metric]["mean"]
    if mean is None or v["n_diverged"]:
        return math.nan
    return float(mean)


def format_table(summary: dict[str, Any], metrics: list[str]) -> str:
    """A plain-text table: setting, variant, selected lr, mean ± std of each metric over seeds."""
    lines = []
    header = f"{'setting':<26} {'method':<20} {'lr':>9} " + " ".join(f"{m:>22}" for m in metrics)
    lines.append(header)
    for label, s in summary["settings"].items():
        for vlabel in s["ordering"]:
            v = s["variants"][vlabel]
            cells = []
            for m in metrics:
                st = v["final"].get(m, {})
                cells.append(f"{mean_pm_sd(st):>22}")
            div = f"  [{v['n_diverged']} diverged]" if v["n_diverged"] else ""
            lines.append(f"{label:<26} {vlabel:<20} {v['selected_lr']:>9.3g} " + " ".join(cells) + div)
    return "\n".join(lines)


def mean_pm_sd(st: dict[str, Any] | None, missing: str = "-") -> str:
    """``mean ± sd`` of a :func:`stats` dict; ``mean (1 seed)`` where the sd is undefined."""
    if not st or st.get("mean") is None:
        return missing
    if st.get("std") is None:
        return f"{st['mean']:.4g} (1 seed)"
    return f"{st['mean']:.4g} ± {st['std']:.2g}"
