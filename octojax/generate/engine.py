"""The host side of decoding: a fixed set of slots, filled from a queue of rows.

A row is one completion: a prompt (token ids), its own new-token limit, and a row id that seeds
its sampling key (fold_in(key(seed), row_id)), so a row's tokens do not depend on batching,
slots or hosts. Rows with the same prompt share one prefill (prefix sharing: n samples cost
one prefill and n cache copies).

Two schedulers drive the same jitted programs (octojax/generate/decode.py):

- "continuous": whenever a row ends (EOS, its limit, or the host's stop check), its slot is
  refilled with the next waiting row while the other slots keep their caches and go on.
- "static": a batch of rows fills the slots, and the next batch starts only when all have ended.

Stop checks (stop sequences, the harness's stop_when) run on the host between chunks; a row that
stops is cut at the first token at which its check holds, so the output does not depend on where
the chunk boundaries fell (assuming, as for stop sequences, that a check stays true once true).
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import Mesh

from octojax.generate.decode import Prefix, SlotState, decode_chunk, init_slots, insert, prefill
from octojax.generate.sampling import SamplingParams
from octojax.model.gptbigcode import GPTBigCode

SCHEDULERS = ("continuous", "static")


@dataclasses.dataclass
class RowResult:
    """New token ids of one row and why it ended: "eos", "length" or "stop"."""

    token_ids: list[int]
    finish_reason: str


def length_bucket(n: int, cap: int) -> int:
    """Prompt-length buckets 16, 24, 32, 48, 64, 96, 128, 192, ... (capped): few compiled prefills."""
    b = 16
    while b < n:
        b = b * 3 // 2 if b & (b - 1) == 0 else b * 4 // 3
    return min(b, cap)


def _pow2(n: int) -> int:
    return 1 << max(0, n - 1).bit_length()


def first_true(ids: list[int], lo: int, check: Callable[[list[int]], bool]) -> int:
    """Smallest n in (lo, len(ids)] with check(ids[:n]) true (check(ids) is true)."""
    hi = len(ids)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if check(ids[:mid]):
            hi = mid
        else:
            lo = mid
    return hi


@dataclasses.dataclass
class _Row:
    index: int
    limit: int
    tokens: list[int] = dataclasses.field(default_factory=list)
    checked: int = 0  # tokens already known not to trigger the stop check


class Engine:
    """Slots + scheduler over a model (placed on `mesh` when given).

    Prompts are prefilled one at a time (batch 1, their own length bucket): with n samples per
    prompt a prefill feeds n slots, and the set of compiled programs stays small (one prefill per
    length bucket, one insert per bucket and power-of-two row count, one decode loop).
    """

    def __init__(
        self,
        model: GPTBigCode,
        *,
        eos_ids: Sequence[int],
        pad_id: int,
        mesh: Mesh | None = None,
        slots: int = 32,
        chunk: int = 32,
    ):
        self.model = model
        self.graphdef, self.state = nnx.split(model)
        self.cfg = model.cfg
        self.mesh = mesh
        batch_ways = 1 if mesh is None else mesh.shape["data"] * mesh.shape["fsdp"]
        self.slots = -(-slots // batch_ways) * batch_ways  # every batch shard gets whole rows
        self.chunk = chunk
        self.eos = jnp.asarray(sorted(set(eos_ids)), jnp.int32)
        self.pad_id = pad_id
        self.stats: dict[str, float] = {}

    def cache_size(self, prompts: Sequence[Sequence[int]], limits: Sequence[int]) -> int:
        """Columns the slots need: every prompt bucket, and every prompt plus its limit."""
        P = self.cfg.n_positions
        need = max(max(length_bucket(len(p), P), len(p) + n) for p, n in zip(prompts, limits))
        if need > P:
            raise ValueError(f"a prompt plus its max_new_tokens needs {need} > n_positions={P}")
        return min(-(-need // 128) * 128, P)

    def run(
        self,
        prompts: Sequence[Sequence[int]],
        limits: Sequence[int],
        *,
        sampling: SamplingParams,
        seed: int = 0,
        row_ids: Sequence[int] | None = None,
        scheduler: str = "continuous",
        stop_check: Callable[[int, list[int]], bool] | None = None,
        on_row_done: Callable[[int], None] | None = None,
    ) -> list[RowResult]:
        """Complete every row; results in row order. stop_check(row, ids) ends a row early."""
        if scheduler not in SCHEDULERS:
            raise ValueError(f"scheduler={scheduler!r}; expected one of {SCHEDULERS}")
        if any(n < 1 for n in limits) or len(limits) != len(prompts):
            raise ValueError("need one max_new_tokens >= 1 per prompt")
        if any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        if not prompts:
            return []
        row_ids = list(range(len(prompts))) if row_ids is None else list(row_ids)
        ctx = jax.set_mesh(self.mesh) if self.mesh is not None else _nullcontext()
        with ctx:
            run = _Run(self, prompts, limits, sampling, seed, row_ids, stop_check, on_row_done)
            return run.loop(scheduler)

    def warmup(
        self,
        prompts: Sequence[Sequence[int]],
        limits: Sequence[int],
        *,
        sampling: SamplingParams,
    ) -> None:
        """Compile every program a `run` over these prompts can use, on dummy rows."""
        ctx = jax.set_mesh(self.mesh) if self.mesh is not None else _nullcontext()
        with ctx:
            run = _Run(self, prompts, limits, sampling, 0, list(range(len(prompts))), None, None)
            P = self.cfg.n_positions
            for T in sorted({length_bucket(len(p), P) for p in prompts}):
                prefix = prefill(
                    self.graphdef, self.state, jnp.zeros((1, T), jnp.int32),
                    jnp.ones((1,), jnp.int32),
                )  # fmt: skip
                for R in (1 << i for i in range(_pow2(self.slots).bit_length())):
                    run.slots = insert(
                        run.slots, prefix, jnp.zeros((R,), jnp.int32),
                        jnp.full((R,), self.slots, jnp.int32),
                        jnp.asarray(run.key_data[np.zeros(R, int)]), jnp.ones((R,), jnp.int32),
                        sampling=sampling,
                    )  # fmt: skip
            out = decode_chunk(
                self.graphdef, self.state, run.slots, jnp.zeros((self.slots,), bool), self.eos,
                jnp.asarray(self.slots + 1, jnp.int32), steps=self.chunk, sampling=sampling,
                pad_id=self.pad_id,
            )  # fmt: skip
            jax.block_until_ready(out)


class _nullcontext:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Run:
    """One `Engine.run` call: the waiting queue, the slots, and the rows they hold."""

    def __init__(self, eng, prompts, limits, sampling, seed, row_ids, stop_check, on_row_done):
        self.eng, self.sampling, self.stop_check = eng, sampling, stop_check
        self.on_row_done = on_row_done
        self.prompts = [list(p) for p in prompts]
        self.rows = [_Row(i, int(n)) for i, n in enumerate(limits)]
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, p in enumerate(self.prompts):
            groups.setdefault(tuple(p), []).append(i)
        self.waiting = collections.deque(groups.values())  # prompt groups not yet prefilled
        self.pending: collections.deque = collections.deque()  # (prefix, g, row) ready to insert
        base = jax.random.key(seed)
        self.key_data = np.asarray(
            jax.vmap(lambda i: jax.random.key_data(jax.random.fold_in(base, i)))(
                jnp.asarray(row_ids, jnp.uint32)
            )
        )
        B = eng.slots
        self.size = eng.cache_size(self.prompts, limits)
        self.slot_rows: list[_Row | None] = [None] * B
        init = jax.jit(init_slots, static_argnums=(0, 1, 2, 3))
        self.slots: SlotState = init(eng.cfg, B, self.size, self.key_data.shape[1:])
        self.stop_B = np.zeros(B, bool)
        self.results: list[RowResult | None] = [None] * len(self.rows)
        self.stats = collections.Counter()

    # ---- admission --------------------------------------------------------------------------

    def _prefill_next(self) -> None:
        """Prefill the next waiting prompt once; all its rows become ready to insert."""
        eng = self.eng
        g = self.waiting.popleft()
        p = self.prompts[g[0]]
        T = length_bucket(len(p), eng.cfg.n_positions)
        tokens_1T = np.full((1, T), eng.pad_id, np.int32)
        tokens_1T[0, : len(p)] = p
        length_1 = jnp.asarray([len(p)], jnp.int32)
        prefix = prefill(eng.graphdef, eng.state, jnp.asarray(tokens_1T), length_1)
        self.stats["prefills"] += 1
        self.pending.extend((prefix, 0, r) for r in g)

    def admit(self, free: list[int]) -> None:
        """Fill the free slots with waiting rows (prefilling prompts as needed)."""
        while free and (self.pending or self.waiting):
            if not self.pending:
                self._prefill_next()
            prefix: Prefix = self.pending[0][0]
            src, dst = [], []
            while free and self.pending and self.pending[0][0] is prefix:
                _, g, r = self.pending.popleft()
                s = free.pop(0)
                src.append(g)
                dst.append(s)
                self.slot_rows[s] = self.rows[r]
            R = _pow2(len(src))
            pad = R - len(src)
            rows = [self.slot_rows[s] for s in dst]
            src_R = np.asarray(src + [0] * pad, np.int32)
            slot_R = np.asarray(dst + [self.eng.slots] * pad, np.int32)  # index B: dropped
            key_RP = self.key_data[[r.index for r in rows] + [rows[0].index] * pad]
            limit_R = np.asarray([r.limit for r in rows] + [1] * pad, np.int32)
            self.slots = insert(
                self.slots, prefix, jnp.asarray(src_R), jnp.asarray(slot_R),
                jnp.asarray(key_RP), jnp.asarray(limit_R), sampling=self.sampling,
            )  # fmt: skip
            self.stop_B[dst] = False
            self.stats["inserted"] += len(src)

    # ---- the loop ---------------------------------------------------------------------------

    def _finish(self, s: int, reason: str) -> None:
        row = self.slot_rows[s]
        self.results[row.index] = RowResult(row.tokens, reason)
        self.slot_rows[s] = None
        if self.on_row_done is not None:
            self.on_row_done(row.index)

    def _collect(self, out_BC: np.ndarray, count_B: np.ndarray, done_B: np.ndarray) -> None:
        """Append the chunk's tokens; end rows that finished on device or hit a stop check."""
        for s, row in enumerate(self.slot_rows):
            if row is None:
                continue
            row.tokens.extend(out_BC[s, : count_B[s]].tolist())
            check = self.stop_check
            if check is not None and len(row.tokens) > row.checked:
                ids = row.tokens
                if check(row.index, ids):
                    n = first_true(ids, row.checked, lambda t, i=row.index, c=check: c(i, t))
                    del row.tokens[n:]
                    self.stop_B[s] = not done_B[s]
                    self._finish(s, "stop")
                    continue
                row.checked = len(ids)
            if done_B[s]:
                self._finish(s, "length" if len(row.tokens) >= row.limit else "eos")

    def loop(self, scheduler: str) -> list[RowResult]:
        eng = self.eng
        B = eng.slots
        t0 = time.perf_counter()
        while True:
            free = [s for s in range(B) if self.slot_rows[s] is None]
            if scheduler == "continuous" or len(free) == B:
                self.admit(free)
            busy = sum(r is not None for r in self.slot_rows)
            if busy == 0:
                break
            waiting = bool(self.pending or self.waiting)
            free_target = B - busy + 1 if scheduler == "continuous" and waiting else B + 1
            self.slots, out_BC, count_B, ran = decode_chunk(
                eng.graphdef, eng.state, self.slots, jnp.asarray(self.stop_B), eng.eos,
                jnp.asarray(free_target, jnp.int32), steps=eng.chunk,
                sampling=self.sampling, pad_id=eng.pad_id,
            )  # fmt: skip
            self.stop_B[:] = False
            out_BC, count_B, done_B, ran = jax.device_get((out_BC, count_B, self.slots.done_B, ran))
            self.stats["chunks"] += 1
            self.stats["decode_steps"] += int(ran)
            self._collect(np.asarray(out_BC), np.asarray(count_B), np.asarray(done_B))
        self.stats["seconds"] = time.perf_counter() - t0
        self.stats["new_tokens"] = sum(len(r.token_ids) for r in self.results)
        self.stats["slots"] = B
        eng.stats = dict(self.stats)
        return self.results  # type: ignore[return-value]
