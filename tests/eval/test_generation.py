"""Generation glue: harness-format rows from a generator.

`CannedGenerator` is a TEST DOUBLE with the signature of octojax.generate.Generator.generate; it
only exercises eval's bookkeeping (prompt repetition, seeds, post-processing, files). The real
model is used in test_generate_with_real_tiny_model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest

from eval.cli import main
from eval.generation import SamplingConfig, generate_rows
from eval.harness_format import load_generations
from eval.report import load_results
from eval.tasks import EXPLAIN_DESCRIBE, SYNTHESIZE, Task


@dataclass
class _Output:
    text: str


class CannedGenerator:
    """TEST DOUBLE: returns canned completions and records each call."""

    eos_token = "<|endoftext|>"

    def __init__(self, completion):
        self.completion = completion  # callable(prompt, index_in_call, seed) -> str
        self.calls = []

    def generate(self, prompts, sampling, *, stop_when=None):
        rows = [p for p in prompts for _ in range(sampling.n_samples)]  # as Generator does
        self.calls.append({"prompts": rows, "seed": sampling.seed,
                           "stops": list(sampling.stop_sequences),
                           "max_new_tokens": sampling.max_new_tokens, "slots": sampling.slots,
                           "stop_when": stop_when})  # fmt: skip
        return [_Output(self.completion(p, i, sampling.seed)) for i, p in enumerate(rows)]


def test_rows_repeat_prompts_and_postprocess(problems):
    task = Task(SYNTHESIZE, "python")
    entries = task.entries(problems["python"][:10])
    gen = CannedGenerator(lambda p, i, seed: f"\n    return {seed * 100 + i}\nprint(1)")
    config = SamplingConfig(n_samples=2, temperature=0.2, slots=1, max_new_tokens=7, seed=5)
    raw = []
    rows = generate_rows(gen, task, entries, config, progress=False, raw_rows=raw)
    # 16 * batch_size / n = 8 rows per call: calls of 16 and 4 prompts, seeds 5 and 5 + 16.
    assert [len(c["prompts"]) for c in gen.calls] == [16, 4]
    assert [c["seed"] for c in gen.calls] == [5, 21]
    assert gen.calls[0]["prompts"][:2] == [task.prompt(entries[0])] * 2
    assert gen.calls[0]["stops"] == task.stop_sequences()
    assert gen.calls[0]["max_new_tokens"] == 7
    # the harness's early-stop check: the first function is complete at an unindented line
    assert gen.calls[0]["stop_when"]("\n    return 1\nx = 2") is True
    assert gen.calls[0]["stop_when"]("\n    return 1") is False
    p0 = problems["python"][0]["prompt"].rstrip()
    assert rows[0] == [p0 + "\n    return 500", p0 + "\n    return 501"]
    assert rows[9][1].endswith("\n    return 2103")  # second call, its 4th prompt
    assert raw[0][0] == task.prompt(entries[0]) + "\n    return 500\nprint(1)"


def test_checkpoint_resume(tmp_path, problems):
    task = Task(SYNTHESIZE, "js")
    entries = task.entries(problems["js"][:3])
    ckpt = tmp_path / "inter.json"
    ckpt.write_text(json.dumps([["kept"]]))
    gen = CannedGenerator(lambda p, i, seed: "\n  return 1;\n}")
    rows = generate_rows(
        gen, task, entries, SamplingConfig(slots=1), progress=False, checkpoint_path=ckpt
    )
    assert rows[0] == ["kept"] and len(rows) == 3
    assert sum(len(c["prompts"]) for c in gen.calls) == 2
    assert load_generations(ckpt) == rows


def _fake_loader(monkeypatch, gen):
    import eval.generation

    monkeypatch.setattr(eval.generation, "load_generator", lambda path, dtype, **placement: gen)


def test_cli_describe_then_synthesize_generation_only(tmp_path, data_dir, monkeypatch):
    """Describe output feeds synthesize prompts; files use the harness's names and layout."""

    def completion(prompt, i, seed):
        if "natural language description" in prompt:
            return f" Description number {i}."
        return "\n    return 0\n"

    gen = CannedGenerator(completion)
    _fake_loader(monkeypatch, gen)
    out = tmp_path / "out"
    code = main(["describe-then-synthesize", "--model", str(tmp_path), "--languages", "python",
                 "--data-dir", str(data_dir), "--limit", "2", "--n-descriptions", "2",
                 "--n-samples", "1", "--temperature", "0.2", "--output-dir", str(out),
                 "--generation-only", "--no-progress"])  # fmt: skip
    assert code == 0
    descriptions = load_generations(out / "generations_humanevalexplaindescribe-python.json")
    assert descriptions == [["Description number 0.", "Description number 1."],
                            ["Description number 2.", "Description number 3."]]  # fmt: skip
    synth = load_generations(out / "generations_humanevalexplainsynthesize-python.json")
    assert len(synth) == 4 and all(len(r) == 1 for r in synth)
    synth_prompts = gen.calls[-1]["prompts"]
    assert "\nDescription number 1.\n\nAnswer:\n" in synth_prompts[1]
    assert synth[0][0].endswith('"""\n    return 0')
    assert (out / "generations_raw_humanevalexplainsynthesize-python.json").exists()
    assert not (out / "generations_humanevalexplainsynthesize-python_intermediate.json").exists()


def test_cli_generate_explain_synthesize_without_descriptions(
    tmp_path, data_dir, monkeypatch, capsys
):
    _fake_loader(monkeypatch, CannedGenerator(lambda p, i, s: ""))
    code = main(["generate", "--model", str(tmp_path), "--tasks", "humanevalexplain-synthesize",
                 "--data-dir", str(data_dir), "--output-dir", str(tmp_path / "o"), "--no-progress"])  # fmt: skip
    assert code == 2
    assert (
        "generations_humanevalexplaindescribe-python.json: file not found"
        in capsys.readouterr().err
    )


def test_describe_task_is_generation_only(problems):
    task = Task(EXPLAIN_DESCRIBE, "cpp")
    assert not task.executes


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """A random tiny octojax model in Hugging Face format (built once per module)."""
    pytest.importorskip("jax", reason="jax is not installed: generation needs it")
    try:
        from octojax.generate.testing import tiny_model_dir
    except ImportError as e:
        pytest.skip(f"octojax.generate.testing.tiny_model_dir is not available ({e})")
    return tiny_model_dir(tmp_path_factory.mktemp("tiny") / "model")


def test_generate_with_real_tiny_model(tmp_path, data_dir, problems, tiny_model):
    """End to end with a random tiny octojax model: prompts in, harness-format files out."""
    out = tmp_path / "out"
    code = main(["generate", "--model", str(tiny_model), "--tasks", "humanevalsynthesize,humanevalfix-tests",
                 "--languages", "python,js", "--data-dir", str(data_dir), "--limit", "2",
                 "--n-samples", "2", "--temperature", "0.8", "--top-p", "0.95",
                 "--max-length-generation", "24", "--batch-size", "4", "--dtype", "float32",
                 "--output-dir", str(out), "--generation-only", "--no-progress"])  # fmt: skip
    assert code == 0
    for name in ("humanevalsynthesize-python", "humanevalfixtests-js"):
        rows = load_generations(out / f"generations_{name}.json")
        assert len(rows) == 2 and all(len(r) == 2 for r in rows)
    rows = load_generations(out / "generations_humanevalsynthesize-python.json")
    assert rows[0][0].startswith(problems["python"][0]["prompt"].rstrip())
    assert rows[1][1].startswith(problems["python"][1]["prompt"].rstrip())
    assert not (out / "results.json").exists()


def test_generate_and_score_with_real_tiny_model(tmp_path, data_dir, tiny_model):
    """Generate + score in one command; a random model's programs are executed and fail."""
    try:
        from eval.execution import check_toolchains

        check_toolchains(["python"])
    except Exception as e:
        pytest.skip(f"execution backend or python toolchain not available ({e})")
    out = tmp_path / "out"
    code = main(["generate", "--model", str(tiny_model), "--tasks", "humanevalsynthesize",
                 "--languages", "python", "--data-dir", str(data_dir), "--limit", "2",
                 "--n-samples", "1", "--max-length-generation", "16", "--dtype", "float32",
                 "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"),
                 "--model-name", "tiny", "--no-progress"])  # fmt: skip
    assert code == 0
    (result,) = load_results(out / "results.json")
    assert result["model"] == "tiny" and result["num_rows"] == 2
    assert result["config"]["max_new_tokens"] == 16
    assert "pass@1" in result and len(result["rows"][0]["samples"]) == 1
    assert "| Synthesize | tiny |" in (out / "results.md").read_text()


def _canonical_completion(problems_by_language):
    """TEST DOUBLE completion: the canonical body of the problem the prompt ends with, plus junk."""

    def completion(prompt, i, seed):
        for rows in problems_by_language.values():
            for p in rows:
                if prompt.endswith(p["declaration"].strip()) or prompt.endswith(
                    p["prompt"].strip()
                ):
                    return "\n" + p["canonical_solution"] + "\n\nprint('junk after the function')\n"
        raise AssertionError(f"no problem matches prompt {prompt[-80:]!r}")

    return completion


@pytest.mark.toolchains
@pytest.mark.parametrize("language", ["python", "js", "java", "go", "cpp", "rust"])
def test_generate_and_score_canonical_answers(tmp_path, data_dir, problems, monkeypatch, language):
    """Canonical bodies as model answers survive prompt, post-processing and execution: 100%."""
    try:
        from eval.execution import check_toolchains

        check_toolchains([language])
    except Exception as e:
        pytest.skip(f"execution backend or {language} toolchain not available ({e})")
    subset = {language: problems[language][:6]}
    _fake_loader(monkeypatch, CannedGenerator(_canonical_completion(subset)))
    out = tmp_path / "out"
    code = main(["generate", "--model", str(tmp_path), "--tasks", "humanevalsynthesize,humanevalfix-docs",
                 "--languages", language, "--data-dir", str(data_dir), "--limit", "6",
                 "--output-dir", str(out), "--cache-dir", str(tmp_path / "cache"), "--no-progress"])  # fmt: skip
    assert code == 0
    results = load_results(out / "results.json")
    assert len(results) == 2
    for result in results:
        failed = [
            (r["task_id"], r["samples"][0]["detail"][:300])
            for r in result["rows"]
            if not r["correct"]
        ]
        assert failed == [], result["task"]
        assert result["pass@1"] == 1.0
