"""End to end: CommitPackFT written by the Beam pipeline from a real git repository, mixed with
the real instruction mix, through TrainIterator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from beam_pipelines.records import read_dataset
from octojax.data.pipeline import make_train_iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
MIT = (
    "MIT License\n\nCopyright (c) 2024 Test Author\n\nPermission is hereby granted, free of "
    "charge, to any person obtaining a copy\nof this software and associated documentation files "
    '(the "Software"), to deal\nin the Software without restriction, including without '
    "limitation the rights\nto use, copy, modify, merge, publish, distribute, sublicense, and/or "
    "sell\ncopies of the Software.\n"
)
V1 = "def parse(value):\n    return value.strip()\n\n\ndef add(a, b):\n    return a + b\n"
V2 = V1.replace(
    "def parse(value):\n    return value.strip()",
    "def parse(value, default=None):\n    if value is None:\n        return default\n"
    "    return value.strip()",
)
V3 = V2 + "\n\ndef total(values):\n    return sum(values)\n"
V4 = V3.replace("return sum(values)", "return sum(v for v in values if v is not None)")
JS1 = "function parse(value) {\n  return JSON.parse(value);\n}\n\nmodule.exports = { parse };\n"
JS2 = JS1.replace("return JSON.parse(value);", "return value ? JSON.parse(value) : null;")


def git(repo: Path, *args: str, tick: list[int]) -> None:
    tick[0] += 1
    date = f"2020-01-01T00:00:{tick[0]:02d}Z"
    env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
    subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)


def commit(repo: Path, message: str, files: dict[str, str], tick: list[int]) -> None:
    for rel, text in files.items():
        (repo / rel).parent.mkdir(parents=True, exist_ok=True)
        (repo / rel).write_text(text)
    git(repo, "add", "-A", tick=tick)
    git(repo, "commit", "-q", "-m", message, tick=tick)


@pytest.fixture(scope="module")
def beam_commitpackft(tmp_path_factory, tokenizer_dir) -> Path:
    """Run ``python -m beam_pipelines.commitpack --source git --stage ft`` on a real repository."""
    pytest.importorskip("apache_beam", reason="the Beam pipeline needs apache-beam (octojax[beam])")
    root = tmp_path_factory.mktemp("e2e")
    repo = root / "repo"
    repo.mkdir()
    tick = [0]
    git(repo, "init", "-q", "-b", "main", tick=tick)
    for key, value in (("user.email", "dev@example.com"), ("user.name", "Dev")):
        git(repo, "config", key, value, tick=tick)
    git(repo, "config", "commit.gpgsign", "false", tick=tick)
    commit(repo, "Initial import", {"LICENSE": MIT, "README.md": "# demo\n"}, tick)
    commit(repo, "Create the helpers module", {"src/util.py": V1}, tick)
    commit(repo, "Handle missing values when parsing input", {"src/util.py": V2}, tick)
    commit(repo, "Add a function that sums the values", {"src/util.py": V3}, tick)
    commit(repo, "Skip missing values in the total", {"src/util.py": V4}, tick)
    commit(repo, "Create the web client", {"web/app.js": JS1}, tick)
    commit(repo, "Return null for empty input values", {"web/app.js": JS2}, tick)
    out = root / "out"
    cmd = [
        sys.executable, "-m", "beam_pipelines.commitpack", "--source", "git",
        "--repos", f"{repo} octo/demo", "--output", str(out), "--stage", "ft",
        "--tokenizer", tokenizer_dir, "--runner", "DirectRunner",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "commitpackft"


def decoded_segments(batches, tokenizer) -> list[str]:
    out = []
    for b in batches:
        for r in range(b["inputs"].shape[0]):
            seg = b["segment_ids"][r]
            for s in range(1, int(seg.max(initial=0)) + 1):
                idx = np.flatnonzero(seg == s)
                ids = [*b["inputs"][r, idx].tolist(), int(b["targets"][r, idx[-1]])]
                out.append(tokenizer.decode(ids))
    return out


@pytest.mark.slow
def test_beam_commitpackft_and_instruction_mix(
    beam_commitpackft, instruct_mix, make_cfg, tokenizer
):
    records = list(read_dataset(beam_commitpackft))
    subjects = {r["subject"] for r in records}
    assert {"Handle missing values when parsing input", "Return null for empty input values"} <= (
        subjects
    ), subjects
    python = [r for r in records if r["lang"] == "Python"]
    assert python and len(python) < len(records)

    # CommitPackFT alone, Python only: every commit once, formatted exactly as OctoCoder did
    cfg = make_cfg(
        [{"kind": "commitpackft", "path": str(beam_commitpackft), "languages": ["Python"]}],
        seq_len=2048,
    )
    it = make_train_iterator(cfg, global_batch_size=2)
    texts = decoded_segments(list(it), tokenizer)
    want = [
        f"Question: {r['subject']}\n{r['old_contents']}\n\nAnswer: {r['new_contents']}<|endoftext|>"
        for r in python
    ]
    assert sorted(texts) == sorted(want)

    # the paper's mix: CommitPackFT plus the real instruction data, two hosts, resumed midway
    sources = [
        {"kind": "commitpackft", "path": str(beam_commitpackft), "weight": 2.0},
        {"kind": "jsonl", "path": str(instruct_mix)},
    ]
    cfg = make_cfg(sources, seq_len=512, num_epochs=1)
    hosts = [
        make_train_iterator(cfg, global_batch_size=8, process_index=p, process_count=2)
        for p in range(2)
    ]
    assert sum(h.stats["records"] for h in hosts) == len(records) + 1178
    first = [next(h) for h in hosts]
    state = hosts[0].get_state()
    second = [next(h) for h in hosts]
    resumed = make_train_iterator(cfg, global_batch_size=8, process_index=0, process_count=1)
    resumed.set_state(state)
    both = next(resumed)
    for k in both:
        np.testing.assert_array_equal(both[k], np.concatenate([second[0][k], second[1][k]]))
    assert first[0]["segment_ids"].max() >= 1
    total = 0
    for h in hosts:
        for _ in h:
            pass
        total += h.stats["examples_started"]
    assert total == 2 * len(records) + 1178
