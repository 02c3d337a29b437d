"""Hugging Face checkpoint import/export: round trips, sharded and .bin files, clear errors."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.hf_reference import hf_logits, make_hf_model, save_hf, torch, transformers

from octojax.convert import CheckpointError, load_hf_model, load_hf_params, save_hf_checkpoint
from octojax.convert.hf_checkpoint import iter_checkpoint
from octojax.convert.safetensors_io import SafetensorsError, iter_tensors
from octojax.model import ConfigError, ModelConfig, get_preset, init_model, param_dict
from octojax.model.gptbigcode import param_logical_axes


@pytest.mark.parametrize("multi_query", [True, False])
def test_import_export_round_trip_is_bit_exact(tmp_path, multi_query):
    hf = make_hf_model(multi_query=multi_query)
    src = save_hf(hf, tmp_path / "src")
    cfg, params = load_hf_params(src, progress=False)
    dst = save_hf_checkpoint(tmp_path / "dst", cfg, params)
    original = dict(iter_checkpoint(src))
    exported = dict(iter_checkpoint(dst))
    original.pop("lm_head.weight", None)  # tied to wte; transformers may or may not store it
    assert set(exported) == set(original)
    for name, array in original.items():
        assert exported[name].dtype == array.dtype, name
        np.testing.assert_array_equal(exported[name], array, err_msg=name)


@pytest.mark.parametrize("multi_query", [True, False])
def test_export_loads_in_transformers_with_identical_logits(tmp_path, multi_query):
    cfg = get_preset("test", multi_query=multi_query, n_inner=80)
    model = init_model(cfg, seed=3)
    out = save_hf_checkpoint(tmp_path / "hf", cfg, param_dict(model))
    hf = transformers.GPTBigCodeForCausalLM.from_pretrained(str(out)).eval()
    ids = np.random.RandomState(0).randint(0, cfg.vocab_size, (2, 20))
    np.testing.assert_allclose(
        np.asarray(model(jnp.asarray(ids))), hf_logits(hf, ids), atol=1e-5, rtol=0
    )


def test_bfloat16_export_and_import(tmp_path):
    cfg = get_preset("test", param_dtype="bfloat16")
    model = init_model(cfg, seed=1)
    out = save_hf_checkpoint(tmp_path / "hf", cfg, param_dict(model))
    assert json.loads((out / "config.json").read_text())["torch_dtype"] == "bfloat16"
    hf = transformers.GPTBigCodeForCausalLM.from_pretrained(str(out))
    assert hf.transformer.wte.weight.dtype == torch.bfloat16
    _, params = load_hf_params(out, cfg, progress=False)
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(param_dict(model))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_sharded_safetensors_and_pytorch_bin(tmp_path):
    hf = make_hf_model()
    hf.save_pretrained(str(tmp_path / "sharded"), max_shard_size="50KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").exists()
    (tmp_path / "bin").mkdir()
    torch.save(hf.state_dict(), tmp_path / "bin" / "pytorch_model.bin")
    (tmp_path / "bin" / "config.json").write_text(hf.config.to_json_string())
    ids = np.random.RandomState(0).randint(0, 301, (1, 9))
    ref = hf_logits(hf, ids)
    for d in ("sharded", "bin"):
        model = load_hf_model(tmp_path / d, progress=False)
        np.testing.assert_allclose(np.asarray(model(jnp.asarray(ids))), ref, atol=1e-4, rtol=0)


def test_import_places_parameters_on_a_mesh(tmp_path):
    from jax.sharding import NamedSharding

    from octojax.sharding import named_sharding

    if jax.device_count() < 8:
        pytest.skip("needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
    mesh = jax.make_mesh((2, 2, 2), ("data", "fsdp", "tensor"))
    hf = make_hf_model(multi_query=True)
    src = save_hf(hf, tmp_path)
    cfg = ModelConfig.from_hf_json(src)
    axes = param_logical_axes(cfg)

    def place(path, array):
        names = axes
        for p in path:
            names = names[p]
        return jax.device_put(array, named_sharding(names, array.shape, mesh))

    _, params = load_hf_params(src, place=place, progress=False)
    q = params["blocks"]["q_kernel"]  # [L, D, N, H]: D over fsdp, N over tensor
    assert isinstance(q.sharding, NamedSharding)
    assert q.sharding.spec[1] == "fsdp" and q.sharding.spec[2] == "tensor"
    kv = params["blocks"]["kv_kernel"]  # single K/V head: replicated over tensor
    assert kv.sharding.spec[3] is None
    assert jax.tree.structure(params) == jax.tree.structure(param_dict(init_model(cfg)))


def test_not_gpt_bigcode_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "llama", "vocab_size": 10}))
    with pytest.raises(ConfigError, match="llama.*not 'gpt_bigcode'"):
        load_hf_params(tmp_path)


def test_missing_weights_and_shape_mismatch(tmp_path):
    hf = make_hf_model()
    src = save_hf(hf, tmp_path / "src")
    (src / "model.safetensors").rename(tmp_path / "weights.safetensors")
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_hf_params(src)
    (tmp_path / "weights.safetensors").rename(src / "model.safetensors")
    cfg = json.loads((src / "config.json").read_text())
    cfg["n_inner"] = 64
    (src / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(
        CheckpointError,
        match=r"mlp\.c_fc\.(weight|bias) has shape \(72.*\), expected \(64.*\) from config.json",
    ):
        load_hf_params(src, progress=False)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_hf_params(tmp_path / "nope")


def test_truncated_safetensors_is_reported(tmp_path):
    hf = make_hf_model()
    src = save_hf(hf, tmp_path)
    f = src / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-100])
    with pytest.raises(SafetensorsError, match="model.safetensors: tensor .* truncated"):
        list(iter_tensors(f))
