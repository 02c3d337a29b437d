"""Several `octojax` processes on this machine as the hosts of one job.

Each process gets its own fake CPU devices (XLA_FLAGS), joins jax.distributed on a localhost
coordinator (process 0 serves it) and talks to the others over gloo, jax's CPU collectives:

    job = Job(["train", "--config", "c.yaml"], processes=2, devices=2)
    job.start(); job.wait(timeout=120)      # or job.run(timeout=120)
    job.returncodes, job.logs[1]

The same by hand (docs/training.md, "Several hosts on one machine"): start
`XLA_FLAGS=--xla_force_host_platform_device_count=2 JAX_PLATFORMS=cpu octojax train --config c.yaml
--coordinator localhost:PORT --num-processes N --process-id I` once per I in its own terminal.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from helpers.xla import xla_flags

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def process_env(devices: int) -> dict[str, str]:
    """The environment of one fake host: `devices` CPU devices, this checkout importable."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONUNBUFFERED": "1"}
    env["XLA_FLAGS"] = xla_flags(devices)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


class Job:
    """N `python -m octojax ARGS --coordinator localhost:PORT --num-processes N --process-id I`."""

    def __init__(
        self, args: Sequence[str], *, processes: int, devices: int = 2,
        cwds: Sequence[Path] | None = None,
    ):  # fmt: skip
        self.args, self.n, self.devices = list(args), processes, devices
        self.cwds = list(cwds) if cwds is not None else [None] * processes
        self.procs: list[subprocess.Popen] = []
        self._logs: list = []
        self.logs: list[str] = []

    def start(self) -> Job:
        port = free_port()
        for i in range(self.n):
            # a file, not a pipe: a full pipe would block the process; closed with the Job
            log = tempfile.TemporaryFile(mode="a+")  # noqa: SIM115
            cmd = [sys.executable, "-m", "octojax", *self.args, "--coordinator",
                   f"localhost:{port}", "--num-processes", str(self.n), "--process-id", str(i)]  # fmt: skip
            self.procs.append(
                subprocess.Popen(
                    cmd,
                    env=process_env(self.devices),
                    cwd=self.cwds[i],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )  # fmt: skip
            )
            self._logs.append(log)
        return self

    def wait(self, timeout: float) -> list[int]:
        """Wait for every process (killing all of them at the deadline); their return codes."""
        deadline = time.monotonic() + timeout
        try:
            for p in self.procs:
                p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            self.kill()
            raise AssertionError(f"job did not end within {timeout} s:\n{self.tail()}") from None
        finally:
            self.logs = [self._read(f) for f in self._logs]
        return self.returncodes

    def run(self, timeout: float) -> list[int]:
        return self.start().wait(timeout)

    @property
    def returncodes(self) -> list[int | None]:
        return [p.returncode for p in self.procs]

    def signal(self, i: int, signum: int) -> None:
        self.procs[i].send_signal(signum)

    def kill(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()

    def log(self, i: int) -> str:
        """What process i has printed so far (its file is opened for appending, so reading
        while it runs does not move where it writes)."""
        return self._read(self._logs[i])

    def tail(self, chars: int = 3000) -> str:
        logs = self.logs or [self._read(f) for f in self._logs]
        return "\n".join(f"--- process {i} ---\n{log[-chars:]}" for i, log in enumerate(logs))

    @staticmethod
    def _read(f) -> str:
        f.flush()
        f.seek(0)
        return f.read()
