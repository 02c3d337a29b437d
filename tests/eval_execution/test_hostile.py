"""Hostile programs are contained and reported as failures while the evaluation goes on.

After the run no process a hostile program started survives (each leaves a `sleep` with a unique
marker argument to look for) and nothing outside the sandbox changed. Nothing here depends on
how fast the machine is: the checks are on verdicts and events, and the one time bound is the
orphans' own lifetime (a run that waited for them would outlast it on any machine).
"""

from __future__ import annotations

import os
import socket
import textwrap
import threading
import time
import uuid
from pathlib import Path

import pytest
from helpers.waiting import wait_for

from eval.execution import DEFAULT_TIMEOUTS, Program, Settings, run_programs
from eval.execution.rust_batch import admissible
from eval.execution.sandbox import bwrap_usable
from eval.execution.toolchains import missing_for

pytestmark = pytest.mark.toolchains

TIMEOUTS = dict(DEFAULT_TIMEOUTS, python=4.0, js=4.0, cpp=15.0, go=20.0)
# The orphans' `sleep`s last at least this long (seconds), far beyond a run on any machine: gone
# before then, they were killed; a run that waited for one would have lasted this long.
ORPHAN_SECONDS = 900
GONE_WITHIN = 120  # a deadline for a hang only: killed processes normally vanish in milliseconds


def _wait_until_gone(markers: list[str], since: float) -> None:
    """Wait for the killed processes to leave /proc (their teardown is asynchronous), and check
    they left before they could have ended by themselves (`since`: when the run started)."""
    wait_for(lambda: not _markers_alive(markers), GONE_WITHIN,
             f"the processes the hostile programs started (sleep {' / '.join(markers)}) to be gone",
             detail=lambda: "still alive:\n" + "\n".join(_markers_alive(markers)))  # fmt: skip
    waited = time.monotonic() - since
    assert waited < ORPHAN_SECONDS, (
        f"{waited:.0f} s after the run started: they may have ended alone"
    )


def _markers_alive(markers: list[str]) -> list[str]:
    alive = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            cmdline = Path(entry.path, "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        alive += [f"{entry.name}: {cmdline}" for m in markers if m in cmdline]
    return alive


@pytest.fixture
def listener():
    """A TCP server on loopback and a function listing every connection made to it so far (none
    must arrive); the listing also takes connections still queued in the backlog, so a connection
    counts however late the accepting thread ran."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.settimeout(0.2)
    hits: list[tuple] = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, addr = server.accept()
                hits.append(addr)
                conn.close()
            except OSError:
                continue

    def connections() -> list[tuple]:
        if not stop.is_set():
            stop.set()
            thread.join()
            server.setblocking(False)
            while True:
                try:
                    conn, addr = server.accept()
                except OSError:  # BlockingIOError: the backlog is empty
                    break
                hits.append(addr)
                conn.close()
        return hits

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], connections
    connections()
    server.close()


def _py(body: str) -> str:
    return textwrap.dedent(body)


def test_hostile_programs_are_contained(tmp_path, listener):
    if missing_for("python") or missing_for("js") or missing_for("cpp"):
        pytest.skip("toolchains missing: bash eval/setup_toolchains.sh")
    port, connections = listener
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("untouched")
    tag = uuid.uuid4().hex[:8]
    sleeper = {
        name: f"{ORPHAN_SECONDS + i}.{int(tag, 16) % 997}"
        for i, name in enumerate(["daemon", "bomb", "js", "cpp"])
    }
    libc = "import ctypes\nlibc = ctypes.CDLL(None)\n"
    hostile = {
        "loop": ("python", "while True:\n    pass\n"),
        "fork_bomb": (
            "python",
            libc
            + _py(f"""
            import os
            while True:
                if libc.fork() == 0:
                    os.execv("/bin/sleep", ["sleep", "{sleeper["bomb"]}"]) if libc.getpid() % 7 == 0 else None
            """),
        ),
        "memory_hog": (
            "python",
            "chunks = []\nwhile True:\n    chunks.append(bytearray(1 << 28))\n",
        ),
        "endless_output": ("python", "import os\nwhile True:\n    os.write(1, b'x' * 65536)\n"),
        "write_outside": (
            "python",
            _py(f"""
            open({str(victim)!r}, "w").write("owned")
            """),
        ),
        "write_repo": (
            "python",
            _py(f"""
            open({str(Path(__file__).resolve().parents[2] / ("HOSTILE_" + tag))!r}, "w").write("owned")
            """),
        ),
        "network": (
            "python",
            _py(f"""
            import socket
            socket.create_connection(("127.0.0.1", {port}), timeout=2).sendall(b"hello")
            """),
        ),
        "daemon": (
            "python",
            libc
            + _py(f"""
            import os
            if libc.fork() == 0:
                libc.setsid()
                if libc.fork() == 0:
                    os.execv("/bin/sleep", ["sleep", "{sleeper["daemon"]}"])
                libc._exit(0)
            while True:
                pass
            """),
        ),
        "kill_parent": (
            "python",
            libc + "libc.kill(libc.getppid(), 9)\nlibc.kill(1, 9)\nwhile True:\n    pass\n",
        ),
        "js_daemon_and_output": (
            "js",
            _py(f"""
            const cp = require("child_process");
            cp.spawn("/bin/sleep", ["{sleeper["js"]}"], {{detached: true, stdio: "ignore"}}).unref();
            while (true) process.stdout.write("x".repeat(100000));
            """),
        ),
        "cpp_fork_bomb": (
            "cpp",
            _py(f"""
            #include <unistd.h>
            int main() {{
                for (;;) {{ if (fork() == 0) execl("/bin/sleep", "sleep", "{sleeper["cpp"]}", (char*)0); }}
            }}
            """),
        ),
    }
    programs = [Program(lang, src, name) for name, (lang, src) in hostile.items()]
    # Well-behaved programs before and after: the evaluation goes on and still passes them.
    programs.insert(0, Program("python", "assert 1 + 1 == 2\n", "fine_before"))
    programs.append(
        Program("python", "import numpy as np\nassert np.arange(3).sum() == 3\n", "fine_after")
    )
    programs.append(Program("js", "console.assert(1 === 1);\n", "fine_js"))
    start = time.monotonic()
    results = {r.key: r for r in run_programs(programs, settings=Settings(timeouts=TIMEOUTS, sandbox=bwrap_usable()),
                                              progress=False, workers=2)}  # fmt: skip
    elapsed = time.monotonic() - start
    for name in hostile:
        assert not results[name].passed, (name, results[name])
        assert results[name].status != "error", (name, results[name])
    # stopped by the timeout these settings give (4 s), not by the default (10 s) or anything else
    assert results["loop"].status == "timeout", results["loop"]
    assert results["loop"].detail == f"timed out after {TIMEOUTS['python']:g} s", results["loop"]
    assert (
        results["fine_before"].passed and results["fine_after"].passed and results["fine_js"].passed
    )
    # node queues writes while its loop never yields: it ends by timeout or the output cap.
    assert results["js_daemon_and_output"].status in ("timeout", "failed")
    # stopped by the file-size limit (SIGXFSZ: "failed") on an idle machine; at load ~13 (two
    # xdist workers beside it) writing the 256 MiB took longer than its 4 s and the timeout
    # stopped it first. Stopped either way (never passed, never an error: checked above).
    assert results["endless_output"].status in ("failed", "timeout"), results["endless_output"]
    # every program ended at its own timeout or limit: had the run waited for an orphan (a pipe
    # it holds, its process group), it would have lasted the orphan's lifetime
    assert elapsed < ORPHAN_SECONDS, f"the run took {elapsed:.0f} s: it waited for an orphan"
    _wait_until_gone(list(sleeper.values()), since=start)
    assert victim.read_text() == "untouched"
    assert not (Path(__file__).resolve().parents[2] / ("HOSTILE_" + tag)).exists()
    assert connections() == []


def _go_test(body: str, imports: tuple[str, ...]) -> str:
    lines = "".join(
        f'    "{i}"\n' for i in ("testing", "github.com/stretchr/testify/assert", *imports)
    )
    return f"package main\n\nimport (\n{lines})\n\n" + textwrap.dedent(body)


def test_hostile_go_programs_in_shared_binaries(tmp_path, listener):
    """Go programs batched into one test binary are still contained one by one, and a program
    that attacks the shared binary cannot change the verdicts of the others."""
    if missing_for("go"):
        pytest.skip("toolchains missing: bash eval/setup_toolchains.sh")
    port, connections = listener
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    marker = f"{ORPHAN_SECONDS + 7}.{uuid.uuid4().int % 997}"
    hostile = {
        "go_daemon": _go_test(
            f"""
            func TestD(t *testing.T) {{
                cmd := exec.Command("/bin/sleep", "{marker}")
                cmd.SysProcAttr = &syscall.SysProcAttr{{Setsid: true}}
                assert.Nil(t, cmd.Start())
                t.Fatal("hostile")
            }}
            """,
            ("os/exec", "syscall"),
        ),
        "go_write_outside": _go_test(
            f"""
            func TestW(t *testing.T) {{
                _ = os.WriteFile({str(victim)!r}, []byte("owned"), 0o644)
                t.Fatal("hostile")
            }}
            """.replace("'", '"'),
            ("os",),
        ),
        "go_network": _go_test(
            f"""
            func TestN(t *testing.T) {{
                c, err := net.Dial("tcp", "127.0.0.1:{port}")
                if err == nil {{ c.Close() }}
                t.Fatal("hostile")
            }}
            """,
            ("net",),
        ),
        "go_tamper_binary": _go_test(
            """
            func TestT(t *testing.T) {
                _ = os.WriteFile(os.Args[0], []byte("#!/bin/sh\\nexit 0\\n"), 0o755)
                _ = os.Remove(os.Args[0])
                t.Fatal("hostile")
            }
            """,
            ("os",),
        ),
    }
    fine = {
        f"go_fine_{i}": _go_test(
            f"""
            func Twice{i}(x int) int {{ return 2 * x }}
            func TestTwice{i}(t *testing.T) {{ assert.Equal(t, {2 * i}, Twice{i}({i})) }}
            """,
            (),
        )
        for i in range(1, 5)
    }
    programs = [Program("go", src, name) for name, src in {**hostile, **fine}.items()]
    programs += [Program("go", fine["go_fine_1"].replace("2 * x", "3 * x"), "go_wrong")]
    start = time.monotonic()
    results = {r.key: r for r in run_programs(programs, settings=Settings(timeouts=TIMEOUTS, sandbox=bwrap_usable()),
                                              progress=False, workers=2)}  # fmt: skip
    for name in hostile:
        assert not results[name].passed and results[name].status != "error", results[name]
    assert all(results[name].passed for name in fine), results
    assert not results["go_wrong"].passed
    _wait_until_gone([marker], since=start)
    assert victim.read_text() == "untouched"
    assert connections() == []


def _rust_test(body: str) -> str:
    return "fn main(){}\n\n#[cfg(test)]\nmod tests {\n" + textwrap.dedent(body) + "}\n"


def test_hostile_rust_programs_in_shared_binaries(tmp_path, listener):
    """Rust programs batched into one test binary are still contained one by one, and a program
    that attacks the shared binary (found by walking /tmp) cannot change the others' verdicts."""
    if missing_for("rust"):
        pytest.skip("toolchains missing: bash eval/setup_toolchains.sh")
    port, connections = listener
    victim = tmp_path / "victim.txt"
    victim.write_text("untouched")
    tamper = """
        fn walk(dir: String, depth: u32) {
            if depth > 4 { return; }
            if let Ok(rd) = std::fs::read_dir(&dir) { for e in rd.flatten() {
                let p = e.path().to_string_lossy().to_string();
                if p.ends_with("batch_test") { let _ = std::fs::write(&p, b"#!/bin/sh\\nexit 0\\n");
                                               let _ = std::fs::remove_file(&p); }
                walk(p, depth + 1);
            } }
        }
        #[test] fn t() { walk("/tmp".to_string(), 0); assert!(false); }
    """
    hostile = {
        "rs_write_outside": _rust_test(
            f'#[test] fn t() {{ let _ = std::fs::write("{victim}", "owned"); assert!(false); }}'
        ),
        "rs_network": _rust_test(
            f'#[test] fn t() {{ let _ = std::net::TcpStream::connect("127.0.0.1:{port}"); assert!(false); }}'
        ),
        "rs_memory_hog": _rust_test(
            "#[test] fn t() { let v: Vec<Vec<u8>> = (0..64).map(|_| vec![1u8; 1 << 30]).collect();"
            " assert!(v.len() == 0); }"
        ),
        "rs_loop": _rust_test("#[test] fn t() { loop { std::hint::black_box(1); } }"),
        "rs_tamper_binary": _rust_test(tamper),
    }
    fine = {
        f"rs_fine_{i}": _rust_test(f"#[test] fn t{i}() {{ assert_eq!(2 * {i}, {2 * i}); }}")
        for i in range(1, 5)
    }
    assert all(admissible(src) for src in hostile.values())  # all of them share the binary
    programs = [Program("rust", src, name) for name, src in {**hostile, **fine}.items()]
    programs += [Program("rust", fine["rs_fine_1"].replace("2 * 1", "3 * 1"), "rs_wrong")]
    settings = Settings(timeouts=dict(TIMEOUTS, rust=8.0), sandbox=bwrap_usable())
    results = {
        r.key: r for r in run_programs(programs, settings=settings, progress=False, workers=2)
    }
    for name in hostile:
        assert not results[name].passed and results[name].status != "error", results[name]
    assert all(results[name].passed for name in fine), results
    assert not results["rs_wrong"].passed
    assert victim.read_text() == "untouched"
    assert connections() == []
