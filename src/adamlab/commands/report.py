"""``adamlab report``: a benchmark report across problems (HTML page, PNG/PDF figures)."""

from __future__ import annotations

import argparse

from adamlab.analysis.report import TARGET_FRACTION, TAU_MAX, TIMES, build_report
from adamlab.analysis.report_page import write_report
from adamlab.commands import COMMANDS, add_store_argument, store_argument
from adamlab.runs.parsing import number_type
from adamlab.selection.lr import Criterion

REPORT_EPILOG = """examples:
  adamlab report results/adamlab.sqlite                     results/report/report.html + figures
  adamlab report results/adamlab.sqlite --out report/ --target-fraction 0.9 --time wall

Per problem: each optimizer's performance (final metric at the best lr, mean +- sd over seeds), speed
(steps to the target at the best lr) and tunability (fraction of the lr grid reaching the target), as
DeepOBS reports them; across problems: AlgoPerf's performance profiles (fraction of problems reached
within tau times the fastest time to target, tau in [1, 4]) and benchmark score. Definitions: the
page's "Definitions" section and docs/runner.md.
"""


_fraction = number_type(float, lambda v: 0.0 < v <= 1.0, "a number in (0, 1]")
_tau = number_type(float, lambda v: v > 1.0, "a finite number > 1")


@COMMANDS.register("report", order=30)
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``report``."""
    p = subparsers.add_parser("report", help="a benchmark report across problems (HTML page, PNG/PDF figures)",
                              description="DeepOBS-style performance / speed / tunability tables and "
                              "AlgoPerf-style performance profiles for the runs in STORE.",
                              epilog=REPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_argument(p)
    p.add_argument("--out", default="results/report", metavar="DIR", help="output folder (default: results/report)")
    p.add_argument("--problem", metavar="P", help="only this problem (default: all in the store)")
    p.add_argument("--metric", metavar="MODE:METRIC",
                   help="score every problem by this metric (default: test_accuracy, else test_loss, else "
                   "train_loss)")
    p.add_argument("--target-fraction", type=_fraction, default=TARGET_FRACTION, metavar="Q",
                   help=f"target = initial + Q (best - initial) (default: {TARGET_FRACTION})")
    p.add_argument("--time", choices=TIMES, default="steps",
                   help="time to target in steps or in wall-clock seconds (default: steps)")
    p.add_argument("--tau-max", type=_tau, default=TAU_MAX, metavar="T",
                   help=f"performance profiles for tau in [1, T] (default: {TAU_MAX:g})")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    args.store = store_argument(args)
    if args.metric is not None:
        try:
            Criterion.parse(args.metric)
        except ValueError as err:
            raise ValueError(f"--metric {args.metric!r}: {err}") from None
    if args.problem is not None:
        _check_problem(args.store, args.problem)
    report = build_report(args.store, metric=args.metric, target_fraction=args.target_fraction, time=args.time,
                          tau_max=args.tau_max, problem=args.problem)
    written = write_report(report, args.out)
    if not args.quiet:
        for path in written:
            print(path)
    return 0


def _check_problem(path: str, problem: str) -> None:
    """``ValueError`` naming the problems there when the store at ``path`` holds no run of ``problem``."""
    from adamlab.store import borrowed

    with borrowed(path, readonly=True, must_exist=True) as db:
        known = db.problems()
    if problem not in known:
        raise ValueError(f"no runs of problem {problem!r} in {path}; problems there: {', '.join(known) or 'none'}")
