"""Fixtures for the input-pipeline tests: a tiny trained tokenizer, hand-made JSONL and
CommitPackFT TFRecord datasets, and a factory for DataConfig."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from beam_pipelines.records import write_tfrecord
from octojax.data.config import DataConfig

ENGLISH = [
    "Write a function that returns the sum of a list of numbers.",
    "Explain how a hash map works and when to use one.",
    "What is the difference between a process and a thread?",
    "Fix the bug in the parser so that empty strings are accepted.",
    "Add a docstring to the helper and handle missing values.",
]
CODE = [
    "def add(a, b):\n    return a + b\n",
    "function parse(value) { return JSON.parse(value); }\n",
    "for i in range(10):\n    print(i)\n",
    "class Config:\n    def __init__(self, values):\n        self.values = values\n",
    'fn main() {\n    println!("hello");\n}\n',
    "package main\n\nfunc Add(a, b int) int {\n\treturn a + b\n}\n",
]


@pytest.fixture(scope="session")
def tokenizer_dir(tmp_path_factory) -> str:
    """A byte-level BPE with StarCoder's specials (<|endoftext|> = 0), trained offline."""
    from octojax.tokenizer import train_bpe_tokenizer

    out = tmp_path_factory.mktemp("tokenizer")
    corpus = (ENGLISH + CODE + ["Question: ", "\n\nAnswer:\n"]) * 30
    train_bpe_tokenizer(corpus, out, vocab_size=400)
    return str(out)


@pytest.fixture(scope="session")
def tokenizer(tokenizer_dir):
    from octojax.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer_dir)


def synthetic_instructions(n: int, seed: int = 0, max_words: int = 40) -> list[dict]:
    """Instruction rows of varied lengths, each unique (the index is in the text)."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        words = rng.randint(1, max_words)
        prompt = f"Task {i}: " + " ".join(rng.choice(ENGLISH).split()[:words])
        completion = "".join(rng.choice(CODE) for _ in range(rng.randint(1, 3))) + f"# end {i}\n"
        rows.append({"prompt": prompt, "completion": completion})
    return rows


def write_jsonl(path: Path, rows: list, raw_lines: dict[int, str] | None = None) -> Path:
    """Rows as JSON lines; ``raw_lines`` replaces line k (0-based) with raw text."""
    lines = [json.dumps(r) for r in rows]
    for k, text in (raw_lines or {}).items():
        lines[k] = text
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def commit_record(i: int, lang: str = "Python", ext: str = "py") -> dict[str, str]:
    old = CODE[i % len(CODE)] * (1 + i % 3)
    return {
        "commit": f"{i:040x}",
        "old_file": f"src/mod{i}.{ext}",
        "new_file": f"src/mod{i}.{ext}",
        "old_contents": old,
        "new_contents": old + f"# changed {i}\n",
        "subject": f"Update module {i} to handle values",
        "message": f"Update module {i} to handle values\n\nDetails.",
        "lang": lang,
        "license": "mit",
        "repos": f"octo/repo{i}",
    }


@pytest.fixture
def jsonl_file(tmp_path) -> Path:
    return write_jsonl(tmp_path / "mix.jsonl", synthetic_instructions(60))


@pytest.fixture
def commit_shards(tmp_path) -> Path:
    """Two TFRecord shards of CommitPackFT records in three languages (no manifest)."""
    out = tmp_path / "ft"
    out.mkdir()
    langs = [("Python", "py"), ("Rust", "rs"), ("Go", "go")]
    records = [commit_record(i, *langs[i % 3]) for i in range(30)]
    write_tfrecord(out / "commitpackft-00000-of-00002.tfrecord", records[:15])
    write_tfrecord(out / "commitpackft-00001-of-00002.tfrecord", records[15:])
    return out


@pytest.fixture
def make_cfg(tokenizer_dir):
    """``make_cfg(sources, **overrides)`` -> DataConfig with the test tokenizer."""

    def make(sources, **overrides) -> DataConfig:
        d = {"sources": sources, "tokenizer": tokenizer_dir, "seq_len": 128, **overrides}
        return DataConfig.from_dict(d)

    return make


@pytest.fixture(scope="session")
def data_helpers():
    """The module-level helpers above, for test modules (conftest is not importable by name)."""
    from types import SimpleNamespace

    return SimpleNamespace(
        synthetic_instructions=synthetic_instructions,
        write_jsonl=write_jsonl,
        commit_record=commit_record,
        ENGLISH=ENGLISH,
        CODE=CODE,
    )
