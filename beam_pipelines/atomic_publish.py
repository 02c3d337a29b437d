"""Publish a folder or a file in one step, so that a kill at any instant leaves the old result or
the new one, never a mix (no Beam, no jax: octojax, eval and beam_pipelines all import this).

A folder is built complete in a hidden sibling ``.<name>.partial-<host>-<pid>-<token>``, then
swapped in: the old folder is renamed aside (``.<name>.old-...``), the new one renamed in, the old
one deleted. :func:`recover` is the rule for the next start, one case per state a kill can leave:

- old aside, target missing (killed between the two renames): the old folder is renamed back;
- old aside, new in place (killed before or during the delete): the old folder is deleted;
- a ``.partial-`` folder or file (killed while building or before its rename): deleted.

Leftovers whose process still runs on this host are left alone (another publisher at work); so
are those of other hosts, with a warning. A file is written to a ``.partial-`` sibling and moved
in with ``os.replace``. Everything published gets ordinary permissions: folders 0777 and files
0666 (0777 when executable) less the umask, whatever the libraries that wrote them chose.

Tests arm a fault: ``OCTOJAX_FAULT_AT=n`` makes the process exit (``os._exit(FAULT_EXIT)``) right
before its n-th filesystem step here (a rename, replace, rmtree or unlink).
"""

from __future__ import annotations

import fnmatch
import logging
import os
import re
import secrets
import shutil
import socket
import stat
from collections.abc import Callable, Iterable
from pathlib import Path

log = logging.getLogger(__name__)

FAULT_ENV = "OCTOJAX_FAULT_AT"
FAULT_EXIT = 86
"""Exit status of a process stopped by the armed fault (distinct from any real outcome)."""

_steps = 0
_HOST = re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:16] or "host"
_OWNER = re.compile(r"(?P<host>[A-Za-z0-9]{1,16})-(?P<pid>[0-9]+)-[0-9a-f]{8}")
_LEGACY = re.compile(r"[A-Za-z0-9_]{8}")  # tempfile.mkdtemp's suffix, from before owners


def fs_step(what: str) -> None:
    """Count one filesystem step; die before it when the armed fault says so."""
    global _steps
    _steps += 1
    if os.environ.get(FAULT_ENV) == str(_steps):
        os.write(2, f"fault injected before filesystem step {_steps}: {what}\n".encode())
        os._exit(FAULT_EXIT)


def _real(target: str | os.PathLike) -> Path:
    """The path the swap renames: absolute, symlinks resolved ('.' and 'out/' work too)."""
    return Path(os.path.realpath(target))


def sibling_name(target: Path, kind: str) -> str:
    """A fresh hidden name beside target that records this process as its owner."""
    return f".{target.name}.{kind}-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}"


def new_folder(target: str | os.PathLike) -> Path:
    """An empty folder beside target (same filesystem: the swap is two renames) to build into."""
    target = _real(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = target.parent / sibling_name(target, "partial")
    folder.mkdir()  # mode 0777 less the umask (tempfile.mkdtemp would give 0700)
    return folder


def remove(path: Path) -> None:
    """Delete a folder or file (one counted step); a missing one is fine."""
    if not os.path.lexists(path):
        return
    fs_step(f"remove {path}")
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _leftovers(target: Path) -> list[tuple[str, Path, bool]]:
    """(kind, path, legacy) of every dead publisher's partial/old sibling of target; legacy: a
    name from before owners were recorded (staging.py then kept the old folder one level down)."""
    found = []
    for kind in ("partial", "old"):
        prefix = f".{target.name}.{kind}-"
        for path in target.parent.glob(glob_escape(prefix) + "*"):
            rest = path.name[len(prefix) :]
            owner = _OWNER.fullmatch(rest)
            if owner is None and not _LEGACY.fullmatch(rest):
                continue  # another target's name that happens to start the same way
            if owner is not None and _alive(owner["host"], int(owner["pid"]), path):
                continue
            found.append((kind, path, owner is None))
    return found


def glob_escape(text: str) -> str:
    """text with glob's special characters taken literally."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _alive(host: str, pid: int, path: Path) -> bool:
    """Whether the owner may still be working (this process, a live PID, or another host)."""
    if host != _HOST:
        log.warning("%s: left by host %s; not removed (delete it if that run is over)", path, host)
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def recover(target: str | os.PathLike) -> None:
    """Bring target back to a whole old or new result after a kill, and delete the leftovers."""
    target = _real(target)
    if not target.parent.is_dir():
        return
    leftovers = _leftovers(target)
    olds = [(p, legacy) for kind, p, legacy in leftovers if kind == "old"]
    if olds and not os.path.lexists(target):
        old, legacy = max(olds, key=lambda o: o[0].lstat().st_ctime)  # the last one set aside
        source = old / target.name if legacy and (old / target.name).is_dir() else old
        fs_step(f"rename {source} -> {target}")
        os.rename(source, target)
        log.warning("%s: restored the previous version (a publish was interrupted)", target)
    for _, path, _ in leftovers:
        if os.path.lexists(path):
            remove(path)
            log.warning("%s: removed (left by an interrupted publish)", path)


def _umask() -> int:
    """The process umask, read without changing it (os.umask would race other threads)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def ordinary_permissions(root: Path, names: Iterable[str] | None = None) -> None:
    """Folders 0777, files 0666 (0777 if executable), less the umask: root and what it holds
    (only the given top-level names, when given). Symlinks are left alone."""
    mask = _umask()

    def fix(path: Path) -> None:
        mode = path.lstat().st_mode
        if stat.S_ISLNK(mode):
            return
        full = 0o777 if stat.S_ISDIR(mode) or mode & 0o111 else 0o666
        os.chmod(path, full & ~mask)

    fix(root)
    for name in sorted(os.listdir(root)) if names is None else names:
        top = root / name
        fix(top)
        if top.is_dir() and not top.is_symlink():
            for dirpath, dirnames, filenames in os.walk(top):
                for entry in (*dirnames, *filenames):
                    fix(Path(dirpath) / entry)


def _link_or_copy(src: str, dst: str) -> None:
    """A hard link (no bytes copied; the old folder is deleted after), else a copy."""
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)


def _carry(src: Path, dst: Path) -> None:
    """Put one entry of the old folder into the new one, as it is."""
    if src.is_symlink():
        os.symlink(os.readlink(src), dst)
    elif src.is_dir():
        shutil.copytree(src, dst, symlinks=True, copy_function=_link_or_copy)
    else:
        _link_or_copy(str(src), str(dst))


def publish_folder(
    new: str | os.PathLike, target: str | os.PathLike, keep: Callable[[str], bool] | None = None
) -> Path:
    """Make the complete folder `new` (from :func:`new_folder`) the target in one swap.

    Entries of the old target that `new` lacks and `keep(name)` accepts are carried over (hard
    links), e.g. a README beside an exported model. Steps: rename old aside, rename new in,
    delete old; :func:`recover` finishes or undoes a swap that a kill interrupted.
    """
    new, target = Path(new), _real(target)
    if os.path.lexists(target) and not target.is_dir():
        raise NotADirectoryError(f"{target}: exists and is not a directory")
    ordinary_permissions(new)
    if not target.exists():
        fs_step(f"rename {new} -> {target}")
        os.rename(new, target)
        return target
    built = set(os.listdir(new))
    for name in sorted(set(os.listdir(target)) - built):
        if keep is not None and keep(name):
            _carry(target / name, new / name)
    aside = target.parent / sibling_name(target, "old")
    fs_step(f"rename {target} -> {aside}")
    os.rename(target, aside)
    fs_step(f"rename {new} -> {target}")
    os.rename(new, target)
    remove(aside)
    return target


def keep_unless(patterns: Iterable[str]) -> Callable[[str], bool]:
    """keep= for :func:`publish_folder`: carry every old entry that matches none of patterns."""
    patterns = tuple(patterns)
    return lambda name: not any(fnmatch.fnmatchcase(name, p) for p in patterns)


def write_file(path: str | os.PathLike, data: str | bytes, encoding: str = "utf-8") -> Path:
    """Write a whole file or nothing: a synced ``.partial-`` sibling moved in by os.replace.
    Dead writers' partial files of the same path are deleted first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _, leftover, _ in _leftovers(path):
        remove(leftover)
    tmp = path.parent / sibling_name(path, "partial")
    payload = data.encode(encoding) if isinstance(data, str) else data
    try:
        with open(tmp, "xb") as f:  # 0666 less the umask, as any new file
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())
        fs_step(f"replace {path} <- {tmp}")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
