"""Generations scored as the wrong language get a warning naming the file (issue 12)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from eval.data import LANGUAGES
from eval.language_check import guess_language, mismatch_warning

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_reference_program_is_recognised(problems, language):
    """All 164 prompt + canonical programs: never guessed as another language."""
    guesses = {guess_language(p["prompt"] + p["canonical_solution"]) for p in problems[language]}
    assert guesses <= {language, None}
    assert sum(
        guess_language(p["prompt"] + p["canonical_solution"]) == language
        for p in problems[language]
    ) >= 0.9 * len(problems[language])


@pytest.mark.parametrize("stated", LANGUAGES)
def test_warning_fires_only_for_another_language(problems, stated):
    for actual in LANGUAGES:
        rows = [[p["prompt"] + p["canonical_solution"]] for p in problems[actual][:20]]
        warning = mismatch_warning("gens.json", stated, rows)
        if actual == stated:
            assert warning is None
        else:
            assert warning is not None and "gens.json" in warning, (stated, actual)
            assert f"--language {actual}" in warning


def test_empty_and_mixed_files_do_not_warn(problems):
    assert mismatch_warning("g.json", "js", [[""], [" "]]) is None
    half = [[p["prompt"] + p["canonical_solution"]] for p in problems["python"][:5]]
    half += [[p["prompt"] + p["canonical_solution"]] for p in problems["js"][:5]]
    assert mismatch_warning("g.json", "js", half) is None


def _score_cli(tmp_path, data_dir, gens, language):
    argv = [sys.executable, "-m", "eval", "score", "--task", "humanevalsynthesize",
            "--language", language, "--generations", str(gens), "--data-dir", str(data_dir),
            "--limit", "3", "--output-dir", str(tmp_path / language), "--no-progress"]  # fmt: skip
    return subprocess.run(argv, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)


def test_cli_warns_when_python_generations_are_scored_as_js(tmp_path, data_dir, problems):
    try:
        from eval.execution import check_toolchains

        check_toolchains(["js", "python"])
    except Exception as e:
        pytest.skip(f"execution toolchains not available ({e})")
    gens = tmp_path / "generations_humanevalsynthesize-python.json"
    rows = [[p["prompt"] + p["canonical_solution"]] for p in problems["python"][:3]]
    gens.write_text(json.dumps(rows), encoding="utf-8")
    wrong = _score_cli(tmp_path, data_dir, gens, "js")
    assert wrong.returncode == 0, wrong.stderr
    warning = [line for line in wrong.stderr.splitlines() if line.startswith("warning:")]
    assert len(warning) == 1, wrong.stderr
    assert str(gens) in warning[0] and "look like Python" in warning[0]
    assert "--language python" in warning[0]
    assert "pass@1 0.0" in wrong.stderr
    right = _score_cli(tmp_path, data_dir, gens, "python")
    assert right.returncode == 0, right.stderr
    assert "warning:" not in right.stderr and "pass@1 100.0" in right.stderr
