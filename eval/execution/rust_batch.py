"""Rust programs through one shared test binary: one rustc check and one rustc --test per batch.

Per program, `rustc --emit=metadata` + `rustc --test` + link cost ~0.4 s of CPU, most of it
rustc's fixed cost (loading std's metadata, codegen and linking the test harness). Here, before
the workers start, the programs that may safely share a crate (decided by `admissible`: a token
scan refusing everything whose meaning depends on being the crate root or on the binary's
identity) become modules `pK` of one crate (`#[path = "pK.rs"] mod pK;`, each in its own file so
line numbers and diagnostics stay per program). One `rustc --crate-type bin --emit=metadata`
(the `cargo check` step) and one `rustc --test` build them all; modules with errors are dropped and
the rest rebuilt. Each program then still runs alone: its own process of the shared binary, in
its own sandbox with the harness's timeout, `--exact` selecting exactly its own tests (listed by
`--list`). Rust runs no code before `main`, so other programs' code is linked in but never runs.

Refused programs, and those whose module fails to build, run the standard way (their own rustc
check and --test build), so every compile failure is judged by a standalone compile.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from eval.execution import sandbox
from eval.execution.base import Program, Settings, Slot
from eval.execution.go_batch import _reclaim

log = logging.getLogger(__name__)

MIN_PROGRAMS = 4  # below this the standard way is as fast
MAX_ROUNDS = 4  # build attempts per step (each drops the modules that failed)

#: Identifiers whose meaning changes inside a module of a shared binary, or that reach the
#: binary's identity: crate-root paths, symbol names, file paths, argv, thread (= test) names,
#: type paths, panic locations; `unsafe` because undefined behaviour may depend on the layout.
FORBIDDEN = frozenset(
    [
        "crate",
        "extern",
        "macro_export",
        "module_path",
        "file",
        "type_name",
        "type_name_of_val",
        "include",
        "include_str",
        "include_bytes",
        "no_mangle",
        "export_name",
        "link_section",
        "link",
        "link_name",
        "global_allocator",
        "panic_handler",
        "proc_macro",
        "env",
        "args",
        "args_os",
        "current_exe",
        "Command",
        "current",
        "thread_local",
        "Location",
        "location",
        "Backtrace",
        "backtrace",
        "unsafe",
        "asm",
        "global_asm",
        "naked",
        "used",
    ]
)

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
    |(?P<line>//[^\n]*)
    |(?P<block>/\*)
    |(?P<raw>b?r(?P<hashes>\#*)")
    |(?P<str>[bc]?"(?:[^"\\]|\\.)*")
    |(?P<char>b?'(?:[^'\\\n]|\\(?:x[0-9a-fA-F]{2}|u\{[0-9a-fA-F]{1,6}\}|.))')
    |(?P<life>'[A-Za-z_][A-Za-z0-9_]*)
    |(?P<ident>r\#[A-Za-z_][A-Za-z0-9_]*|[A-Za-z_][A-Za-z0-9_]*)
    |(?P<num>[0-9][0-9A-Za-z_]*)
    |(?P<punct>[^"'])""",
    re.X | re.S,
)


def tokens(source: str) -> list[str] | None:
    """Identifiers and punctuation of `source` (comments and literals dropped); None if the
    text is not lexable, or holds inner doc comments (`//!`, `/*!`: crate-level meaning)."""
    out: list[str] = []
    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            return None
        kind, text = m.lastgroup, m.group(0)
        if kind == "hashes":
            kind = "raw"
        if kind in ("line", "block") and text[:3] in ("//!", "/*!"):
            return None
        if kind == "block":
            end = _block_end(source, m.end())
            if end is None:
                return None
            pos = end
            continue
        if kind == "raw":
            close = '"' + m.group("hashes")
            end = source.find(close, m.end())
            if end < 0:
                return None
            pos = end + len(close)
            continue
        if kind in ("ident", "punct"):
            out.append(text[2:] if text.startswith("r#") else text)
        pos = m.end()
    return out


def _block_end(source: str, pos: int) -> int | None:
    """End of a (nested) block comment whose opening `/*` ends at `pos`."""
    depth = 1
    while depth:
        opening, closing = source.find("/*", pos), source.find("*/", pos)
        if closing < 0:
            return None
        if 0 <= opening < closing:
            depth, pos = depth + 1, opening + 2
        else:
            depth, pos = depth - 1, closing + 2
    return pos


def admissible(source: str) -> bool:
    """True when compiling `source` as a module of a shared crate cannot change its verdict.

    Refuses: forbidden identifiers (see FORBIDDEN), inner attributes (`#!`), out-of-line modules
    (`mod x;`), and `super` paths that would climb above the program's own top level.
    """
    toks = tokens(source)
    if toks is None:
        return False
    stack: list[bool] = []  # per open brace: does it open an inline `mod`?
    for i, tok in enumerate(toks):
        if tok in FORBIDDEN:
            return False
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if tok == "#" and nxt == "!":
            return False
        if tok == "mod" and i + 2 < len(toks) and toks[i + 2] == ";":
            return False
        if tok == "{":
            stack.append(i >= 2 and toks[i - 2] == "mod")
        elif tok == "}":
            if not stack:
                return False
            stack.pop()
        elif tok == "super" and (i == 0 or toks[i - 1] != ":") and _climbs(toks, i) > sum(stack):
            return False
    return not stack


def _climbs(toks: list[str], i: int) -> int:
    """How many modules the path `super::super::...` starting at token `i` climbs."""
    climbs = 1
    while toks[i + 1 : i + 4] == [":", ":", "super"]:
        climbs, i = climbs + 1, i + 3
    return climbs


@dataclass(frozen=True)
class RustEntry:
    """Where one program's tests live: the shared binary and the module's test names."""

    binary: Path
    index: int
    tests: tuple[str, ...]

    def argv(self) -> list[str]:
        """The binary with `--exact` filters naming this program's tests (none: match nothing)."""
        return [str(self.binary), "--exact", *(self.tests or (f"p{self.index}::",))]

    def restore_names(self, text: bytes) -> bytes:
        """Output with the module prefix removed from test names, as a standalone run prints."""
        return re.sub(rb"\bp%d::" % self.index, b"", text)


class RustBatch:
    """Builds the shared test binary for a set of Rust programs; maps each source to its entry."""

    def __init__(self, settings: Settings, root: Path, rustc: str, flags: list[str], *,
                 compile_as_root: bool, env: dict[str, str]):  # fmt: skip
        self.settings, self.root, self.rustc, self.flags = settings, root, rustc, flags
        self.compile_as_root, self.env = compile_as_root, env
        self.entries: dict[str, RustEntry] = {}

    def lookup(self, program: Program) -> RustEntry | None:
        return self.entries.get(program.source)

    def build(self, programs: list[Program], slot: Slot) -> None:
        """Check, build and list every admissible program's module (the rest: not at all)."""
        sources = list(dict.fromkeys(p.source for p in programs))
        modules = [k for k, s in enumerate(sources) if admissible(s)]
        if len(modules) < MIN_PROGRAMS:
            return
        if self.root.exists():
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True)
        for k in modules:
            (self.root / f"p{k}.rs").write_text(sources[k], encoding="utf-8")
        check = ["--crate-type", "bin", "--emit=metadata", "-o", "check.rmeta"]
        modules = self._surviving(check, modules, slot)
        modules = self._surviving(["--test", "-o", "batch_test"], modules, slot)
        if not modules:
            return
        if not self.compile_as_root:
            _reclaim(self.root)
        self.root.chmod(0o755)
        binary = self.root / "batch_test"
        listed = self._list(binary, slot)
        if listed is None:
            return
        for k in modules:
            self.entries[sources[k]] = RustEntry(binary, k, tuple(listed.get(k, ())))

    def _compile(self, extra: list[str], modules: list[int], slot: Slot) -> sandbox.Outcome:
        lines = ["fn main() {}"] + [f'#[path = "p{k}.rs"] mod p{k};' for k in modules]
        (self.root / "batch.rs").write_text("\n".join(lines) + "\n", encoding="utf-8")
        if not self.compile_as_root:
            slot.hand_over(self.root)
        # `-A warnings`: only errors matter here, and one warning per unused function of 160
        # modules overflows the sandbox's output cap (the compile is then killed). Lint attributes
        # in the source still win over the command line, so `#[deny(..)]` errors stay errors.
        argv = [self.rustc, "--edition", "2021", "-C", "debuginfo=0", *self.flags, "-A", "warnings",
                "--error-format=json", "batch.rs", *extra]  # fmt: skip
        timeout = self.settings.timeouts["rust"] + 2.0 * len(modules)
        return sandbox.run(argv, workdir=self.root, timeout=timeout,
                           limits=self.settings.limits("rust", cpu=timeout),
                           uid=None if self.compile_as_root else slot.uid(),
                           env=sandbox.base_env(self.root, self.env), sandbox=self.settings.sandbox)  # fmt: skip

    def _surviving(self, extra: list[str], modules: list[int], slot: Slot) -> list[int]:
        """The modules that build with `extra`, dropping those with errors (none if an error
        cannot be attributed to a module, or the build keeps failing)."""
        for _ in range(MAX_ROUNDS):
            if not modules:
                return []
            out = self._compile(extra, modules, slot)
            if out.returncode == 0:
                return modules
            failed = _failed_modules(out.stderr)
            if out.timed_out or failed is None or not failed & set(modules):
                log.warning("rust batch build gave up (%s); its %d programs compile one by one",
                            _why(out), len(modules))  # fmt: skip
                return []
            modules = [k for k in modules if k not in failed]
        return []

    def _list(self, binary: Path, slot: Slot) -> dict[int, list[str]] | None:
        """Module index -> its test names, from the binary's own `--list` (None on failure)."""
        out = sandbox.run([str(binary), "--list", "--format", "terse"], workdir=self.root,
                          timeout=60.0, limits=self.settings.limits("rust", cpu=60), uid=slot.uid(),
                          env=sandbox.base_env(self.root, self.env), sandbox=self.settings.sandbox)  # fmt: skip
        if out.returncode != 0:
            return None
        listed: dict[int, list[str]] = {}
        for line in out.stdout.decode("utf-8", "replace").splitlines():
            m = re.fullmatch(r"p(\d+)::(\S+): test", line)
            if m is None:
                if line.endswith(": test") or line.endswith(": bench"):
                    return None  # a name we cannot attribute: do not guess
                continue
            listed.setdefault(int(m.group(1)), []).append(f"p{m.group(1)}::{m.group(2)}")
        return listed


def _why(out: sandbox.Outcome) -> str:
    """A short reason for a failed batch build, for the log."""
    if out.timed_out:
        return "timed out"
    if out.output_overflow:
        return "output over the sandbox's cap"
    return f"exit status {out.returncode}, an error not attributable to one program"


def _failed_modules(stderr: bytes) -> set[int] | None:
    """Modules named by rustc's error diagnostics (JSON lines); None if an error names none."""
    failed: set[int] = set()
    for line in stderr.decode("utf-8", "replace").splitlines():
        try:
            diag = json.loads(line)
        except ValueError:
            continue
        if not isinstance(diag, dict) or diag.get("level") not in (
            "error",
            "error: internal compiler error",
        ):
            continue
        if str(diag.get("message", "")).startswith("aborting due to"):
            continue
        named = {int(k) for k in re.findall(r'"file_name":\s*"p(\d+)\.rs"', line)}
        if not named:
            return None
        failed |= named
    return failed
