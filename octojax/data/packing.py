"""Pack examples into fixed-length rows: one greedy first-fit packer per batch row.

An example of ``n`` tokens (EOS included) trains ``n - 1`` (input, target) pairs: input token t
predicts token t + 1 of the same example, and the last pair predicts the EOS. A row holds whole
pairs of several examples (each a segment), padding only at its end. An example with more than
``seq_len`` pairs is split into pieces of ``seq_len`` pairs (each its own segment, positions
restarting) or truncated to its first ``seq_len`` pairs.

The packer keeps a window of the next ``lookahead`` pieces in stream order and fills a row with the
oldest pieces that still fit (first fit); a row is closed when nothing in the window fits. Its
decisions depend on piece lengths only, so a state is replayed from lengths alone (``advance``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

Piece = tuple[int, int, int]  # (local example index, first pair, number of pairs)


def example_pieces(example: int, pairs: int, seq_len: int, overlong: str) -> list[Piece]:
    """The pieces an example of ``pairs`` pairs is packed as."""
    if pairs <= seq_len:
        return [(example, 0, pairs)]
    if overlong == "truncate":
        return [(example, 0, seq_len)]
    return [(example, s, min(seq_len, pairs - s)) for s in range(0, pairs, seq_len)]


class RowPacker:
    """Plans the rows of one stream of pieces (an iterator of ``Piece``)."""

    def __init__(self, pieces: Iterator[Piece], seq_len: int, lookahead: int):
        self._pieces = pieces
        self._seq_len = seq_len
        self._lookahead = lookahead
        self._window: list[Piece] = []
        self._exhausted = False
        self._refill()

    def _refill(self) -> None:
        while not self._exhausted and len(self._window) < self._lookahead:
            piece = next(self._pieces, None)
            if piece is None:
                self._exhausted = True
            else:
                self._window.append(piece)

    @property
    def done(self) -> bool:
        return self._exhausted and not self._window

    def next_row(self) -> list[Piece]:
        """The pieces of the next row (empty once the stream is exhausted)."""
        row: list[Piece] = []
        room = self._seq_len
        window = self._window
        while window and room:
            for k, piece in enumerate(window):
                if piece[2] <= room:
                    row.append(piece)
                    room -= piece[2]
                    del window[k]
                    self._refill()
                    break
            else:
                break
        return row


class RowMaterializer:
    """Turns row plans into arrays from the tokenised examples of this host."""

    def __init__(
        self,
        ids: np.ndarray,
        starts: np.ndarray,
        answer_starts: np.ndarray,
        seq_len: int,
        loss_on: str,
    ):
        self.ids = ids
        self.starts = starts
        self.answer_starts = answer_starts
        self.seq_len = seq_len
        self.answer_only = loss_on == "answer"
        self._arange = np.arange(seq_len, dtype=np.int32)

    def empty(self, rows: int) -> dict[str, np.ndarray]:
        shape = (rows, self.seq_len)
        return {
            "inputs": np.zeros(shape, np.int32),
            "targets": np.zeros(shape, np.int32),
            "segment_ids": np.zeros(shape, np.int32),
            "positions": np.zeros(shape, np.int32),
            "loss_weights": np.zeros(shape, np.float32),
        }

    def fill(self, batch: dict[str, np.ndarray], r: int, row: list[Piece]) -> None:
        pos = 0
        for seg, (example, first, pairs) in enumerate(row, start=1):
            base = int(self.starts[example]) + first
            end = pos + pairs
            batch["inputs"][r, pos:end] = self.ids[base : base + pairs]
            batch["targets"][r, pos:end] = self.ids[base + 1 : base + pairs + 1]
            batch["segment_ids"][r, pos:end] = seg
            batch["positions"][r, pos:end] = self._arange[:pairs]
            if self.answer_only:
                # pair j (0-based in the example) predicts token j + 1: weight it if that is answer.
                j1 = first + 1 + self._arange[:pairs]
                batch["loss_weights"][r, pos:end] = j1 >= self.answer_starts[example]
            else:
                batch["loss_weights"][r, pos:end] = 1.0
            pos = end
