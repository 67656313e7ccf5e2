"""``adamlab export``: a results store as tidy CSV or Parquet tables."""

from __future__ import annotations

import argparse

from adamlab.analysis.export import FORMATS, export_store
from adamlab.commands import COMMANDS, add_store_argument, store_argument

EXPORT_EPILOG = """examples:
  adamlab export results/adamlab.sqlite                      CSV next to the store
  adamlab export results/adamlab.sqlite --format parquet --out tables/

Writes <stem>.runs.<ext> (one row per run: problem, option.*, optimizer, lr, hparam.*, seed, status,
diverged_step, wall_time, final.* metrics) and <stem>.metrics.<ext> (run_id, step, name, value).
Parquet needs pyarrow: pip install 'adamlab[parquet]'.
"""


@COMMANDS.register("export", order=20)
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``export``."""
    p = subparsers.add_parser("export", help="a results store as tidy CSV or Parquet tables",
                              description="Export STORE as a runs table (one row per run) and a long metrics "
                              "table.", epilog=EXPORT_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_store_argument(p)
    p.add_argument("--format", choices=FORMATS, default="csv", help="file format (default: csv)")
    p.add_argument("--out", metavar="DIR", help="output folder (default: the store's folder)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    args.store = store_argument(args)
    paths = export_store(args.store, args.out, args.format)
    if not args.quiet:
        for p in paths:
            print(p)
    return 0
