"""Random tiny models for tests and smoke runs (no downloads): a HF-format directory on disk."""

from __future__ import annotations

from pathlib import Path

from octojax.convert.hf_checkpoint import save_hf_checkpoint
from octojax.model.config import get_preset
from octojax.model.gptbigcode import init_model, param_dict
from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer, vocab_size_of


def tiny_model_dir(
    out_dir: str | Path, *, preset: str = "test", vocab_size: int = 512, seed: int = 0, **overrides
) -> Path:
    """Write a random GPTBigCode model + a BPE tokenizer trained on code into out_dir.

    The directory loads with `Generator.from_pretrained` and with transformers'
    `GPTBigCodeForCausalLM.from_pretrained` / `AutoTokenizer.from_pretrained`.
    """
    out_dir = Path(out_dir)
    tok_dir = train_bpe_tokenizer(
        octojax_source_corpus(), out_dir / "_tokenizer", vocab_size=vocab_size
    )
    cfg = get_preset(preset, vocab_size=vocab_size_of(tok_dir), **overrides)
    model = init_model(cfg, seed=seed)
    save_hf_checkpoint(out_dir, cfg, param_dict(model), tokenizer_dir=tok_dir)
    return out_dir
