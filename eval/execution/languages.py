"""The languages table: how each language's programs are compiled, run and judged.

Every language runs through one executor shape (eval/execution/executors.py): write the program
to `source` in a fresh work dir, run the `compile` steps (one sandboxed shell call, each step only
if the previous one succeeded), then the `run` step, and judge the run with `passed`. Commands are
templates: `{name}` is filled from the entry's `tools` (prepared once per run: tool paths, prebuilt
artefacts, flags; a whole-argument `{name}` holding a list becomes that many arguments) and from
`{timeout_s}` (the program's timeout in whole seconds). Each rule is the reference harness's:

| language | how (fast)                                                     | passes when              |
| python   | fork of a warm parent (python_zygote.py), exec(program, {})     | no exception             |
| cpp      | g++ -std=c++11 -include <precompiled harness header>, gold ld  | ./a.out exits 0          |
| js       | node test.js, js-md5 on NODE_PATH                              | exit 0, no stdout/stderr |
| java     | long-lived in-process javac (JavaCompileServer), fresh JVM run | java Main exits 0        |
| go       | shared test binaries (go_batch.py), else go test main_test.go | exit 0 (build, vet, tests) |
| rust     | shared test binary (rust_batch.py), else rustc check + --test | test binary exits 0      |

Adding a language: one `Language(...)` in `_ENTRIES` (its commands, file name, timeout) plus its
program template in eval/programs.py; a new toolchain also needs its check in
toolchains.missing_for. See docs/eval_execution.md, "Adding a language".
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from eval.execution import sandbox, toolchains
from eval.execution.base import Settings
from eval.execution.go_batch import GoBatch
from eval.execution.rust_batch import RustBatch
from eval.execution.services import JavacServer, PythonZygote, Step

if TYPE_CHECKING:
    from eval.execution.executors import Executor

Argv = tuple[str, ...]
#: What `{name}` in a command or environment template stands for (None: unavailable / leave out).
Values = dict[str, Any]


def exit_zero(outcome: sandbox.Outcome) -> bool:
    """The usual rule: the run step exits 0."""
    return outcome.returncode == 0


def silent_exit_zero(outcome: sandbox.Outcome) -> bool:
    """JS's rule: the harness fails a program that writes anything (console.assert only prints
    "Assertion failed"); we also require exit 0 so a silent crash never passes."""
    return outcome.returncode == 0 and not outcome.stderr and not outcome.stdout


def no_tools(settings: Settings) -> Values:
    return {}


@dataclass(frozen=True)
class SharedBinary:
    """The programs of one run may share a test binary (go_batch.py, rust_batch.py).

    `build(executor, root)` makes the batch object (its `build(programs, slot)` compiles the
    admissible programs into `root`, its `lookup(program)` gives an entry or None); `argv(entry,
    timeout)` is the command running that one program's tests from the shared binary.
    """

    build: Callable[[Executor, Path], Any]
    argv: Callable[[Any, float], list[str]]


@dataclass(frozen=True)
class Language:
    """One row of the table. Only `name`, `timeout`, `source` and `run` are required."""

    name: str
    timeout: float  # the harness's wall timeout (s) for each step; Settings.timeouts overrides
    source: str | None  # the file the program is written to in its work dir (None: not written)
    run: Argv | Step  # the run step's command template, or a service that runs the program
    compile: tuple[Argv, ...] | Step = ()  # compile steps' templates, or a compile service
    tools: Callable[[Settings], Values] = no_tools  # once per run: the values commands name
    env: Mapping[str, str] = field(default_factory=dict)  # extra environment, templates too
    passed: Callable[[sandbox.Outcome], bool] = exit_zero  # the verdict rule for the run step
    processes: int | None = None  # RLIMIT_NPROC when Settings.processes is too few (JVM, go)
    #: (name, template): a per-slot writable copy of the template directory, bound read-write
    #: into the steps and named `{name}` (Go's warm build cache)
    slot_copy: tuple[str, Callable[[], Path]] | None = None
    #: a failed run step whose output says so is a compile error (`go test` builds and runs)
    run_build_failed: Callable[[sandbox.Outcome], bool] | None = None
    #: compile as the sandbox's own root (then give the work dir to the slot's run uid)
    compile_as_root: Callable[[Values], bool] | None = None
    shared_binary: SharedBinary | None = None
    toolchain: str | None = None  # whose toolchains.missing_for check applies (None: name's)

    def __post_init__(self) -> None:
        where = f"languages table, entry {self.name!r}"
        if not self.name or self.timeout <= 0:
            raise ValueError(f"{where}: needs a name and a positive timeout")
        if not isinstance(self.run, Step) and not _is_argv(self.run):
            raise ValueError(f"{where}: run must be a Step or a non-empty tuple of str")
        if not isinstance(self.compile, Step) and not (
            isinstance(self.compile, tuple) and all(_is_argv(step) for step in self.compile)
        ):
            raise ValueError(
                f"{where}: compile must be a Step or a tuple of command lines (tuples of str)"
            )

    @property
    def checks(self) -> str:
        """The language whose toolchain check (toolchains.missing_for) covers this one."""
        return self.toolchain or self.name


def _is_argv(value: object) -> bool:
    return isinstance(value, tuple) and bool(value) and all(isinstance(a, str) for a in value)


# -- the tools each entry's commands name --------------------------------------------------------


def _cpp_tools(settings: Settings) -> Values:
    header = str(toolchains.cpp_prelude())
    return {"header": header, "gxx": toolchains.tool("g++"), "cpp_flags": list(toolchains.CPP_FLAGS),
            "ld": ["-fuse-ld=gold"] if shutil.which("ld.gold") else []}  # fmt: skip


def _js_tools(settings: Settings) -> Values:
    return {"node": toolchains.tool("node"), "node_path": str(toolchains.node_path())}


def _java_tools(settings: Settings) -> Values:
    classpath = str(toolchains.java_server_classpath())
    return {"classpath": classpath, "java": toolchains.tool("java")}


def _go_tools(settings: Settings) -> Values:
    return {"go": toolchains.tool("go")}


def _go_build_failed(outcome: sandbox.Outcome) -> bool:
    text = (outcome.stdout + outcome.stderr).decode("utf-8", "replace")
    return "[build failed]" in text or "[setup failed]" in text or "vet:" in text


def _rust_tools(settings: Settings) -> Values:
    seed = None if settings.rand_seed is None else str(settings.rand_seed)
    return {
        "rustc": toolchains.real_rustc(),
        "externs": toolchains.rust_externs(),
        "rand_seed": seed,
    }


def _rust_compiles_as_root(values: Values) -> bool:
    """rustup's toolchain lives under /root (0700): compile as the sandbox's own (namespaced)
    root there, run the test binary as the slot's unprivileged uid."""
    return not toolchains._usable_by_others(values["rustc"])


def _rust_batch(executor: Executor, root: Path) -> RustBatch:
    values = executor.values
    return RustBatch(executor.settings, root, values["rustc"], values["externs"],
                     compile_as_root=executor.compile_as_root, env=executor.env(values))  # fmt: skip


_RUSTC = ("{rustc}", "--edition", "2021", "-C", "debuginfo=0", "{externs}", "test.rs")

# -- the table ------------------------------------------------------------------------------------
# Timeouts: the reference harness's, per language (octopack.md section 4).

_ENTRIES = (
    Language("python", timeout=10.0, source=None, run=PythonZygote()),
    Language(
        "cpp", timeout=60.0, source="test.cpp", tools=_cpp_tools,
        compile=(("{gxx}", "{cpp_flags}", "-include", "{header}", "test.cpp", "{ld}", "-o", "a.out",
                  "-lcrypto", "-lssl"),),
        run=("./a.out",),
    ),
    Language(
        "js", timeout=10.0, source="test.js", tools=_js_tools, run=("{node}", "test.js"),
        env={"NODE_PATH": "{node_path}"}, passed=silent_exit_zero,
    ),
    Language(
        "java", timeout=10.0, source="Main.java", tools=_java_tools, compile=JavacServer(),
        run=("{java}", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-Xmx2g",
             "-cp", "classes", "Main"),
        processes=1024,
    ),
    Language(
        "go", timeout=20.0, source="main_test.go", tools=_go_tools,
        run=("{go}", "test", "-timeout={timeout_s}s", "main_test.go"),
        env=toolchains.go_env(Path("{gocache}")), processes=1024,
        slot_copy=("gocache", toolchains.go_cache_template), run_build_failed=_go_build_failed,
        shared_binary=SharedBinary(build=lambda executor, root: GoBatch(executor.settings, root),
                                   argv=lambda entry, timeout: entry.argv(timeout)),
    ),
    Language(
        "rust", timeout=300.0, source="test.rs", tools=_rust_tools,
        # `cargo check --bin test` (the non-test build must compile too), then `cargo test`.
        compile=((*_RUSTC, "--crate-type", "bin", "--emit=metadata", "-o", "check.rmeta"),
                 (*_RUSTC, "--test", "-o", "test_bin")),
        run=("./test_bin",),
        env={"RUST_BACKTRACE": "0", "OCTOJAX_RAND_SEED": "{rand_seed}"},
        compile_as_root=_rust_compiles_as_root,
        shared_binary=SharedBinary(build=_rust_batch, argv=lambda entry, timeout: entry.argv()),
    ),
)  # fmt: skip

LANGUAGE_TABLE: dict[str, Language] = {entry.name: entry for entry in _ENTRIES}


def default_timeouts() -> dict[str, float]:
    """Each table language's timeout (seconds): what `Settings()` uses."""
    return {name: entry.timeout for name, entry in LANGUAGE_TABLE.items()}


DEFAULT_TIMEOUTS = default_timeouts()
