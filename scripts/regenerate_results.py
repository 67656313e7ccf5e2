"""Rerun recipes under a protocol and regenerate their sections of ``docs/results.md`` from the runs.

    python -m scripts.regenerate_results            # = make results
    python -m scripts.regenerate_results --recipes wilson --backend vmap

By default: the DeepOBS protocol (``--protocol deepobs``) for ``noisy-quadratic`` (all 12 settings x
5 methods), ``wilson`` and ``adam-mnist-logreg``. Each recipe writes its store, summary and figures to
``<out>/<recipe>-<protocol>/`` (finished runs in the store are reused, so an interrupted regeneration
resumes), its figures are copied to ``docs/figures/results_<recipe>_<protocol>*.png``, and its section
replaces the text between the two markers::

    <!-- BEGIN regenerated: <recipe> <protocol> -->
    ...
    <!-- END regenerated: <recipe> <protocol> -->

An overview table of the regenerated recipes goes between the markers of ``overview <protocol>``. Text
outside the markers is never touched; a missing marker is an error naming it (nothing is written).
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

DEFAULT_RECIPES = ("noisy-quadratic", "wilson", "adam-mnist-logreg")
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


def overview(summaries: Sequence[dict[str, Any]]) -> str:
    """Markdown table: recipe, claims agreeing, runs, wall time of the last invocation, training time."""
    rows = ["| recipe | protocol | claims agreeing | runs | wall time (s) | training time (s) | backend |",
            "|---|---|---|---|---|---|---|"]
    for s in summaries:
        agree = sum(c["agree"] for c in s["claims"])
        rows.append(f"| `{s['recipe']}` | {s.get('protocol_name', 'full')} | {agree}/{len(s['claims'])} | "
                    f"{s['n_runs']} | {s.get('wall_time_s', s['compute_time_s']):.0f} | {s['training_time_s']:.0f} | "
                    f"{s.get('backend', '-')} |")
    return "\n".join(rows)


def regenerate(
    recipes: Sequence[str | Recipe] = DEFAULT_RECIPES,
    *,
    protocol: str = "deepobs",
    backend: str = "vmap",
    docs: str | os.PathLike[str] = DEFAULT_DOCS,
    out: str | os.PathLike[str] = DEFAULT_OUT,
    quiet: bool = False,
    log: Callable[[str], None] = print,
) -> list[dict[str, Any]]:
    """Run each recipe under ``protocol`` and rewrite its marked section of ``docs`` (and the overview).

    The markers are checked before anything runs. Returns the recipes' JSON summaries.
    """
    from adamlab.reproduce.api import reproduce

    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}; got {protocol!r}")
    docs_path = Path(docs)
    if not docs_path.is_file():
        raise FileNotFoundError(f"docs file {str(docs_path)!r} does not exist")
    resolved = [r if isinstance(r, Recipe) else get(r) for r in recipes]
    text = docs_path.read_text(encoding="utf-8")
    for key in [f"{r.name} {protocol}" for r in resolved] + [f"overview {protocol}"]:
        replace_region(text, key, "")  # fail before any run when a marker is missing
    summaries = []
    for recipe in resolved:
        run_dir = Path(out) / f"{recipe.name}-{protocol}"
        summary = reproduce(recipe, protocol=protocol, backend=backend, out=run_dir, quiet=quiet, log=log)
        figures = _copy_figures(summary, docs_path.parent / "figures", f"results_{recipe.name}_{protocol}")
        body = section(summary, figures, "figures", list(recipe.metrics))
        text = replace_region(docs_path.read_text(encoding="utf-8"), f"{recipe.name} {protocol}", body)
        write_text(docs_path, text)  # after each recipe, so finished ones are kept
        summaries.append(summary)
        log(f"regenerated the {recipe.name} {protocol} section of {docs_path}")
    # the overview lists every recipe of this protocol that has a summary (this run's or an earlier one)
    listed: dict[str, dict[str, Any]] = {}
    for name in dict.fromkeys([*DEFAULT_RECIPES, *(r.name for r in resolved)]):
        path = Path(out) / f"{name}-{protocol}" / "summary.json"
        if path.is_file():
            listed[name] = json.loads(path.read_text(encoding="utf-8"))
    for s in summaries:
        listed[s["recipe"]] = s
    text = replace_region(docs_path.read_text(encoding="utf-8"), f"overview {protocol}",
                          overview(list(listed.values())))
    write_text(docs_path, text)
    return summaries


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.regenerate_results", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipes", nargs="+", default=list(DEFAULT_RECIPES), help="recipe names")
    parser.add_argument("--protocol", default="deepobs", choices=PROTOCOLS)
    parser.add_argument("--backend", default="vmap", help="runner backend (default vmap)")
    parser.add_argument("--docs", default=str(DEFAULT_DOCS), help="the results page (default docs/results.md)")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="folder of the runs (default ./results)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        regenerate(args.recipes, protocol=args.protocol, backend=args.backend, docs=args.docs, out=args.out,
                   quiet=args.quiet)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
