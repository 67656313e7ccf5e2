"""Rerun recipes under their protocols and regenerate their sections of ``docs/results.md`` from the runs.

    python -m scripts.regenerate_results                       # = make results: every recipe of DEFAULT_PLAN
    python -m scripts.regenerate_results --recipes adam-mnist-mlp   # one recipe (make results RESULTS_ARGS=...)
    python -m scripts.regenerate_results --recipes wilson --protocol full --backend serial

Each recipe runs under its protocol of :data:`DEFAULT_PLAN` (``--protocol`` overrides it for all):
DeepOBS's protocol at the paper's budget where that fits a 2-core machine (the synthetic recipes and
``adam-mnist-logreg``), the recipe's ``cpu`` protocol (at most 30 minutes there, idle) for the other
data recipes. Each writes its store, summary and figures to ``<out>/<recipe>-<protocol>/`` (finished
runs in the store are reused, so an interrupted regeneration resumes where it stopped), its figures
are copied to ``docs/figures/results_<recipe>_<protocol>*.png``, and its section replaces the text
between the two markers::

    <!-- BEGIN regenerated: <recipe> <protocol> -->
    ...
    <!-- END regenerated: <recipe> <protocol> -->

An overview table of every recipe of the plan that has a summary in ``<out>`` (this invocation's or
an earlier one's), with the total compute, goes between the markers of ``overview``. Text outside
the markers is never touched; a missing marker is an error naming it (nothing is written).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from adamlab.reproduce.base import PROTOCOLS, Recipe, get
from adamlab.reproduce.report import markdown_section
from adamlab.util.files import write_bytes, write_text

#: What ``make results`` runs: recipe -> protocol.
DEFAULT_PLAN: dict[str, str] = {
    "noisy-quadratic": "deepobs",
    "wilson": "deepobs",
    "adam-mnist-logreg": "deepobs",
    "adam-imdb-bow": "cpu",
    "adam-mnist-mlp": "cpu",
    "adam-vae-bias-correction": "cpu",
    "dissect-p1-fmnist": "cpu",
    "dissect-p4-tolstoi": "cpu",
}
DEFAULT_RECIPES = tuple(DEFAULT_PLAN)
OVERVIEW = "overview"
DEFAULT_DOCS = Path("docs") / "results.md"
DEFAULT_OUT = Path("results")


def begin_marker(key: str) -> str:
    return f"<!-- BEGIN regenerated: {key} -->"


def end_marker(key: str) -> str:
    return f"<!-- END regenerated: {key} -->"


def replace_region(text: str, key: str, body: str) -> str:
    """``text`` with the lines between the markers of ``key`` replaced by ``body`` (markers kept).

    Raises ``ValueError`` naming the marker when either is missing, repeated or out of order.
    """
    begin, end = begin_marker(key), end_marker(key)
    if text.count(begin) != 1 or text.count(end) != 1:
        raise ValueError(f"docs: need exactly one {begin!r} and one {end!r}; found {text.count(begin)} and "
                         f"{text.count(end)}")
    i, j = text.index(begin) + len(begin), text.index(end)
    if j < i:
        raise ValueError(f"docs: {end!r} comes before {begin!r}")
    return text[:i] + "\n" + body.strip("\n") + "\n" + text[j:]


def _copy_figures(summary: dict[str, Any], figures_dir: Path, stem: str) -> dict[str, str]:
    """Copy the PNGs of a recipe run to ``figures_dir/<stem><suffix>.png``; ``{suffix: file name}``."""
    figures_dir.mkdir(parents=True, exist_ok=True)
    recipe = summary["recipe"]
    out = {}
    for f in summary.get("figures", []):
        path = Path(f)
        if path.suffix != ".png" or not path.stem.startswith(recipe):
            continue
        suffix = path.stem[len(recipe):]  # "", "_lr", "_dissection"
        target = figures_dir / f"{stem}{suffix}.png"
        write_bytes(target, path.read_bytes())  # atomic: a reader never sees half a figure
        out[suffix] = target.name
    return out


def section(summary: dict[str, Any], figures: dict[str, str], figures_rel: str, metrics: Sequence[str]) -> str:
    """The regenerated section of one recipe: :func:`markdown_section` plus its other figures."""
    main = f"{figures_rel}/{figures.get('', 'missing.png')}"
    lines = [markdown_section(summary, main, list(metrics))]
    for suffix, name in figures.items():
        if suffix:
            lines += ["", f"![{summary['recipe']}{suffix.replace('_', ' ')}]({figures_rel}/{name})"]
    return "\n".join(lines)


def overview(summaries: Sequence[dict[str, Any]], machine: str = "") -> str:
    """Markdown table: recipe, protocol, claims agreeing (of those judged), runs, wall time of the last
    invocation, training time, backend; then the total compute."""
    rows = ["| recipe | protocol | claims agreeing | runs | wall time (s) | training time (s) | backend |",
            "|---|---|---|---|---|---|---|"]
    wall = 0.0
    for s in summaries:
        agree = sum(c["agree"] for c in s["claims"])
        unsettled = sum(str(c.get("verdict", "")).startswith("not settled") for c in s["claims"])
        note = f" ({unsettled} not settled)" if unsettled else ""
        seconds = s.get("wall_time_s", s["compute_time_s"])
        wall += seconds
        rows.append(f"| `{s['recipe']}` | {s.get('protocol_name', 'full')} | {agree}/{len(s['claims'])}{note} | "
                    f"{s['n_runs']} | {seconds:.0f} | {s['training_time_s']:.0f} | {s.get('backend', '-')} |")
    runs = sum(s["n_runs"] for s in summaries)
    trained = sum(s["training_time_s"] for s in summaries)
    rows += ["", f"Total compute of `make results` as last run: {runs} runs, {trained / 60:.0f} min of training "
                 f"summed over the runs (a batched run counts its whole block's time){machine}; the last "
                 f"invocations took {wall / 60:.1f} min of wall time (runs found finished in a store are reused, "
                 f"not retrained)."]
    return "\n".join(rows)


def regenerate(
    recipes: Sequence[str | Recipe] = DEFAULT_RECIPES,
    *,
    protocol: str | None = None,
    backend: str = "vmap",
    docs: str | os.PathLike[str] = DEFAULT_DOCS,
    out: str | os.PathLike[str] = DEFAULT_OUT,
    quiet: bool = False,
    log: Callable[[str], None] = print,
    machine: str = "",
) -> list[dict[str, Any]]:
    """Run each recipe under its protocol (``protocol``, or its entry of :data:`DEFAULT_PLAN`, else
    ``cpu``) and rewrite its marked section of ``docs`` and the overview.

    The markers are checked before anything runs. ``machine`` is appended to the overview's total
    (e.g. ``", on 2 idle cores"``). Returns the recipes' JSON summaries.
    """
    from adamlab.reproduce.api import reproduce

    if protocol is not None and protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    docs_path = Path(docs)
    if not docs_path.is_file():
        raise FileNotFoundError(f"docs file {str(docs_path)!r} does not exist")
    resolved = [r if isinstance(r, Recipe) else get(r) for r in recipes]
    plan = [(r, protocol or DEFAULT_PLAN.get(r.name, "cpu")) for r in resolved]
    text = docs_path.read_text(encoding="utf-8")
    for key in [f"{r.name} {p}" for r, p in plan] + [OVERVIEW]:
        replace_region(text, key, "")  # fail before any run when a marker is missing
    summaries = []
    for recipe, which in plan:
        run_dir = Path(out) / f"{recipe.name}-{which}"
        summary = reproduce(recipe, protocol=which, backend=backend, out=run_dir, quiet=quiet, log=log)
        figures = _copy_figures(summary, docs_path.parent / "figures", f"results_{recipe.name}_{which}")
        body = section(summary, figures, "figures", list(recipe.metrics))
        text = replace_region(docs_path.read_text(encoding="utf-8"), f"{recipe.name} {which}", body)
        write_text(docs_path, text)  # after each recipe, so finished ones are kept
        summaries.append(summary)
        log(f"regenerated the {recipe.name} {which} section of {docs_path}")
    # the overview lists every recipe of the plan that has a summary (this run's or an earlier one)
    listed: dict[tuple[str, str], dict[str, Any]] = {}
    for name, which in [*DEFAULT_PLAN.items(), *((r.name, p) for r, p in plan)]:
        path = Path(out) / f"{name}-{which}" / "summary.json"
        if path.is_file():
            listed[name, which] = json.loads(path.read_text(encoding="utf-8"))
    for s in summaries:
        listed[s["recipe"], s["protocol_name"]] = s
    text = replace_region(docs_path.read_text(encoding="utf-8"), OVERVIEW, overview(list(listed.values()), machine))
    write_text(docs_path, text)
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.regenerate_results", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), help="recipe names")
    parser.add_argument("--protocol", default=None, choices=PROTOCOLS,
                        help="one protocol for every recipe (default: each recipe's of DEFAULT_PLAN)")
    parser.add_argument("--backend", default="vmap", help="runner backend (default vmap)")
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="the results page (default docs/results.md)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the runs (default ./results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--machine", default="", help="appended to the total compute, e.g. ', 2 idle cores'")
    args = parser.parse_args(argv)
    try:
        regenerate(args.recipes, protocol=args.protocol, backend=args.backend, docs=args.docs, out=args.out,
                   quiet=args.quiet, machine=args.machine)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
