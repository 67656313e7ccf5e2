"""``adamlab verify``: measure the seeds' properties on real optimizer runs and print a table."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from adamlab.claims.properties import PROPERTIES, Record, verify
from adamlab.commands import COMMANDS
from adamlab.runs.parsing import MAX_INT, integer_range, number_type
from adamlab.util import files

#: ``--seed``: an integer torch can seed with (a signed 64-bit integer >= 0).
SEED = number_type(int, lambda v: 0 <= v <= MAX_INT, integer_range(0))

EPILOG = """\
examples:
  adamlab verify                                   # every optimizer, every property (~1 min)
  adamlab verify --optimizer adam --optimizer sgd  # two optimizers
  adamlab verify --property rescaling_invariance --json out/rescaling.json
  adamlab verify --optimizer msvag --property step_bound --property cautiousness
  adamlab verify --property svag_idealized_rate     # seed 002: idealized SVAG converges at O(1/t)
  ADAMLAB_DATA=../shared/data adamlab verify --property eps_dominance --data   # Adam sec. 6.3 on fmnist.cnn

columns: measured number, what theory predicts for that optimizer, whether the optimizer
has the property, and OK when the measurement matches theory (an absent property that
theory says is absent is OK). Exit code 1 only when a property theory says the optimizer
must have is missing; 2 for an unknown optimizer or property.
"""


@COMMANDS.register("verify", order=50)
def register(subparsers: Any) -> None:
    """Add the ``verify`` subcommand."""
    parser = subparsers.add_parser(
        "verify",
        help="measure the seeds' properties (rescaling invariance, step bound, ...) on each optimizer",
        description="Measure each property on each optimizer and compare with theory.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--optimizer", action="append", metavar="NAME",
                        help="optimizer short name (repeatable; default: all registered)")
    parser.add_argument("--property", action="append", metavar="NAME", choices=PROPERTIES,
                        help=f"property (repeatable; default: all): {', '.join(PROPERTIES)}")
    parser.add_argument("--json", metavar="PATH", help="also write the records as a JSON list to PATH")
    parser.add_argument("--seed", type=SEED, default=0, help="seed of all random draws (default 0)")
    parser.add_argument("--data", action="store_true",
                        help="long data-driven records (eps_dominance: 1,874 Adam steps = 2 epochs of fmnist.cnn, minutes; "
                             "needs Fashion-MNIST under $ADAMLAB_DATA); default: a 30-step run")
    parser.add_argument("--device", default="cpu", metavar="DEV",
                        help="where the optimizers step and --data trains: cpu (default), cuda, cuda:N, mps or auto")
    parser.add_argument("--deterministic", action="store_true",
                        help="use PyTorch's deterministic algorithms (on CUDA: reproducible bits, slower)")
    parser.set_defaults(func=run_verify)


def format_table(records: Sequence[Record]) -> str:
    """A fixed-width table: optimizer, property, measured, has, theory, verdict, expected."""
    header = ("optimizer", "property", "measured", "has", "theory", "verdict", "expected")
    rows = []
    for r in records:
        verdict = "-" if r.holds is None else ("OK" if r.holds else ("FAIL" if r.must_hold_failed else "DIFFERS"))
        theory = "?" if r.theory is None else ("yes" if r.theory else "no")
        rows.append((r.optimizer, r.property, f"{r.measured:.4g}", "yes" if r.has_property else "no",
                     theory, verdict, r.expected))
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header) - 1)]
    lines = []
    for row in [header, *rows]:
        lines.append("  ".join(str(c).ljust(w) for c, w in zip(row[:-1], widths, strict=True)) + "  " + row[-1])
    lines.insert(1, "-" * min(150, len(lines[0])))
    return "\n".join(lines)


def check_output_file(path: str | os.PathLike[str], option: str) -> None:
    """``ValueError`` (one line, naming ``option``) when ``path`` cannot become a file: a folder, or
    its nearest existing ancestor (missing folders are created) is a file or not writable."""
    target = Path(path).absolute()
    if target.is_dir():
        raise ValueError(f"{option} {str(path)!r} is a folder; give a file path such as "
                         f"{str(Path(path) / 'verify.json')!r}")
    ancestor = target.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{option} {str(path)!r}: {str(ancestor)!r} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {str(path)!r}: folder {str(ancestor)!r} is not writable")


def count_line(records: Sequence[Record]) -> str:
    """``N checks: a match theory, b disagree (c required properties missing, d present where theory says
    absent), e not run``: a check that could not run (``holds`` None) counts as not run, never as
    disagreeing."""
    ran = [r for r in records if r.holds is not None]
    failed = [r for r in ran if r.must_hold_failed]
    differs = [r for r in ran if r.holds is False and not r.must_hold_failed]
    text = (f"{len(records)} checks: {sum(1 for r in ran if r.holds)} match theory, "
            f"{len(failed) + len(differs)} disagree ({len(failed)} required properties missing, "
            f"{len(differs)} present where theory says absent)")
    not_run = len(records) - len(ran)
    return text + (f", {not_run} not run (see 'expected')" if not_run else "")


def write_json(records: Sequence[Record], path: str | os.PathLike[str]) -> None:
    """Write the records as a JSON list, atomically (:func:`adamlab.util.files.write_json`)."""
    files.write_json(path, [r.to_dict() for r in records], indent=2)


def run_verify(args: argparse.Namespace) -> int:
    """Run the checks, print the table, optionally write JSON; exit 1 if a required property failed."""
    from adamlab.runs.device import setup_device

    if args.json:
        check_output_file(args.json, "--json")  # before the verification, not after it
    device = setup_device(args.device, args.deterministic)  # unavailable: one line, exit 2, before any check
    records = verify(optimizers=args.optimizer, properties=args.property, seed=args.seed, data=args.data,
                     device=device)
    print(format_table(records))
    if args.json:
        write_json(records, args.json)
    print("\n" + count_line(records))
    failed = [r for r in records if r.must_hold_failed]
    for r in failed:
        print(f"FAIL {r.optimizer} {r.property}: {r.details}", file=sys.stderr)
    return 1 if failed else 0
