"""`octojax plan` (octojax/plan/): the per-device estimate against XLA's compiled
memory_analysis() of the real train step on fake CPU meshes, and the pieces it is built from."""

import json

import jax
import pytest
from jax.sharding import AbstractMesh

from octojax.cli import main
from octojax.config import ConfigError
from octojax.model.config import get_preset
from octojax.plan.devices import GiB, parse_bytes, parse_device
from octojax.plan.estimate import (
    activation_dims,
    kv_cache_bytes,
    largest_micro_batch,
    make_plan,
    mesh_sizes,
    saved_layer_bytes,
    state_bytes,
)
from octojax.plan.measure import measure_compiled
from octojax.sharding import LOGICAL_RULES
from octojax.train.config import config_from_dict

# (config, sequence length): three meshes, four remat/loss/LoRA settings; measured ratios are
# in docs/training.md ("Memory plan").
CASES = {
    "data8-none-plain": (
        {"model": {"preset": "smoke", "remat": "none", "n_layer": 2}, "mesh": {"data": 8},
         "train": {"global_batch_size": 16}}, 128,
    ),
    "2x2x2-dots-accum": (
        {"model": {"preset": "smoke", "remat": "dots_with_no_batch_dims_saveable", "n_head": 8,
                   "n_layer": 2},
         "mesh": {"data": 2, "fsdp": 2, "tensor": 2},
         "train": {"global_batch_size": 16, "micro_batch_size": 8}}, 256,
    ),
    "tensor8-full": (
        {"model": {"preset": "smoke", "remat": "full", "n_head": 8, "n_layer": 2},
         "mesh": {"data": 1, "fsdp": 1, "tensor": 8}, "train": {"global_batch_size": 8}}, 256,
    ),
    "fsdp8-lora-bf16-chunked": (
        {"model": {"preset": "smoke", "remat": "full", "dtype": "bfloat16", "n_layer": 2},
         "mesh": {"data": 1, "fsdp": 8}, "lora": {"enabled": True, "targets": ["q", "o", "proj"]},
         "train": {"global_batch_size": 16, "loss_chunk": 64}}, 256,
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
def test_estimate_within_25_percent_of_memory_analysis(name):
    if len(jax.devices()) < 8:
        pytest.skip("needs 8 (fake) devices")
    d, seq = CASES[name]
    cfg = config_from_dict(d)
    measured = measure_compiled(cfg, seq, jax.devices()[:8])
    plan = make_plan(cfg, 8, seq_len=seq)
    ratio = plan.total / measured["total"]
    print(f"{name}: estimate {plan.total} / measured {measured['total']} = {ratio:.3f}")
    assert 0.75 <= ratio <= 1.25, (name, ratio, plan.lines, measured)


def test_device_names_count_chips():
    assert parse_device("v5e-64") == (16 * GiB, "tpu", 64)
    assert parse_device("v4-32") == (32 * GiB, "tpu", 16)  # v4 names count TensorCores
    assert parse_device("v5p-16") == (95 * GiB, "tpu", 8)
    assert parse_device("h100") == (80 * GiB, "gpu", None)
    with pytest.raises(ConfigError):
        parse_device("v4-7")
    assert parse_bytes("16GiB") == 16 * GiB and parse_bytes("80 GB") == 80 * 10**9
    with pytest.raises(ConfigError):
        parse_bytes("16 parsecs")


def test_mesh_fill_and_mqa_kv_replicated_over_tensor():
    cfg = config_from_dict({"model": {"preset": "test"}, "mesh": {"data": 2, "tensor": 4}})
    assert mesh_sizes(cfg, 64) == {"data": 2, "fsdp": 8, "tensor": 4}
    with pytest.raises(ConfigError):
        mesh_sizes(cfg, 12)
    model = get_preset("test")  # multi-query: one K/V head
    rules = cfg.mesh.logical_rules()
    mesh = AbstractMesh((1, 1, 4), ("data", "fsdp", "tensor"))
    L, D, N, H, M = model.n_layer, model.n_embd, model.n_head, model.head_dim, model.mlp_dim
    # by hand: vocab, heads and mlp split 4 ways; K/V, LayerNorms, biases on D, wpe whole
    split = model.vocab_size * D + L * (2 * D * N * H + N * H + 2 * D * M + M)
    whole = model.n_positions * D + L * (2 * D * H + 2 * H + 6 * D) + 2 * D
    assert split + whole == model.num_params()
    st = state_bytes(cfg, model, mesh)
    assert st.params == 4 * (split // 4 + whole)
    assert st.opt_state == 2 * st.params + 8  # Adam mu + nu; its and the schedule's int32 counts
    d = activation_dims(model, 8, 32, mesh, rules)
    assert d.kv == 8 * 32 * H and d.q == 8 * 32 * N * H // 4


def test_remat_policies_order_and_chunked_loss():
    d = activation_dims(
        get_preset("smoke"),
        4,
        256,
        AbstractMesh((1, 1, 1), ("data", "fsdp", "tensor")),
        LOGICAL_RULES,
    )
    saved = [saved_layer_bytes(d, 2, r, "xla") for r in
             ("full", "dots_with_no_batch_dims_saveable", "dots_saveable", "none")]  # fmt: skip
    assert saved == sorted(saved) and len(set(saved)) == 4
    assert saved_layer_bytes(d, 2, "dots_saveable", "flash") < saved[2]
    base = {"model": {"preset": "smoke", "vocab_size": 32768}, "train": {"global_batch_size": 8}}
    plain = make_plan(config_from_dict(base, ["train.loss_chunk=0"]), 1, seq_len=1024)
    auto = make_plan(config_from_dict(base), 1, seq_len=1024)
    assert auto.loss_chunk == 512 and plain.loss_chunk == 0
    assert auto.total < plain.total


def test_largest_micro_batch_is_the_largest_that_fits():
    cfg = config_from_dict(
        {
            "model": {"preset": "smoke"},
            "mesh": {"data": 2, "fsdp": -1},
            "train": {"global_batch_size": 64, "micro_batch_size": 8},
        }  # fmt: skip
    )
    totals = {m: make_plan(cfg, 8, seq_len=512, micro_batch=m).total for m in (8, 16, 32, 64)}
    assert list(totals.values()) == sorted(totals.values())
    memory = int((totals[16] + totals[32]) / 2 / 0.9)  # 16 fits, 32 does not
    best = largest_micro_batch(cfg, 8, seq_len=512, device_memory=memory)
    assert best is not None and best.micro_batch == 16 and best.fits
    assert largest_micro_batch(cfg, 8, seq_len=512, device_memory=totals[8] // 2) is None


def test_kv_cache_split_over_rows_only_for_multi_query():
    model = get_preset("starcoder", dtype="bfloat16")
    one = kv_cache_bytes(
        model, 32, 2048, AbstractMesh((1, 1, 1), ("data", "fsdp", "tensor")), LOGICAL_RULES
    )
    assert one == 2 * 40 * 32 * 2048 * 128 * 2 + 4 * 32 * 2048
    rules = config_from_dict({}).mesh.logical_rules()
    tensor8 = kv_cache_bytes(
        model, 32, 2048, AbstractMesh((1, 1, 8), ("data", "fsdp", "tensor")), rules
    )
    fsdp8 = kv_cache_bytes(
        model, 32, 2048, AbstractMesh((1, 8, 1), ("data", "fsdp", "tensor")), rules
    )
    assert tensor8 == one and fsdp8 < one / 7


def test_cli_json_and_table(tmp_path, capsys):
    cfg = tmp_path / "x.yaml"
    cfg.write_text("model: {preset: smoke, remat: full}\ntrain: {global_batch_size: 16}\n")
    assert (
        main(["plan", "--config", str(cfg), "--device", "v5e-8", "--seq-len", "256", "--json"]) == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["devices"] == 8 and out["mesh"] == {"data": 1, "fsdp": 8, "tensor": 1}
    assert out["fits"] is True and out["largest_micro_batch"] == 16
    assert out["attention"] == "flash" and out["total"] == sum(out["lines"].values())
    assert main(["plan", "--config", str(cfg), "--devices", "2", "--device-memory", "1MiB"]) == 0
    table = capsys.readouterr().out
    assert "does NOT fit" in table and "largest micro-batch that fits: none" in table
