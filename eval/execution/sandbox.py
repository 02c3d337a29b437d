"""Run one untrusted command contained: own user, own session, rlimits, bubblewrap, hard kill.

Layers (each catches what the others miss):
- a dedicated unprivileged uid per worker slot: RLIMIT_NPROC is enforced (it is not for root),
  nothing root-owned is writable, and the evaluator's own processes cannot be signalled;
- bubblewrap (when installed): read-only root, a private size-capped /tmp, only the sample's
  directory writable, no network (own net namespace), own PID namespace, so every process the
  program starts dies when its main process does;
- rlimits: CPU seconds, data (heap) size, file size, open files, process count;
- a wall-clock deadline enforced by SIGKILL to the whole process group, then a sweep that kills
  and verifies every process still owned by the slot's uid (daemons that left the group).
Output is read through pipes and capped: past the cap the pipes close and the program dies.
"""

from __future__ import annotations

import contextlib
import os
import resource
import selectors
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: First uid used for sandboxed work; slot s uses BASE_UID + 8*s + role (see `slot_uid`).
BASE_UID = 62000
ROLE_RUN, ROLE_PYTHON, ROLE_JAVAC = 0, 1, 2

OUTPUT_CAP = 1 << 20  # bytes kept per stream; more output kills the program
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class SandboxError(RuntimeError):
    """The sandbox itself failed (not the program): a process survived its kill, bwrap broke, ..."""


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed command (None = leave the inherited limit)."""

    cpu_seconds: int | None = None
    data_bytes: int | None = 4 << 30
    file_bytes: int | None = 256 << 20
    processes: int | None = 256
    open_files: int | None = 1024
    tmpfs_bytes: int = 256 << 20


@dataclass
class Outcome:
    """What happened to one sandboxed command."""

    returncode: int | None
    stdout: bytes
    stderr: bytes
    seconds: float
    timed_out: bool = False
    output_overflow: bool = False
    notes: list[str] = field(default_factory=list)


UID_BLOCKS = 512
LOCK_DIR = (
    Path("/run/lock/octojax-exec")
    if Path("/run/lock").is_dir()
    else Path("/tmp/octojax-exec-locks")
)


def slot_uid(block: int, role: int = ROLE_RUN) -> int:
    """The unprivileged uid for uid block `block` in `role` (distinct per block and role)."""
    return BASE_UID + 8 * block + role


class UidBlock:
    """Exclusive claim (flock) on a block of sandbox uids, so concurrent evaluations on one
    machine never share a uid: the leftover sweep kills every process of a uid it owns."""

    def __init__(self) -> None:
        import fcntl

        LOCK_DIR.mkdir(parents=True, exist_ok=True)
        for block in range(UID_BLOCKS):
            fh = open(LOCK_DIR / f"block{block}.lock", "w")  # noqa: SIM115 - held until release()
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.close()
                continue
            if any(processes_of_uid(slot_uid(block, role)) for role in range(8)):
                fh.close()  # someone without our lock uses these uids: leave them alone
                continue
            self.block, self._fh = block, fh
            return
        raise SandboxError(f"all {UID_BLOCKS} sandbox uid blocks are busy ({LOCK_DIR})")

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def running_as_root() -> bool:
    return os.geteuid() == 0


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


_BWRAP_OK: bool | None = None


def bwrap_usable() -> bool:
    """True when bubblewrap can create its namespaces here as an unprivileged slot user."""
    global _BWRAP_OK
    if _BWRAP_OK is None:
        path = bwrap_path()
        if path is None:
            _BWRAP_OK = False
        else:
            argv = [path, "--ro-bind", "/", "/", "--unshare-all", "--die-with-parent", "true"]
            try:
                res = subprocess.run(
                    argv,
                    preexec_fn=_drop_privileges_fn(slot_uid(0)) if running_as_root() else None,
                    capture_output=True,
                    timeout=20,
                )
                _BWRAP_OK = res.returncode == 0
            except (OSError, subprocess.TimeoutExpired):
                _BWRAP_OK = False
    return _BWRAP_OK


def bwrap_argv(
    workdir: Path,
    *,
    ro_binds: tuple[str, ...] = (),
    rw_binds: tuple[str, ...] = (),
    tmpfs_bytes: int = 256 << 20,
) -> list[str]:
    """bubblewrap prefix: read-only /, fresh /dev, /proc and size-capped /tmp, `workdir` writable.

    `--unshare-all` gives new user, PID, network, IPC, UTS and cgroup namespaces: no network
    interface but loopback, and all processes die with the sandbox's init.
    """
    argv = [
        bwrap_path() or "bwrap",
        "--ro-bind", "/", "/",
        "--dev", "/dev",
        "--proc", "/proc",
        "--size", str(tmpfs_bytes), "--tmpfs", "/tmp",
    ]  # fmt: skip
    for path in ro_binds:
        argv += ["--ro-bind", path, path]
    for path in (*rw_binds, str(workdir)):
        argv += ["--bind", path, path]
    argv += ["--unshare-all", "--die-with-parent", "--new-session", "--chdir", str(workdir)]
    return argv


def _drop_privileges_fn(uid: int):
    def drop() -> None:
        os.setgroups([])
        os.setgid(uid)
        os.setuid(uid)

    return drop


def _preexec(uid: int | None, limits: Limits):
    """Child-side setup between fork and exec: rlimits, then drop to the slot's uid."""

    def setup() -> None:
        for res, value in (
            (resource.RLIMIT_CPU, limits.cpu_seconds),
            (resource.RLIMIT_DATA, limits.data_bytes),
            (resource.RLIMIT_FSIZE, limits.file_bytes),
            (resource.RLIMIT_NOFILE, limits.open_files),
            (resource.RLIMIT_NPROC, limits.processes),
            (resource.RLIMIT_CORE, 0),
        ):
            if value is not None:
                resource.setrlimit(res, (value, value))
        if uid is not None:
            _drop_privileges_fn(uid)()

    return setup


def prepare_workdir(path: Path, uid: int | None) -> Path:
    """Create `path` owned by the slot's uid (parents traversable, not writable, by it)."""
    path.mkdir(parents=True, exist_ok=True)
    if uid is not None:
        os.chown(path, uid, uid)
    return path


def base_env(workdir: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """A small, explicit environment: nothing of the evaluator's own leaks into samples."""
    env = {
        "PATH": SAFE_PATH,
        "HOME": str(workdir),
        "TMPDIR": "/tmp",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
    }
    if extra:
        env.update(extra)
    return env


def processes_of_uid(uid: int) -> list[int]:
    """PIDs of every live process whose real uid is `uid` (zombies excluded)."""
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/status", "rb") as fh:
                status = fh.read()
        except OSError:
            continue
        uid_line = status[status.find(b"\nUid:") + 5 :].split(b"\n", 1)[0].split()
        state = status[status.find(b"\nState:") + 7 :].split(b"\n", 1)[0].split()
        if uid_line and int(uid_line[0]) == uid and state and state[0] not in (b"Z", b"X"):
            pids.append(int(entry.name))
    return pids


def reap_uid(uid: int, *, grace: float = 5.0) -> int:
    """Kill every process of `uid` and verify none is left; returns how many had to be killed.

    Raises SandboxError if a process survives `grace` seconds of SIGKILLs.
    """
    killed = 0
    deadline = time.monotonic() + grace
    while True:
        pids = processes_of_uid(uid)
        if not pids:
            return killed
        if time.monotonic() > deadline:
            raise SandboxError(f"processes of sandbox uid {uid} survived SIGKILL: {pids}")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed += 1
        time.sleep(0.01)


def run(
    argv: list[str],
    *,
    workdir: Path,
    timeout: float,
    limits: Limits,
    uid: int | None,
    env: dict[str, str] | None = None,
    sandbox: bool = True,
    ro_binds: tuple[str, ...] = (),
    rw_binds: tuple[str, ...] = (),
    output_cap: int = OUTPUT_CAP,
    reap: bool = True,
) -> Outcome:
    """Run `argv` in `workdir` under every containment layer; never raises for program faults.

    `uid` is the slot uid (None: stay the current user, e.g. when not root). After the command
    ends or is killed, every process left under `uid` is killed and the result verified.
    """
    full = list(argv)
    if sandbox:
        full = bwrap_argv(
            workdir, ro_binds=ro_binds, rw_binds=rw_binds, tmpfs_bytes=limits.tmpfs_bytes
        ) + ["--", *full]
    start = time.monotonic()
    proc = subprocess.Popen(
        full,
        cwd=workdir,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env if env is not None else base_env(workdir),
        start_new_session=True,
        preexec_fn=_preexec(uid, limits),
    )
    outcome = _pump(proc, start + timeout, output_cap)
    outcome.seconds = time.monotonic() - start
    if reap and uid is not None:
        left = reap_uid(uid)
        if left:
            outcome.notes.append(f"killed {left} leftover process(es)")
    return outcome


def kill_group(proc: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        proc.kill()


def _pump(proc: subprocess.Popen, deadline: float, cap: int) -> Outcome:
    """Read both pipes until the process ends, the deadline passes or output exceeds `cap`."""
    out_fd, err_fd = proc.stdout.fileno(), proc.stderr.fileno()
    bufs = {out_fd: bytearray(), err_fd: bytearray()}
    sel = selectors.DefaultSelector()
    for stream in (proc.stdout, proc.stderr):
        sel.register(stream.fileno(), selectors.EVENT_READ)
    timed_out = overflow = False
    exited_at: float | None = None
    try:
        while sel.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = proc.poll() is None
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            if exited_at is not None and now - exited_at > 0.2:
                break  # a descendant still holds the pipes open: the program itself is done
            for key, _ in sel.select(timeout=min(0.05, deadline - now)):
                chunk = os.read(key.fd, 65536)
                if not chunk:
                    sel.unregister(key.fd)
                    continue
                buf = bufs[key.fd]
                buf += chunk
                if len(buf) > cap:
                    overflow = True
                    break
            if overflow:
                break
    finally:
        sel.close()
    if timed_out or overflow:
        kill_group(proc)
    # Pipes closed (or the program exited): wait for its status until the deadline, no longer.
    try:
        returncode = proc.wait(timeout=max(0.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        kill_group(proc)
        returncode = proc.wait()
        timed_out = True
    if timed_out:
        returncode = None
    proc.stdout.close()
    proc.stderr.close()
    return Outcome(
        returncode=returncode,
        stdout=bytes(bufs[out_fd]),
        stderr=bytes(bufs[err_fd]),
        seconds=0.0,
        timed_out=timed_out,
        output_overflow=overflow,
    )
