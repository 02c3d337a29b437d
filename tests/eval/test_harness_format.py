"""Generations files in the harness format: round trip, the harness's bytes, and bad files."""

from __future__ import annotations

import json

import pytest

from eval.harness_format import (
    GenerationsFileError,
    fit_to_rows,
    harness_filename,
    load_generations,
    save_generations,
)


def test_round_trip_and_harness_bytes(tmp_path):
    rows = [["def f():\n    return 'é'\n", "x"], ["y"]]
    path = save_generations(tmp_path / "g.json", rows)
    assert load_generations(path) == rows
    # bigcode-evaluation-harness writes json.dump(generations, fp): compact, ASCII escapes.
    assert path.read_text(encoding="utf-8") == json.dumps(rows)
    assert "\\u00e9" in path.read_text(encoding="utf-8")


def test_harness_file_name():
    assert (
        harness_filename("humanevalfixtests-python") == "generations_humanevalfixtests-python.json"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"a": 1}', "expected a JSON list"),
        ('[["a"], "b"]', "row 1 is str"),
        ('[["a"], []]', "row 1 has no samples"),
        ('[["a", 3]]', "row 0 sample 1 is int"),
    ],
)
def test_bad_files_are_named_with_the_problem(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(GenerationsFileError, match=message) as info:
        load_generations(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(GenerationsFileError, match="not found"):
        load_generations(tmp_path / "nope.json")


def test_fit_to_rows():
    rows = [["a", "b", "c"], ["d", "e", "f"], ["g", "h", "i"]]
    assert fit_to_rows(rows, 3, "f", n_samples=2) == [["a", "b"], ["d", "e"], ["g", "h"]]
    assert fit_to_rows(rows, 2, "f", allow_extra_rows=True) == rows[:2]
    with pytest.raises(GenerationsFileError, match="3 rows, but the task has 4"):
        fit_to_rows(rows, 4, "f")
    with pytest.raises(GenerationsFileError, match="only 2"):
        fit_to_rows(rows, 2, "f")
