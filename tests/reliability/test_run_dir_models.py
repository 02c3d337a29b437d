"""A training run folder is a model for `octojax generate` and `Generator.from_pretrained`, as it
is for `octojax convert export` (its top-level config.json is the training config, not a Hugging
Face one), and the three read the same weights.
"""

from __future__ import annotations

import json

import pytest
from helpers.cli_helpers import octojax
from helpers.train_helpers import small_config

from octojax.cli import main
from octojax.convert.octojax_checkpoint import is_octojax_checkpoint
from octojax.generate.generator import Generator
from octojax.sampling_config import SamplingConfig
from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer, vocab_size_of
from octojax.train.synthetic import SyntheticBatches
from octojax.train.trainer import Trainer

PROMPTS = ["def add(a, b):", "import os\n"]
GREEDY = SamplingConfig(max_new_tokens=6, slots=2)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real one-step training run whose data section names a tokenizer (copied beside the
    checkpoints), trained on synthetic batches of the tokenizer's vocabulary."""
    root = tmp_path_factory.mktemp("rundir")
    tok = train_bpe_tokenizer(octojax_source_corpus()[:40], root / "tok", vocab_size=300)
    data = {"tokenizer": str(tok), "seq_len": 32, "sources": [{"kind": "jsonl", "path": "x"}]}
    cfg = small_config(root / "run", data=data)
    batches = SyntheticBatches(vocab_size=vocab_size_of(tok), global_batch_size=8, seq_len=32)
    Trainer(cfg, data=batches).run()
    run = root / "run"
    assert "model_type" not in json.loads((run / "config.json").read_text())  # the train config
    return run


def token_ids(gen: Generator) -> list[list[int]]:
    return [o.token_ids for o in gen.generate(PROMPTS, GREEDY)]


@pytest.mark.slow
def test_from_pretrained_reads_a_run_dir_like_convert_export(run_dir, tmp_path):
    assert is_octojax_checkpoint(run_dir) and is_octojax_checkpoint(run_dir / "checkpoints")
    from_run = token_ids(Generator.from_pretrained(run_dir, dtype="float32"))
    assert token_ids(Generator.from_pretrained(run_dir / "checkpoints" / "1", dtype="float32")) == (
        from_run
    )
    hf = tmp_path / "hf"
    assert main(["convert", "export", str(run_dir), str(hf)]) == 0
    assert not is_octojax_checkpoint(hf)
    assert token_ids(Generator.from_pretrained(hf, dtype="float32")) == from_run
    assert all(len(ids) > 0 for ids in from_run)


@pytest.mark.slow
def test_octojax_generate_takes_a_run_dir(run_dir, tmp_path):
    out = tmp_path / "gen.jsonl"
    done = octojax("generate", "--model", str(run_dir), "--prompt", PROMPTS[0],
                   "--max-new-tokens", "4", "--dtype", "float32", "--output", str(out))  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and "model_type" not in done.stderr


def test_a_run_dir_without_steps_is_named_as_one(tmp_path):
    """Started but never saved: the octojax error, not "model_type is None" from the train config."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.json").write_text(json.dumps({"run_dir": str(run), "model": {}}))
    (run / "checkpoints" / "model_config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="not an octojax checkpoint"):
        Generator.from_pretrained(run, dtype="float32")
