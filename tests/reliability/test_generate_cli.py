"""`octojax generate` checks its inputs before generating and never cuts a prompt silently."""

from __future__ import annotations

import json

import pytest
from helpers.cli_helpers import first_error_line, octojax

from octojax.generate.testing import tiny_model_dir


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("tiny"), preset="test")  # n_positions 128


@pytest.mark.slow
def test_generate_refuses_bad_input_before_working(model_dir, tmp_path):
    base = ["generate", "--model", str(model_dir), "--dtype", "float32", "--max-new-tokens", "4"]
    missing = tmp_path / "nowhere" / "out.jsonl"
    proc = octojax(*base, "--prompt", "def f():", "--output", str(missing))
    assert proc.returncode == 2
    assert first_error_line(proc) == (
        f"octojax generate: error: {missing.parent}: no such folder for --output"
    )
    latin1 = tmp_path / "prompts.jsonl"
    latin1.write_bytes(
        json.dumps({"prompt": "caf\u00e9"}).encode("utf-8").replace(b"\\u00e9", b"\xe9")
    )
    proc = octojax(*base, "--prompts-file", str(latin1))
    assert proc.returncode == 2
    assert first_error_line(proc).startswith(f"octojax generate: error: {latin1}: not UTF-8 text")
    proc = octojax(*base, "--prompt", "x", "--dtype", "float64")
    assert proc.returncode == 2 and "invalid choice: 'float64'" in proc.stderr


@pytest.mark.slow
def test_a_prompt_that_does_not_fit_is_warned_about_or_refused(model_dir, tmp_path):
    long_prompt = "def f(x):\n    return x\n" * 60  # far more than 128 - 8 tokens
    base = ["generate", "--model", str(model_dir), "--dtype", "float32", "--max-new-tokens", "8"]
    out = tmp_path / "out.jsonl"
    proc = octojax(*base, "--prompt", long_prompt, "--output", str(out))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "1 prompt(s) do not fit n_positions 128 minus max_new_tokens" in proc.stderr
    assert "their first tokens were dropped" in proc.stderr
    assert len(out.read_text().splitlines()) == 1
    strict = octojax(
        *base, "--prompt", long_prompt, "--strict", "--output", str(tmp_path / "s.jsonl")
    )
    assert strict.returncode == 2
    assert first_error_line(strict).startswith("octojax generate: error: 1 prompt(s) do not fit")
    assert not (tmp_path / "s.jsonl").exists()
