"""Waiting on an event (a file appeared, a line was logged, processes are gone) in tests.

A deadline here only catches a real hang, so make it generous: tests assert on what happened,
never on how long it took, and must pass on a loaded machine as on an idle one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    what: str,
    poll: float = 0.05,
    detail: Callable[[], str] | None = None,
) -> T:
    """Poll until predicate() is truthy and return its value; after `timeout` s fail naming
    `what` (and `detail()`, e.g. a log tail). The predicate may raise to fail at once (say,
    when the process it waits on has exited)."""
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            more = f"\n{detail()}" if detail is not None else ""
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{more}")
        time.sleep(poll)
    return value
