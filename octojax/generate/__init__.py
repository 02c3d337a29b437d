"""Generation: KV-cache decoding, sampling, tokenizers, and the text-level Generator."""

from octojax.generate.decode import generate_tokens
from octojax.generate.generator import GenerationOutput, Generator, truncate_at_stop
from octojax.generate.sampling import SamplingParams
from octojax.generate.tokenizer import load_tokenizer, train_bpe_tokenizer

__all__ = [
    "GenerationOutput",
    "Generator",
    "SamplingParams",
    "generate_tokens",
    "load_tokenizer",
    "train_bpe_tokenizer",
    "truncate_at_stop",
]
