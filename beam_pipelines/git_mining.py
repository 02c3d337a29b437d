"""Mine raw commit records from a git repository with the git CLI (no Beam, no TensorFlow).

One ``git log --raw --no-renames -z`` stream lists every commit with its parents, message and
changed files (status, modes, blob ids, paths; a rename is a delete plus an add, as in BigQuery's
``difference``, and needs no blob reads); one long-lived ``git cat-file --batch`` process
reads the parent/child blobs. Contents are read only for commits with exactly one regular file
modified in place, whatever else they add, delete or rename (the only ones CommitPack can keep);
every other commit is still emitted, with its structure in ``_parents``/``_changes``, so the
filters drop it for the right reason. Each record also carries ``_repo_languages`` (the languages
of the files at HEAD) for CommitPack's repository-language rule.

Why the CLI and not a library: git itself is the reference for rename detection and object reading,
is installed everywhere Beam workers run, and streaming two processes is faster than GitPython
(which wraps the same CLI) or dulwich (pure Python object parsing).

:func:`mine_repository` yields ``("commit", raw_record)`` or ``("dead", dead_letter)`` items: exactly
one per commit (a commit whose file is binary, not UTF-8, or over ``max_file_bytes``, or whose
message/path is not UTF-8, becomes a dead letter), plus one dead letter if the repository cannot be
read at all.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from beam_pipelines.languages import repo_languages
from beam_pipelines.licenses import LICENSE_FILE_RE, detect_license, license_file_priority
from beam_pipelines.schema import subject_of

log = logging.getLogger(__name__)

DEFAULT_MAX_FILE_BYTES = 1_000_000
BINARY_SNIFF_BYTES = 8000  # git's own heuristic: a NUL byte in the first 8000 bytes
PROGRESS_EVERY = 5000

_GIT = ("git", "-c", "core.quotepath=off", "-c", "log.showSignature=false")
_HEADER_FMT = "--format=%x1e%H%x1f%P%x1f%B%x1f"
_NULL_SHA = "0" * 40


class GitError(RuntimeError):
    """A git command failed on a repository."""


@dataclass(frozen=True)
class RepoSpec:
    """A repository to mine: a local path or clone URL, and the name written to ``repos``."""

    location: str
    name: str

    @staticmethod
    def parse(line: str) -> RepoSpec:
        """``"PATH_OR_URL"`` or ``"PATH_OR_URL NAME"`` (NAME like ``owner/repo``)."""
        parts = line.strip().split()
        if not parts:
            raise ValueError("empty repository line")
        if len(parts) > 2:
            raise ValueError(f"repository line has more than two fields: {line!r}")
        location = parts[0]
        return RepoSpec(location, parts[1] if len(parts) == 2 else default_repo_name(location))


def is_url(location: str) -> bool:
    return "://" in location or re.match(r"^[\w.-]+@[\w.-]+:", location) is not None


def default_repo_name(location: str) -> str:
    """``owner/name`` for a URL, the directory name for a local path (``.git`` stripped)."""
    path = location.rstrip("/")
    if path.endswith(".git"):
        path = path[:-4]
    if is_url(location):
        parts = re.split(r"[/:]", path)
        return "/".join(p for p in parts[-2:] if p)
    path = os.path.abspath(path)
    if os.path.basename(path) == ".git":
        path = os.path.dirname(path)
    return os.path.basename(path)


def _run_git(repo: str, *args: str, check: bool = True) -> bytes:
    proc = subprocess.run([*_GIT, "-C", repo, *args], capture_output=True, check=False)
    if check and proc.returncode != 0:
        raise GitError(
            f"{repo}: git {' '.join(args)} failed ({proc.returncode}): "
            f"{proc.stderr.decode('utf-8', 'replace').strip()}"
        )
    return proc.stdout


def has_commits(repo: str) -> bool:
    proc = subprocess.run(
        [*_GIT, "-C", repo, "rev-parse", "--verify", "-q", "HEAD^{commit}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
    return proc.returncode == 0


def detect_repo_license(repo: str, rev: str = "HEAD") -> str | None:
    """SPDX id of the license file at the root of ``rev`` (LICENSE, COPYING, ...), or None."""
    if not has_commits(repo):
        return None
    names = _run_git(repo, "ls-tree", "--name-only", "-z", rev).split(b"\0")
    candidates = sorted(
        (n.decode("utf-8", "replace") for n in names if n),
        key=license_file_priority,
    )
    for name in candidates:
        if not LICENSE_FILE_RE.match(name):
            continue
        blob = _run_git(repo, "cat-file", "-p", f"{rev}:{name}", check=False)
        spdx = detect_license(blob.decode("utf-8", "replace"))
        if spdx is not None:
            return spdx
    return None


def repo_tree_languages(repo: str, rev: str = "HEAD") -> frozenset[str]:
    """Languages of the files in ``rev``'s tree: our stand-in for the GitHub ``languages`` table
    that CommitPack's SQL joins on (sql_1_commits_table_base.sql)."""
    names = _run_git(repo, "ls-tree", "-r", "--name-only", "-z", rev).split(b"\0")
    return frozenset(repo_languages(n.decode("utf-8", "replace") for n in names if n))


class BlobReader:
    """A persistent ``git cat-file --batch`` process: blob id -> bytes (or size only if too big).

    Requests go to git from a writer thread while the caller reads the answers, so git works
    ahead instead of waiting for one request per round trip (``stream``)."""

    PIPE_BYTES = 1 << 20  # room for git's answers ahead of the reader (Linux F_SETPIPE_SZ)

    def __init__(self, repo: str):
        self.repo = repo
        self.proc = subprocess.Popen(
            [*_GIT, "-C", repo, "cat-file", "--batch"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self._pending = 0  # answers requested but not read: close() must not wait on git then
        _widen_pipe(self.proc.stdout, self.PIPE_BYTES)

    def read(self, sha: str, max_bytes: int) -> tuple[bytes | None, int]:
        """(content, size); content is None when size > max_bytes (the bytes are skipped)."""
        return self.read_many((sha,), max_bytes)[0]

    def read_many(self, shas: Sequence[str], max_bytes: int) -> list[tuple[bytes | None, int]]:
        """:meth:`read` for several blobs, answered in request order."""
        return list(self.stream(shas, max_bytes))

    def stream(self, shas: Sequence[str], max_bytes: int) -> Iterator[tuple[bytes | None, int]]:
        """Answers for ``shas`` in order, read while a thread writes the requests (a request
        list larger than the pipe to git would otherwise deadlock against unread answers)."""
        assert self.proc.stdin is not None
        requests = b"".join(sha.encode() + b"\n" for sha in shas)
        self._pending += len(shas)
        writer = threading.Thread(target=self._write, args=(requests,), daemon=True)
        writer.start()
        for sha in shas:
            answer = self._read_answer(sha, max_bytes)
            self._pending -= 1
            yield answer
        writer.join()

    def _write(self, requests: bytes) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(requests)
            self.proc.stdin.flush()
        except (BrokenPipeError, ValueError):
            pass  # git exited or we closed: the reader reports the missing answers

    def _read_answer(self, sha: str, max_bytes: int) -> tuple[bytes | None, int]:
        """Read git's answer for ``sha`` (header, content, newline)."""
        assert self.proc.stdout is not None
        header = self.proc.stdout.readline()
        parts = header.split()
        if len(parts) != 3 or parts[1] != b"blob":
            raise GitError(f"{self.repo}: cannot read blob {sha}: {header!r}")
        size = int(parts[2])
        if size > max_bytes:
            remaining = size + 1
            while remaining:
                remaining -= len(self.proc.stdout.read(min(remaining, 1 << 20)))
            return None, size
        content = self.proc.stdout.read(size)
        self.proc.stdout.read(1)  # the newline after each object
        return content, size

    def close(self) -> None:
        if self._pending:
            self.proc.kill()  # unread answers: git would block writing them
        if self.proc.stdin:
            with contextlib.suppress(BrokenPipeError):
                self.proc.stdin.close()
        self.proc.wait(timeout=60)
        if self.proc.stdout:
            self.proc.stdout.close()


def _widen_pipe(pipe, size: int) -> None:
    """Grow a pipe's kernel buffer where Linux allows it (best effort: speed only)."""
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), size)
    except (OSError, ImportError, ValueError):
        pass


def _iter_log_chunks(repo: str, revs: Sequence[str]) -> Iterator[bytes]:
    """Yield the raw ``git log`` text of each commit (header + raw diff entries)."""
    cmd = [
        *_GIT,
        "-C",
        repo,
        "log",
        _HEADER_FMT,
        "-z",
        "--raw",
        "--no-renames",  # a rename is a delete plus an add: neither is in place (sql_4)
        "--no-abbrev",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        *revs,
        "--",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    buffer = b"\0"
    separator = b"\0\x1e"
    try:
        while True:
            block = proc.stdout.read(1 << 20)
            if not block:
                break
            buffer += block
            parts = buffer.split(separator)
            buffer = parts.pop()
            for part in parts:
                if part:
                    yield part
        if buffer.strip(b"\0"):
            yield buffer
    finally:
        proc.stdout.close()
        stderr = proc.stderr.read() if proc.stderr else b""
        code = proc.wait()
        if proc.stderr:
            proc.stderr.close()
    if code != 0:
        raise GitError(f"{repo}: git log failed ({code}): {stderr.decode('utf-8', 'replace')}")


def _parse_chunk(chunk: bytes) -> tuple[str, list[str], bytes, list[dict[str, bytes | str]]]:
    """(sha, parents, message bytes, changes) from one commit's ``git log`` text."""
    header, _, raw = chunk.partition(b"\0")
    sha, parents, message = header.split(b"\x1f", 2)
    if message.endswith(b"\x1f"):
        message = message[:-1]
    changes: list[dict[str, bytes | str]] = []
    tokens = raw.split(b"\0")
    i = 0
    while i < len(tokens):
        meta = tokens[i].lstrip(b"\n")
        i += 1
        if not meta.startswith(b":"):
            continue
        old_mode, new_mode, old_sha, new_sha, status = meta[1:].decode().split(" ")
        kind = status[0]
        if kind in ("R", "C"):
            old_path, new_path = tokens[i], tokens[i + 1]
            i += 2
        else:
            old_path = new_path = tokens[i]
            i += 1
        changes.append(
            {
                "status": kind,
                "old_mode": old_mode,
                "new_mode": new_mode,
                "old_sha": old_sha,
                "new_sha": new_sha,
                "old_path": old_path,
                "new_path": new_path,
            }
        )
    return sha.decode(), parents.decode().split(), message, changes


def _dead(reason: str, repo: RepoSpec, commit: str, detail: str, path: str = "") -> dict:
    return {
        "reason": reason,
        "source": f"git:{repo.location}",
        "repo": repo.name,
        "commit": commit,
        "path": path,
        "detail": detail,
    }


def _decode_text(data: bytes) -> str | None:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


REGULAR_MODES = ("100644", "100755")


def _fill_contents(
    record: dict,
    path: str,
    answers: Sequence[tuple[bytes | None, int]],
    repo: RepoSpec,
    sha: str,
    max_file_bytes: int,
) -> dict | None:
    """Fill ``old_contents``/``new_contents`` of ``record`` from the two blobs' answers; a dead
    letter (oversize, binary, not UTF-8) instead when a side cannot be a text record."""
    for side, (content, size) in zip(("old", "new"), answers, strict=True):
        if content is None:
            detail = f"{side} contents are {size} bytes (limit {max_file_bytes})"
            return _dead("oversize", repo, sha, detail, path)
        if b"\0" in content[:BINARY_SNIFF_BYTES]:
            return _dead("binary", repo, sha, f"{side} contents are binary", path)
        text = _decode_text(content)
        if text is None:
            return _dead("invalid_utf8", repo, sha, f"{side} contents not UTF-8", path)
        record[f"{side}_contents"] = text
    return None


def _plan_commit(
    repo: RepoSpec,
    sha: str,
    parents: list[str],
    message_bytes: bytes,
    changes: list[dict],
    license_id: str,
    repo_languages: frozenset[str] | None = None,
) -> tuple[str, dict, dict | None]:
    """("commit", record, the change whose blobs to read or None) or ("dead", dead letter, None).

    CommitPack keeps commits with exactly one file modified in place (sql_5.sql), whatever else
    they add, delete or rename: only those need contents."""
    message = _decode_text(message_bytes)
    if message is None:
        return "dead", _dead("invalid_utf8", repo, sha, "commit message is not UTF-8"), None
    decoded_changes = []
    for change in changes:
        old_path = _decode_text(change["old_path"])
        new_path = _decode_text(change["new_path"])
        if old_path is None or new_path is None:
            return "dead", _dead("invalid_utf8", repo, sha, "file path is not UTF-8"), None
        decoded_changes.append({**change, "old_path": old_path, "new_path": new_path})
    in_place = [c for c in decoded_changes if c["status"] in ("M", "T")]
    main = in_place[0] if in_place else (decoded_changes[0] if decoded_changes else None)
    record = {
        "commit": sha,
        "old_file": main["old_path"] if main else "",
        "new_file": main["new_path"] if main else "",
        "old_contents": "",
        "new_contents": "",
        "subject": subject_of(message),
        "message": message,
        "lang": "",
        "license": license_id,
        "repos": repo.name,
        "_parents": len(parents),
        "_changes": [
            {k: c[k] for k in ("status", "old_mode", "new_mode", "old_path", "new_path")}
            for c in decoded_changes
        ],
    }
    if repo_languages is not None:
        record["_repo_languages"] = repo_languages
    keepable = (
        len(parents) <= 1
        and len(in_place) == 1
        and main is not None
        and main["status"] == "M"
        and main["old_mode"] in REGULAR_MODES
        and main["new_mode"] in REGULAR_MODES
    )
    return "commit", record, main if keepable else None


WINDOW = 512  # commits whose blob requests go to git in one stream


def _windows(items: Iterator[bytes], size: int) -> Iterator[list[bytes]]:
    window: list[bytes] = []
    for item in items:
        window.append(item)
        if len(window) == size:
            yield window
            window = []
    if window:
        yield window


def _mine_window(
    chunks: list[bytes],
    repo: RepoSpec,
    license_id: str,
    languages: frozenset[str],
    blobs: BlobReader,
    max_file_bytes: int,
) -> Iterator[tuple[str, dict]]:
    """Outcomes of a window of commits, in order; the blobs of all its keepable commits are
    requested at once and read back as each commit is emitted."""
    planned = [_plan_commit(repo, *_parse_chunk(c), license_id, languages) for c in chunks]
    shas = [
        s for _, _, main in planned if main is not None for s in (main["old_sha"], main["new_sha"])
    ]
    answers = blobs.stream(shas, max_file_bytes)
    for kind, record, main in planned:
        if main is None:
            yield kind, record
            continue
        pair = (next(answers), next(answers))
        dead = _fill_contents(
            record, main["new_path"], pair, repo, record["commit"], max_file_bytes
        )
        yield ("dead", dead) if dead is not None else ("commit", record)
    for _ in answers:  # a window without keepable commits still finishes its (empty) stream
        pass


def mine_local_repository(
    repo: RepoSpec,
    path: str,
    revs: Sequence[str] = ("HEAD",),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Iterator[tuple[str, dict]]:
    """Mine a local repository (work tree or bare); see the module docstring."""
    if not os.path.isdir(path):
        raise GitError(f"{path}: not a directory")
    _run_git(path, "rev-parse", "--git-dir")  # raises GitError for non-repositories
    if not has_commits(path):
        log.info("%s: no commits", repo.name)
        return
    license_id = detect_repo_license(path) or ""
    languages = repo_tree_languages(path)
    blobs = BlobReader(path)
    count = 0
    start = time.monotonic()
    try:
        for window in _windows(_iter_log_chunks(path, revs), WINDOW):
            for outcome in _mine_window(window, repo, license_id, languages, blobs, max_file_bytes):
                yield outcome
                count += 1
                if count % PROGRESS_EVERY == 0:
                    rate = count / max(time.monotonic() - start, 1e-9)
                    log.info("%s: mined %d commits (%.0f/s)", repo.name, count, rate)
    finally:
        blobs.close()
    log.info("%s: mined %d commits in %.1fs", repo.name, count, time.monotonic() - start)


def mine_repository(
    repo: RepoSpec,
    revs: Sequence[str] = ("HEAD",),
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Iterator[tuple[str, dict]]:
    """Mine a local path or clone URL (cloned bare into a temp dir, removed afterwards).

    A repository that cannot be cloned or read yields one ``repo_unreadable`` dead letter.
    """
    tmpdir = None
    try:
        path = repo.location
        if is_url(repo.location):
            tmpdir = tempfile.mkdtemp(prefix="commitpack-clone-")
            path = os.path.join(tmpdir, "repo.git")
            log.info("cloning %s", repo.location)
            proc = subprocess.run(
                ["git", "clone", "--bare", "--quiet", repo.location, path],
                capture_output=True,
                check=False,
            )
            if proc.returncode != 0:
                raise GitError(
                    f"{repo.location}: git clone failed: "
                    f"{proc.stderr.decode('utf-8', 'replace').strip()}"
                )
        yield from mine_local_repository(repo, path, revs, max_file_bytes)
    except GitError as err:
        yield "dead", _dead("repo_unreadable", repo, "", str(err))
    finally:
        if tmpdir is not None:
            shutil.rmtree(tmpdir, ignore_errors=True)
