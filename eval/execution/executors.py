"""The six fast executors. Each reproduces the reference harness's verdict rule for its language.

| language | how (fast)                                                     | passes when              |
| python   | fork of a warm parent (python_zygote.py), exec(program, {})     | no exception             |
| cpp      | g++ -std=c++11 -include <precompiled harness header>, gold ld  | ./a.out exits 0          |
| js       | node test.js, js-md5 on NODE_PATH                              | exit 0, no stdout/stderr |
| java     | long-lived in-process javac (JavaCompileServer), fresh JVM run | java Main exits 0        |
| go       | shared test binaries (go_batch.py), else go test main_test.go | exit 0 (build, vet, tests) |
| rust     | shared test binary (rust_batch.py), else rustc check + --test | test binary exits 0      |
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import struct
import subprocess
import time
from pathlib import Path

from eval.execution import sandbox, toolchains
from eval.execution.base import ExecResult, Program, Settings, Slot, tail
from eval.execution.go_batch import BatchEntry, GoBatch
from eval.execution.rust_batch import RustBatch, RustEntry
from eval.programs import PYTHON_IMPORTS

EXECUTOR_VERSION = "3"  # 2: Go programs through shared test binaries; 3: Rust ones too


def _result(
    program: Program, outcome: sandbox.Outcome, *, seconds: float, passed_rule
) -> ExecResult:
    if outcome.timed_out:
        return ExecResult(program.key, False, "timeout", "timed out", seconds)
    detail = tail(outcome.stderr or outcome.stdout)
    if outcome.output_overflow:
        return ExecResult(
            program.key, False, "failed", "output limit exceeded: " + detail[-200:], seconds
        )
    if passed_rule(outcome):
        return ExecResult(program.key, True, "passed", detail, seconds)
    if outcome.returncode is not None and outcome.returncode < 0:
        detail = f"killed by signal {-outcome.returncode}. " + detail
    return ExecResult(program.key, False, "failed", detail, seconds)


def _exit_zero(outcome: sandbox.Outcome) -> bool:
    return outcome.returncode == 0


class Executor:
    """Runs programs of one language in a worker slot."""

    language = ""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.timeout = settings.timeouts[self.language]

    def prepare(self) -> None:
        """Build shared artefacts (once, before the workers start)."""

    def prepare_batch(self, programs: list[Program], slot: Slot) -> None:
        """Work shared by this run's programs (once, before the workers start, in `slot`)."""

    def run(self, program: Program, slot: Slot) -> ExecResult:
        raise NotImplementedError

    def _sandboxed(
        self, argv, slot: Slot, workdir: Path, *, timeout: float, env=None, **kw
    ) -> sandbox.Outcome:
        return sandbox.run(
            argv,
            workdir=workdir,
            timeout=timeout,
            limits=kw.pop("limits", None) or self.settings.limits(self.language),
            uid=slot.uid(),
            env=sandbox.base_env(workdir, env),
            sandbox=self.settings.sandbox,
            **kw,
        )

    def _run_from_shared_binary(
        self, program: Program, entry, slot: Slot, filename: str, argv: list[str], **sandbox_kw
    ) -> ExecResult:
        """Run `argv` (one program's tests in a test binary shared by many programs, Go or Rust)
        in the program's own workdir and sandbox with its timeout; the batch's mangled names
        are restored in the output so failure messages read as if the program ran alone."""
        workdir = slot.new_workdir()
        start = time.monotonic()
        try:
            (workdir / filename).write_text(program.source, encoding="utf-8")
            ran = self._sandboxed(argv, slot, workdir, timeout=self.timeout,
                                  ro_binds=(str(entry.binary.parent),), **sandbox_kw)  # fmt: skip
            ran.stdout, ran.stderr = (
                entry.restore_names(ran.stdout),
                entry.restore_names(ran.stderr),
            )
            return _result(program, ran, seconds=time.monotonic() - start, passed_rule=_exit_zero)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class CppExecutor(Executor):
    language = "cpp"

    def prepare(self) -> None:
        self.header = toolchains.cpp_prelude()
        self.gxx = toolchains.tool("g++")
        self.ld = ["-fuse-ld=gold"] if shutil.which("ld.gold") else []

    def run(self, program: Program, slot: Slot) -> ExecResult:
        workdir = slot.new_workdir()
        start = time.monotonic()
        try:
            (workdir / "test.cpp").write_text(program.source, encoding="utf-8")
            compile_argv = [self.gxx, *toolchains.CPP_FLAGS, "-include", str(self.header), "test.cpp",
                            *self.ld, "-o", "a.out", "-lcrypto", "-lssl"]  # fmt: skip
            built = self._sandboxed(compile_argv, slot, workdir, timeout=self.timeout)
            if built.timed_out:
                return ExecResult(
                    program.key, False, "timeout", "compilation timed out", time.monotonic() - start
                )
            if built.returncode != 0:
                return ExecResult(program.key, False, "compile_error", tail(built.stderr or built.stdout),
                                  time.monotonic() - start)  # fmt: skip
            ran = self._sandboxed(["./a.out"], slot, workdir, timeout=self.timeout)
            return _result(program, ran, seconds=time.monotonic() - start, passed_rule=_exit_zero)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class JsExecutor(Executor):
    language = "js"

    def prepare(self) -> None:
        self.node = toolchains.tool("node")
        self.node_path = str(toolchains.node_path())

    def run(self, program: Program, slot: Slot) -> ExecResult:
        workdir = slot.new_workdir()
        start = time.monotonic()
        try:
            (workdir / "test.js").write_text(program.source, encoding="utf-8")
            ran = self._sandboxed([self.node, "test.js"], slot, workdir, timeout=self.timeout,
                                  env={"NODE_PATH": self.node_path})  # fmt: skip
            # The harness fails a program that writes anything (console.assert only prints
            # "Assertion failed"); we also require exit 0 so a silent crash never passes.
            return _result(program, ran, seconds=time.monotonic() - start,
                           passed_rule=lambda o: o.returncode == 0 and not o.stderr and not o.stdout)  # fmt: skip
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class GoExecutor(Executor):
    language = "go"

    def prepare(self) -> None:
        self.go = toolchains.tool("go")
        toolchains.go_cache_template()
        self.batch: GoBatch | None = None

    def prepare_batch(self, programs: list[Program], slot: Slot) -> None:
        """Compile, vet and link the programs that may share test binaries (see go_batch)."""
        batch = GoBatch(self.settings, slot.root.parent / "go-batch")
        try:
            batch.build(programs, slot)
        except (OSError, ValueError, sandbox.SandboxError):
            return  # a batch is only a shortcut: every program runs the standard way instead
        self.batch = batch

    def _cache(self, slot: Slot) -> Path:
        """The slot's own copy of the warm template cache (writable only by the slot's uid)."""
        cache = slot.root / "gocache"
        if not cache.exists():
            shutil.copytree(toolchains.go_cache_template(), cache)
            slot.hand_over(cache)
        return cache

    def run(self, program: Program, slot: Slot) -> ExecResult:
        entry = self.batch.lookup(program) if self.batch is not None else None
        if entry is not None:
            return self._run_batched(program, entry, slot)
        workdir = slot.new_workdir()
        cache = self._cache(slot)
        start = time.monotonic()
        try:
            (workdir / "main_test.go").write_text(program.source, encoding="utf-8")
            env = toolchains.go_env(cache)
            ran = self._sandboxed([self.go, "test", f"-timeout={int(self.timeout)}s", "main_test.go"], slot, workdir,
                                  timeout=self.timeout, env=env, rw_binds=(str(cache),),
                                  limits=self.settings.limits("go", processes=1024))  # fmt: skip
            result = _result(program, ran, seconds=time.monotonic() - start, passed_rule=_exit_zero)
            if not result.passed and result.status == "failed" and _go_build_failed(ran):
                result.status = "compile_error"
            return result
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run_batched(self, program: Program, entry: BatchEntry, slot: Slot) -> ExecResult:
        """The program's tests from the shared binary: its own process, sandbox and timeout."""
        return self._run_from_shared_binary(
            program, entry, slot, "main_test.go", entry.argv(self.timeout),
            env=toolchains.go_env(slot.root / "gocache"),
            limits=self.settings.limits("go", processes=1024),
        )  # fmt: skip


def _go_build_failed(outcome: sandbox.Outcome) -> bool:
    text = (outcome.stdout + outcome.stderr).decode("utf-8", "replace")
    return "[build failed]" in text or "[setup failed]" in text or "vet:" in text


class RustExecutor(Executor):
    language = "rust"

    def prepare(self) -> None:
        self.rustc = toolchains.real_rustc()
        # rustup's toolchain lives under /root (0700): compile as the sandbox's own (namespaced)
        # root there, run the test binary as the slot's unprivileged uid.
        self.compile_as_root = not toolchains._usable_by_others(self.rustc)
        self.externs = toolchains.rust_externs()
        self.ro = (str(toolchains.rust_dir()),)
        self.batch: RustBatch | None = None

    def _env(self) -> dict[str, str]:
        env = {"RUST_BACKTRACE": "0"}
        if self.settings.rand_seed is not None:
            env["OCTOJAX_RAND_SEED"] = str(self.settings.rand_seed)
        return env

    def prepare_batch(self, programs: list[Program], slot: Slot) -> None:
        """Check and build the programs that may share one test binary (see rust_batch)."""
        batch = RustBatch(self.settings, slot.root.parent / "rust-batch", self.rustc, self.externs,
                          compile_as_root=self.compile_as_root, env=self._env())  # fmt: skip
        try:
            batch.build(programs, slot)
        except (OSError, ValueError, sandbox.SandboxError):
            return  # a batch is only a shortcut: every program runs the standard way instead
        self.batch = batch

    def run(self, program: Program, slot: Slot) -> ExecResult:
        entry = self.batch.lookup(program) if self.batch is not None else None
        if entry is not None:
            return self._run_batched(program, entry, slot)
        workdir = slot.new_workdir(None if self.compile_as_root else sandbox.ROLE_RUN)
        start = time.monotonic()
        env = self._env()
        try:
            (workdir / "test.rs").write_text(program.source, encoding="utf-8")
            common = [
                self.rustc,
                "--edition",
                "2021",
                "-C",
                "debuginfo=0",
                *self.externs,
                "test.rs",
            ]
            # `cargo check --bin test` (the non-test build must compile too), then `cargo test`.
            # Both in one sandbox call: a shell runs the check, and the test build only if it passed.
            check = [*common, "--crate-type", "bin", "--emit=metadata", "-o", "check.rmeta"]
            build = [*common, "--test", "-o", "test_bin"]
            script = f"{_sh(check)} && {_sh(build)}"
            built = sandbox.run(["/bin/sh", "-c", script], workdir=workdir, timeout=self.timeout,
                                limits=self.settings.limits("rust"),
                                uid=None if self.compile_as_root else slot.uid(),
                                env=sandbox.base_env(workdir, env), sandbox=self.settings.sandbox)  # fmt: skip
            if self.compile_as_root:
                slot.hand_over(workdir)
            if built.timed_out:
                return ExecResult(
                    program.key, False, "timeout", "compilation timed out", time.monotonic() - start
                )
            if built.returncode != 0:
                return ExecResult(program.key, False, "compile_error", tail(built.stderr or built.stdout),
                                  time.monotonic() - start)  # fmt: skip
            ran = self._sandboxed(["./test_bin"], slot, workdir, timeout=self.timeout, env=env)
            return _result(program, ran, seconds=time.monotonic() - start, passed_rule=_exit_zero)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def _run_batched(self, program: Program, entry: RustEntry, slot: Slot) -> ExecResult:
        """The program's tests from the shared binary: its own process, sandbox and timeout."""
        return self._run_from_shared_binary(
            program, entry, slot, "test.rs", entry.argv(), env=self._env()
        )


def _sh(argv: list[str]) -> str:
    import shlex

    return " ".join(shlex.quote(a) for a in argv)


class _Service:
    """A long-lived helper process (warm Python parent, Java compile server) in a slot's sandbox."""

    def __init__(
        self,
        argv: list[str],
        slot: Slot,
        role: int,
        settings: Settings,
        *,
        env: dict,
        processes: int,
    ):
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
        line = self._readline(deadline=time.monotonic() + 120)
        if line != b"READY\n":
            self.close()
            raise sandbox.SandboxError(f"helper {argv[:3]} failed to start (said {line!r})")

    def _read(self, n: int, deadline: float) -> bytes | None:
        import select

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

    def _readline(self, deadline: float) -> bytes | None:
        line = b""
        while not line.endswith(b"\n"):
            ch = self._read(1, deadline)
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


class PythonExecutor(Executor):
    language = "python"

    def _zygote(self, slot: Slot) -> _Service:
        service = slot.services.get("python")
        if service is None or not service.alive():
            if service is not None:
                service.close()
            # Run a copy inside the slot: the sandbox hides the rest of /tmp (and possibly the
            # checkout), and the unprivileged uid may not be able to read the checkout at all.
            script_path = slot.root / "python_zygote.py"
            shutil.copyfile(Path(__file__).with_name("python_zygote.py"), script_path)
            os.chmod(script_path, 0o644)
            script = str(script_path)
            imports = "\n".join(PYTHON_IMPORTS)
            mode = "sweep-uid" if slot.uid() is not None else "sweep-ns"
            env = {"OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
                   "PYTHONHASHSEED": "0"}  # fmt: skip
            service = _Service([toolchains.sample_python(), "-I", script, imports, mode], slot, sandbox.ROLE_PYTHON,
                               self.settings, env=env, processes=self.settings.processes)  # fmt: skip
            slot.services["python"] = service
        return service

    def run(self, program: Program, slot: Slot) -> ExecResult:
        zygote = self._zygote(slot)
        workdir = slot.new_workdir(sandbox.ROLE_PYTHON)
        start = time.monotonic()
        limits = self.settings.limits("python")
        request = {"dir": str(workdir), "source": program.source, "timeout": self.timeout,
                   "cpu": limits.cpu_seconds, "data": limits.data_bytes, "fsize": limits.file_bytes,
                   "nofile": limits.open_files}  # fmt: skip
        try:
            payload = json.dumps(request).encode()
            try:
                zygote.proc.stdin.write(struct.pack(">I", len(payload)) + payload)
                zygote.proc.stdin.flush()
                deadline = time.monotonic() + self.timeout + 30
                header = zygote._read(4, deadline)
                reply = zygote._read(struct.unpack(">I", header)[0], deadline) if header else None
            except (BrokenPipeError, OSError):
                reply = None
            if reply is None:
                # The program took its parent down (or the parent hung): count it as a failure.
                zygote.close()
                slot.services.pop("python", None)
                return ExecResult(program.key, False, "failed",
                                  "the sample killed or wedged the process that ran it", time.monotonic() - start)  # fmt: skip
            answer = json.loads(reply)
            status = answer["status"]
            return ExecResult(
                program.key, status == "passed", status, tail(answer["detail"]), answer["seconds"]
            )
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


class JavaExecutor(Executor):
    language = "java"
    JVM_FLAGS = ["-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx2g"]

    def prepare(self) -> None:
        self.classpath = toolchains.java_server_classpath()
        self.java = toolchains.tool("java")

    def _server(self, slot: Slot) -> _Service:
        service = slot.services.get("javac")
        if service is None or not service.alive():
            if service is not None:
                service.close()
            argv = [self.java, "-XX:+UseSerialGC", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-Xmx1g",
                    "-cp", str(self.classpath), "JavaCompileServer"]  # fmt: skip
            service = _Service(
                argv, slot, sandbox.ROLE_JAVAC, self.settings, env={}, processes=1024
            )
            slot.services["javac"] = service
        return service

    def _compile(self, slot: Slot, workdir: Path) -> tuple[str, str]:
        server = self._server(slot)
        try:
            server.proc.stdin.write((str(workdir) + "\n").encode())
            server.proc.stdin.flush()
            deadline = time.monotonic() + self.timeout
            line = server._readline(deadline)
            if line is None:
                raise TimeoutError
            if line == b"OK\n":
                return "ok", ""
            size = int(line.split()[1])
            text = server._read(size + 1, deadline) or b""
            return "error", text.decode("utf-8", "replace")
        except (TimeoutError, BrokenPipeError, OSError, ValueError, IndexError):
            server.close()
            slot.services.pop("javac", None)
            return "timeout", "compilation timed out"

    def run(self, program: Program, slot: Slot) -> ExecResult:
        workdir = slot.new_workdir()
        start = time.monotonic()
        try:
            (workdir / "Main.java").write_text(program.source, encoding="utf-8")
            classes = workdir / "classes"
            classes.mkdir()
            javac_uid = slot.uid(sandbox.ROLE_JAVAC)
            if javac_uid is not None:
                os.chown(classes, javac_uid, javac_uid)
            state, detail = self._compile(slot, workdir)
            if state == "timeout":
                return ExecResult(program.key, False, "timeout", detail, time.monotonic() - start)
            if state == "error":
                return ExecResult(
                    program.key, False, "compile_error", tail(detail), time.monotonic() - start
                )
            ran = self._sandboxed([self.java, *self.JVM_FLAGS, "-cp", "classes", "Main"], slot, workdir,
                                  timeout=self.timeout, limits=self.settings.limits("java", processes=1024))  # fmt: skip
            return _result(program, ran, seconds=time.monotonic() - start, passed_rule=_exit_zero)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)


EXECUTORS: dict[str, type[Executor]] = {
    cls.language: cls
    for cls in (PythonExecutor, CppExecutor, JsExecutor, JavaExecutor, GoExecutor, RustExecutor)
}
