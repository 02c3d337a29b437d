"""Benchmark: fast sandboxed executors vs the reference harness's way, same programs, one command.

Harness way (as bigcode-evaluation-harness's code_eval_octopack runs them, minus its Docker image):
python `python3 file` per sample; cpp `g++ -std=c++11 test.cpp -lcrypto -lssl` + ./a.out; js
`node test.js`; java `javac Main.java` + `java -cp . Main` with one worker; go `go test main_test.go`
per sample (GOPATH testify); rust one cargo crate, `cargo check` + `cargo test` per sample, one
worker. Python/cpp/js/go use 2 workers (this machine's cores). Timeouts as the harness's; timed-out
process groups are killed. Both sides use the same rand crate seed for Rust/32 (OCTOJAX_RAND_SEED).

Usage:  python bench/eval_execution_bench.py [--limit N] [--fields canonical_solution buggy_solution]
            [--languages python js ...] [--skip-harness] [--out bench/results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eval.execution import (  # noqa: E402
    DEFAULT_TIMEOUTS,
    Program,
    Settings,
    run_programs,
    toolchains,  # noqa: E402
)
from eval.execution.sandbox import bwrap_usable  # noqa: E402
from eval.programs import assemble_program  # noqa: E402

DATA = ROOT.parent / "shared" / "humanevalpack"
LANGS = ["python", "js", "cpp", "java", "go", "rust"]
HARNESS_WORKERS = {"python": 2, "cpp": 2, "js": 2, "go": 2, "java": 1, "rust": 1}
SEED = "2"


def _run(argv, cwd, timeout, env=None):
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)  # fmt: skip
    try:
        out, err = proc.communicate(timeout=timeout)
        return proc.returncode, out, err
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return None, b"", b"timeout"


class Harness:
    """The reference harness's per-sample commands."""

    def __init__(self, work: Path):
        self.work = work
        self.env = dict(os.environ, NODE_PATH=str(toolchains.node_path()), OCTOJAX_RAND_SEED=SEED,
                        GO111MODULE="off", GOPATH=toolchains.GOPATH, GOPROXY="off",
                        GOCACHE=str(work / "gocache"))  # fmt: skip
        self.crate = work / "rust"
        (self.crate / "src/bin").mkdir(parents=True)
        (self.crate / ".cargo").mkdir()
        manifest = (toolchains.SUPPORT_DIR / "Cargo.toml").read_text()
        manifest = manifest.replace("RAND04_PATH", str(toolchains.SUPPORT_DIR / "rand04"))
        manifest = manifest.replace('name = "humaneval_crates"', 'name = "rust"').replace(
            '[lib]\npath = "crates_lib.rs"\n', ""
        )
        (self.crate / "Cargo.toml").write_text(manifest)
        shutil.copy(toolchains.SUPPORT_DIR / "cargo-config.toml", self.crate / ".cargo/config.toml")
        self.cargo = toolchains.tool("cargo")

    def run(self, program: Program, timeout: float) -> bool:
        lang = program.language
        if lang == "rust":
            (self.crate / "src/bin/test.rs").write_text(program.source)
            rc, _, _ = _run([self.cargo, "check", "--bin", "test", "--message-format", "json"], self.crate, timeout,
                            self.env)  # fmt: skip
            if rc != 0:
                return False
            rc, _, _ = _run([self.cargo, "test", "--bin", "test", "--message-format", "json"], self.crate, timeout,
                            self.env)  # fmt: skip
            return rc == 0
        with tempfile.TemporaryDirectory(dir=self.work) as d:
            if lang == "python":
                Path(d, "p.py").write_text(program.source)
                rc, _, _ = _run([sys.executable, "p.py"], d, timeout, self.env)
                return rc == 0
            if lang == "js":
                Path(d, "test.js").write_text(program.source)
                rc, out, err = _run(["node", "test.js"], d, timeout, self.env)
                return rc is not None and not out and not err
            if lang == "cpp":
                Path(d, "test.cpp").write_text(program.source)
                rc, _, _ = _run(
                    ["g++", "-std=c++11", "test.cpp", "-lcrypto", "-lssl"], d, timeout, self.env
                )
                return rc == 0 and _run(["./a.out"], d, timeout, self.env)[0] == 0
            if lang == "java":
                Path(d, "Main.java").write_text(program.source)
                rc, _, _ = _run(["javac", "-encoding", "UTF-8", "Main.java"], d, timeout, self.env)
                return rc == 0 and _run(["java", "-cp", ".", "Main"], d, timeout, self.env)[0] == 0
            if lang == "go":
                Path(d, "main_test.go").write_text(program.source)
                return (
                    _run(
                        ["go", "test", f"-timeout={int(timeout)}s", "main_test.go"],
                        d,
                        timeout,
                        self.env,
                    )[0]
                    == 0
                )
        raise ValueError(lang)


def build_programs(languages, fields, limit):
    programs = []
    for lang in languages:
        with open(DATA / f"{lang}.jsonl", encoding="utf-8") as fh:
            rows = [json.loads(line) for line in fh][:limit]
        for field in fields:
            for r in rows:
                src = assemble_program(lang, r["prompt"] + r[field], r)
                programs.append(Program(lang, src, f"{r['task_id']}#{field}"))
    return programs


def loadavg() -> str:
    """The machine's load average (`/proc/loadavg`): the figures only compare within one run."""
    try:
        return Path("/proc/loadavg").read_text().strip()
    except OSError:
        return "unknown"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--languages", nargs="+", default=LANGS)
    ap.add_argument("--fields", nargs="+", default=["canonical_solution", "buggy_solution"])
    ap.add_argument("--limit", type=int, default=164)
    ap.add_argument("--skip-harness", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    programs = build_programs(args.languages, args.fields, args.limit)
    report: dict = {
        "programs": len(programs),
        "fields": args.fields,
        "languages": args.languages,
        "limit": args.limit,
    }
    toolchains.prepare(args.languages)  # one-time artefacts, outside the timing
    report["loadavg_start"] = loadavg()
    print(f"load average at start: {report['loadavg_start']}", flush=True)

    settings = Settings(
        timeouts=dict(DEFAULT_TIMEOUTS), sandbox=bwrap_usable(), rand_seed=int(SEED)
    )
    fast: dict[str, dict] = {}
    for field in args.fields:
        subset = [p for p in programs if p.key.endswith("#" + field)]
        for lang in args.languages:
            lp = [p for p in subset if p.language == lang]
            t = time.monotonic()
            res = run_programs(lp, settings=settings, progress=False, workers=2)
            fast[f"{lang}/{field}"] = {"seconds": time.monotonic() - t, "passed": sum(r.passed for r in res),
                                       "verdicts": {r.key: r.passed for r in res},
                                       "statuses": dict(Counter(r.status for r in res))}  # fmt: skip
            print(
                f"fast    {lang:7s} {field:18s} {fast[f'{lang}/{field}']['seconds']:7.1f} s  "
                f"passed {fast[f'{lang}/{field}']['passed']}/{len(lp)}",
                flush=True,
            )
    report["fast"] = fast
    if not args.skip_harness:
        harness: dict[str, dict] = {}
        with tempfile.TemporaryDirectory(prefix="harness-bench-") as work:
            h = Harness(Path(work))
            for field in args.fields:
                subset = [p for p in programs if p.key.endswith("#" + field)]
                for lang in args.languages:
                    lp = [p for p in subset if p.language == lang]
                    t = time.monotonic()
                    with ThreadPoolExecutor(HARNESS_WORKERS[lang]) as pool:
                        verdicts = list(
                            pool.map(lambda p: h.run(p, DEFAULT_TIMEOUTS[p.language]), lp)
                        )
                    harness[f"{lang}/{field}"] = {"seconds": time.monotonic() - t, "passed": sum(verdicts),
                                                  "verdicts": {p.key: v for p, v in zip(lp, verdicts)}}  # fmt: skip
                    print(
                        f"harness {lang:7s} {field:18s} {harness[f'{lang}/{field}']['seconds']:7.1f} s  "
                        f"passed {sum(verdicts)}/{len(lp)}",
                        flush=True,
                    )
        report["harness"] = harness
        mismatches = [
            k
            for key in fast
            for k, v in fast[key]["verdicts"].items()
            if harness[key]["verdicts"][k] != v
        ]
        report["mismatches"] = mismatches
        tf = sum(v["seconds"] for v in fast.values())
        th = sum(v["seconds"] for v in harness.values())
        report["total_fast_s"], report["total_harness_s"] = tf, th
        print(
            f"TOTAL fast {tf:.1f} s, harness-style {th:.1f} s, speed-up {th / tf:.2f}x, "
            f"verdict mismatches: {mismatches}"
        )
    report["loadavg_end"] = loadavg()
    print(f"load average at end: {report['loadavg_end']}", flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
