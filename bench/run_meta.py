"""Run metadata for the bench/ result files: git commit, uncommitted paths, date, machine, load.

One place for what every benchmark records next to its figures (the timings are wall-clock on a
machine that may be shared, so the load average and CPU count go with them).
"""
from __future__ import annotations

import os
import platform
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cmd_out(cmd: list[str], strip: bool = True, env: dict[str, str] | None = None) -> str:
    """stdout of ``cmd`` (stripped unless ``strip`` is False), or "" if it cannot run (60 s limit)."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.strip() if strip else out


def git_commit(rev: str = "HEAD") -> str:
    """Short hash of ``rev`` in this repository, or "unknown" outside a git checkout."""
    return cmd_out(["git", "-C", str(ROOT), "rev-parse", "--short", rev]) or "unknown"


def dirty_paths(exclude_prefix: str | None = None, untracked: bool = True) -> list[str]:
    """Sorted paths with uncommitted changes (untracked files too unless ``untracked`` is False),
    leaving out those starting with ``exclude_prefix`` (e.g. the benchmark's own output folder)."""
    cmd = ["git", "-C", str(ROOT), "status", "--porcelain"] + ([] if untracked else ["--untracked-files=no"])
    paths = (ln[3:] for ln in cmd_out(cmd, strip=False).splitlines())
    return sorted(p for p in paths if p and not (exclude_prefix and p.startswith(exclude_prefix)))


def load_average() -> float:
    """1-minute load average, 2 decimals."""
    return round(os.getloadavg()[0], 2)


def load_averages() -> list[float]:
    """1-, 5- and 15-minute load averages, 2 decimals."""
    return [round(v, 2) for v in os.getloadavg()]


def date_utc() -> str:
    """Current UTC date and time, "YYYY-MM-DD HH:MM" (no zone suffix)."""
    return time.strftime("%Y-%m-%d %H:%M", time.gmtime())


def run_meta(exclude_prefix: str | None = None, untracked: bool = True) -> dict:
    """date_utc, git_commit, git_dirty_paths (see :func:`dirty_paths`), python, cpus, machine and
    load_average_1min of this run."""
    return {"date_utc": date_utc(), "git_commit": git_commit(),
            "git_dirty_paths": dirty_paths(exclude_prefix, untracked), "python": platform.python_version(),
            "cpus": os.cpu_count(), "machine": platform.machine(), "load_average_1min": load_average()}
