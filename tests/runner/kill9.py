"""Shared scaffold of the kill -9 tests: a sweep in a subprocess, killed once enough runs have finished."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path


def count_status(path: Path, status: str) -> int:
    """Runs with ``status`` in the store at ``path`` (0 while it cannot be read yet)."""
    try:
        con = sqlite3.connect(path, timeout=10)
        try:
            return con.execute("SELECT COUNT(*) FROM runs WHERE status=?", (status,)).fetchone()[0]
        finally:
            con.close()
    except sqlite3.Error:
        return 0


def kill9_after(script: str, store_path: Path, finished: int, timeout: float) -> subprocess.Popen:
    """Run ``python -c script STORE``; SIGKILL it once ``finished`` runs are finished; return the process."""
    proc = subprocess.Popen([sys.executable, "-c", script, str(store_path)], env={**os.environ, "CI": "1"})
    try:
        deadline = time.monotonic() + timeout
        while count_status(store_path, "finished") < finished:
            assert proc.poll() is None, "the sweep ended before it could be killed"
            assert time.monotonic() < deadline, "the sweep made no progress"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return proc
