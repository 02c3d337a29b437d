"""Generation: KV-cache decoding, sampling, and the text-level Generator (imports jax).

Tokenizers live in `octojax.tokenizer` (no jax).
"""

from octojax.generate.decode import generate_tokens
from octojax.generate.generator import GenerationOutput, Generator, truncate_at_stop
from octojax.generate.sampling import SamplingParams

__all__ = ["GenerationOutput", "Generator", "SamplingParams", "generate_tokens", "truncate_at_stop"]
