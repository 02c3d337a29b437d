"""Where the compilers, runtimes and prebuilt artefacts live; checks and one-time preparation.

Prebuilt once into OCTOJAX_EVAL_HOME (default /opt/octojax-eval) by `prepare()` (run by
eval/setup_toolchains.sh, and lazily on first use): the C++ precompiled header of the harness's
includes, the Rust crates (regex, md5 from Debian; rand 0.4 API from eval/toolchains/rand04), the
Java compile server class, and js-md5 under node_modules.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from eval.programs import CPP_HEADER, LANGUAGES

SUPPORT_DIR = Path(__file__).resolve().parent.parent / "toolchains"
SETUP_SCRIPT = "bash eval/setup_toolchains.sh"
GOPATH = "/usr/share/gocode"
DEBIAN_CARGO_REGISTRY = "/usr/share/cargo/registry"


class ToolchainError(RuntimeError):
    """A compiler, runtime or library needed for execution is missing."""


def eval_home() -> Path:
    return Path(os.environ.get("OCTOJAX_EVAL_HOME", "/opt/octojax-eval"))


def _which_rust(tool: str) -> str | None:
    """rustup's toolchain (newer, what the probe used) when present, else Debian's."""
    for candidate in (Path.home() / ".cargo/bin" / tool, Path("/root/.cargo/bin") / tool):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return shutil.which(tool)


def tool(name: str) -> str | None:
    if name in ("rustc", "cargo"):
        return _which_rust(name)
    if name == "python":
        return sample_python()
    return shutil.which(name)


def _usable_by_others(path: str) -> bool:
    """True when every directory above `path` is traversable by unprivileged sandbox uids."""
    p = Path(path).resolve()
    return all(parent.stat().st_mode & 0o001 for parent in p.parents)


def sample_python() -> str | None:
    """The interpreter samples run in: $OCTOJAX_EVAL_PYTHON, else Debian's python3 (with
    python3-numpy), else this interpreter. It must import numpy and be reachable by the
    sandbox's unprivileged uids (pyenv under /root is not)."""
    candidates = [os.environ.get("OCTOJAX_EVAL_PYTHON"), "/usr/bin/python3", sys.executable]
    for candidate in candidates:
        if not candidate or not Path(candidate).is_file():
            continue
        if os.geteuid() == 0 and not _usable_by_others(candidate):
            continue
        res = subprocess.run([candidate, "-c", "import numpy"], capture_output=True)
        if res.returncode == 0:
            return candidate
    return None


def real_rustc() -> str | None:
    """The rustc binary itself (not rustup's proxy, which needs RUSTUP_HOME and costs a hop)."""
    rustc = tool("rustc")
    if rustc is None:
        return None
    res = subprocess.run([rustc, "--print", "sysroot"], capture_output=True, text=True)
    if res.returncode == 0:
        candidate = Path(res.stdout.strip()) / "bin" / "rustc"
        if candidate.is_file():
            return str(candidate)
    return rustc


def node_path() -> Path:
    return eval_home() / "node_modules"


def cpp_dir() -> Path:
    return eval_home() / "cpp"


def rust_dir() -> Path:
    return eval_home() / "rust"


def java_dir() -> Path:
    return eval_home() / "java"


def go_cache_root() -> Path:
    return eval_home() / "go-cache"


def missing_for(language: str) -> list[str]:
    """Human-readable names of what `language` needs and this machine lacks."""
    problems: list[str] = []

    def need(name: str, what: str) -> None:
        if tool(name) is None:
            problems.append(f"{what} (`{name}` not on PATH)")

    if language == "python":
        if sample_python() is None:
            problems.append(
                "a python3 with numpy reachable by the sandbox users (python3-numpy; the harness's "
                "import list imports numpy; or set OCTOJAX_EVAL_PYTHON)"
            )
    elif language == "js":
        need("node", "Node.js")
        if not (node_path() / "js-md5" / "package.json").is_file():
            problems.append(f"npm package js-md5 under {node_path()} (JS/162)")
    elif language == "java":
        need("javac", "JDK javac")
        need("java", "Java runtime")
    elif language == "cpp":
        need("g++", "g++")
        if not Path("/usr/include/boost/any.hpp").is_file():
            problems.append("boost headers (libboost-dev; CPP/22, CPP/137, every program's header)")
        if not Path("/usr/include/openssl/md5.h").is_file():
            problems.append("OpenSSL headers and libcrypto (libssl-dev; CPP/162)")
    elif language == "go":
        need("go", "Go toolchain (golang-go)")
        if not Path(GOPATH, "src/github.com/stretchr/testify/assert").is_dir():
            problems.append(f"testify in {GOPATH} (golang-github-stretchr-testify-dev)")
    elif language == "rust":
        need("rustc", "rustc")
        need("cargo", "cargo (builds the crates once)")
        for crate in ("regex-1", "md5-0.7", "aho-corasick", "memchr"):
            if not any(Path(DEBIAN_CARGO_REGISTRY).glob(crate + "*")):
                problems.append(f"Rust crate {crate} in {DEBIAN_CARGO_REGISTRY} (librust-*-dev)")
    else:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return problems


def check_toolchains(languages: Iterable[str]) -> None:
    """Raise ToolchainError naming each missing compiler/runtime/library and the setup script."""
    problems = [f"{lang}: {p}" for lang in languages for p in missing_for(lang)]
    if problems:
        raise ToolchainError(
            "HumanEvalPack execution cannot run; missing:\n  - "
            + "\n  - ".join(problems)
            + f"\nInstall everything (as root, from the repository root) with: {SETUP_SCRIPT}"
        )


@contextlib.contextmanager
def _locked(name: str):
    """Serialise preparation across processes (tests and CLI may start at once)."""
    eval_home().mkdir(parents=True, exist_ok=True)
    with open(eval_home() / f".{name}.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _stamp(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _version(argv: list[str]) -> str:
    res = subprocess.run(argv, capture_output=True, text=True)
    return (res.stdout + res.stderr).strip().splitlines()[0] if res.returncode == 0 else "?"


def _make_world_readable(root: Path) -> None:
    """Sandboxed users (unprivileged uids) must read and traverse the prebuilt artefacts."""
    for dirpath, _dirnames, filenames in os.walk(root):
        os.chmod(dirpath, 0o755)
        for f in filenames:
            p = Path(dirpath, f)
            os.chmod(p, 0o755 if os.access(p, os.X_OK) else 0o644)
    parent = root
    while parent != parent.parent:
        with contextlib.suppress(PermissionError):
            mode = parent.stat().st_mode & 0o777
            if mode & 0o005 != 0o005:
                os.chmod(parent, mode | 0o005)
        parent = parent.parent
        if parent == Path("/"):
            break


# --- C++ ------------------------------------------------------------------------------------

CPP_FLAGS = ["-std=c++11"]


def cpp_prelude() -> Path:
    """The harness's 20 includes as a precompiled header (used with `-include`); built once."""
    gxx = tool("g++") or "g++"
    directory = cpp_dir()
    header = directory / "humaneval_prelude.h"
    gch = directory / "humaneval_prelude.h.gch"
    text = "\n".join(line for line in CPP_HEADER if line.startswith("#include")) + "\n"
    stamp = _stamp(text, _version([gxx, "--version"]), " ".join(CPP_FLAGS))
    stamp_file = directory / "stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp and gch.is_file():
        return header
    with _locked("cpp"):
        if stamp_file.is_file() and stamp_file.read_text() == stamp and gch.is_file():
            return header
        directory.mkdir(parents=True, exist_ok=True)
        header.write_text(text)
        tmp = directory / "humaneval_prelude.h.gch.tmp"
        subprocess.run(
            [gxx, *CPP_FLAGS, "-x", "c++-header", str(header), "-o", str(tmp)],
            check=True,
            capture_output=True,
        )
        os.replace(tmp, gch)
        stamp_file.write_text(stamp)
        _make_world_readable(directory)
    return header


# --- Rust -----------------------------------------------------------------------------------


def rust_crates() -> Path:
    """Build rand (0.4 API), regex and md5 once with cargo offline; returns the deps directory."""
    cargo, rustc = tool("cargo"), tool("rustc")
    if cargo is None or rustc is None:
        raise ToolchainError(f"rustc/cargo missing; run {SETUP_SCRIPT}")
    directory = rust_dir()
    sources = [
        SUPPORT_DIR / "Cargo.toml",
        SUPPORT_DIR / "rand04/src/lib.rs",
        SUPPORT_DIR / "rand04/Cargo.toml",
    ]
    stamp = _stamp(_version([rustc, "--version"]), *(p.read_text() for p in sources))
    deps = directory / "target/debug/deps"
    stamp_file = directory / "stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return deps
    with _locked("rust"):
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            return deps
        if directory.exists():
            shutil.rmtree(directory)
        (directory / ".cargo").mkdir(parents=True)
        shutil.copytree(SUPPORT_DIR / "rand04", directory / "rand04")
        manifest = (
            (SUPPORT_DIR / "Cargo.toml")
            .read_text()
            .replace("RAND04_PATH", str(directory / "rand04"))
        )
        (directory / "Cargo.toml").write_text(manifest)
        shutil.copy(SUPPORT_DIR / "crates_lib.rs", directory / "crates_lib.rs")
        shutil.copy(SUPPORT_DIR / "cargo-config.toml", directory / ".cargo/config.toml")
        env = dict(os.environ, CARGO_HOME=str(directory / "cargo-home"), RUSTC=rustc)
        res = subprocess.run(
            [cargo, "build", "--offline", "--quiet"],
            cwd=directory,
            env=env,
            capture_output=True,
            text=True,
        )
        if res.returncode != 0:
            raise ToolchainError(
                f"building the Rust crates in {directory} failed:\n{res.stderr[-3000:]}"
            )
        stamp_file.write_text(stamp)
        _make_world_readable(directory)
    return deps


def rust_externs() -> list[str]:
    """`--extern` and `-L` flags linking the prebuilt crates into a program."""
    deps = rust_crates()
    flags = ["-L", f"dependency={deps}"]
    for crate in ("rand", "regex", "md5"):
        rlibs = sorted(deps.glob(f"lib{crate}-*.rlib"))
        if not rlibs:
            raise ToolchainError(f"no lib{crate}-*.rlib in {deps}; rerun {SETUP_SCRIPT}")
        flags += ["--extern", f"{crate}={rlibs[0]}"]
    return flags


# --- Java -----------------------------------------------------------------------------------


def java_server_classpath() -> Path:
    """Compile JavaCompileServer.java once; returns the directory holding its class."""
    source = SUPPORT_DIR / "JavaCompileServer.java"
    javac = tool("javac") or "javac"
    directory = java_dir()
    stamp = _stamp(source.read_text(), _version([javac, "-version"]))
    stamp_file = directory / "stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp:
        return directory
    with _locked("java"):
        if stamp_file.is_file() and stamp_file.read_text() == stamp:
            return directory
        directory.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [javac, "-encoding", "UTF-8", "-d", str(directory), str(source)],
            check=True,
            capture_output=True,
        )
        stamp_file.write_text(stamp)
        _make_world_readable(directory)
    return directory


GO_WARMUP = """package main

import (
    "testing"
    "github.com/stretchr/testify/assert"
    "fmt"
    "math"
    "strings"
    "strconv"
    "sort"
)

func TestWarm(t *testing.T) {
    assert := assert.New(t)
    assert.Equal("2A1", fmt.Sprint(math.Sqrt(4))+strings.ToUpper("a")+strconv.Itoa(1))
    sort.Ints([]int{2, 1})
}
"""


def go_env(cache: Path) -> dict[str, str]:
    """GOPATH mode against Debian's testify; never the network."""
    return {"GO111MODULE": "off", "GOPATH": GOPATH, "GOCACHE": str(cache), "GOPROXY": "off", "GOFLAGS": "",
            "CGO_ENABLED": "0"}  # fmt: skip


def go_cache_template() -> Path:
    """A Go build cache warmed with testify and the common std packages (copied per worker)."""
    go = tool("go") or "go"
    template = go_cache_root() / "template"
    stamp = _stamp(GO_WARMUP, _version([go, "version"]))
    stamp_file = go_cache_root() / "stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp and template.is_dir():
        return template
    with _locked("go"):
        if stamp_file.is_file() and stamp_file.read_text() == stamp and template.is_dir():
            return template
        if go_cache_root().exists():
            shutil.rmtree(go_cache_root())
        work = go_cache_root() / "warmup"
        work.mkdir(parents=True)
        (work / "main_test.go").write_text(GO_WARMUP)
        env = dict(os.environ, HOME=str(work), **go_env(template))
        res = subprocess.run(
            [go, "test", "main_test.go"], cwd=work, env=env, capture_output=True, text=True
        )
        if res.returncode != 0:
            raise ToolchainError(
                f"warming the Go build cache failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}"
            )
        shutil.rmtree(work)
        stamp_file.write_text(stamp)
        _make_world_readable(go_cache_root())
    return template


def go_batch_checker() -> Path:
    """The gobatch_check tool (eval/toolchains/gobatch_check.go), built once with the std library."""
    go = tool("go") or "go"
    source = SUPPORT_DIR / "gobatch_check.go"
    directory = eval_home() / "go-batch"
    binary = directory / "gobatch_check"
    stamp = _stamp(source.read_text(), _version([go, "version"]))
    stamp_file = directory / "stamp"
    if stamp_file.is_file() and stamp_file.read_text() == stamp and binary.is_file():
        return binary
    with _locked("go-batch"):
        if stamp_file.is_file() and stamp_file.read_text() == stamp and binary.is_file():
            return binary
        directory.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ, HOME=str(directory), **go_env(directory / "cache"))
        res = subprocess.run([go, "build", "-o", str(binary), str(source)], cwd=directory, env=env,
                             capture_output=True, text=True)  # fmt: skip
        shutil.rmtree(directory / "cache", ignore_errors=True)
        if res.returncode != 0:
            raise ToolchainError(f"building {source.name} failed:\n{res.stderr[-2000:]}")
        stamp_file.write_text(stamp)
        _make_world_readable(directory)
    return binary


def prepare(languages: Iterable[str] = LANGUAGES) -> None:
    """Build every shared artefact the given languages need (idempotent, cheap when current)."""
    languages = list(languages)
    check_toolchains(languages)
    eval_home().mkdir(parents=True, exist_ok=True)
    _make_world_readable(eval_home())
    if "cpp" in languages:
        cpp_prelude()
    if "rust" in languages:
        rust_crates()
    if "java" in languages:
        java_server_classpath()
    if "go" in languages:
        go_cache_template()
        go_batch_checker()
