"""A real git repository for the smoke run: octojax's own modules, rebuilt one function per commit.

Each commit adds one top-level function or class to one file, with a subject made from its
docstring ("Add truncate_at_stop: cut text before ..."), so the history has the single-file,
imperative-subject commits that CommitPackFT keeps, from real code, without any download.
"""

from __future__ import annotations

import ast
import os
import subprocess
from pathlib import Path

import octojax

_LICENSE = Path(octojax.__file__).resolve().parents[1] / "LICENSE"
_MIT_FALLBACK = (
    "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n"
)


def _git(repo: Path, *args: str, env: dict | None = None) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _subject(node: ast.AST) -> str | None:
    doc = ast.get_docstring(node)
    if not doc:
        return None
    first = doc.strip().splitlines()[0].rstrip(".").strip()
    if not first or "#" in first:
        return None
    return f"Add {node.name}: {first[0].lower()}{first[1:]}"


def build_demo_repo(out_dir: str | Path, *, max_commits: int = 400) -> Path:
    """Create (or reuse) the demo repository at out_dir; returns its path."""
    repo = Path(out_dir)
    if (repo / ".git").is_dir():
        return repo
    repo.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, GIT_AUTHOR_NAME="octojax", GIT_AUTHOR_EMAIL="octojax@example.com",
               GIT_COMMITTER_NAME="octojax", GIT_COMMITTER_EMAIL="octojax@example.com")  # fmt: skip
    _git(repo, "init", "-q", "-b", "main")
    license_text = _LICENSE.read_text() if _LICENSE.exists() else _MIT_FALLBACK
    (repo / "LICENSE").write_text(license_text)
    _git(repo, "add", "LICENSE")
    _git(repo, "commit", "-q", "-m", "Initial commit with the license", env=env)
    commits = 0
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
        rel = src.relative_to(root.parent)
        target = repo / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        # first commit: everything before the first function/class (imports, constants)
        cut = body[0].lineno - 1 - len(body[0].decorator_list)
        target.write_text("".join(lines[:cut]))
        _git(repo, "add", str(rel))
        _git(repo, "commit", "-q", "-m", f"Create {rel.as_posix()}", env=env)
        for i, node in enumerate(body):
            end = (
                body[i + 1].lineno - 1 - len(body[i + 1].decorator_list)
                if i + 1 < len(body)
                else len(lines)
            )
            target.write_text("".join(lines[:end]))
            subject = _subject(node) or f"Add {node.name}"
            _git(repo, "add", str(rel))
            _git(repo, "commit", "-q", "--allow-empty", "-m", subject, env=env)
            commits += 1
            if commits >= max_commits:
                return repo
    return repo
