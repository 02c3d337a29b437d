"""The `octojax` command line: convert both ways, generate, demo."""

import json

import numpy as np
import pytest

from octojax.cli import main
from octojax.convert.hf_checkpoint import iter_checkpoint
from octojax.generate.testing import tiny_model_dir


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("hf"))


def test_convert_import_then_export_reproduces_the_checkpoint(hf_dir, tmp_path, capsys):
    assert main(["convert", "import", str(hf_dir), str(tmp_path / "ox")]) == 0
    assert (tmp_path / "ox" / "tokenizer" / "tokenizer.json").exists()
    assert main(["convert", "export", str(tmp_path / "ox"), str(tmp_path / "hf2")]) == 0
    a, b = dict(iter_checkpoint(hf_dir)), dict(iter_checkpoint(tmp_path / "hf2"))
    assert set(a) == set(b)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert (tmp_path / "hf2" / "tokenizer.json").exists()


def test_generate_from_hf_dir_and_octojax_checkpoint(hf_dir, tmp_path):
    main(["convert", "import", str(hf_dir), str(tmp_path / "ox")])
    (tmp_path / "prompts.jsonl").write_text('{"prompt": "def f(x):"}\n{"prompt": "import os"}\n')
    outs = []
    for model in (hf_dir, tmp_path / "ox"):
        out = tmp_path / f"out_{model.name}.jsonl"
        args = [
            "generate",
            "--model",
            str(model),
            "--prompts-file",
            str(tmp_path / "prompts.jsonl"),
        ]
        assert (
            main([*args, "--max-new-tokens", "8", "--dtype", "float32", "--output", str(out)]) == 0
        )
        outs.append([json.loads(line)["token_ids"] for line in out.read_text().splitlines()])
    assert outs[0] == outs[1] and len(outs[0]) == 2


def test_generate_reports_bad_prompt_file(hf_dir, tmp_path, capsys):
    (tmp_path / "bad.jsonl").write_text('{"prompt": "ok"}\nnot json\n')
    argv = ["generate", "--model", str(hf_dir), "--prompts-file", str(tmp_path / "bad.jsonl")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"octojax generate: error: {tmp_path / 'bad.jsonl'}:2:"
    )


def test_convert_refuses_non_checkpoint(tmp_path, capsys):
    assert main(["convert", "export", str(tmp_path), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"octojax convert: error: {tmp_path}: not an octojax checkpoint "
        + err[0].split("not an octojax checkpoint ", 1)[1]
    ]
    with pytest.raises(FileNotFoundError, match="not an octojax checkpoint"):
        main(["--debug", "convert", "export", str(tmp_path), str(tmp_path / "out")])


def test_demo_runs_and_writes_report(tmp_path):
    assert main(["demo", "--out", str(tmp_path / "demo"), "--max-new-tokens", "8"]) == 0
    report = json.loads((tmp_path / "demo" / "report.json").read_text())
    assert report["generation"]["new_tokens"] > 0
    assert (tmp_path / "demo" / "hf" / "model.safetensors").exists()
