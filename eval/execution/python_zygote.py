"""Warm parent for Python samples: imports the harness's import list once, forks one child per sample.

Started by the Python executor (inside bubblewrap, as the slot's unprivileged uid); standalone on
purpose (imports nothing from the project, so it runs from its file path in the sandbox).
A child runs `exec(program, {})` as the reference harness does: fresh globals (so `__name__` is not
"__main__"), stdout/stderr swallowed, reading stdin raises, the same destructive functions
disabled (so verdicts match), and any exception, SystemExit included, is a failure. Forking
instead of starting an interpreter per sample skips Python start-up and the numpy import.

Protocol on stdin/stdout: 4-byte big-endian length + JSON, both ways.
Request: {"dir", "source", "timeout", "cpu", "data", "fsize", "nofile"}.
Reply: {"status": "passed"|"failed"|"timeout", "detail", "seconds", "leftover"}.
"""

import builtins
import contextlib
import io
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import traceback

IMPORTS = sys.argv[1] if len(sys.argv) > 1 else ""
SWEEP_UID = len(sys.argv) > 2 and sys.argv[2] == "sweep-uid"


class _Swallow(io.StringIO):
    """Write-only sink standing in for stdout, stderr and stdin, like the harness's."""

    def write(self, s):
        return len(s)

    def read(self, *args, **kwargs):
        raise OSError

    def readline(self, *args, **kwargs):
        raise OSError

    def readlines(self, *args, **kwargs):
        raise OSError

    def readable(self, *args, **kwargs):
        return False


def _guard():
    """Disable what the harness's reliability_guard disables, so the same programs fail."""
    import faulthandler
    import shutil
    import subprocess

    faulthandler.disable()
    builtins.exit = None
    builtins.quit = None
    builtins.help = None
    os.environ["OMP_NUM_THREADS"] = "1"
    for name in [
        "kill",
        "system",
        "putenv",
        "remove",
        "removedirs",
        "rmdir",
        "fchdir",
        "setuid",
        "fork",
        "forkpty",
        "killpg",
        "rename",
        "renames",
        "truncate",
        "replace",
        "unlink",
        "fchmod",
        "fchown",
        "chmod",
        "chown",
        "chroot",
        "lchflags",
        "lchmod",
        "lchown",
        "getcwd",
        "chdir",
    ]:
        setattr(os, name, None)
    shutil.rmtree = None
    shutil.move = None
    shutil.chown = None
    subprocess.Popen = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _child(request, result_fd):
    os.setsid()
    for res, key in (
        (resource.RLIMIT_CPU, "cpu"),
        (resource.RLIMIT_DATA, "data"),
        (resource.RLIMIT_FSIZE, "fsize"),
        (resource.RLIMIT_NOFILE, "nofile"),
    ):
        if request.get(key):
            resource.setrlimit(res, (request[key], request[key]))
    os.chdir(request["dir"])
    devnull = os.open(os.devnull, os.O_RDWR)
    out = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(devnull, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(devnull)
    os.close(out)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    sink = _Swallow()
    sys.stdout = sys.stderr = sink
    sys.stdin = sink
    write = os.write
    exit_now = os._exit
    try:
        code = compile(request["source"], "<program>", "exec")
        _guard()
        exec(code, {})
        message = b"P"
    except BaseException as exc:  # noqa: BLE001 - the harness counts any exception as failure
        tail = "".join(traceback.format_exception_only(type(exc), exc))[-2000:]
        message = b"F" + tail.encode("utf-8", "replace")
    try:
        write(result_fd, message)
    finally:
        exit_now(0)


def _sweep(keep):
    """Kill every other process of this sandbox (own PID namespace or own uid); return count."""
    killed = 0
    uid = os.getuid()
    for _ in range(200):
        found = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in keep:
                continue
            try:
                with open(f"/proc/{name}/status", "rb") as fh:
                    status = fh.read()
            except OSError:
                continue
            fields = dict(line.split(b":", 1) for line in status.splitlines() if b":" in line)
            if fields.get(b"State", b" Z").split()[0] in (b"Z", b"X"):
                continue
            if SWEEP_UID and int(fields[b"Uid"].split()[0]) != uid:
                continue
            found.append(int(name))
        if not found:
            return killed
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        _reap_children()
        time.sleep(0.005)
    raise RuntimeError("processes survived SIGKILL")


def _reap_children():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def _run(request):
    read_fd, write_fd = os.pipe()
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        try:
            _child(request, write_fd)
        finally:
            os._exit(1)
    os.close(write_fd)
    deadline = start + request["timeout"]
    message = b""
    timed_out = False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        ready, _, _ = select.select([read_fd], [], [], remaining)
        if ready:
            chunk = os.read(read_fd, 65536)
            if not chunk:
                break
            message += chunk
    os.close(read_fd)
    seconds = time.monotonic() - start
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)
    leftover = _sweep({1, os.getpid(), os.getppid()})
    if timed_out:
        status, detail = "timeout", f"timed out after {request['timeout']:g} s"
    elif message[:1] == b"P":
        status, detail = "passed", ""
    else:
        status = "failed"
        detail = (
            message[1:].decode("utf-8", "replace")
            or "exited without a result (os._exit or a signal)"
        )
    return {"status": status, "detail": detail, "seconds": seconds, "leftover": leftover}


def _read_exact(n):
    data = b""
    while len(data) < n:
        chunk = os.read(0, n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def main():
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    warm = {}
    exec(IMPORTS, warm)  # the harness's import list: numpy, typing, collections, ...
    out = sys.stdout.buffer
    out.write(b"READY\n")
    out.flush()
    while True:
        header = _read_exact(4)
        if header is None:
            return
        request = json.loads(_read_exact(struct.unpack(">I", header)[0]))
        reply = json.dumps(_run(request)).encode()
        out.write(struct.pack(">I", len(reply)) + reply)
        out.flush()


if __name__ == "__main__":
    main()
