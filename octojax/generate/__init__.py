"""Generation: KV-cache decoding, sampling, tokenizers, and the text-level Generator.

Attributes are imported lazily, so `octojax.generate.tokenizer` can be used (by data workers,
Beam tests) without importing jax.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "GenerationOutput": "octojax.generate.generator",
    "Generator": "octojax.generate.generator",
    "truncate_at_stop": "octojax.generate.generator",
    "SamplingParams": "octojax.generate.sampling",
    "generate_tokens": "octojax.generate.decode",
    "load_tokenizer": "octojax.generate.tokenizer",
    "train_bpe_tokenizer": "octojax.generate.tokenizer",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'octojax.generate' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
