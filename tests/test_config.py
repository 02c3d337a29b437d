"""The one config system: bad configs fail at load with file + dotted key; sharding rules from config."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from octojax.config import ConfigError
from octojax.pipeline.config import load_run_config
from octojax.train.config import load_config

REPO = Path(__file__).resolve().parents[1]

BAD_VALUES = [
    # (yaml of the train config, dotted key in the message, what the message says)
    ("model: {preset: starcodr}", "model.preset", "got 'starcodr'"),
    ("optimizer: {lr: 1.0e-3, betas: [0.9, 0.95]}", "optimizer.betas", "unknown key"),
    ("train: {steps: ten}", "train.steps", "valid integer"),
    ("mesh: {rules: {kv_head: tensor}}", "mesh.rules", "unknown logical axis 'kv_head'"),
    ("model: {preset: test, remat: sometimes}", "model.remat", "got 'sometimes'"),
    (
        "data: {tokenizer: t, sources: [{kind: jsonl, path: x, wieght: 1}]}",
        "data.sources[0].wieght",
        "unknown key",
    ),
]


@pytest.mark.parametrize(("text", "key", "problem"), BAD_VALUES)
def test_train_config_rejects_at_load_with_file_and_key(tmp_path, text, key, problem):
    path = tmp_path / "train.yaml"
    path.write_text(text + "\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    message = str(err.value)
    assert message.startswith(f"{path}: {key}: "), message
    assert problem in message


@pytest.mark.parametrize(("text", "key", "problem"), BAD_VALUES[:5])
def test_run_config_rejects_at_load_with_file_and_key(tmp_path, text, key, problem):
    path = tmp_path / "run.yaml"
    path.write_text("train:\n  " + text + "\n")
    with pytest.raises(ConfigError) as err:
        load_run_config(path)
    assert str(err.value).startswith(f"{path}: train.{key}: "), str(err.value)
    assert problem in str(err.value)


def test_run_config_sections_and_overrides(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("evaluate: {tasks: [humanevalsynthesize], langs: [python]}\n")
    with pytest.raises(ConfigError, match=r"run.yaml: evaluate.langs: unknown key; known: enabled"):
        load_run_config(path)
    with pytest.raises(ConfigError, match=r"bogus: unknown key"):
        load_run_config(None, ["bogus.key=1"])
    with pytest.raises(ConfigError, match=r"evaluate.languages\[0\]: .*got 'pyton'"):
        load_run_config(None, ["evaluate.languages=[pyton]"])
    cfg = load_run_config(None, ["train.train.steps=80"])
    assert cfg.train.train.steps == 80 and cfg.evaluate.limit == 16 and cfg.data.seq_len == 128
    with pytest.raises(ConfigError, match=r"train: optimizer.warmup_steps 50 must be smaller"):
        load_run_config(None, ["train.train.steps=5"])  # the default's warm-up is 50 steps


def test_exponents_without_a_dot_are_numbers_and_a_saved_config_reloads(tmp_path):
    """`lr: 1e-4` is a float (PyYAML alone reads it as a string), in files and in overrides, so
    a run directory's config.json (json.dumps writes eps as 1e-08) loads again as --config."""
    path = tmp_path / "train.yaml"
    path.write_text("model: {preset: test}\noptimizer: {lr: 1e-4, eps: 1E-08}\n")
    cfg = load_config(path, ["optimizer.weight_decay=5e-2"])
    assert (cfg.optimizer.lr, cfg.optimizer.eps, cfg.optimizer.weight_decay) == (1e-4, 1e-8, 0.05)
    saved = tmp_path / "config.json"
    saved.write_text(json.dumps(cfg.model_dump(mode="json"), indent=2))
    assert "1e-08" in saved.read_text()
    assert load_config(saved) == cfg
    assert load_run_config(None, ["train.optimizer.lr=2e-3"]).train.optimizer.lr == 2e-3


def test_cross_field_constraints_at_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(
        "model: {preset: test}\n"  # n_positions 128
        "data: {tokenizer: t, seq_len: 256, sources: [{kind: jsonl, path: x}]}\n"
    )
    with pytest.raises(
        ConfigError, match=r"data.seq_len 256 is larger than the model's n_positions"
    ):
        load_config(path)
    path.write_text("train: {steps: 5}\noptimizer: {warmup_steps: 5}\n")
    with pytest.raises(ConfigError, match=r"warmup_steps 5 must be smaller than train.steps 5"):
        load_config(path)
    path.write_text("train: {global_batch_size: 6}\nmesh: {data: 4, fsdp: 1}\n")
    with pytest.raises(ConfigError, match=r"6 rows cannot be split over mesh data x fsdp = 4"):
        load_config(path)


def test_model_section_fields_are_model_config_fields(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("model: {preset: test, n_positions: 64, dtype: bfloat16}\n")
    model = load_config(path).model.build()
    assert model.n_positions == 64 and model.dtype == "bfloat16" and model.n_embd == 64


def test_tokenizer_module_does_not_import_jax():
    code = "import sys, octojax.tokenizer, octojax.data.tokenize; print('jax' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_a_rule_override_changes_the_partition_spec(tmp_path):
    from jax.sharding import PartitionSpec

    from octojax.sharding import logical_to_spec, use_rules

    path = tmp_path / "c.yaml"
    path.write_text("mesh: {rules: {mlp: null, embed: [fsdp, data]}}\n")
    rules = load_config(path).mesh.logical_rules()
    names = ("layers", "embed", "mlp")
    assert logical_to_spec(names) == PartitionSpec(None, "fsdp", "tensor")
    with use_rules(rules):
        assert logical_to_spec(names) == PartitionSpec(None, ("fsdp", "data"), None)
    assert logical_to_spec(names) == PartitionSpec(None, "fsdp", "tensor")


def test_replication_warning_names_mqa_kv_head(caplog):
    import jax

    from octojax.model.config import get_preset
    from octojax.model.gptbigcode import param_logical_axes, param_shapes
    from octojax.sharding import tree_shardings

    if len(jax.devices()) < 4:
        pytest.skip(
            f"needs 4 devices (fake CPU devices from tests/conftest.py), have {len(jax.devices())}"
        )
    cfg = get_preset("test", multi_query=True)
    mesh = jax.make_mesh((1, 1, 4), ("data", "fsdp", "tensor"), devices=jax.devices()[:4])
    with caplog.at_level(logging.WARNING, logger="octojax.sharding"):
        shardings = tree_shardings(param_logical_axes(cfg), param_shapes(cfg), mesh)
    warned = [r.getMessage() for r in caplog.records if "blocks.kv_kernel" in r.getMessage()]
    assert warned, caplog.text
    assert "(2, 64, 2, 1, 16)" in warned[0] and "'tensor' (size 4)" in warned[0]
    assert shardings["blocks"]["kv_kernel"].spec[3] is None  # the one K/V head: replicated
