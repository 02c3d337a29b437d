"""`octojax commitpack` takes exactly the flags of `python -m beam_pipelines.commitpack`.

The README's line, `octojax commitpack --source git --repos R --output OUT --stage ft --tokenizer
TOK`, is run end to end on a real three-commit git repository and a tiny trained tokenizer.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.cli_helpers import REPO, octojax

from octojax.cli import parse_args
from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer

MIT = """MIT License

Copyright (c) 2024 Test Author

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software.
"""
UTIL_V1 = "def parse(value):\n    return value.strip()\n\n\ndef add(a, b):\n    return a + b\n"
UTIL_V2 = (
    "def parse(value, default=None):\n    if value is None:\n        return default\n"
    "    return value.strip()\n\n\ndef add(a, b):\n    return a + b\n"
)


def make_repo(path: Path) -> Path:
    """A real repository: the license, a module, then one in-place change CommitPackFT keeps."""
    commits = [
        ("Initial import", {"LICENSE": MIT, "README.md": "# alpha\n"}),
        ("Create the helpers module", {"src/util.py": UTIL_V1}),
        (
            "Handle missing values when parsing input\n\nReturn the default instead of failing.\n",
            {"src/util.py": UTIL_V2},
        ),
    ]
    path.mkdir(parents=True)
    for tick, (message, files) in enumerate(commits):
        for rel, text in files.items():
            (path / rel).parent.mkdir(parents=True, exist_ok=True)
            (path / rel).write_text(text)
        date = f"2020-01-01T00:00:{tick:02d}Z"
        env = dict(os.environ, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
        for cmd in (["init", "-q", "-b", "main"] if tick == 0 else [], ["add", "-A"]):
            if cmd:
                subprocess.run(["git", "-C", str(path), *cmd], check=True, env=env)
        subprocess.run(
            ["git", "-C", str(path), "-c", "user.email=dev@example.com", "-c", "user.name=Dev",
             "-c", "commit.gpgsign=false", "commit", "-q", "-m", message],
            check=True, env=env, capture_output=True,
        )  # fmt: skip
    return path


def test_parse_hands_every_flag_to_the_pipeline_unchanged():
    argv = ["--source", "git", "--repos", "R1", "R2", "--output", "OUT", "--stage", "ft",
            "--tokenizer", "TOK", "--runner", "DirectRunner", "-h"]  # fmt: skip
    args = parse_args(["commitpack", *argv])
    assert args.command == "commitpack" and args.beam_args == argv
    args = parse_args(["--debug", "commitpack", *argv])
    assert args.debug and args.beam_args == argv
    assert parse_args(["commitpack"]).beam_args == []


def test_help_is_the_pipelines_own():
    beam = subprocess.run(
        [sys.executable, "-m", "beam_pipelines.commitpack", "-h"],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    ours = octojax("commitpack", "-h", timeout=120)
    assert ours.returncode == beam.returncode == 0, ours.stderr[-2000:]
    assert ours.stdout == beam.stdout and "--source" in ours.stdout


@pytest.mark.slow
def test_readme_commitpack_line_runs_end_to_end(tmp_path):
    repo = make_repo(tmp_path / "alpha")
    tok = train_bpe_tokenizer(octojax_source_corpus()[:40], tmp_path / "tok", vocab_size=300)
    out = tmp_path / "out"
    done = octojax(
        "commitpack", "--source", "git", "--repos", str(repo), "--output", str(out),
        "--stage", "ft", "--tokenizer", str(tok),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"]["total"] == 3 and stats["accounting"]["ok"], stats
    assert stats["commitpackft"]["kept"] == 1, stats
    assert (out / "commitpack" / "manifest.json").exists()
    assert (out / "commitpackft" / "manifest.json").exists()

    again = octojax(
        "commitpack", "--source", "git", "--repos", str(tmp_path / "typo"), "--output", str(out),
        "--overwrite",
    )  # fmt: skip
    assert again.returncode == 2, again.stderr[-2000:]
    assert again.stderr.strip().splitlines()[0].startswith("error: no usable input: ")
    assert json.loads((out / "stats.json").read_text()) == stats  # the old dataset is kept
