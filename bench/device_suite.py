"""The device suite's driver (bench/device_suite.sh runs it after the offline install).

Runs the parts in order, each as a process of its own in a time box (bench/timebox.py), all under
one overall budget: a part gets its nominal limit, cut so that every later part keeps at least its
reserve. After every part it rewrites OUT/results.json and OUT/summary.md, so whatever finished
lands even if the machine is taken away mid-run. The benchmarks write their own JSON into OUT as
soon as each figure exists (train.json, decode.json, workload.json); every part's output goes to
OUT/suite.log. bench/README.md documents the files and keys.

    python bench/device_suite.py run --out DIR [--dry-run] [--device-dir .device] [--budget S]
    python bench/device_suite.py env --json FILE [--device-dir .device]   # the environment part
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from device_report import env_report, gpu_test_results, write_summary  # noqa: E402
from timebox import TIMED_OUT, describe, run_boxed  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
PART_NAMES = ("environment", "gpu_tests", "train", "decode", "workload")


@dataclass
class Part:
    """One command of the suite: nominal and reserved seconds; the benchmark's own JSON file."""

    name: str
    nominal_s: float
    reserve_s: float
    json_name: str | None = None
    inner: dict = field(default_factory=dict)  # time boxes inside the command: {flag: seconds}


# GPU limits: the sum of what each part should need on one H200, under an 8-minute budget.
REAL = [
    Part("environment", 45, 20, "env.json"),
    Part("gpu_tests", 75, 30),
    Part("train", 200, 60, "train.json", {"--octojax-timeout": 110, "--hf-timeout": 80}),
    Part("decode", 160, 50, "decode.json", {"--hf-timeout": 90}),
    Part("workload", 130, 60, "workload.json"),
]
# CPU dry run: tiny shapes, but a slow, shared machine.
DRY = [
    Part("environment", 120, 30, "env.json"),
    Part("gpu_tests", 180, 30),
    Part("train", 400, 60, "train.json", {"--octojax-timeout": 200, "--hf-timeout": 180}),
    Part("decode", 400, 60, "decode.json", {"--hf-timeout": 240}),
    Part("workload", 400, 60, "workload.json"),
]


def part_command(part: Part, ctx: dict, inner: dict) -> list[str]:
    """The command line of one part (dry: the same flags with tiny shapes)."""
    py, out, dry = ctx["python"], ctx["out"], ctx["dry_run"]
    boxes = [str(x) for flag, s in inner.items() for x in (flag, round(s))]
    if part.name == "environment":
        return [py, str(BENCH / "device_suite.py"), "env", "--json", str(out / part.json_name),
                "--device-dir", str(ctx["device_dir"])]  # fmt: skip
    if part.name == "gpu_tests":
        return [py, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "tests/test_gpu.py",
                "--junitxml", str(out / "gpu_tests.xml")]  # fmt: skip
    if part.name == "train":
        tiny = ["--preset", "test", "--seq-len", "64", "--batch", "2", "--steps", "1",
                "--warmup", "1", "--repeats", "1"]  # fmt: skip
        return [py, str(BENCH / "train_bench.py"), "--compare-hf", *boxes,
                "--json", str(out / part.json_name), *(tiny if dry else [])]  # fmt: skip
    if part.name == "decode":
        shape = (["--preset", "test", "--batch-sizes", "1", "2", "--prompt-len", "8",
                  "--new-tokens", "4", "--repeats", "1", "--hf-compile", "eager"] if dry
                 else ["--batch-sizes", "1", "32", "--repeats", "2"])  # fmt: skip
        return [py, str(BENCH / "generate_bench.py"), "--compare-hf", *boxes, *shape,
                "--json", str(out / part.json_name)]  # fmt: skip
    if part.name == "workload":
        tiny = ["--limit", "2", "--n-samples", "2", "--slots", "4"]  # a 4-layer model on CPU
        return [py, str(BENCH / "generate_bench.py"), "--workload", "humanevalpack",
                "--data-dir", str(ctx["data_dir"]), "--schedulers", "continuous",
                "--json", str(out / part.json_name), *(tiny if dry else [])]  # fmt: skip
    raise ValueError(part.name)


def grant(part: Part, later: list[Part], deadline: float) -> tuple[float, dict]:
    """Seconds for this part (its nominal, cut to leave the later parts their reserves) and its
    inner boxes scaled by the same factor."""
    left = deadline - time.monotonic() - sum(p.reserve_s for p in later)
    limit = max(min(part.nominal_s, left), 0.0)
    scale = limit / part.nominal_s
    return limit, {flag: s * scale for flag, s in part.inner.items()}


def collect(part: Part, ctx: dict) -> dict | None:
    """The part's result: its benchmark JSON, the pytest report, or None."""
    out = ctx["out"]
    if part.name == "gpu_tests":
        return gpu_test_results(out / "gpu_tests.xml")
    path = out / part.json_name
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        return {"unreadable": f"{path.name}: {e}"}


def status_of(part: Part, rc: int, result: dict | None) -> str:
    """ok, or why not (a failed side of a comparison counts)."""
    if rc == TIMED_OUT:
        return "time limit"
    if rc != 0 or result is None:
        return "failed"
    errors = [k for k in ("octojax_error", "hf_error", "unreadable") if k in result]
    return "failed: " + ", ".join(errors) if errors else "ok"


def run_part(part: Part, later: list[Part], ctx: dict, results: dict) -> None:
    """Run one part in its time box; record status, seconds and result."""
    limit, inner = grant(part, later, ctx["deadline"])
    entry = results["parts"][part.name]
    if part.name == "workload" and ctx["data_dir"] is None:
        entry.update(status="skipped", error="no HumanEvalPack stand-in: bench/device_wheels.sh")
        return
    if limit < 5:
        entry.update(status="skipped", error="no time left in the budget")
        return
    cmd = part_command(part, ctx, inner)
    entry.update(status="running", limit_s=round(limit), command=" ".join(cmd))
    write(ctx, results)
    say(ctx, f"{part.name}: limit {limit:.0f} s: {' '.join(cmd)}")
    with open(ctx["out"] / "suite.log", "a") as log:
        log.write(f"\n===== {part.name} (limit {limit:.0f} s) =====\n{' '.join(cmd)}\n")
        log.flush()
        start = log.tell()
        rc, seconds = run_boxed(cmd, limit, env=ctx["env"], log=log)
    result = collect(part, ctx)
    entry.update(status=status_of(part, rc, result), rc=rc, seconds=round(seconds, 1),
                 result=result)  # fmt: skip
    if rc != 0:
        entry["error"] = describe(rc, seconds, limit)
    if entry["status"] != "ok":  # the part's last words, for results.json read on its own
        with open(ctx["out"] / "suite.log", errors="replace") as log:
            log.seek(start)
            entry["log_tail"] = [x for x in log.read().splitlines() if x.strip()][-8:]
    say(ctx, f"{part.name}: {entry['status']} after {seconds:.0f} s")


def say(ctx: dict, line: str) -> None:
    print(f"[suite] {line}", flush=True)
    with open(ctx["out"] / "suite.log", "a") as log:
        log.write(f"[suite] {line}\n")


def write(ctx: dict, results: dict) -> None:
    """results.json and summary.md as they stand."""
    results["suite"]["wall_s"] = round(time.monotonic() - ctx["t0"], 1)
    tmp = ctx["out"] / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(ctx["out"] / "results.json")
    write_summary(results, ctx["out"] / "summary.md")


def context(args) -> dict:
    """Paths, interpreter, environment and deadline of this run."""
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    device_dir = Path(args.device_dir).resolve()
    data = [device_dir / "humanevalpack", ROOT.parent / "shared" / "humanevalpack"]
    env = dict(os.environ, JAX_PLATFORMS="cpu" if args.dry_run else "cuda",
               TOKENIZERS_PARALLELISM="false", PYTHONUNBUFFERED="1")  # fmt: skip
    t0 = time.monotonic()
    return {"out": out, "dry_run": args.dry_run, "python": sys.executable, "env": env,
            "device_dir": device_dir, "t0": t0, "deadline": t0 + args.budget,
            "data_dir": next((d for d in data if (d / "python.jsonl").exists()), None)}  # fmt: skip


def run(args) -> int:
    """All parts in order; exit status 0 when every part is ok."""
    ctx = context(args)
    parts = DRY if args.dry_run else REAL
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    results = {
        "suite": {"format": 1, "dry_run": args.dry_run, "started": now, "finished": None,
                  "budget_s": args.budget, "wall_s": 0.0, "out": str(ctx["out"]),
                  "install": os.environ.get("SUITE_INSTALL", "not recorded"),
                  "workload_data": str(ctx["data_dir"])},
        "parts": {p.name: {"status": "pending"} for p in parts},
    }  # fmt: skip
    for i, part in enumerate(parts):
        run_part(part, parts[i + 1 :], ctx, results)
        write(ctx, results)
    results["suite"]["finished"] = datetime.datetime.now(datetime.timezone.utc).isoformat(
        timespec="seconds"
    )
    write(ctx, results)
    print((ctx["out"] / "summary.md").read_text())
    say(ctx, f"results in {ctx['out']}")
    return int(any(p["status"] != "ok" for p in results["parts"].values()))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--dry-run", action="store_true")
    r.add_argument("--device-dir", default=str(ROOT / ".device"))
    r.add_argument("--budget", type=float, default=None,
                   help="seconds for all parts (default 450 on GPU, 1800 dry)")  # fmt: skip
    e = sub.add_parser("env")
    e.add_argument("--json", required=True)
    e.add_argument("--device-dir", default=str(ROOT / ".device"))
    args = p.parse_args(argv)
    if args.cmd == "env":
        report = env_report(Path(args.device_dir))
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
        print(json.dumps(report, indent=2))
        return int(bool(report["import_errors"] or report["unmet_requirements"]))
    if args.budget is None:
        args.budget = 1800.0 if args.dry_run else 450.0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
