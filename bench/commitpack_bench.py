"""Benchmark: commits/s mined + filtered by the CommitPack pipeline vs raw ``git log -p``.

One command builds a synthetic repository with thousands of commits (``git fast-import``; no
network here, and no local repository with a long history exists on these machines), then times

1. ``git log -p HEAD`` over it (the floor cost of reading every commit and its diff),
2. mining alone (``beam_pipelines.git_mining.mine_repository``, no Beam),
3. the whole pipeline (``python -m beam_pipelines.commitpack --stage ft``, DirectRunner): mining,
   CommitPack filters, dedup, CommitPackFT filters incl. tokenization, TFRecord + stats output.

    python bench/commitpack_bench.py --commits 5000 [--repo EXISTING_REPO] [--json out.json]
    git clone ../shared/data/repos/flask.bundle /tmp/flask     # a real history, all refs:
    python bench/commitpack_bench.py --repo /tmp/flask --revs=--all --repeat 1

The history mixes what real repositories have: single-file edits (most), multi-file commits,
added/deleted/renamed files, merges, and messages of every quality; files are a few KB of Python
and JavaScript. The token-count rule uses a byte-level BPE trained here (StarCoder's tokenizer
cannot be downloaded); its speed is of the same order.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

MIT = (
    "MIT License\n\nCopyright (c) 2020 Bench\n\nPermission is hereby granted, free of charge, to "
    "any person obtaining a copy\nof this software and associated documentation files.\n"
)
GOOD_SUBJECTS = [
    "Add a retry to the {n} client",
    "Fix the off-by-one error in {n} pagination",
    "Remove the unused {n} helper functions",
    "Update the default timeout for {n} requests",
    "Refactor the {n} parser into smaller functions",
    "Handle empty input in the {n} loader",
    "Implement caching for the {n} lookups",
    "Bump the {n} dependency to the latest release",
]
BAD_SUBJECTS = ["update", "wip", "fix", "Merge branch 'dev'", "fixed stuff in {n}", "Update {p}"]
WORDS = [
    "alpha",
    "beta",
    "gamma",
    "delta",
    "value",
    "index",
    "record",
    "parser",
    "config",
    "client",
    "cache",
    "token",
]


def py_file(rng: random.Random, n_funcs: int) -> str:
    parts = []
    for i in range(n_funcs):
        a, b = rng.sample(WORDS, 2)
        parts.append(
            f"def {a}_{b}_{i}(x, y={rng.randint(0, 99)}):\n"
            f"    '''Compute {a} from {b}.'''\n"
            f"    result = x * {rng.randint(1, 9)} + y\n"
            f"    return result - {rng.randint(0, 9)}\n"
        )
    return "\n\n".join(parts)


def js_file(rng: random.Random, n_funcs: int) -> str:
    return "\n".join(
        f"function {rng.choice(WORDS)}{i}(v) {{ return v * {rng.randint(1, 9)}; }}"
        for i in range(n_funcs)
    )


def fast_import_stream(n_commits: int, seed: int = 0) -> bytes:
    """A git fast-import stream of ``n_commits`` commits on main (plus side-branch merges)."""
    rng = random.Random(seed)
    out: list[bytes] = []
    files: dict[str, str] = {}
    t0 = 1_577_836_800
    mark = 0

    def data(text: str) -> bytes:
        raw = text.encode("utf-8")
        return b"data %d\n" % len(raw) + raw + b"\n"

    def new_content(path: str) -> str:
        n = rng.randint(3, 40)
        return py_file(rng, n) if path.endswith(".py") else js_file(rng, n)

    def commit(ref: str, message: str, ops: list[bytes], parents: list[int]) -> int:
        nonlocal mark
        mark += 1
        when = t0 + mark * 60
        out.append(f"commit {ref}\nmark :{mark}\n".encode())
        out.append(f"author Dev <dev@example.com> {when} +0000\n".encode())
        out.append(f"committer Dev <dev@example.com> {when} +0000\n".encode())
        out.append(data(message))
        if parents:
            out.append(f"from :{parents[0]}\n".encode())
            for p in parents[1:]:
                out.append(f"merge :{p}\n".encode())
        out.extend(ops)
        out.append(b"\n")
        return mark

    def modify(path: str, text: str) -> bytes:
        files[path] = text
        return f"M 100644 inline {path}\n".encode() + data(text)

    initial = [modify("LICENSE", MIT)]
    for i in range(20):
        path = f"src/mod{i}.py" if i % 3 else f"web/app{i}.js"
        initial.append(modify(path, new_content(path)))
    head = commit("refs/heads/main", "Initial import\n", initial, [])
    made = 1
    next_file = 20
    while made < n_commits:
        code_files = [p for p in files if p != "LICENSE"]
        roll = rng.random()
        name = rng.choice(WORDS)
        path = rng.choice(code_files)
        subject = rng.choice(GOOD_SUBJECTS if rng.random() < 0.7 else BAD_SUBJECTS)
        subject = subject.format(n=name, p=path)
        ops: list[bytes]
        if roll < 0.60:  # edit one file: change a few functions
            text = files[path]
            lines = text.split("\n")
            for _ in range(rng.randint(1, 4)):
                i = rng.randrange(len(lines))
                lines[i] = lines[i] + f"  # {rng.choice(WORDS)}" if lines[i] else "# note"
            ops = [modify(path, "\n".join(lines))]
        elif roll < 0.75:  # multi-file
            ops = [modify(p, new_content(p)) for p in rng.sample(code_files, 3)]
        elif roll < 0.85:  # add
            next_file += 1
            new = f"src/new{next_file}.py"
            ops = [modify(new, new_content(new))]
        elif roll < 0.90 and len(code_files) > 10:  # delete
            files.pop(path)
            ops = [f"D {path}\n".encode()]
        elif roll < 0.95:  # rename
            next_file += 1
            new = f"{path.rsplit('.', 1)[0]}_{next_file}.{path.rsplit('.', 1)[1]}"
            files[new] = files.pop(path)
            ops = [f"R {path} {new}\n".encode()]
        else:  # side commit + merge back
            side = commit(
                "refs/heads/side", f"{subject}\n", [modify(path, new_content(path))], [head]
            )
            made += 1
            head = commit("refs/heads/main", "Merge branch 'side'\n", [], [head, side])
            made += 1
            continue
        head = commit("refs/heads/main", f"{subject}\n\nDetails of the change.\n", ops, [head])
        made += 1
    return b"".join(out)


def build_repo(path: Path, n_commits: int) -> None:
    subprocess.run(["git", "init", "-q", "-b", "main", str(path)], check=True)
    stream = fast_import_stream(n_commits)
    subprocess.run(["git", "-C", str(path), "fast-import", "--quiet"], input=stream, check=True)
    subprocess.run(["git", "-C", str(path), "reset", "-q", "--hard", "main"], check=True)


def train_tokenizer(directory: Path) -> None:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<|endoftext|>", "<fim_prefix>", "<fim_middle>", "<fim_suffix>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    rng = random.Random(1)
    tok.train_from_iterator([py_file(rng, 20) + js_file(rng, 20) for _ in range(200)], trainer)
    tok.save(str(directory / "tokenizer.json"))


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--commits", type=int, default=5000)
    parser.add_argument("--repo", help="benchmark an existing repository instead")
    parser.add_argument(
        "--revs", default="HEAD", help="what git log -p and the pipeline read, e.g. --revs=--all"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (median)")
    parser.add_argument("--json", help="write the results here too")
    args = parser.parse_args()

    from beam_pipelines import commitpack
    from beam_pipelines.git_mining import RepoSpec, mine_repository

    load_before = Path("/proc/loadavg").read_text().split()[:3]
    work = Path(tempfile.mkdtemp(prefix="commitpack-bench-"))
    if args.repo:
        repo = Path(args.repo)
        origin = f"existing repository {repo}"
    else:
        repo = work / "synthetic"
        t_build, _ = timed(lambda: build_repo(repo, args.commits))
        origin = f"synthetic (git fast-import, {args.commits} commits, built in {t_build:.1f}s)"
    n = int(
        subprocess.run(
            ["git", "-C", str(repo), "rev-list", "--count", args.revs],
            capture_output=True,
            check=True,
        ).stdout
    )
    train_tokenizer(work)
    print(f"repository: {origin}; {n} commits reachable from {args.revs}", flush=True)

    def git_log_p():
        with open(os.devnull, "wb") as devnull:
            subprocess.run(
                ["git", "-C", str(repo), "log", "-p", args.revs], stdout=devnull, check=True
            )

    git_log_p()  # warm the page cache

    def mine():
        count = sum(1 for _ in mine_repository(RepoSpec(str(repo), "bench"), (args.revs,)))
        assert count == n, (count, n)

    t_mine = median(timed(mine)[0] for _ in range(args.repeat))

    def pipeline(run: int):
        rc = commitpack.main(
            [
                "--source",
                "git",
                "--repos",
                str(repo),
                "--output",
                str(work / f"out{run}"),
                "--stage",
                "ft",
                "--tokenizer",
                str(work),
                f"--revs={args.revs}",
                "--runner",
                "DirectRunner",
            ]
        )
        assert rc == 0

    # git log -p and the pipeline alternate, so both see the same machine (a shared machine's
    # speed drifts over a minute); each figure is the median of its runs.
    # Each run's output (a full dataset) is checked and deleted before the next run: left on
    # disk, the kernel's write-back of earlier runs' files would run during later ones.
    git_times, pipe_times = [], []
    for r in range(args.repeat):
        git_times.append(timed(git_log_p)[0])
        pipe_times.append(timed(lambda r=r: pipeline(r))[0])
        stats = json.loads((work / f"out{r}" / "stats.json").read_text())
        assert stats["accounting"]["ok"] and stats["input"]["total"] == n
        shutil.rmtree(work / f"out{r}")
    t_git, t_pipe = median(git_times), median(pipe_times)

    results = {
        "repository": origin,
        "commits": n,
        "repeats_median_of": args.repeat,
        "git_log_p_s": round(t_git, 3),
        "git_log_p_commits_per_s": round(n / t_git),
        "mining_only_s": round(t_mine, 3),
        "mining_only_commits_per_s": round(n / t_mine),
        "pipeline_s": round(t_pipe, 3),
        "pipeline_commits_per_s": round(n / t_pipe),
        "pipeline_vs_git_log_p": round(t_pipe / t_git, 2),
        "git_log_p_runs_s": [round(t, 3) for t in git_times],
        "pipeline_runs_s": [round(t, 3) for t in pipe_times],
        "commitpack_kept": stats["commitpack"]["kept"],
        "commitpackft_kept": stats["commitpackft"]["kept"],
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}",
        "loadavg_before_after": [load_before, Path("/proc/loadavg").read_text().split()[:3]],
    }
    print(json.dumps(results, indent=2))
    print(
        "\n| measurement | seconds | commits/s |\n| --- | --- | --- |\n"
        f"| `git log -p {args.revs}` (floor) | {t_git:.2f} | {n / t_git:,.0f} |\n"
        f"| mining only (git_mining, no Beam) | {t_mine:.2f} | {n / t_mine:,.0f} |\n"
        f"| full pipeline, DirectRunner, --stage ft | {t_pipe:.2f} | {n / t_pipe:,.0f} |"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    shutil.rmtree(work, ignore_errors=True)  # every run's output (a full dataset each)


if __name__ == "__main__":
    main()
