"""Warm helper processes that stand in for a command step: the javac server and the Python parent.

A table entry (eval/execution/languages.py) names one of these instead of a command line where a
long-lived process is faster than a fresh one per program: `JavacServer` compiles Java in-process,
`PythonZygote` runs each Python program in a fork of a parent that has already imported numpy.
Both live per worker slot (`slot.services`), inside the slot's sandbox, as their own uid.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from eval.execution import sandbox, toolchains
from eval.execution.base import ExecResult, Settings, Slot, tail
from eval.programs import PYTHON_IMPORTS

if TYPE_CHECKING:
    from eval.execution.executors import Executor, Job


@dataclass(frozen=True)
class Built:
    """What a compile step came to: "ok", "timeout" or "error" (with the compiler's words)."""

    status: str
    detail: bytes | str = ""


class Step:
    """A compile or run step done by a service instead of a sandboxed command line."""

    #: the slot role that owns the program's work dir (the service's uid must write there)
    workdir_role: int = sandbox.ROLE_RUN

    def warm(self, executor: Executor, slot: Slot) -> None:
        """Start what the step needs in `slot` (before the work dir is made and the clock starts)."""


class Service:
    """A long-lived helper process (warm Python parent, Java compile server) in a slot's sandbox."""

    def __init__(self, argv: list[str], slot: Slot, role: int, settings: Settings, *,
                 env: dict, processes: int):  # fmt: skip
        self.slot, self.role = slot, role
        self.uid = slot.uid(role)
        full = list(argv)
        if settings.sandbox:
            full = sandbox.bwrap_argv(slot.root, tmpfs_bytes=256 << 20) + ["--", *full]
        limits = sandbox.Limits(
            cpu_seconds=None, data_bytes=settings.data_bytes, processes=processes
        )
        self.proc = subprocess.Popen(
            full,
            cwd=slot.root,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=sandbox.base_env(slot.root, env),
            start_new_session=True,
            preexec_fn=sandbox._preexec(self.uid, limits),
        )
        line = self.readline(deadline=time.monotonic() + 120)
        if line != b"READY\n":
            self.close()
            raise sandbox.SandboxError(f"helper {argv[:3]} failed to start (said {line!r})")

    def read(self, n: int, deadline: float) -> bytes | None:
        """Exactly `n` bytes of the helper's stdout, or None at EOF or past `deadline`."""
        data = b""
        fd = self.proc.stdout.fileno()
        while len(data) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(fd, n - len(data))
            if not chunk:
                return None
            data += chunk
        return data

    def readline(self, deadline: float) -> bytes | None:
        line = b""
        while not line.endswith(b"\n"):
            ch = self.read(1, deadline)
            if ch is None:
                return None
            line += ch
        return line

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        sandbox.kill_group(self.proc)
        with contextlib.suppress(Exception):
            self.proc.wait(timeout=10)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()
        if self.uid is not None:
            sandbox.reap_uid(self.uid)


def _live(slot: Slot, name: str) -> Service | None:
    """The slot's service `name` if it is still running (a dead one is closed and forgotten)."""
    service = slot.services.get(name)
    if service is not None and not service.alive():
        service.close()
        service = None
    return service


class JavacServer(Step):
    """Compile step: one long-lived JVM per slot compiles each Main.java into its classes/."""

    def _server(self, executor: Executor, slot: Slot) -> Service:
        service = _live(slot, "javac")
        if service is None:
            argv = [executor.values["java"], "-XX:+UseSerialGC", "-Xshare:auto", "-XX:TieredStopAtLevel=1",
                    "-Xmx1g", "-cp", executor.values["classpath"], "JavaCompileServer"]  # fmt: skip
            service = Service(argv, slot, sandbox.ROLE_JAVAC, executor.settings, env={},
                              processes=1024)  # fmt: skip
            slot.services["javac"] = service
        return service

    def __call__(self, job: Job) -> Built:
        classes = job.workdir / "classes"
        classes.mkdir()
        javac_uid = job.slot.uid(sandbox.ROLE_JAVAC)
        if javac_uid is not None:
            os.chown(classes, javac_uid, javac_uid)
        server = self._server(job.executor, job.slot)
        try:
            server.proc.stdin.write((str(job.workdir) + "\n").encode())
            server.proc.stdin.flush()
            deadline = time.monotonic() + job.executor.timeout
            line = server.readline(deadline)
            if line is None:
                raise TimeoutError
            if line == b"OK\n":
                return Built("ok")
            size = int(line.split()[1])
            return Built("error", server.read(size + 1, deadline) or b"")
        except (TimeoutError, BrokenPipeError, OSError, ValueError, IndexError):
            server.close()
            job.slot.services.pop("javac", None)
            return Built("timeout", "compilation timed out")


class PythonZygote(Step):
    """Run step: each program is `exec`ed in a fork of a warm parent (eval/execution/python_zygote.py)."""

    workdir_role = sandbox.ROLE_PYTHON

    def warm(self, executor: Executor, slot: Slot) -> None:
        if _live(slot, "python") is not None:
            return
        # Run a copy inside the slot: the sandbox hides the rest of /tmp (and possibly the
        # checkout), and the unprivileged uid may not be able to read the checkout at all.
        script_path = slot.root / "python_zygote.py"
        shutil.copyfile(Path(__file__).with_name("python_zygote.py"), script_path)
        os.chmod(script_path, 0o644)
        imports = "\n".join(PYTHON_IMPORTS)
        mode = "sweep-uid" if slot.uid() is not None else "sweep-ns"
        env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
               "PYTHONHASHSEED": "0"}  # fmt: skip
        argv = [toolchains.sample_python(), "-I", str(script_path), imports, mode]
        slot.services["python"] = Service(argv, slot, sandbox.ROLE_PYTHON, executor.settings,
                                          env=env, processes=executor.settings.processes)  # fmt: skip

    def __call__(self, job: Job) -> ExecResult:
        zygote = job.slot.services["python"]
        limits = job.executor.settings.limits(job.executor.language.name)
        request = {"dir": str(job.workdir), "source": job.program.source, "timeout": job.executor.timeout,
                   "cpu": limits.cpu_seconds, "data": limits.data_bytes, "fsize": limits.file_bytes,
                   "nofile": limits.open_files}  # fmt: skip
        payload = json.dumps(request).encode()
        try:
            zygote.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
            zygote.proc.stdin.flush()
            deadline = time.monotonic() + job.executor.timeout + 30
            header = zygote.read(4, deadline)
            reply = zygote.read(struct.unpack(">I", header)[0], deadline) if header else None
        except (BrokenPipeError, OSError):
            reply = None
        if reply is None:
            # The program took its parent down (or the parent hung): count it as a failure.
            zygote.close()
            job.slot.services.pop("python", None)
            return ExecResult(job.program.key, False, "failed",
                              "the sample killed or wedged the process that ran it", job.elapsed())  # fmt: skip
        answer = json.loads(reply)
        status = answer["status"]
        return ExecResult(
            job.program.key, status == "passed", status, tail(answer["detail"]), answer["seconds"]
        )
