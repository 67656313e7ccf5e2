"""``adamlab data fetch|verify``: download datasets, or check the files that are present."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from adamlab.commands import COMMANDS
from adamlab.data.errors import DataFetchError
from adamlab.data.fetch import fetch
from adamlab.data.integrity import FileStatus, check_dataset
from adamlab.data.paths import data_root
from adamlab.data.registry import NAMES

_FETCH_EPILOG = """examples:
  adamlab data fetch mnist
  adamlab data fetch mnist fashion_mnist --root ~/datasets
  adamlab data fetch all --quiet

Files are downloaded from the official URLs, checked against their known checksums, and only
then moved into place (ROOT/NAME/...). A dataset already present and valid is not downloaded.
"""

_VERIFY_EPILOG = """examples:
  adamlab data verify
  adamlab data verify mnist imdb --root ../shared/data
  adamlab data verify mnist --rehash       (hash every file again, ignoring the cache)

Status: ok (checksum matches), ok-size (no published checksum; exact size matches),
missing, BAD (checksum or size differs; expected and found are printed).
Digests are cached in $ADAMLAB_CACHE/verified.json by path, size and modification time: a file
whose size and mtime did not change is not read again. --rehash reads every file.
Exit code 1 if any present file is BAD, 2 if the data root does not exist, else 0.
"""


def _names(raw: Sequence[str]) -> list[str]:
    if not raw or "all" in raw:
        return list(NAMES)
    for n in raw:
        if n not in NAMES:
            raise ValueError(f"NAME must be one of {', '.join(NAMES)} or all; got {n!r}")
    return list(dict.fromkeys(raw))


def _root(args: argparse.Namespace, *, must_exist: bool) -> Path:
    """The data root; a ``ValueError`` (exit 2) when it is a file, or missing where it must exist."""
    root = data_root(args.root)
    where = "--root" if args.root is not None else ("$ADAMLAB_DATA" if os.environ.get("ADAMLAB_DATA")
                                                   else "the default data root")
    if root.exists() and not root.is_dir():
        raise ValueError(f"{where} {str(root)!r} is not a folder")
    if must_exist and not root.is_dir():
        raise ValueError(f"{where} {str(root)!r} does not exist (adamlab data fetch NAME creates it)")
    return root


def _cmd_fetch(args: argparse.Namespace) -> int:
    root = _root(args, must_exist=False)
    failed = 0
    for name in _names(args.names):
        try:
            statuses = fetch(name, root, progress=not args.quiet)
        except DataFetchError as err:
            print(f"adamlab data fetch: {err}", file=sys.stderr)
            failed += 1
            continue
        print(f"{name}: ok ({', '.join(s.relpath for s in statuses)} under {root})")
    return 1 if failed else 0


def _short(found: str, status: str) -> str:
    if status == "ok" and ":" in found:
        algo, digest = found.split(":", 1)
        return f"{algo}:{digest[:16]}..."
    return found


def format_table(rows: list[FileStatus]) -> str:
    """The verify table: one row per file; BAD rows add full expected and found lines."""
    header = ("DATASET", "FILE", "STATUS", "FOUND")
    body = [(r.dataset, r.relpath, r.status, _short(r.found, r.status)) for r in rows]
    widths = [max(len(x[i]) for x in [header, *body]) for i in range(3)]
    lines = []
    for cells, r in zip([header, *body], [None, *rows], strict=True):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cells[:3], widths, strict=True)) + "  " + cells[3])
        if r is not None and r.status == "BAD":
            lines.append(f"    expected: {r.expected}")
            lines.append(f"    found:    {r.found}")
            lines.append(f"    path:     {r.path}")
    return "\n".join(lines)


def _cmd_verify(args: argparse.Namespace) -> int:
    names = _names(args.names)
    root = _root(args, must_exist=True)
    rows: list[FileStatus] = []
    for name in names:
        rows.extend(check_dataset(name, root, rehash=args.rehash))
    print(f"data root: {root}")
    print(format_table(rows))
    bad = [r for r in rows if r.status == "BAD"]
    if bad:
        fixes = sorted({r.dataset for r in bad})
        print(f"{len(bad)} bad file(s); delete them and run: adamlab data fetch {' '.join(fixes)}")
        return 1
    return 0


@COMMANDS.register("data", order=60)
def register(subparsers: argparse._SubParsersAction) -> None:
    """Add ``data fetch`` and ``data verify`` to the adamlab command line."""
    data = subparsers.add_parser(
        "data",
        help="fetch or verify datasets",
        description="Download datasets in their original formats, or check the files present.",
        epilog="examples:\n  adamlab data verify\n  adamlab data fetch mnist",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = data.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    f = actions.add_parser(
        "fetch",
        help="download and verify datasets",
        description="Download datasets from their official URLs and verify their checksums.",
        epilog=_FETCH_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    f.add_argument("names", nargs="+", metavar="NAME", help=f"dataset: {', '.join(NAMES)}, or all")
    f.add_argument("--root", default=None, help="data root (default: $ADAMLAB_DATA, else ~/.cache/adamlab)")
    f.add_argument("--quiet", action="store_true", help="no progress bars")
    f.set_defaults(func=_cmd_fetch)
    v = actions.add_parser(
        "verify",
        help="check the dataset files that are present",
        description="Check every dataset file present under the root against its known checksum.",
        epilog=_VERIFY_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    v.add_argument("names", nargs="*", metavar="NAME", help="datasets to check (default: all)")
    v.add_argument("--root", default=None, help="data root (default: $ADAMLAB_DATA, else ~/.cache/adamlab)")
    v.add_argument("--rehash", action="store_true",
                   help="hash every file again instead of trusting the cache (same size and mtime)")
    v.set_defaults(func=_cmd_verify)
