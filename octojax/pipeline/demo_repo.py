"""A real git repository for the smoke run: octojax's own modules, rebuilt one function per commit.

Each commit adds one top-level function or class to one file, with a subject made from its
docstring ("Add truncate_at_stop: cut text before ..."), so the history has the single-file,
imperative-subject commits that CommitPackFT keeps, from real code, without any download.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import time
from pathlib import Path

import octojax

_LICENSE = Path(octojax.__file__).resolve().parents[1] / "LICENSE"
_MIT_FALLBACK = (
    "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n"
)


def _subject(node: ast.AST) -> str | None:
    doc = ast.get_docstring(node)
    if not doc:
        return None
    first = doc.strip().splitlines()[0].rstrip(".").strip()
    if not first or "#" in first:
        return None
    return f"Add {node.name}: {first[0].lower()}{first[1:]}"


def build_demo_repo(out_dir: str | Path, *, max_commits: int = 400) -> Path:
    """Create (or reuse) the demo repository at out_dir; returns its path.

    All commits go through one `git fast-import` (one process, not two per commit: 9 s -> under
    one), into a sibling directory renamed into place when complete, so an interrupted build
    leaves no half-built repository for the next run to reuse.
    """
    repo = Path(out_dir)
    if (repo / ".git").is_dir():
        return repo
    partial = repo.with_name(repo.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", "-b", "main", str(partial)], check=True,
                   capture_output=True)  # fmt: skip
    license_text = _LICENSE.read_text() if _LICENSE.exists() else _MIT_FALLBACK
    commits = [("LICENSE", license_text, "Initial commit with the license")]
    commits += _module_commits(max_commits)
    subprocess.run(["git", "-C", str(partial), "fast-import", "--quiet"],
                   input=_fast_import_stream(commits), check=True, capture_output=True)  # fmt: skip
    # check out the last commit into the working tree, then publish the whole repository
    subprocess.run(
        ["git", "-C", str(partial), "reset", "-q", "--hard"], check=True, capture_output=True
    )
    shutil.rmtree(repo, ignore_errors=True)  # a directory of ours without .git: nothing to keep
    os.replace(partial, repo)
    return repo


def _module_commits(max_commits: int) -> list[tuple[str, str, str]]:
    """(path, full new content, subject) per commit: each module with two or more top-level
    functions/classes is created with what precedes the first, then grows one per commit."""
    out, commits = [], 0
    root = Path(octojax.__file__).parent
    for src in sorted(root.rglob("*.py")):
        text = src.read_text()
        try:
            tree = ast.parse(text)
        except SyntaxError:
            continue
        lines = text.splitlines(keepends=True)
        body = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]
        if len(body) < 2:
            continue
        rel = src.relative_to(root.parent).as_posix()
        starts = [n.lineno - 1 - len(n.decorator_list) for n in body] + [len(lines)]
        out.append((rel, "".join(lines[: starts[0]]), f"Create {rel}"))
        for i, node in enumerate(body):
            out.append((rel, "".join(lines[: starts[i + 1]]), _subject(node) or f"Add {node.name}"))
            commits += 1
            if commits >= max_commits:
                return out
    return out


def _fast_import_stream(commits: list[tuple[str, str, str]]) -> bytes:
    """A `git fast-import` stream: one commit per (path, content, subject) on main (each one's
    parent is the branch's tip, fast-import's default), one second apart ending now."""
    parts, now = [], int(time.time())
    for i, (path, content, subject) in enumerate(commits):
        blob, message = content.encode(), subject.encode()
        who = f"octojax <octojax@example.com> {now - len(commits) + i + 1} +0000\n".encode()
        parts += [b"commit refs/heads/main\n", b"author " + who, b"committer " + who,
                  b"data %d\n" % len(message), message, b"\n"]  # fmt: skip
        parts += [b"M 100644 inline " + path.encode() + b"\n", b"data %d\n" % len(blob), blob,
                  b"\n\n"]  # fmt: skip
    return b"".join(parts)
