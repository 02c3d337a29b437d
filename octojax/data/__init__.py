"""Instruction-tuning input pipeline: CommitPackFT TFRecords and instruction JSONL to packed,
sharded, resumable global batches (see docs/data.md).

Import from the modules: `octojax.data.config` (DataConfig), `octojax.data.pipeline`
(make_train_iterator, imports jax), `octojax.data.sources` (BadRecordError). This package file
imports nothing, so tokenizer worker processes (`octojax.data.tokenize`) never load jax.
"""
