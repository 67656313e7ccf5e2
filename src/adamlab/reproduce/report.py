"""Markdown for ``docs/results.md`` from a recipe's JSON summary: a metrics table and the claims.

>>> import json                                                                    # doctest: +SKIP
>>> print(markdown_section(json.load(open("results/wilson/summary.json")), "figures/results_wilson.png"))
"""

from __future__ import annotations

from typing import Any

_PRETTY = {
    "train_loss": "final train loss",
    "test_loss": "final test loss",
    "test_accuracy": "final test accuracy",
    "test_error": "final test error",
    "train_error": "final train error",
}


def _cell(st: dict[str, Any] | None) -> str:
    if not st or st.get("mean") is None:
        return "diverged / n.a."
    return f"{st['mean']:.4g} ± {st['std']:.2g}"


def metrics_table(summary: dict[str, Any], metrics: list[str] | None = None) -> str:
    """Markdown table: one row per (setting, method) in the summary's order, mean ± std over seeds."""
    first = next(iter(summary["settings"].values()))
    some = next(iter(first["variants"].values()))
    metrics = metrics or list(some["final"])
    head = "| setting | method | selected lr | " + " | ".join(_PRETTY.get(m, m) for m in metrics) + " |"
    rule = "|" + "---|" * (3 + len(metrics))
    rows = [head, rule]
    for label, s in summary["settings"].items():
        for v in s["ordering"]:
            info = s["variants"][v]
            div = f" ({info['n_diverged']} diverged)" if info["n_diverged"] else ""
            cells = " | ".join(_cell(info["final"].get(m)) for m in metrics)
            rows.append(f"| {label} | {v}{div} | {info['selected_lr']:.3g} | {cells} |")
    return "\n".join(rows)


def claims_table(summary: dict[str, Any]) -> str:
    """Markdown table: the paper's claim, what we measured, agree or not."""
    rows = ["| paper's claim | we measured | agree? |", "|---|---|---|"]
    for c in summary["claims"]:
        measured = c["measured"].replace("|", "/")
        rows.append(f"| {c['claim']} | {measured} | {'yes' if c['agree'] else '**no**'} |")
    return "\n".join(rows)


def markdown_section(summary: dict[str, Any], figure: str, metrics: list[str] | None = None) -> str:
    """A results.md section: protocol, figure, metrics table, claims table, compute time."""
    quick = " (`--quick`)" if summary["quick"] else " (full protocol)"
    lines = [
        f"### `{summary['recipe']}`{quick}",
        "",
        f"{summary['title']}.",
        "",
        f"Protocol: {summary['protocol']['description']}. Selection: {summary['selection']}.",
        "",
        f"![{summary['recipe']}]({figure})",
        "",
        metrics_table(summary, metrics),
        "",
        claims_table(summary),
        "",
        f"Compute: {summary['n_runs']} runs, {summary['training_time_s']:.0f} s of training in total "
        f"(wall time of the last invocation {summary['compute_time_s']:.0f} s; 2 shared CPU cores).",
    ]
    return "\n".join(lines)
