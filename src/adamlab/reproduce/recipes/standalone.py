"""Recipes whose experiment is their own loop, not a learning-rate sweep through the runner.

Some of the seeds' claims are about a construction rather than a training run: Reddi et al.'s online
counterexample (a projected 1-D problem), or the trajectories of a 2-D quadratic drawn over its
contours. A :class:`StandaloneRecipe` is a :class:`~adamlab.reproduce.base.Recipe` (so it is listed,
documented and called like the others) with an ``experiment`` that returns plain results and a
``draw`` that makes its figures; :func:`adamlab.reproduce.reproduce` calls :meth:`run_standalone`
instead of the sweep engine. The JSON summary has the usual ``recipe``, ``title``, ``quick``,
``protocol``, ``claims``, ``all_claims_agree``, ``figures`` and ``compute_time_s``, and the numbers
under ``results``; a :class:`~adamlab.reproduce.base.Claim`'s check reads ``summary["results"]``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from adamlab.plotting import quick_prefix
from adamlab.reproduce.base import Recipe
from adamlab.util.files import write_json

#: ``experiment(protocol, quick, log) -> results`` (JSON-serialisable dict).
Experiment = Callable[..., dict[str, Any]]
#: ``draw(results, out_dir, quick, title) -> [paths]``.
Draw = Callable[..., list[Path]]


@dataclass(frozen=True)
class StandaloneRecipe(Recipe):
    """A recipe with its own experiment loop (see the module docstring).

    Attributes
    ----------
    experiment:
        ``experiment(protocol, quick, log) -> results``; ``protocol`` is the quick or full
        :class:`~adamlab.reproduce.base.Protocol` (its ``lr_grid``, ``seeds`` and ``steps`` are used).
    draw:
        ``draw(results, out_dir, quick, subtitle) -> list of figure paths``.
    """

    experiment: Experiment | None = None
    draw: Draw | None = None

    def run_standalone(self, *, quick: bool, out: str | os.PathLike[str], log: Callable[[str], None] = print,
                       ) -> dict[str, Any]:
        """Run the experiment, draw the figures, check the claims and write ``<out>/summary.json``."""
        if self.experiment is None:
            raise ValueError(f"recipe {self.name!r}: a StandaloneRecipe needs an experiment")
        out_dir = Path(out)
        protocol = self.protocol(quick)
        log(f"recipe {self.name}: {self.title}{' [QUICK]' if quick else ''}")
        log(f"protocol: {protocol.describe()}")
        t0 = time.perf_counter()
        results = self.experiment(protocol, quick, log)
        summary: dict[str, Any] = {
            "recipe": self.name, "title": self.title, "quick": quick,
            "protocol": {"description": protocol.describe(), "lr_grid": list(protocol.lr_grid),
                         "seeds": list(protocol.seeds), "steps": protocol.steps},
            "selection": self.criterion, "results": results,
        }
        subtitle = quick_prefix(quick) + protocol.describe()
        figures = self.draw(results, out_dir, quick, subtitle) if self.draw is not None else []
        claims = []
        for claim in self.claims:
            agree, measured = claim.check(summary)
            claims.append({"claim": claim.text, "agree": bool(agree), "measured": measured})
        summary["claims"] = claims
        summary["all_claims_agree"] = all(c["agree"] for c in claims)
        summary["figures"] = [str(p) for p in figures]
        summary["compute_time_s"] = round(time.perf_counter() - t0, 2)
        path = write_json(out_dir / "summary.json", summary)
        log("")
        for c in claims:
            log(f"[{'agree' if c['agree'] else 'DISAGREE'}] {c['claim']}\n    measured: {c['measured']}")
        log(f"compute time: {summary['compute_time_s']:.1f} s; summary: {path}; "
            f"figures: {', '.join(str(p) for p in figures)}")
        return summary

