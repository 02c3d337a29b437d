"""Which examples each batch row sees, epoch by epoch: deterministic, seeded, layout-free.

Every row of the global batch is an independent packing stream. The records (concatenated over
sources) are dealt to the rows once, so the rows own disjoint sets that do not depend on how many
hosts there are: a host reads only the records of the rows it produces, and two hosts together
produce exactly what one host would. The deal balances work: records are taken largest first (by
bytes on disk times weight, known from the index before anything is tokenised; ties in a seeded
random order) and each round of ``num_rows`` records goes to the rows with the least bytes so far.
Rows then run out of data at nearly the same step, so an epoch ends with little padding.

Weights are sampling rates: per epoch a source with weight ``w`` contributes ``floor(w)`` copies of
each record plus a seeded ``w - floor(w)`` fraction of its records (a different subset each epoch).
Each row's records for an epoch are shuffled with a seed derived from (seed, epoch, row).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


class Mixture:
    def __init__(
        self,
        counts: Sequence[int],
        weights: Sequence[float],
        num_rows: int,
        seed: int,
        sizes: np.ndarray | None = None,
    ):
        if len(counts) != len(weights):
            raise ValueError("counts and weights differ in length")
        self.counts = [int(c) for c in counts]
        self.weights = [float(w) for w in weights]
        self.num_rows = int(num_rows)
        self.seed = int(seed)
        self.source_starts = np.cumsum([0, *self.counts])
        self.num_records = int(self.source_starts[-1])
        self.row_of = self._deal(sizes)
        self._multiplicity_cache: dict[int, np.ndarray] = {}

    def _deal(self, sizes: np.ndarray | None) -> np.ndarray:
        """Row of every record: balanced by size x weight when sizes are known, else round-robin
        over a seeded permutation."""
        rng = np.random.default_rng([self.seed, 0])
        N, R = self.num_records, self.num_rows
        row_of = np.empty(N, np.int64)
        if sizes is None:
            row_of[rng.permutation(N)] = np.arange(N) % R
            return row_of
        sizes = np.asarray(sizes, np.float64)
        if sizes.shape != (N,):
            raise ValueError(f"sizes has shape {sizes.shape}, expected ({N},)")
        weight_of = np.repeat(np.asarray(self.weights, np.float64), self.counts)
        work = sizes * weight_of
        tie = rng.permutation(N)
        order = np.lexsort((tie, -work))  # largest first, ties in seeded order
        load = np.zeros(R, np.float64)
        rows = rng.permutation(R)  # lightest-first order of the rows (all empty: seeded)
        for start in range(0, N, R):
            chunk = order[start : start + R]
            targets = rows[: len(chunk)]
            row_of[chunk] = targets
            load[targets] += work[chunk]
            rows = np.argsort(load, kind="stable")
        return row_of

    def records_per_epoch(self) -> int:
        """Examples in one epoch over all rows (before any record is skipped)."""
        total = 0
        for n, w in zip(self.counts, self.weights):
            whole = math.floor(w)
            total += whole * n + round((w - whole) * n)
        return total

    def rows_records(self, rows: Sequence[int]) -> np.ndarray:
        """Sorted global record ids owned by any of ``rows``."""
        return np.flatnonzero(np.isin(self.row_of, np.asarray(rows)))

    def source_of(self, record_ids: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.source_starts, record_ids, side="right") - 1

    def multiplicity(self, epoch: int) -> np.ndarray:
        """How many times each record appears in ``epoch`` (int32 over all records)."""
        cached = self._multiplicity_cache.get(epoch)
        if cached is not None:
            return cached
        mult = np.empty(self.num_records, np.int32)
        for i, (n, w) in enumerate(zip(self.counts, self.weights)):
            start = self.source_starts[i]
            whole = math.floor(w)
            mult[start : start + n] = whole
            extra = round((w - whole) * n)
            if extra:
                chosen = np.random.default_rng([self.seed, 1, i, epoch]).permutation(n)[:extra]
                mult[start + chosen] += 1
        if len(self._multiplicity_cache) >= 4:
            self._multiplicity_cache.pop(min(self._multiplicity_cache))
        self._multiplicity_cache[epoch] = mult
        return mult

    def epoch_order(self, row: int, epoch: int, members: np.ndarray) -> np.ndarray:
        """The row's record ids for ``epoch`` (with repeats for weights > 1), shuffled.

        ``members``: the row's records that can be used (sorted; skipped records removed).
        """
        reps = self.multiplicity(epoch)[members]
        order = np.repeat(members, reps)
        np.random.default_rng([self.seed, 2, epoch, row]).shuffle(order)
        return order
