"""`octojax train --synthetic-data` reads no data files, so it does not need data.tokenizer: a
missing one is set aside with one line (vocabulary: the model section's); an existing one still
sets the vocabulary and is copied beside the checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from helpers.cli_helpers import octojax

from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer


def config(tmp_path: Path, tokenizer: Path) -> Path:
    cfg = {
        "run_dir": str(tmp_path / "run"),
        "model": {"preset": "test", "dtype": "float32"},
        "train": {"steps": 1, "global_batch_size": 4},
        "optimizer": {"lr": 1e-3, "warmup_steps": 0},
        "checkpoint": {"every": 100, "async_save": False},
        "log": {"tensorboard": False, "progress": False},
        "export": {"hf": False},
        "data": {"tokenizer": str(tokenizer), "seq_len": 32,
                 "sources": [{"kind": "jsonl", "path": str(tmp_path / "absent.jsonl")}]},
    }  # fmt: skip
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def vocab(run: Path) -> int:
    return json.loads((run / "checkpoints" / "model_config.json").read_text())["vocab_size"]


@pytest.mark.slow
def test_missing_tokenizer_is_not_needed_and_the_run_resumes(tmp_path):
    cfg = config(tmp_path, tmp_path / "no-such-tokenizer")
    first = octojax("train", "--config", str(cfg), "--synthetic-data")
    assert first.returncode == 0, first.stderr[-2000:]
    assert f"--synthetic-data: {tmp_path / 'no-such-tokenizer'} does not exist" in first.stdout
    assert vocab(tmp_path / "run") == 512  # the test preset's
    again = octojax("train", "--config", str(cfg), "--synthetic-data", "train.steps=2")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "resumed from" in again.stdout and "stopped at step 2" in again.stdout


@pytest.mark.slow
def test_an_existing_tokenizer_still_sets_the_vocabulary(tmp_path):
    tok = train_bpe_tokenizer(octojax_source_corpus()[:40], tmp_path / "tok", vocab_size=300)
    done = octojax("train", "--config", str(config(tmp_path, tok)), "--synthetic-data")
    assert done.returncode == 0, done.stderr[-2000:]
    assert "does not exist" not in done.stdout
    assert vocab(tmp_path / "run") == 300
    assert (tmp_path / "run" / "checkpoints" / "tokenizer" / "tokenizer.json").exists()
