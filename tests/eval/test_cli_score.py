"""`python -m eval score` on harness-format generations files.

Runs that execute programs need the execution backend (eval.execution) and the toolchains; they
skip with the reason when either is missing. Error paths run everywhere.
"""

from __future__ import annotations

import json

import pytest

from eval.cli import main
from eval.report import load_results


def _require_execution(language: str) -> None:
    try:
        from eval.execution import Program, check_toolchains, run_programs  # noqa: F401
        from eval.programs import assemble_program  # noqa: F401
    except ImportError as e:
        pytest.skip(f"execution backend eval.execution is not available yet ({e})")
    try:
        check_toolchains([language])
    except Exception as e:
        pytest.skip(f"toolchain for {language} missing: {e}")


def _write(path, rows):
    path.write_text(json.dumps(rows), encoding="utf-8")
    return path


def _score(tmp_path, data_dir, *extra):
    return main(["score", "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "out"),
                 "--no-progress", "--cache-dir", str(tmp_path / "cache"), *extra])  # fmt: skip


def test_score_synthesize_python_canonical_and_buggy(tmp_path, data_dir, problems):
    _require_execution("python")
    rows = [[p["prompt"] + p["canonical_solution"], p["prompt"] + p["buggy_solution"]]
            for p in problems["python"][:3]]  # fmt: skip
    gens = _write(tmp_path / "generations_humanevalsynthesize-python.json", rows)
    code = _score(tmp_path, data_dir, "--task", "humanevalsynthesize", "--language", "python",
                  "--generations", str(gens), "--limit", "3", "--model-name", "reference",
                  "--k", "1,2,10")  # fmt: skip
    assert code == 0
    (result,) = load_results(tmp_path / "out" / "results.json")
    assert result["pass@1"] == 0.5 and result["pass@2"] == 1.0
    assert [r["correct"] for r in result["rows"]] == [1, 1, 1]
    assert [s["passed"] for s in result["rows"][0]["samples"]] == [True, False]
    table = (tmp_path / "out" / "results.md").read_text()
    assert "| Synthesize | reference | 50.0 |" in table


@pytest.mark.toolchains
@pytest.mark.parametrize("language", ["python", "js", "java", "go", "cpp", "rust"])
def test_score_fix_tests_every_language(tmp_path, data_dir, problems, language):
    """Fix-tests layout: the harness holds declaration (Rust: fn main(){} + declaration) + fix."""
    _require_execution(language)
    rows = []
    for p in problems[language][:2]:
        base = ("fn main(){}\n" if language == "rust" else "") + p["declaration"]
        rows.append([base + p["canonical_solution"], base + p["buggy_solution"]])
    gens = _write(tmp_path / "g.json", rows)
    code = _score(tmp_path, data_dir, "--task", "humanevalfixtests", "--language", language,
                  "--generations", str(gens), "--limit", "2", "--workers", "2")  # fmt: skip
    assert code == 0
    (result,) = load_results(tmp_path / "out" / "results.json")
    assert [[s["passed"] for s in r["samples"]] for r in result["rows"]] == [[True, False]] * 2


def test_score_raw_generations_and_n_samples_cap(tmp_path, data_dir, problems):
    """--raw: prompt + completion texts (harness --postprocess False) are post-processed first."""
    _require_execution("python")
    from eval.tasks import Task

    task = Task("humanevalfix-docs", "python", "instruct")
    rows = []
    for p in problems["python"][:2]:
        prompt = task.prompt(p)
        rows.append([prompt + "\n" + p["canonical_solution"] + "\nprint('trailing junk')",
                     prompt + "\n" + p["buggy_solution"], "never scored"])  # fmt: skip
    gens = _write(tmp_path / "raw.json", rows)
    code = _score(tmp_path, data_dir, "--task", "humanevalfix-docs", "--language", "python",
                  "--template", "instruct", "--raw", "--generations", str(gens), "--limit", "2",
                  "--n-samples", "2")  # fmt: skip
    assert code == 0
    (result,) = load_results(tmp_path / "out" / "results.json")
    assert result["template"] == "instruct" and result["n_samples"] == 2
    assert [[s["passed"] for s in r["samples"]] for r in result["rows"]] == [[True, False]] * 2


def test_score_explain_synthesize_with_descriptions_file(tmp_path, data_dir, problems):
    _require_execution("python")
    descriptions = _write(tmp_path / "d.json", [["a", "b"], ["c", "d"]])
    p0, p1 = problems["python"][:2]
    rows = [[p0["prompt"] + p0["canonical_solution"]], [p0["prompt"] + p0["buggy_solution"]],
            [p1["prompt"] + p1["canonical_solution"]], [p1["prompt"] + p1["canonical_solution"]]]  # fmt: skip
    gens = _write(tmp_path / "g.json", rows)
    code = _score(tmp_path, data_dir, "--task", "humanevalexplainsynthesize", "--language",
                  "python", "--generations", str(gens), "--descriptions", str(descriptions),
                  "--limit", "2")  # fmt: skip
    assert code == 0
    (result,) = load_results(tmp_path / "out" / "results.json")
    assert result["num_rows"] == 4 and result["num_problems"] == 2
    assert result["pass@1"] == 0.75


@pytest.mark.parametrize(
    ("rows", "extra", "message"),
    [
        ([["x"]] * 3, ["--task", "humanevalsynthesize"], "3 rows, but the task has 164"),
        ([["x"]], ["--task", "humanevalsynthesize", "--limit", "2"], "1 rows, but the task has 2"),
        ([["x"]] * 2, ["--task", "humanevalexplain-describe"], "outputs descriptions"),
        ([["x"]] * 2, ["--task", "humanevalfix"], "unknown task 'humanevalfix'"),
        ([["x"]] * 4, ["--task", "humanevalexplainsynthesize"], "pass --descriptions"),
        ([["x"], [3]], ["--task", "humanevalsynthesize"], "row 1 sample 0 is int"),
        ([["x"]], ["--task", "humanevalsynthesize", "--k", "0"], None),
    ],
)
def test_score_errors_are_clear(tmp_path, data_dir, capsys, rows, extra, message):
    gens = _write(tmp_path / "g.json", rows)
    code = main(["score", "--language", "python", "--generations", str(gens), "--data-dir",
                 str(data_dir), "--output-dir", str(tmp_path / "o"), *extra])  # fmt: skip
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ")
    if message is not None:
        assert message in err
    assert not (tmp_path / "o" / "results.json").exists()


def test_missing_data_dir_is_a_usage_error(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("HUMANEVALPACK_DIR", raising=False)
    gens = _write(tmp_path / "g.json", [["x"]])
    code = main(["score", "--task", "humanevalsynthesize", "--language", "python",
                 "--generations", str(gens)])  # fmt: skip
    assert code == 2
    assert "--data-dir" in capsys.readouterr().err


def test_table_command(tmp_path, capsys):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"results": [
        {"model": "m", "task": "humanevalfix-tests", "language": "go", "template": "octocoder",
         "pass@1": 0.25}]}))  # fmt: skip
    assert main(["table", str(path)]) == 0
    assert "| Fix | m |  |  |  | 25.0 |  |  | 25.0* |" in capsys.readouterr().out
    assert main(["table", str(tmp_path / "none.json")]) == 2
