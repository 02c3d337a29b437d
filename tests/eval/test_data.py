"""Loading HumanEvalPack: the real files, and malformed files named with line and problem."""

from __future__ import annotations

import json
import re

import pytest

from eval.data import (
    LANGUAGES,
    DataError,
    load_jsonl,
    load_problems,
    normalize_language,
    parse_languages,
)


def test_real_files_load(problems):
    assert set(problems) == set(LANGUAGES)
    for language, rows in problems.items():
        assert len(rows) == 164, language
    assert problems["cpp"][7]["task_id"] == "CPP/7"
    assert "test_setup" in problems["go"][0]


def test_limit(data_dir):
    assert [p["task_id"] for p in load_problems("javascript", data_dir, limit=2)] == [
        "JavaScript/0",
        "JavaScript/1",
    ]


def test_language_names():
    assert normalize_language("C++") == "cpp"
    assert parse_languages("python,JavaScript,python") == ["python", "js"]
    assert parse_languages("all") == list(LANGUAGES)
    with pytest.raises(ValueError, match="unknown language"):
        normalize_language("kotlin")


def _record(**overrides):
    record = {
        "task_id": "Python/0",
        "prompt": "def f():\n",
        "declaration": "def f():\n",
        "canonical_solution": "    return 1\n",
        "buggy_solution": "    return 2\n",
        "bug_type": "value misuse",
        "failure_symptoms": "incorrect output",
        "entry_point": "f",
        "signature": "f()",
        "docstring": "Return one.",
        "instruction": "Write f.",
        "test": "assert f() == 1",
        "example_test": "",
    }
    record.update(overrides)
    return {k: v for k, v in record.items() if v is not None}


def _write(tmp_path, lines):
    path = tmp_path / "python.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_valid_minimal_file(tmp_path):
    path = _write(tmp_path, [json.dumps(_record()), json.dumps(_record(task_id="Python/1"))])
    assert len(load_jsonl(path, "python")) == 2


@pytest.mark.parametrize(
    ("second_line", "message"),
    [
        ('{"task_id": "Python/1", ', ":2: invalid JSON"),
        ("[1, 2]", ":2: expected a JSON object, got list"),
        (json.dumps(_record(task_id="Python/1", test=None)), ":2: missing field(s) test"),
        (json.dumps(_record(task_id="Python/1", prompt=3)), ":2: field 'prompt' must be a string"),
        (
            json.dumps(_record(task_id="Python/1", entry_point=" ")),
            ":2: field(s) entry_point are empty",
        ),
        (json.dumps(_record(task_id="Python/5")), ":2: task_id 'Python/5' where 'Python/1'"),
        (json.dumps(_record(task_id="JavaScript/1")), "'JavaScript/1' where 'Python/1'"),
    ],
)
def test_malformed_records_name_file_and_line(tmp_path, second_line, message):
    path = _write(tmp_path, [json.dumps(_record()), second_line])
    with pytest.raises(DataError, match=re.escape(message)) as info:
        load_jsonl(path, "python")
    assert str(path) in str(info.value)


def test_go_needs_its_extra_fields(tmp_path):
    path = tmp_path / "go.jsonl"
    path.write_text(json.dumps(_record(task_id="Go/0")) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match="missing field\\(s\\) import, test_setup"):
        load_jsonl(path, "go")


def test_empty_missing_and_undecodable_files(tmp_path):
    with pytest.raises(DataError, match="not found"):
        load_problems("rust", tmp_path)
    (tmp_path / "rust.jsonl").write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="no records"):
        load_problems("rust", tmp_path)
    (tmp_path / "cpp.jsonl").write_bytes(b"\xff\xfe{}\n")
    with pytest.raises(DataError, match="not valid UTF-8"):
        load_problems("cpp", tmp_path)


def test_hub_without_datasets_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("No module named 'datasets'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    with pytest.raises(DataError, match="datasets"):
        load_problems("python", None)
