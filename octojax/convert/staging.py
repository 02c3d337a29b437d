"""Write an output folder beside its destination and swap it into place only on success.

A conversion that dies half way (out of memory, disk full, Ctrl-C, a kill) must not leave a folder
that looks like a model: transformers would load a config.json beside a truncated or stale set of
weights. Everything is written into a hidden sibling folder (same filesystem, so the final moves
are renames) that is deleted on failure; the whole folder is then swapped in and interrupted swaps
are finished or undone at the next start (beam_pipelines/atomic_publish.py, shared with the
CommitPack publish step and eval's result files).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from beam_pipelines.atomic_publish import keep_unless, new_folder, publish_folder, recover, remove

__all__ = ["recover", "staged_dir"]


@contextlib.contextmanager
def staged_dir(
    out_dir: str | Path, *, replace: bool = False, stale: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield an empty folder to write into; on success it becomes out_dir in one swap.

    A leftover of an interrupted earlier publish of out_dir is recovered first. An existing
    out_dir is either replaced as a whole (replace=True) or updated: its entries that the new
    folder lacks and that match none of the `stale` glob patterns (e.g. the shards of an earlier
    export, which a new index would not name) are carried into the new folder (a README, a
    tokenizer), then the folders are swapped. On an exception nothing in out_dir changes.
    Published folders get 0755/0644 under umask 022 (the umask decides), not tempfile's 0700.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a directory")
    recover(out_dir)
    tmp = new_folder(out_dir)
    try:
        yield tmp
    except BaseException:
        remove(tmp)
        raise
    publish_folder(tmp, out_dir, keep=None if replace else keep_unless(stale))
