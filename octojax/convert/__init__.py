"""Hugging Face GPTBigCode checkpoints <-> octojax parameters."""

from octojax.convert.hf_checkpoint import (
    CheckpointError,
    iter_hf_tensors,
    load_hf_model,
    load_hf_params,
    save_hf_checkpoint,
)

__all__ = [
    "CheckpointError",
    "iter_hf_tensors",
    "load_hf_model",
    "load_hf_params",
    "save_hf_checkpoint",
]
