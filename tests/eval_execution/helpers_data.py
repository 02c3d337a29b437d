"""Shared helpers for the execution tests (loaded by path: pytest runs with --import-mode=importlib)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eval.execution import Program
from eval.programs import RUST_MAIN, assemble_program

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "humanevalpack"
LANGS = ("python", "js", "java", "go", "cpp", "rust")


def load(language: str) -> list[dict]:
    path = DATA / f"{language}.jsonl"
    if not path.is_file():
        pytest.skip(f"HumanEvalPack data not found at {path} (expected ../shared/humanevalpack)")
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


def prompt_layout(language: str, problem: dict, field: str) -> Program:
    """Synthesize / Fix-docs: the harness holds problem['prompt'] + solution."""
    code = problem["prompt"] + problem[field]
    return Program(
        language, assemble_program(language, code, problem), f"{problem['task_id']}#{field}"
    )


def declaration_layout(language: str, problem: dict, field: str) -> Program:
    """Fix-tests: the prompt base is the declaration (Rust: fn main(){} + declaration)."""
    base = (RUST_MAIN if language == "rust" else "") + problem["declaration"]
    code = base + problem[field]
    return Program(
        language, assemble_program(language, code, problem), f"{problem['task_id']}#{field}#decl"
    )
