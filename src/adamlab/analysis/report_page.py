"""The report's figures (PNG and PDF) and its one self-contained HTML page.

:func:`write_report` writes into ``out_dir``:

- ``performance_profiles.png/.pdf``: rho_s(tau) for tau in [1, tau_max], one step line per optimizer;
- ``<problem>_report.png/.pdf`` per problem: the learning curves at the best lr with the target as a
  dashed line, and the lr sensitivity of the final metric with the target;
- ``report.html``: the tables and the figures (embedded as base64 PNG), inline CSS, no script, no
  external URL, so the page can be mailed or attached as it is.

It draws what :func:`adamlab.analysis.report.build_report` computed (imports go one way: this module
uses :mod:`adamlab.analysis.report`, never the reverse); the figure set-up, colours, labels and the saver
are those of :mod:`adamlab.plotting`, the page is written by :func:`adamlab.util.files.write_text`.
"""

from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path
from typing import Any

from adamlab.analysis.plots import draw_curves, draw_lr_sensitivity
from adamlab.analysis.report import Entry, ProblemReport, Report, profile_ratios
from adamlab.plotting import method_colors, method_linestyles, metric_label, pyplot, save_figure
from adamlab.util.files import write_text

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto; max-width: 1100px;
       color: #222; line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.25em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.8em; }
h3 { font-size: 1.05em; margin-bottom: 0.3em; }
p.meta { color: #666; margin-top: 0; font-size: 0.9em; }
table { border-collapse: collapse; margin: 0.6em 0 1em 0; font-size: 0.9em; }
th, td { padding: 0.3em 0.7em; border-bottom: 1px solid #e3e3e3; text-align: right; white-space: nowrap; }
th { background: #f4f4f4; border-bottom: 2px solid #ccc; }
td.name, th.name { text-align: left; }
td.best { font-weight: bold; }
td.never { color: #b33; }
img { max-width: 100%; height: auto; display: block; margin: 0.5em 0; }
.note { color: #555; font-size: 0.88em; }
dl dt { font-weight: bold; margin-top: 0.5em; }
dl dd { margin-left: 1.5em; }
"""


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    if math.isinf(x):
        return "never"
    return f"{x:.{digits}g}"


def _steps(x: float) -> str:
    return "never" if math.isinf(x) else f"{x:,.0f}"


# -- figures ------------------------------------------------------------------------------------------


def profile_figure(report: Report) -> Any:
    """rho_s(tau) against tau, a right-continuous step line per optimizer, AlgoPerf score in the legend."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.4, 4.0), layout="constrained")
    colors, styles = method_colors(report.optimizers), method_linestyles(report.optimizers)
    order = sorted(report.optimizers, key=lambda s: -report.scores[s])
    widths = [1.6 + 1.8 * (len(order) - 1 - i) / max(len(order) - 1, 1) for i in range(len(order))]
    for opt, lw in zip(order, widths, strict=True):  # widest first, so lines on top of each other stay visible
        ax.step(report.taus, report.profiles[opt], where="post", color=colors[opt], ls=styles[opt], lw=lw,
                alpha=0.85, label=f"{opt} (score {report.scores[opt]:.3f})")
    ax.set_xlim(1.0, report.tau_max)
    ax.set_ylim(-0.02, 1.04)
    ax.set_xlabel(r"$\tau$ (time to target / fastest time to target)")
    ax.set_ylabel(r"fraction of problems, $\rho(\tau)$")
    unit = "steps" if report.time == "steps" else "wall-clock s"
    ax.set_title(f"Performance profiles over {len(report.problems)} problem"
                 f"{'s' if len(report.problems) != 1 else ''} (time in {unit})", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.legend(*ax.get_legend_handles_labels(), loc="outside right center", fontsize=8, frameon=False)
    return fig


def problem_figure(prob: ProblemReport) -> Any:
    """Curves at the best lr and lr sensitivity of the problem's metric, each with the target line."""
    plt = pyplot()
    assert prob.group is not None
    metric = prob.criterion.metric
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.0, 3.6), layout="constrained")
    best = {o: e.best_lr for o, e in prob.entries.items() if e.best_lr is not None}
    best_runs = [r for r in prob.group.runs if best.get(r.optimizer) == r.lr]
    draw_curves(left, type(prob.group)(prob.group.problem, prob.group.options, best_runs), metric, best)
    left.set_title(f"{metric_label(metric)} at the best lr (mean, min-max over seeds)", fontsize=9)
    draw_lr_sensitivity(right, prob.group, metric)
    right.set_title(f"final {metric_label(metric)} against lr", fontsize=9)
    for ax in (left, right):
        if math.isfinite(prob.target):
            ax.axhline(prob.target, color="0.25", ls="--", lw=1.0, zorder=0)
    if math.isfinite(prob.target):
        right.annotate("target", xy=(1.0, prob.target), xycoords=("axes fraction", "data"), xytext=(3, 0),
                       textcoords="offset points", va="center", fontsize=8, color="0.25")
    fig.legend(*left.get_legend_handles_labels(), loc="outside right center", fontsize=7, frameon=False)
    fig.suptitle(prob.label, fontsize=10)
    return fig


def _save(fig: Any, out: Path, stem: str) -> list[Path]:
    plt = pyplot()
    try:
        return save_figure(fig, out, stem, dpi=110)
    finally:
        plt.close(fig)


# -- HTML ---------------------------------------------------------------------------------------------


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _problem_table(prob: ProblemReport) -> str:
    crit = prob.criterion
    entries = sorted(prob.entries.values(), key=lambda e: (math.isnan(e.final_mean),
                                                           e.final_mean * (1 if crit.mode == "min" else -1)))
    best_final = prob.best
    speeds = [e.speed_steps for e in entries if math.isfinite(e.speed_steps)]
    fastest = min(speeds) if speeds else math.nan
    has_epochs = any(e.speed_epochs is not None for e in entries)
    head = ["optimizer", "best lr", f"performance: final {crit.metric} (mean &plusmn; sd)", "seeds",
            "speed: steps to target"] + (["epochs"] if has_epochs else []) + ["tunability: lrs reaching target"]
    rows = []
    for e in entries:
        perf = "-" if math.isnan(e.final_mean) else _fmt(e.final_mean) + (
            f" &plusmn; {_fmt(e.final_sd, 2)}" if not math.isnan(e.final_sd) else "")
        perf_cls = ' class="best"' if e.final_mean == best_final else ""
        speed_cls = ' class="best"' if e.speed_steps == fastest else (
            ' class="never"' if math.isinf(e.speed_steps) else "")
        cells = [f'<td class="name">{html.escape(e.optimizer)}</td>', f"<td>{_fmt(e.best_lr, 3)}</td>",
                 f"<td{perf_cls}>{perf}</td>", f"<td>{e.seeds}</td>", f"<td{speed_cls}>{_steps(e.speed_steps)}</td>"]
        if has_epochs:
            cells.append(f"<td>{_fmt(e.speed_epochs, 3)}</td>")
        div = f", {e.diverged_lrs} diverged" if e.diverged_lrs else ""
        cells.append(f"<td>{_fmt(e.tunability, 2)} ({e.lrs_reaching}/{e.lrs}{div})</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    ths = "".join(f'<th class="name">{h}</th>' if i == 0 else f"<th>{h}</th>" for i, h in enumerate(head))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _summary_table(report: Report) -> str:
    n = len(report.problems)
    unit = "steps" if report.time == "steps" else "s"
    head = ["optimizer", f"AlgoPerf score (tau &le; {report.tau_max:g})", "problems reaching target",
            "fastest on", f"median time to target ({unit})", "best performance on"]
    rows = []
    order = sorted(report.optimizers, key=lambda s: -report.scores[s])
    top = max(report.scores.values()) if report.scores else math.nan
    for opt in order:
        entries: list[Entry | None] = [p.entries.get(opt) for p in report.problems]
        times = [e.time_to_target for e in entries if e is not None]
        reached = [t for t in times if math.isfinite(t)]
        fastest = 0
        best_perf = 0
        for p in report.problems:
            e = p.entries.get(opt)
            if e is None:
                continue
            finite = [x.time_to_target for x in p.entries.values() if math.isfinite(x.time_to_target)]
            if finite and e.time_to_target == min(finite):
                fastest += 1
            if e.final_mean == p.best:
                best_perf += 1
        median = sorted(reached)[len(reached) // 2] if reached else math.inf
        cls = ' class="best"' if report.scores[opt] == top else ""
        rows.append(f'<tr><td class="name">{html.escape(opt)}</td><td{cls}>{report.scores[opt]:.3f}</td>'
                    f"<td>{len(reached)}/{n}</td><td>{fastest}/{n}</td>"
                    f"<td>{_steps(median) if report.time == 'steps' else _fmt(median, 3)}</td>"
                    f"<td>{best_perf}/{n}</td></tr>")
    ths = "".join(f'<th class="name">{h}</th>' if i == 0 else f"<th>{h}</th>" for i, h in enumerate(head))
    return f"<table><thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _ratio_table(report: Report) -> str:
    """``t_{s,p} / min_s' t_{s',p}`` per optimizer and problem: what the profiles are drawn from."""
    times = {p.pid: {o: e.time_to_target for o, e in p.entries.items()} for p in report.problems}
    ratios = profile_ratios(times)
    names = [p.group.problem if p.group else p.pid for p in report.problems]
    labels = [f"{n} #{names[:i].count(n) + 1}" if names.count(n) > 1 else n for i, n in enumerate(names)]
    head = "".join(f"<th>{html.escape(lb)}</th>" for lb in labels)
    rows = []
    for opt in sorted(report.optimizers, key=lambda s: -report.scores[s]):
        best = ' class="best"'
        cells = "".join('<td class="never">never</td>' if math.isinf(r) else
                        f"<td{best if r == 1.0 else ''}>{r:.3g}</td>" for r in ratios[opt])
        rows.append(f'<tr><td class="name">{html.escape(opt)}</td>{cells}</tr>')
    return ('<p class="note">time to target divided by the fastest optimizer\'s, per problem (the profile '
            "counts the problems where this is at most &tau;):</p>"
            f'<table><thead><tr><th class="name">optimizer</th>{head}</tr></thead><tbody>{"".join(rows)}'
            "</tbody></table>")


def _definitions(report: Report) -> str:
    q = report.target_fraction
    return f"""<dl>
<dt>Metric and target</dt><dd>Each problem is scored by one metric (the first recorded of test accuracy,
test loss, train loss, unless <code>--metric</code> says otherwise). Its target is
<code>s0 + q (s* &minus; s0)</code> with q = {q:g}, s0 the value at step 0 and s* the best final value of any
optimizer at its best lr: reaching the target means making {100 * q:g}% of the best improvement. For losses
whose values are all positive the interpolation is on a log scale.</dd>
<dt>Performance (DeepOBS)</dt><dd>The final value of the metric at the best learning rate, mean &plusmn;
standard deviation over all its seeds. The best lr has the best final mean over the seeds that every lr was
run with (the tuning seeds, when the best lr was rerun with more). Schneider, Balles &amp; Hennig,
<i>DeepOBS: A Deep Learning Optimizer Benchmark Suite</i>, ICLR 2019.</dd>
<dt>Speed (DeepOBS)</dt><dd>The first evaluated step (and epoch) at which the mean curve over seeds at the
best lr reaches the target.</dd>
<dt>Tunability</dt><dd>The fraction of the lr grid at which the final mean value reaches the target
(diverged lrs never do): how many of the step sizes tried work, the step-size robustness of Asi &amp; Duchi,
<i>The importance of better models in stochastic optimization</i>, PNAS 2019, counted on DeepOBS's
lr-sensitivity grid.</dd>
<dt>Performance profiles (AlgoPerf)</dt><dd>For optimizer s, &rho;<sub>s</sub>(&tau;) is the fraction of
problems on which its time to target (at its best lr, as in the speed column; AlgoPerf takes the fastest
of its tuning trials) is at most &tau; times the fastest optimizer's, for &tau; in [1, {report.tau_max:g}] (Dolan &amp; Mor&eacute;, 2002). The
score is the area under &rho;<sub>s</sub> divided by {report.tau_max:g} &minus; 1: 1 means fastest on every
problem. Dahl et al., <i>Benchmarking Neural Network Training Algorithms</i>, 2023.</dd>
</dl>"""


def render_html(report: Report, images: dict[str, Path]) -> str:
    """The page: the summary and profiles, then a section per problem, then the definitions."""
    title = "adamlab benchmark report"
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>"
             f"<style>{_CSS}</style></head><body>",
             f"<h1>{title}</h1>",
             f'<p class="meta">store: <code>{html.escape(report.store)}</code> &middot; {len(report.problems)} '
             f"problem{'s' if len(report.problems) != 1 else ''} &middot; optimizers: "
             f"{html.escape(', '.join(report.optimizers))} &middot; target fraction q = {report.target_fraction:g}"
             f" &middot; time to target in {report.time}"
             + (f" &middot; ran on: {html.escape(', '.join(report.devices))}" if report.devices else "") + "</p>",
             "<h2>Summary across problems</h2>", _summary_table(report)]
    if "profiles" in images:
        parts.append(_img(images["profiles"], "performance profiles"))
    parts.append(_ratio_table(report))
    if report.left_out:
        parts.append('<p class="note">left out: ' + html.escape("; ".join(report.left_out)) + "</p>")
    for prob in report.problems:
        scale = "log" if prob.log_scale else "linear"
        parts += [f"<h2>{html.escape(prob.label)}</h2>",
                  f'<p class="meta">{html.escape(prob.protocol)} &middot; metric: {prob.criterion.mode} '
                  f"final {html.escape(prob.criterion.metric)} &middot; initial {_fmt(prob.initial)}, best "
                  f"{_fmt(prob.best)}, target {_fmt(prob.target)} ({scale} scale)</p>",
                  _problem_table(prob)]
        if prob.pid in images:
            parts.append(_img(images[prob.pid], f"{prob.label}: curves and lr sensitivity"))
    parts += ["<h2>Definitions</h2>", _definitions(report), "</body></html>\n"]
    return "\n".join(parts)


def write_report(report: Report, out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write the figures (PNG + PDF) and ``report.html`` into ``out_dir``; return the paths (the page first)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    images: dict[str, Path] = {}
    paths = _save(profile_figure(report), out, "performance_profiles")
    images["profiles"] = paths[0]
    written += paths
    for prob in report.problems:
        paths = _save(problem_figure(prob), out, f"{prob.group.slug if prob.group else prob.pid}_report")
        images[prob.pid] = paths[0]
        written += paths
    page = write_text(out / "report.html", render_html(report, images))
    return [page, *written]
