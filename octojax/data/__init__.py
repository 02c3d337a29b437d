"""Instruction-tuning input pipeline: CommitPackFT TFRecords and instruction JSONL to packed,
sharded, resumable global batches (see docs/data.md).

Attributes are imported lazily, so ``octojax.data.tokenize`` (what tokenizer worker processes
import) does not pull in jax.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "DataConfig": "octojax.data.config",
    "SourceConfig": "octojax.data.config",
    "TrainIterator": "octojax.data.pipeline",
    "make_train_iterator": "octojax.data.pipeline",
    "batch_sharding": "octojax.sharding",
    "BATCH_KEYS": "octojax.data.pipeline",
    "BadRecordError": "octojax.data.sources",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'octojax.data' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
