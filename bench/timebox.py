"""Run a command in a time box: its own process group, killed whole when the time is up, so a slow
or hung benchmark (and any compiler workers it started) cannot eat the next one's time."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence

TIMED_OUT = 124  # as timeout(1)


def run_boxed(
    cmd: Sequence[str], limit_s: float | None, *, env: dict | None = None, log=None
) -> tuple[int, float]:
    """(exit status, seconds): TIMED_OUT when limit_s passed first. Output goes to `log` (an open
    file; stderr joined) or is inherited. Whatever the command left running is ended too."""
    t0 = time.monotonic()
    proc = subprocess.Popen(
        list(cmd), env=env, stdout=log, stderr=subprocess.STDOUT if log else None,
        start_new_session=True,
    )  # fmt: skip
    try:
        rc = proc.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
        rc = TIMED_OUT
    _signal_group(proc.pid, signal.SIGKILL)  # leftovers of this group only
    return rc, time.monotonic() - t0


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def describe(rc: int, seconds: float, limit_s: float | None) -> str:
    """One line for a failed boxed run."""
    if rc == TIMED_OUT:
        return f"time limit {limit_s:.0f} s reached"
    return f"exit status {rc} after {seconds:.0f} s"
