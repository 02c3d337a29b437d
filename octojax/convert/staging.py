"""Write an output folder beside its destination and move it into place only on success.

A conversion that dies half way (out of memory, disk full, Ctrl-C) must not leave a folder that
looks like a model: transformers would load a config.json beside a truncated or stale set of
weights. Everything is written into a hidden sibling folder (same filesystem, so the final moves
are renames) that is deleted on failure.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path


def _clear(out_dir: Path, stale: Sequence[str]) -> None:
    for pattern in stale:
        for old in out_dir.glob(pattern):
            shutil.rmtree(old) if old.is_dir() and not old.is_symlink() else old.unlink()


@contextlib.contextmanager
def staged_dir(
    out_dir: str | Path, *, replace: bool = False, stale: Sequence[str] = ()
) -> Iterator[Path]:
    """Yield an empty folder to write into; on success its contents become out_dir.

    A missing out_dir is created by one rename. An existing one is either replaced as a whole
    (replace=True: the old folder is deleted after the new one is in place) or updated: files
    matching the `stale` glob patterns are removed (e.g. the shards of an earlier export, which
    a new index would not name) and each new entry is moved in, replacing one of the same name;
    other files (a README, a tokenizer) stay. On an exception nothing in out_dir changes.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    if out_dir.exists() and not out_dir.is_dir():
        raise NotADirectoryError(f"{out_dir}: exists and is not a directory")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if not out_dir.exists():
        tmp.rename(out_dir)
    elif replace:
        old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.old-", dir=out_dir.parent))
        out_dir.rename(old / out_dir.name)
        tmp.rename(out_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        _clear(out_dir, stale)
        for entry in sorted(tmp.iterdir()):
            target = out_dir / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            entry.replace(target)
        tmp.rmdir()
