"""Test helpers for results stores: a subprocess that cannot write a folder, and an old-schema store."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest


def run_in_readonly_folder(folder: Path, cmd: Sequence[str], *, timeout: float = 120,
                           extra_env: dict[str, str] | None = None,
                           readonly_files: Sequence[Path] = ()) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in a subprocess that cannot write ``folder``: chmod for a normal user, a read-only
    bind mount (``unshare -m``) as root; skips the test where neither is possible."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(extra_env or {})}
    if os.geteuid() != 0:
        for f in readonly_files:
            os.chmod(f, 0o444)
        os.chmod(folder, 0o555)
        try:
            return subprocess.run(list(cmd), env=env, capture_output=True, text=True, timeout=timeout)
        finally:
            os.chmod(folder, 0o755)
    if shutil.which("unshare") is None:
        pytest.skip("root without unshare: cannot make a read-only folder")
    probe = subprocess.run(["unshare", "-m", "sh", "-c", f"mount --bind -o ro '{folder}' '{folder}'"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("root without mount privileges: cannot make a read-only folder")
    script = f"mount --bind -o ro '{folder}' '{folder}' && exec \"$@\""
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *cmd], env=env, capture_output=True,
                          text=True, timeout=timeout)


def downgrade_to_v1(path: Path) -> None:
    """Turn a current store at ``path`` into a schema-1 store (what adamlab 0.1 wrote first)."""
    from adamlab.store.core import MIGRATIONS, NEW_TABLES, SCHEMA_VERSION

    con = sqlite3.connect(path)
    for version in range(2, SCHEMA_VERSION + 1):
        for table, definition in MIGRATIONS.get(version, []):
            con.execute(f"ALTER TABLE {table} DROP COLUMN {definition.split()[0]}")
        for table in NEW_TABLES.get(version, []):
            con.execute(f"DROP TABLE {table}")
    con.execute("UPDATE meta SET value='1' WHERE key='schema_version'")
    con.commit()
    con.close()
