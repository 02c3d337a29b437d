"""The training input iterator: sources -> formatted, tokenised, packed, sharded global batches.

Construction (once per host): index every source (byte offsets only, identical on all hosts), deal
the records to the global batch rows (``Mixture``), then read, format and tokenise only the records
of this host's rows, ahead of time (a spawn worker pool when ``num_workers > 0``). Iteration packs
each row's stream with its own ``RowPacker`` and gathers tokens with numpy; nothing is tokenised
while the accelerator runs.

Resumption: the state is just the step number (plus a fingerprint of everything that shapes the
stream). ``set_state`` rebuilds the packers and replays ``step`` rows per stream from token lengths,
which is cheap and works for any host layout (a checkpoint from 2 hosts restores on 4).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterator
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding

from octojax.data.config import DataConfig
from octojax.data.formatting import commit_template, instruction_template
from octojax.data.mixture import Mixture
from octojax.data.packing import RowMaterializer, RowPacker, example_pieces
from octojax.data.sources import BadRecordError, SourceIndex, index_source, read_records
from octojax.data.tokenize import tokenize_stream
from octojax.sharding import batch_sharding

log = logging.getLogger("octojax.data")

STATE_VERSION = 1
_CHUNK = 256


def _rows_of_process(sharding: NamedSharding, shape: tuple[int, int]) -> list[int]:
    """Global batch rows held by this process's devices, in order (what local data must hold)."""
    rows: set[int] = set()
    for index in sharding.addressable_devices_indices_map(shape).values():
        rows.update(range(shape[0])[index[0]])
    return sorted(rows)


def make_train_iterator(
    cfg: DataConfig,
    *,
    global_batch_size: int,
    mesh: Mesh | None = None,
    process_index: int | None = None,
    process_count: int | None = None,
) -> TrainIterator:
    """Build the iterator of global training batches for this process (see TrainIterator)."""
    return TrainIterator(
        cfg,
        global_batch_size=global_batch_size,
        mesh=mesh,
        process_index=process_index,
        process_count=process_count,
    )


class TrainIterator:
    """Iterator of global batches ``{"inputs", "targets", "segment_ids", "positions",
    "loss_weights"}``, each ``[global_batch_size, seq_len]``.

    With a mesh the values are ``jax.Array``s sharded ``P(("data", "fsdp"), None)`` built from this
    process's rows; without one they are numpy arrays of this process's rows only
    (``global_batch_size / process_count`` of them, the ``process_index``-th block).
    ``num_steps`` is the number of batches (None when ``num_epochs`` is None).
    """

    def __init__(
        self,
        cfg: DataConfig,
        *,
        global_batch_size: int,
        mesh: Mesh | None = None,
        process_index: int | None = None,
        process_count: int | None = None,
    ):
        if not isinstance(cfg, DataConfig):
            raise TypeError(f"cfg must be a DataConfig, got {type(cfg).__name__}")
        if not isinstance(global_batch_size, int) or global_batch_size < 1:
            raise ValueError(f"global_batch_size must be a positive int, got {global_batch_size!r}")
        self.cfg = cfg
        self.global_batch_size = B = global_batch_size
        self.seq_len = cfg.seq_len
        self.mesh = mesh
        self._sharding = None
        if mesh is not None:
            for name, given, actual in (
                ("process_index", process_index, jax.process_index()),
                ("process_count", process_count, jax.process_count()),
            ):
                if given is not None and given != actual:
                    raise ValueError(
                        f"{name}={given} with a mesh: with a mesh the layout comes from jax "
                        f"(jax.{name}() == {actual}); simulate hosts without a mesh"
                    )
            self._sharding = batch_sharding(mesh)
            shards = math.prod(mesh.shape[a] for a in ("data", "fsdp") if a in mesh.shape)
            if B % shards:
                raise ValueError(
                    f"global_batch_size {B} is not divisible by the mesh's data x fsdp size {shards}"
                )
            self.process_index, self.process_count = jax.process_index(), jax.process_count()
            self.rows = _rows_of_process(self._sharding, (B, cfg.seq_len))
        else:
            P = jax.process_count() if process_count is None else process_count
            p = jax.process_index() if process_index is None else process_index
            if P < 1 or not 0 <= p < P:
                raise ValueError(f"process_index {p} is not in [0, process_count={P})")
            if B % P:
                raise ValueError(f"global_batch_size {B} is not divisible by process_count {P}")
            self.process_index, self.process_count = p, P
            per = B // P
            self.rows = list(range(p * per, (p + 1) * per))

        self._prepare()
        self._reset(0)
        self.num_steps = self._count_steps()

    # --- construction ---------------------------------------------------------------------------

    def _prepare(self) -> None:
        """Tokenise this process's share of the mixture once and index it for packing."""
        self._load_tokenizer()
        counts = self._index_sources()
        owned = self.mixture.rows_records(self.rows)
        self.data_stats = _empty_stats(sum(ix.bad_records for ix in self.indexes))
        self.bad_records: list[str] = [
            f"{f.path}: {f.truncated_at}" for ix in self.indexes for f in ix.files if f.truncated_at
        ]
        kept_ids: list[int] = []
        ids, lengths, answer_starts = self._tokenize(owned, kept_ids)
        self._index_examples(ids, lengths, answer_starts, np.asarray(kept_ids, np.int64))
        self.fingerprint = self._fingerprint(counts)
        log.info(
            "data: process %d/%d, rows %d..%d, %d examples, %d tokens",
            self.process_index, self.process_count, self.rows[0], self.rows[-1],
            self.data_stats["examples"], self.data_stats["example_tokens"],
        )  # fmt: skip

    def _load_tokenizer(self) -> None:
        from octojax.tokenizer import load_tokenizer

        cfg = self.cfg
        tok = load_tokenizer(cfg.tokenizer)
        self._backend = backend = tok.backend_tokenizer
        self.eos_id = None
        if cfg.append_eos:
            self.eos_id = tok.eos_token_id
            if self.eos_id is None:
                raise ValueError(
                    f"{cfg.tokenizer}: tokenizer has no EOS token; set append_eos: false or add one"
                )
        self.vocab_size = backend.get_vocab_size(with_added_tokens=True)
        self._tokenizer_hash = hashlib.sha256(backend.to_str().encode()).hexdigest()[:16]

    def _index_sources(self) -> list[int]:
        """Index every source's records and build the weighted mixture; records per source."""
        cfg = self.cfg
        skip = cfg.on_bad_record == "skip"
        self.indexes: list[SourceIndex] = [
            index_source(s.kind, s.path, s.languages, skip) for s in cfg.sources
        ]
        counts = [ix.num_records for ix in self.indexes]
        for src, n in zip(cfg.sources, counts):
            if n == 0:
                raise ValueError(f"{src.kind} source {src.path!r} has no records")
        self.mixture = Mixture(
            counts,
            [s.weight for s in cfg.sources],
            self.global_batch_size,
            cfg.seed,
            sizes=np.concatenate([ix.sizes for ix in self.indexes]),
        )
        for src, n in zip(cfg.sources, counts):
            whole = math.floor(src.weight)
            if whole * n + round((src.weight - whole) * n) == 0:
                raise ValueError(
                    f"{src.kind} source {src.path!r}: weight {src.weight} selects no records "
                    f"of its {n} per epoch"
                )
        return counts

    def _formatted_chunks(
        self, owned: np.ndarray, kept_ids: list[int]
    ) -> Iterator[list[tuple[str, int]]]:
        """(text, answer offset) chunks of the owned records, formatted with their template;
        records kept (not bad, in a wanted language) are appended to kept_ids."""
        cfg, stats = self.cfg, self.data_stats
        skip = cfg.on_bad_record == "skip"
        chunk: list[tuple[str, int]] = []
        for i, (src, ix) in enumerate(zip(cfg.sources, self.indexes)):
            start = int(self.mixture.source_starts[i])
            ids = owned[(owned >= start) & (owned < start + ix.num_records)] - start
            wanted = None if src.languages is None else {x.lower() for x in src.languages}
            template = (
                commit_template(cfg.commit_template)
                if src.kind == "commitpackft"
                else instruction_template(cfg.instruction_template)
            )
            for rid, record in read_records(ix, ids, skip):
                stats["records"] += 1
                if isinstance(record, BadRecordError):
                    stats["bad_records_skipped"] += 1
                    self.bad_records.append(str(record))
                    log.warning("skipping bad record: %s", record)
                    continue
                if wanted is not None and record["lang"].lower() not in wanted:
                    stats["filtered_by_language"] += 1
                    continue
                kept_ids.append(start + rid)
                chunk.append(template.render(record))
                if len(chunk) == _CHUNK:
                    yield chunk
                    chunk = []
        if chunk:
            yield chunk

    def _tokenize(self, owned: np.ndarray, kept_ids: list[int]):
        """(token ids concatenated, lengths, answer starts) of every kept example, in order."""
        from tqdm.auto import tqdm

        parts = []
        chunks = self._formatted_chunks(owned, kept_ids)
        with tqdm(total=len(owned), desc="tokenising", unit="ex", disable=None) as bar:
            for part in tokenize_stream(self._backend, chunks, self.eos_id, self.cfg.num_workers):
                parts.append(part)
                bar.update(len(part.lengths))
        if not parts:
            return np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
        ids = np.concatenate([p.ids for p in parts])
        if self.vocab_size <= np.iinfo(np.uint16).max + 1:
            ids = ids.astype(np.uint16)  # half the memory; widened when a batch is gathered
        return (
            ids,
            np.concatenate([p.lengths for p in parts]),
            np.concatenate([p.answer_starts for p in parts]),
        )

    def _index_examples(self, ids, lengths, answer_starts, kept: np.ndarray) -> None:
        """Example statistics, the row materializer, and each owned row's member examples."""
        stats, cfg = self.data_stats, self.cfg
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
        pairs = lengths - 1
        usable = pairs >= 1
        stats["empty_examples"] = int((~usable).sum())
        stats["examples"] = int(usable.sum())
        stats["example_tokens"] = int(lengths[usable].sum())
        over = pairs > self.seq_len
        stats["overlong_examples"] = int(over.sum())
        if cfg.overlong == "split":
            stats["split_examples"] = int(over.sum())
        else:
            stats["truncated_examples"] = int(over.sum())
            stats["truncated_tokens"] = int((pairs[over] - self.seq_len).sum())
        self.local_of = np.full(self.mixture.num_records, -1, np.int64)
        self.local_of[kept[usable]] = np.flatnonzero(usable)
        self.pairs = pairs
        self.answer_starts = answer_starts
        self._materializer = RowMaterializer(ids, starts, answer_starts, self.seq_len, cfg.loss_on)
        usable_ids = kept[usable]
        row_of = self.mixture.row_of[usable_ids]
        self._members = {r: usable_ids[row_of == r] for r in self.rows}

    def _fingerprint(self, counts: list[int]) -> str:
        cfg = self.cfg
        shape = {
            "sources": [
                {"kind": s.kind, "weight": s.weight, "languages": s.languages, "records": n}
                for s, n in zip(cfg.sources, counts)
            ],
            "tokenizer": self._tokenizer_hash,
            "global_batch_size": self.global_batch_size,
            **{
                k: getattr(cfg, k)
                for k in (
                    "seq_len",
                    "commit_template",
                    "instruction_template",
                    "append_eos",
                    "overlong",
                    "loss_on",
                    "seed",
                    "pack_lookahead",
                )
            },
        }
        return hashlib.sha256(json.dumps(shape, sort_keys=True).encode()).hexdigest()[:16]

    def _pieces(self, row: int) -> Iterator[tuple[int, int, int]]:
        members = self._members[row]
        if not len(members):
            return
        epochs = self.cfg.num_epochs
        epoch = 0
        while epochs is None or epoch < epochs:
            for gid in self.mixture.epoch_order(row, epoch, members).tolist():
                local = int(self.local_of[gid])
                yield from example_pieces(
                    local, int(self.pairs[local]), self.seq_len, self.cfg.overlong
                )
            epoch += 1

    def _new_packers(self) -> dict[int, RowPacker]:
        return {
            r: RowPacker(self._pieces(r), self.seq_len, self.cfg.pack_lookahead) for r in self.rows
        }

    def _count_steps(self) -> int | None:
        if self.cfg.num_epochs is None:
            return None
        local = 0
        for packer in self._new_packers().values():
            n = 0
            while packer.next_row():
                n += 1
            local = max(local, n)
        if jax.process_count() > 1 and self.process_count == jax.process_count():
            from jax.experimental import multihost_utils

            local = int(np.max(multihost_utils.process_allgather(np.asarray([local]))))
        return local

    # --- iteration and state --------------------------------------------------------------------

    def _reset(self, step: int) -> None:
        self._packers = self._new_packers()
        self.step = 0
        self._stream = {
            "steps": 0,
            "rows": 0,
            "segments": 0,
            "examples_started": 0,
            "tokens": 0,
            "padding": 0,
            "loss_tokens": 0,
        }
        for _ in range(step):
            for packer in self._packers.values():
                self._account(packer.next_row())
            self._stream["steps"] += 1
            self.step += 1

    def _account(self, row: list[tuple[int, int, int]]) -> None:
        s = self._stream
        s["rows"] += 1
        used = 0
        loss = 0
        answer_only = self.cfg.loss_on == "answer"
        for example, first, pairs in row:
            used += pairs
            s["segments"] += 1
            s["examples_started"] += first == 0
            if answer_only:
                a = int(self.answer_starts[example])
                loss += max(0, first + pairs - max(first, a - 1))
        s["tokens"] += used
        s["padding"] += self.seq_len - used
        s["loss_tokens"] += used if not answer_only else loss

    def __iter__(self) -> TrainIterator:
        return self

    def __next__(self) -> dict[str, Any]:
        if self.num_steps is not None and self.step >= self.num_steps:
            raise StopIteration
        batch = self._materializer.empty(len(self.rows))
        for r, row_id in enumerate(self.rows):
            row = self._packers[row_id].next_row()
            self._account(row)
            if row:
                self._materializer.fill(batch, r, row)
        self._stream["steps"] += 1
        self.step += 1
        if self._sharding is None:
            return batch
        shape = (self.global_batch_size, self.seq_len)
        return {
            k: jax.make_array_from_process_local_data(self._sharding, v, shape)
            for k, v in batch.items()
        }

    @property
    def stats(self) -> dict[str, Any]:
        """This process's counts: its share of the data (records read, skipped, examples, overlong)
        and what the batches so far held (tokens, padding, padding_fraction, segments)."""
        s = dict(self._stream)
        total = s["tokens"] + s["padding"]
        s["padding_fraction"] = s["padding"] / total if total else 0.0
        return {**self.data_stats, **s}

    def get_state(self) -> dict[str, Any]:
        """A small JSON-serialisable state; ``set_state`` of it resumes exactly here."""
        return {"version": STATE_VERSION, "step": self.step, "fingerprint": self.fingerprint}

    def set_state(self, state: dict[str, Any]) -> None:
        """Continue with exactly the batches that followed ``state`` (any host layout)."""
        if not isinstance(state, dict) or "step" not in state:
            raise ValueError(f"not a data iterator state: {state!r}")
        if state.get("version") != STATE_VERSION:
            raise ValueError(
                f"data iterator state version {state.get('version')!r}, expected {STATE_VERSION}"
            )
        if state.get("fingerprint") != self.fingerprint:
            raise ValueError(
                "data iterator state was saved with other data or settings (sources, record "
                "counts, tokenizer, batch size, seq_len, templates, seed, packing): fingerprint "
                f"{state.get('fingerprint')!r} != {self.fingerprint!r}"
            )
        step = state["step"]
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"data iterator state: bad step {step!r}")
        if self.num_steps is not None and step > self.num_steps:
            raise ValueError(f"data iterator state: step {step} is past the end ({self.num_steps})")
        self._reset(step)


def _empty_stats(bad_records_skipped: int) -> dict[str, Any]:
    """The data statistics a TrainIterator reports (`data_stats`), all counts at zero."""
    names = (
        "records", "filtered_by_language", "examples", "example_tokens", "empty_examples",
        "overlong_examples", "split_examples", "truncated_examples", "truncated_tokens",
    )  # fmt: skip
    return {**dict.fromkeys(names, 0), "bad_records_skipped": bad_records_skipped}
