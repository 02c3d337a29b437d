"""Tokenise formatted examples, in order, in-process or in a pool of worker processes.

Workers get the tokenizer as its JSON serialisation (``tokenizers.Tokenizer.to_str``), so they
start fast and import neither transformers nor jax. Results come back in submission order, so the
output is identical for any number of workers.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
from collections.abc import Iterable, Iterator

import numpy as np

_WORKER_TOKENIZER = None


class Tokenized:
    """A chunk of tokenised examples: flat ids, per-example lengths and answer token starts."""

    __slots__ = ("answer_starts", "ids", "lengths")

    def __init__(self, ids: np.ndarray, lengths: np.ndarray, answer_starts: np.ndarray):
        self.ids = ids
        self.lengths = lengths
        self.answer_starts = answer_starts


def encode_chunk(tokenizer, items: list[tuple[str, int]], eos_id: int | None) -> Tokenized:
    """Tokenise (text, answer_char_start) pairs with a ``tokenizers.Tokenizer``.

    The answer starts at the first token that holds any of the answer's characters: a token
    straddling the boundary (byte-level BPE merges "Answer: def" into "Answer", ":", " d", "ef")
    belongs to the answer, so no answer character goes without loss. ``eos_id`` (if not None) is
    appended to every example as an id, never parsed from text.
    """
    encodings = tokenizer.encode_batch([text for text, _ in items], add_special_tokens=False)
    extra = 0 if eos_id is None else 1
    lengths = np.fromiter((len(e.ids) + extra for e in encodings), np.int64, len(encodings))
    ids = np.empty(int(lengths.sum()), np.int32)
    answer_starts = np.empty(len(items), np.int64)
    pos = 0
    for k, (enc, (_, answer_char)) in enumerate(zip(encodings, items)):
        n = len(enc.ids)
        ids[pos : pos + n] = enc.ids
        if eos_id is not None:
            ids[pos + n] = eos_id
        ends = np.fromiter((e for _, e in enc.offsets), np.int64, n)
        answer_starts[k] = int(np.searchsorted(ends, answer_char, side="right"))
        pos += n + extra
    return Tokenized(ids, lengths, answer_starts)


def _init_worker(tokenizer_json: str) -> None:
    global _WORKER_TOKENIZER
    from tokenizers import Tokenizer

    _WORKER_TOKENIZER = Tokenizer.from_str(tokenizer_json)


def _worker_encode(args: tuple[list[tuple[str, int]], int | None]) -> Tokenized:
    items, eos_id = args
    return encode_chunk(_WORKER_TOKENIZER, items, eos_id)


def tokenize_stream(
    tokenizer,
    chunks: Iterable[list[tuple[str, int]]],
    eos_id: int | None,
    num_workers: int,
) -> Iterator[Tokenized]:
    """Tokenised chunks in input order. ``num_workers == 0``: in this process (the Rust tokenizer
    may still use threads, see TOKENIZERS_PARALLELISM); else a spawn pool with a bounded number of
    chunks in flight (memory stays flat on large inputs)."""
    if num_workers == 0:
        for items in chunks:
            yield encode_chunk(tokenizer, items, eos_id)
        return
    ctx = multiprocessing.get_context("spawn")  # jax in the parent is not fork-safe
    with concurrent.futures.ProcessPoolExecutor(
        max_workers=num_workers,
        mp_context=ctx,
        initializer=_init_worker,
        initargs=(tokenizer.to_str(),),
    ) as pool:
        pending: collections.deque = collections.deque()
        for items in chunks:
            pending.append(pool.submit(_worker_encode, (items, eos_id)))
            if len(pending) >= 4 * num_workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
