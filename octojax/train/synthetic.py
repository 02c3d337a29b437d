"""Deterministic random token batches (packed rows with several segments) for smoke runs,
mesh tests and throughput benchmarks: no tokenizer or data files needed, resumable by index."""

from __future__ import annotations

import numpy as np


class SyntheticBatches:
    """Batch i is a pure function of (seed, i); get_state/set_state is just the index."""

    def __init__(
        self, *, vocab_size: int, global_batch_size: int, seq_len: int, seed: int = 0,
        segments_per_row: int = 3, pad_fraction: float = 0.1,
    ):  # fmt: skip
        self.vocab_size, self.B, self.T = vocab_size, global_batch_size, seq_len
        self.seed, self.segments, self.pad_fraction = seed, segments_per_row, pad_fraction
        self.index = 0

    def __iter__(self):
        return self

    def __next__(self) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, self.index])
        self.index += 1
        B, T = self.B, self.T
        tokens = rng.integers(1, self.vocab_size, (B, T + 1), dtype=np.int32)
        seg = np.zeros((B, T), np.int32)
        pos = np.zeros((B, T), np.int32)
        for r in range(B):
            used = T - int(rng.integers(0, int(T * self.pad_fraction) + 1))
            cuts = (
                np.sort(rng.choice(np.arange(1, used), self.segments - 1, replace=False))
                if used > self.segments
                else []
            )
            bounds = [0, *cuts, used]
            for s, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]), start=1):
                seg[r, a:b] = s
                pos[r, a:b] = np.arange(b - a)
        inputs = tokens[:, :T] * (seg > 0)
        targets = tokens[:, 1:] * (seg > 0)
        # the last token of each segment has no target inside its segment
        last = np.concatenate([seg[:, 1:] != seg[:, :-1], np.ones((B, 1), bool)], axis=1)
        weights = ((seg > 0) & ~last).astype(np.float32)
        return {
            "inputs": inputs,
            "targets": targets,
            "segment_ids": seg,
            "positions": pos,
            "loss_weights": weights,
        }

    def get_state(self) -> dict:
        return {"index": self.index}

    def set_state(self, state: dict) -> None:
        self.index = int(state["index"])
