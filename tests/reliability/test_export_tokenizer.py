"""The exported tokenizer never claims more context than the exported model has."""

from __future__ import annotations

import json

from octojax.convert.hf_checkpoint import save_hf_checkpoint
from octojax.model.config import get_preset
from octojax.model.gptbigcode import init_model, param_dict
from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer, vocab_size_of


def test_tokenizer_config_carries_the_models_length(tmp_path):
    from transformers import AutoTokenizer

    tok = train_bpe_tokenizer(octojax_source_corpus()[:40], tmp_path / "tok", vocab_size=300)
    assert json.loads((tok / "tokenizer_config.json").read_text())["model_max_length"] == 8192
    cfg = get_preset("test", vocab_size=vocab_size_of(tok))  # n_positions 128
    out = save_hf_checkpoint(tmp_path / "hf", cfg, param_dict(init_model(cfg)), tokenizer_dir=tok)
    config = json.loads((out / "tokenizer_config.json").read_text())
    assert config["model_max_length"] == cfg.n_positions == 128
    assert AutoTokenizer.from_pretrained(out).model_max_length == 128
