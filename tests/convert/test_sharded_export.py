"""Sharded Hugging Face export (model-0000i-of-0000n.safetensors + index), written into a temporary
folder and moved into place; `octojax convert import` refuses to overwrite without --overwrite."""

import json

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from helpers.hf_reference import hf_logits, make_hf_model, save_hf, transformers
from safetensors import safe_open

from octojax.cli import main
from octojax.convert import load_hf_params, save_hf_checkpoint
from octojax.convert.hf_checkpoint import hf_tensor_names
from octojax.convert.safetensors_io import parse_size, plan_shards
from octojax.model import get_preset, init_model, param_dict


@pytest.mark.parametrize("multi_query", [True, False])
def test_sharded_export_loads_in_transformers_and_reimports_bit_exact(tmp_path, multi_query):
    cfg = get_preset("test", multi_query=multi_query, n_inner=80)
    model = init_model(cfg, seed=5)
    params = param_dict(model)
    out = save_hf_checkpoint(tmp_path / "hf", cfg, params, max_shard_size="60KB")
    index = json.loads((out / "model.safetensors.index.json").read_text())
    shards = sorted(p.name for p in out.glob("model-*.safetensors"))
    n = len(shards)
    assert n >= 3 and shards == [f"model-{i:05d}-of-{n:05d}.safetensors" for i in range(1, n + 1)]
    assert not (out / "model.safetensors").exists()
    assert set(index["weight_map"]) == set(hf_tensor_names(cfg))
    assert set(index["weight_map"].values()) == set(shards)
    total = 0
    for name in shards:  # every shard is a valid safetensors file for the library itself
        with safe_open(str(out / name), framework="numpy") as f:
            names = list(f.keys())
            sizes = [f.get_tensor(k).nbytes for k in names]
        assert all(index["weight_map"][k] == name for k in names)
        assert sum(sizes) <= 60_000 or len(names) == 1  # a bigger tensor gets a shard of its own
        total += sum(sizes)
    assert index["metadata"]["total_size"] == total
    assert not list(tmp_path.glob(".hf.partial-*"))

    hf = transformers.GPTBigCodeForCausalLM.from_pretrained(str(out)).eval()
    ids = np.random.RandomState(1).randint(0, cfg.vocab_size, (2, 17))
    np.testing.assert_allclose(
        np.asarray(model(jnp.asarray(ids))), hf_logits(hf, ids), atol=1e-5, rtol=0
    )
    _, back = load_hf_params(out, cfg, progress=False)
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_bfloat16_shards_read_by_safetensors(tmp_path):
    cfg = get_preset("test")
    params = param_dict(init_model(cfg, seed=2))
    out = save_hf_checkpoint(tmp_path / "hf", cfg, params, dtype="bfloat16", max_shard_size=70_000)
    index = json.loads((out / "model.safetensors.index.json").read_text())
    name = index["weight_map"]["transformer.wte.weight"]
    with safe_open(str(out / name), framework="numpy") as f:
        wte = f.get_tensor("transformer.wte.weight")
    assert wte.dtype == ml_dtypes.bfloat16
    np.testing.assert_array_equal(wte, np.asarray(params["wte"]).astype(ml_dtypes.bfloat16))


def test_reexport_replaces_stale_weights_and_keeps_other_files(tmp_path):
    cfg = get_preset("test")
    params = param_dict(init_model(cfg, seed=0))
    out = save_hf_checkpoint(tmp_path / "hf", cfg, params, max_shard_size="60KB")
    (out / "README.md").write_text("mine")
    save_hf_checkpoint(out, cfg, params)  # one file now: no shard or index may remain
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "config.json",
        "model.safetensors",
    ]
    save_hf_checkpoint(out, cfg, params, max_shard_size="60KB")
    assert not (out / "model.safetensors").exists()
    assert (out / "model.safetensors.index.json").exists()


def test_failed_export_leaves_the_destination_untouched(tmp_path):
    cfg = get_preset("test")
    params = param_dict(init_model(cfg, seed=0))
    bad = dict(params, ln_f_bias=np.zeros(7, np.float32))  # the last tensor: fails at the end
    with pytest.raises(ValueError, match="ln_f.bias: shape"):
        save_hf_checkpoint(tmp_path / "new", cfg, bad, max_shard_size="60KB")
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no folder, no partial folder

    out = save_hf_checkpoint(tmp_path / "hf", cfg, params)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ValueError, match="ln_f.bias: shape"):
        save_hf_checkpoint(out, cfg, bad, max_shard_size="60KB")
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf"]


def test_parse_size_and_plan_shards():
    assert parse_size("5GB") == 5 * 10**9
    assert parse_size("5GiB") == 5 * 2**30
    assert parse_size("200MB") == 200 * 10**6
    assert parse_size("50kb") == 50_000
    assert parse_size(1234) == 1234
    assert parse_size("1234") == 1234
    for bad in ("five", "5XB", 0):
        with pytest.raises(ValueError):
            parse_size(bad)
    f4 = np.dtype(np.float32)
    specs = {"a": ((10,), f4), "b": ((10,), f4), "big": ((100,), f4), "c": ((5,), f4)}
    assert plan_shards(specs, 80) == [["a", "b"], ["big"], ["c"]]
    assert plan_shards(specs, 10**6) == [["a", "b", "big", "c"]]


def test_convert_import_refuses_to_overwrite_without_flag(tmp_path, capsys):
    src = save_hf(make_hf_model(), tmp_path / "src")
    out = tmp_path / "ox"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    capsys.readouterr()  # drop transformers' save progress bars
    assert main(["convert", "import", str(src), str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("octojax convert: error: ")
    assert "--overwrite" in err[0]
    assert sorted(p.name for p in out.iterdir()) == ["keep.txt"]

    assert main(["convert", "import", str(src), str(out), "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["model_config.json", "params"]
    assert not list(tmp_path.glob(".ox.*"))
    # an empty existing folder is fine without the flag
    (tmp_path / "empty").mkdir()
    assert main(["convert", "import", str(src), str(tmp_path / "empty")]) == 0
