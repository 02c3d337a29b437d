"""A Hugging Face config.json with a value of the wrong type is one line naming the file and the
key (it was `TypeError: not all arguments converted during string formatting`), exit 2."""

from __future__ import annotations

import json

import pytest

from octojax.cli import main
from octojax.config import ConfigError
from octojax.model.config import ModelConfig, get_preset

GOOD = get_preset("test").to_hf_dict()


@pytest.mark.parametrize(
    "key, value, want",
    [
        ("n_embd", "64", "n_embd must be an integer, got '64'"),
        ("n_head", 4.0, "n_head must be an integer, got 4.0"),
        ("vocab_size", True, "vocab_size must be an integer, got True"),
        ("n_inner", "96", "n_inner must be an integer or null, got '96'"),
        ("layer_norm_epsilon", "1e-5", "layer_norm_epsilon must be a number, got '1e-5'"),
        ("multi_query", "true", "multi_query must be true or false, got 'true'"),
        ("activation_function", 1, "activation_function must be a string, got 1"),
    ],
)
def test_wrong_type_names_file_and_key(tmp_path, key, value, want):
    (tmp_path / "config.json").write_text(json.dumps({**GOOD, key: value}))
    with pytest.raises(ConfigError) as err:
        ModelConfig.from_hf_json(tmp_path)
    assert str(err.value) == f"{tmp_path / 'config.json'}: {want}"


def test_well_typed_configs_still_load(tmp_path):
    (tmp_path / "config.json").write_text(
        json.dumps({**GOOD, "n_inner": None, "bos_token_id": None, "layer_norm_epsilon": 1})
    )
    cfg = ModelConfig.from_hf_json(tmp_path)
    assert cfg.n_embd == 64 and cfg.n_inner is None and cfg.layer_norm_epsilon == 1


@pytest.mark.parametrize("command", ["convert import", "generate"])
def test_the_cli_says_it_in_one_line(tmp_path, capsys, command):
    hf = tmp_path / "hf"
    hf.mkdir()
    (hf / "config.json").write_text(json.dumps({**GOOD, "n_embd": "64"}))
    argv = {
        "convert import": ["convert", "import", str(hf), str(tmp_path / "ckpt")],
        "generate": ["generate", "--model", str(hf), "--prompt", "x", "--dtype", "float32"],
    }[command]
    assert main(argv) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [
        f"octojax {argv[0]}: error: {hf / 'config.json'}: n_embd must be an integer, got '64'"
    ]
    assert not (tmp_path / "ckpt").exists()
