"""Go programs through shared test binaries: one compile per program, one link per batch.

`go test main_test.go` per program spends most of its time in the go command (loading and hashing
the testify/std dependency graph) and in linking a fresh test binary. Here, before the workers
start, the programs that may safely share a binary (decided by eval/toolchains/gobatch_check.go:
no code of theirs runs before their tests, nothing `go test` treats specially besides
`TestXxx(t *testing.T)`, nothing that sees package or test names) become packages `ob/pK` in a
private GOPATH; one `go build` compiles them all, one `go vet` with `go test`'s analyzer subset
vets them all, and `go test -c` links a driver whose wrapper tests call theirs. Each program then
still runs alone: its own process of the shared binary, `-test.run` selecting its wrappers, in its
own sandbox with the harness's timeout and `go test`'s flags (`-test.paniconexit0`,
`-test.timeout`). Other programs' code is linked in but never runs (no init code is allowed).

Any program that the checker rejects, that fails to compile or vet, or whose batch fails to link
or to start, runs the standard way (`go test main_test.go`), so every compile and vet failure is
judged by `go test` itself. The build steps run sandboxed as the building slot's uid.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from eval.execution import sandbox, toolchains
from eval.execution.base import Program, Settings, Slot

#: `go test`'s vet subset (go 1.19: cmd/go/internal/test/test.go defaultVetFlags).
VET_FLAGS = ["-atomic", "-bool", "-buildtags", "-errorsas", "-ifaceassert", "-nilfunc", "-printf",
             "-stringintconv"]  # fmt: skip
BATCH_SIZE = 200  # programs per linked binary
MIN_PROGRAMS = 4  # below this the standard way is as fast
_FAILED_PACKAGE = re.compile(r"^# ob/p(\d+)$", re.M)


@dataclass(frozen=True)
class BatchEntry:
    """Where one program's tests live: the shared binary and its wrapper test names."""

    binary: Path
    index: int
    tests: tuple[str, ...]

    def argv(self, timeout: float) -> list[str]:
        """`go test`'s flags for the test binary, selecting this program's wrappers only."""
        pattern = "^(" + "|".join(self.tests) + ")$" if self.tests else "^$"
        return [str(self.binary), "-test.paniconexit0", f"-test.timeout={int(timeout)}s",
                f"-test.run={pattern}"]  # fmt: skip

    def restore_names(self, text: bytes) -> bytes:
        """Failure output with the wrapper names turned back into the program's test names."""
        return text.replace(f"__p{self.index}".encode(), b"")


class GoBatch:
    """Builds the shared binaries for a set of Go programs; maps each source to its entry."""

    def __init__(self, settings: Settings, root: Path):
        self.settings = settings
        self.root = root
        self.go = toolchains.tool("go") or "go"
        self.entries: dict[str, BatchEntry] = {}
        self._offsets: dict[int, int] = {}

    def lookup(self, program: Program) -> BatchEntry | None:
        return self.entries.get(program.source)

    # -- build ------------------------------------------------------------------------------

    def build(self, programs: list[Program], slot: Slot) -> None:
        """Compile, vet and link every program that may share a binary (the rest: not at all)."""
        sources = list(dict.fromkeys(p.source for p in programs))
        if len(sources) < MIN_PROGRAMS:
            return
        self._layout(slot)
        accepted = self._check(sources, slot)
        if not accepted:
            return
        packages = self._write_packages(sources, accepted)
        packages = self._surviving(["build"], packages, slot)
        packages = self._surviving(["vet", *VET_FLAGS], packages, slot)
        chunks = [packages[i : i + BATCH_SIZE] for i in range(0, len(packages), BATCH_SIZE)]
        for c, chunk in enumerate(chunks):
            binary = self._link(c, chunk, accepted, slot)
            if binary is None:
                continue
            for k in chunk:
                tests = tuple(f"{name}__p{k}" for name in accepted[k])
                self.entries[sources[k]] = BatchEntry(binary, k, tests)
        _reclaim(self.root)

    def _layout(self, slot: Slot) -> None:
        """gopath/src/ob (packages), bin, tmp and a copy of the warm build cache, all the slot's."""
        if self.root.exists():
            shutil.rmtree(self.root)
        for sub in ("gopath/src/ob", "bin", "tmp", "in"):
            (self.root / sub).mkdir(parents=True)
        shutil.copytree(toolchains.go_cache_template(), self.root / "cache")
        os.chmod(self.root, 0o755)
        slot.hand_over(self.root)

    def _env(self) -> dict[str, str]:
        env = toolchains.go_env(self.root / "cache")
        env["GOPATH"] = f"{self.root / 'gopath'}:{toolchains.GOPATH}"
        env["GOTMPDIR"] = str(self.root / "tmp")
        return env

    def _sandboxed(self, argv: list[str], slot: Slot, timeout: float) -> sandbox.Outcome:
        return sandbox.run(argv, workdir=self.root, timeout=timeout,
                           limits=self.settings.limits("go", cpu=timeout, processes=1024),
                           uid=slot.uid(), env=sandbox.base_env(self.root, self._env()),
                           sandbox=self.settings.sandbox)  # fmt: skip

    def _timeout(self, n: int) -> float:
        return 120.0 + 0.5 * n

    def _check(self, sources: list[str], slot: Slot) -> dict[int, list[str]]:
        """Index -> test names of the programs gobatch_check accepts."""
        paths = []
        for k, source in enumerate(sources):
            path = self.root / "in" / f"{k}.go"
            path.write_text(source, encoding="utf-8")
            paths.append(f"in/{k}.go")
        slot.hand_over(self.root / "in")
        checker = str(toolchains.go_batch_checker())
        out = self._sandboxed([checker, *paths], slot, self._timeout(len(paths)))
        lines = out.stdout.decode("utf-8", "replace").splitlines()
        if out.returncode != 0 or len(lines) != len(sources):
            return {}
        verdicts = [json.loads(line) for line in lines]
        self._offsets = {k: v["name_offset"] for k, v in enumerate(verdicts) if v["ok"]}
        return {k: v.get("tests") or [] for k, v in enumerate(verdicts) if v["ok"]}

    def _write_packages(self, sources: list[str], accepted: dict[int, list[str]]) -> list[int]:
        """Each accepted program as package pK (its `package main` clause renamed) in ob/pK."""
        written = []
        for k in sorted(accepted):
            data = sources[k].encode("utf-8")
            offset = self._offsets[k]
            if data[offset : offset + 4] != b"main":
                continue  # the checker and we disagree on the text: leave it to the standard way
            package = self.root / "gopath/src/ob" / f"p{k}"
            package.mkdir()
            (package / "prog.go").write_bytes(data[:offset] + f"p{k}".encode() + data[offset + 4 :])
            written.append(k)
        return written

    def _surviving(self, command: list[str], packages: list[int], slot: Slot) -> list[int]:
        """The packages `go <command>` reports no error for (none when it fails unattributably)."""
        if not packages:
            return []
        slot.hand_over(self.root / "gopath")
        argv = [self.go, *command, *(f"ob/p{k}" for k in packages)]
        out = self._sandboxed(argv, slot, self._timeout(len(packages)))
        if out.returncode == 0:
            return packages
        text = (out.stdout + out.stderr).decode("utf-8", "replace")
        failed = {int(m) for m in _FAILED_PACKAGE.findall(text)}
        if out.timed_out or not failed:
            return []
        return [k for k in packages if k not in failed]

    def _link(
        self, c: int, chunk: list[int], accepted: dict[int, list[str]], slot: Slot
    ) -> Path | None:
        """Driver package ob/dC wrapping the chunk's tests, linked once; None if it fails."""
        driver = self.root / "gopath/src/ob" / f"d{c}"
        driver.mkdir()
        with_tests = [k for k in chunk if accepted[k]]  # the others are not even linked
        lines = ["package driver", "", "import (", '\t"testing"', ""]
        lines += [f'\tp{k} "ob/p{k}"' for k in with_tests]
        lines += [")", "", "var _ = testing.Verbose", ""]
        for k in with_tests:
            lines += [f"func {t}__p{k}(t *testing.T) {{ p{k}.{t}(t) }}" for t in accepted[k]]
        (driver / "driver_test.go").write_text("\n".join(lines) + "\n", encoding="utf-8")
        slot.hand_over(driver)
        binary = self.root / "bin" / f"d{c}.test"
        argv = [self.go, "test", "-c", "-vet=off", "-o", str(binary), f"ob/d{c}"]
        if self._sandboxed(argv, slot, self._timeout(len(chunk))).returncode != 0:
            return None
        probe = sandbox.run([str(binary), "-test.run=^$"], workdir=self.root, timeout=30.0,
                            limits=self.settings.limits("go", processes=1024), uid=slot.uid(),
                            env=sandbox.base_env(self.root, self._env()),
                            sandbox=self.settings.sandbox)  # fmt: skip
        return binary if probe.returncode == 0 else None


def _reclaim(root: Path) -> None:
    """Take the built tree back from the slot's uid: samples later run as that uid (in slot 0)
    must not be able to replace a binary other programs run from, sandbox or not."""
    uid = os.geteuid()
    for dirpath, _dirs, files in os.walk(root):
        os.chown(dirpath, uid, uid)
        for name in files:
            os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)
