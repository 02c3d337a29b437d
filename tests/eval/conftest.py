"""Fixtures for eval tests: the shared HumanEvalPack data (skipped where ../shared is absent)."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HUMANEVALPACK_DIR = REPO_ROOT.parent / "shared" / "humanevalpack"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not (HUMANEVALPACK_DIR / "python.jsonl").is_file():
        pytest.skip(f"HumanEvalPack data not found at {HUMANEVALPACK_DIR}")
    return HUMANEVALPACK_DIR


@pytest.fixture(scope="session")
def problems(data_dir):
    """All 164 problems of every language, loaded once."""
    from eval.data import LANGUAGES, load_problems

    return {lang: load_problems(lang, data_dir) for lang in LANGUAGES}
