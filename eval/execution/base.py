"""Shared types for executors: programs, results, settings, worker slots."""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from eval.execution import sandbox

STATUSES = ("passed", "failed", "timeout", "compile_error", "error")
DETAIL_CHARS = 2000


@dataclass(frozen=True)
class Program:
    """One program to execute: the full source (see eval.programs.assemble_program)."""

    language: str
    source: str
    key: str  # e.g. "Python/0#3": task id + sample index


@dataclass
class ExecResult:
    """The verdict for one program. `passed` is True only for status "passed"."""

    key: str
    passed: bool
    status: str  # "passed" | "failed" | "timeout" | "compile_error" | "error"
    detail: str = ""  # short tail of the diagnostics (stderr/stdout/exception)
    seconds: float = 0.0
    cached: bool = False


def _table_timeouts() -> dict[str, float]:
    """Each language's timeout from its entry in the languages table (imported here, not at the
    top: the table's steps import this module)."""
    from eval.execution.languages import default_timeouts

    return default_timeouts()


@dataclass(frozen=True)
class Settings:
    """How programs are executed. Part of the result-cache key (see `fingerprint`)."""

    timeouts: dict[str, float] = field(default_factory=_table_timeouts)
    sandbox: bool = True  # bubblewrap; rlimits, uids and the process-group kill always apply
    # OCTOJAX_RAND_SEED for the Rust rand crate (None = OS entropy, as rand does). Fixed by default
    # for reproducible verdicts; 2 is the smallest seed under which Rust/32 terminates (data defect).
    rand_seed: int | None = 2
    data_bytes: int = 4 << 30
    processes: int = 256

    def fingerprint(self, language: str) -> str:
        return (
            f"timeout={self.timeouts[language]}|sandbox={self.sandbox}|seed={self.rand_seed}"
            f"|data={self.data_bytes}|nproc={self.processes}"
        )

    def limits(self, language: str, *, cpu: float | None = None, processes: int | None = None):
        cpu_s = int(cpu if cpu is not None else self.timeouts[language]) + 2
        return sandbox.Limits(
            cpu_seconds=cpu_s,
            data_bytes=self.data_bytes,
            processes=processes or self.processes,
        )


def tail(text: bytes | str, limit: int = DETAIL_CHARS) -> str:
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text.strip()
    return text if len(text) <= limit else "..." + text[-limit:]


class Slot:
    """One worker's private area: a directory tree and (as root) its own unprivileged uids.

    Services (the Python warm parent, the Java compile server) are kept per slot in `services`.
    """

    def __init__(self, index: int, root: Path):
        self.index = index
        self.root = root
        self.as_root = sandbox.running_as_root()
        self.uids = sandbox.UidBlock() if self.as_root else None
        self.services: dict[str, object] = {}
        self._counter = itertools.count()
        root.mkdir(parents=True, exist_ok=True)
        os.chmod(root, 0o755)

    def uid(self, role: int = sandbox.ROLE_RUN) -> int | None:
        return sandbox.slot_uid(self.uids.block, role) if self.uids is not None else None

    def new_workdir(self, role: int | None = sandbox.ROLE_RUN) -> Path:
        """A fresh directory for one sample, owned by the slot uid of `role` (None: by us)."""
        path = self.root / f"s{next(self._counter)}"
        if path.exists():
            shutil.rmtree(path)
        return sandbox.prepare_workdir(path, self.uid(role) if role is not None else None)

    def hand_over(self, path: Path, role: int = sandbox.ROLE_RUN) -> None:
        """Give `path` and everything in it to the slot uid of `role`."""
        uid = self.uid(role)
        if uid is None:
            return
        for dirpath, _dirs, files in os.walk(path):
            os.chown(dirpath, uid, uid)
            for name in files:
                os.chown(os.path.join(dirpath, name), uid, uid)

    def close(self) -> None:
        """Stop the slot's services, kill anything left under its uids, release the uids."""
        for service in self.services.values():
            close = getattr(service, "close", None)
            if close:
                close()
        self.services.clear()
        if self.uids is not None:
            for role in (sandbox.ROLE_RUN, sandbox.ROLE_PYTHON, sandbox.ROLE_JAVAC):
                sandbox.reap_uid(self.uid(role))
            self.uids.release()
            self.uids = None


def make_slot_root(index: int, base: Path | None = None) -> Path:
    base = base or Path(tempfile.mkdtemp(prefix="octojax-exec-"))
    os.chmod(base, 0o755)
    return base / f"slot{index}"
