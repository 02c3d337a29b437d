"""results.json merging and the Table-2 Markdown layout."""

from __future__ import annotations

import json

import pytest

from eval.report import ResultsFileError, load_results, markdown_table, write_results


def _result(task, language, p1, model="octo", template="octocoder"):
    return {"model": model, "task": task, "language": language, "template": template, "pass@1": p1}


def test_table_layout_like_table_2():
    langs = ["python", "js", "java", "go", "cpp", "rust"]
    values = [0.304, 0.284, 0.306, 0.302, 0.261, 0.165]
    results = [_result("humanevalfix-tests", lang, v) for lang, v in zip(langs, values)]
    results.append(_result("humanevalsynthesize", "python", 0.462))
    results.append(_result("humanevalexplain-describe", "python", 0.9))  # not a table row
    assert markdown_table(results) == (
        "pass@1 (%)\n"
        "\n"
        "| task | model | Python | JavaScript | Java | Go | C++ | Rust | Avg |\n"
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n"
        "| Fix | octo | 30.4 | 28.4 | 30.6 | 30.2 | 26.1 | 16.5 | 27.0 |\n"
        "| Synthesize | octo | 46.2 |  |  |  |  |  | 46.2* |\n"
        "\n"
        "\\* average over the languages scored so far, not all six.\n"
    )


def test_rows_ordered_fix_explain_synthesize_and_templates_shown():
    results = [
        _result("humanevalsynthesize", "go", 0.1, model="b"),
        _result("humanevalexplain-synthesize", "go", 0.2, model="a"),
        _result("humanevalfix-tests", "go", 0.3, model="a", template="instruct"),
        _result("humanevalfix-tests", "go", 0.4, model="a"),
    ]
    lines = markdown_table(results).splitlines()[4:8]
    assert [line.split(" | ")[0:2] for line in lines] == [
        ["| Fix", "a [instruct]"],
        ["| Fix", "a [octocoder]"],
        ["| Explain", "a [octocoder]"],
        ["| Synthesize", "b [octocoder]"],
    ]


def test_write_results_merges_and_replaces(tmp_path):
    write_results(tmp_path, [_result("humanevalsynthesize", "python", 0.1)])
    write_results(tmp_path, [_result("humanevalsynthesize", "js", 0.2)])
    json_path, md_path = write_results(tmp_path, [_result("humanevalsynthesize", "python", 0.3)])
    results = load_results(json_path)
    assert [(r["language"], r["pass@1"]) for r in results] == [("js", 0.2), ("python", 0.3)]
    assert "| Synthesize | octo | 30.0 | 20.0 |" in md_path.read_text()


def test_bad_results_file(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [{"task": "x"}]}))
    with pytest.raises(ResultsFileError, match="expected"):
        load_results(path)
    path.write_text("{")
    with pytest.raises(ResultsFileError, match="not valid JSON"):
        load_results(path)
