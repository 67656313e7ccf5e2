"""Markdown for ``docs/results.md`` from a recipe's JSON summary: a metrics table and the claims.

>>> import json                                                                    # doctest: +SKIP
>>> print(markdown_section(json.load(open("results/wilson/summary.json")), "figures/results_wilson.png"))
"""

from __future__ import annotations

from typing import Any

from adamlab.plotting import METRIC_LABELS, metric_label
from adamlab.reproduce.summary import mean_pm_sd


def _pretty(metric: str) -> str:
    """A column head: ``final <label>`` for a known metric (:data:`adamlab.plotting.METRIC_LABELS`),
    else the metric's name."""
    return f"final {metric_label(metric)}" if metric in METRIC_LABELS else metric


def _cell(st: dict[str, Any] | None) -> str:
    return mean_pm_sd(st, missing="diverged / n.a.")


def metrics_table(summary: dict[str, Any], metrics: list[str] | None = None) -> str:
    """Markdown table: one row per (setting, method) in the summary's order, mean ± std over seeds."""
    first = next(iter(summary["settings"].values()))
    some = next(iter(first["variants"].values()))
    metrics = metrics or list(some["final"])
    head = "| setting | method | selected lr | " + " | ".join(_pretty(m) for m in metrics) + " |"
    rule = "|" + "---|" * (3 + len(metrics))
    rows = [head, rule]
    for label, s in summary["settings"].items():
        for v in s["ordering"]:
            info = s["variants"][v]
            div = f" ({info['n_diverged']} diverged)" if info["n_diverged"] else ""
            cells = " | ".join(_cell(info["final"].get(m)) for m in metrics)
            rows.append(f"| {label} | {v}{div} | {info['selected_lr']:.3g} | {cells} |")
    return "\n".join(rows)


def _num(x: float | str | None) -> str:
    if x is None:
        return "n.a."
    if isinstance(x, str):  # "inf" / "-inf" (a diverged run)
        return x if x.startswith("-") else f"+{x}"
    return f"{x:+.3g}"


def effect_text(effect: dict[str, Any] | None) -> str:
    """``what = estimate, 95% interval [low, high] over n seeds`` (from a summary's claim)."""
    if not effect:
        return "none (this check gives no effect size)"
    head = f"{effect['what']} = {_num(effect['estimate'])}"
    if effect["n"] <= 1 and effect["low"] == effect["high"]:
        return head + " (one seed: no interval)"
    return f"{head}, {effect['level']:.0%} interval [{_num(effect['low'])}, {_num(effect['high'])}] over {effect['n']} seeds"


def verdict_text(claim: dict[str, Any]) -> str:
    """The "agree?" cell: yes, **no**, or the claim's verdict when it is neither (not settled, too few seeds)."""
    verdict = claim.get("verdict")
    if verdict is None or verdict in ("agree", "disagree"):
        return "yes" if claim["agree"] else "**no**"
    return str(verdict)


def claims_table(summary: dict[str, Any]) -> str:
    """Markdown table: the paper's claim, what we measured, the effect with its bootstrap interval, agree or not.

    "agree" means the interval excludes zero on the paper's side (see :mod:`adamlab.reproduce.effects`).
    """
    rows = ["| paper's claim | we measured | effect (bootstrap 95% interval over seeds) | agree? |",
            "|---|---|---|---|"]
    for c in summary["claims"]:
        measured = c["measured"].replace("|", "/")
        eff = effect_text(c.get("effect")).replace("|", "/")
        rows.append(f"| {c['claim']} | {measured} | {eff} | {verdict_text(c)} |")
    return "\n".join(rows)


def markdown_section(summary: dict[str, Any], figure: str, metrics: list[str] | None = None) -> str:
    """A results.md section: protocol, figure, metrics table, claims table, compute time."""
    which = summary.get("protocol_name", "quick" if summary["quick"] else "full")
    quick = {"quick": " (`--quick`)", "deepobs": " (`--protocol deepobs`)",
             "cpu": " (`--protocol cpu`)"}.get(which, " (full protocol)")
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
        f"(summed over runs; a run trained in a batch counts its whole block's time); wall time of the last "
        f"invocation {summary.get('wall_time_s', summary['compute_time_s']):.0f} s "
        f"with the `{summary.get('backend', 'serial')}` backend.",
    ]
    return "\n".join(lines)
