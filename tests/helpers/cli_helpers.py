"""Run the `octojax` command in a subprocess, the way a user does, and read its answer."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from helpers.xla import xla_flags

REPO = Path(__file__).resolve().parents[2]


def octojax(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    """`python -m octojax ARGS` on one CPU device, from the repository root."""
    env = dict(os.environ, XLA_FLAGS=xla_flags(1))
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run(
        [sys.executable, "-m", "octojax", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def first_error_line(proc: subprocess.CompletedProcess) -> str:
    """The error line of a failed command (the last non-empty stderr line, after any warnings)."""
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file below root and its bytes (to show a refused command changed nothing)."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }
