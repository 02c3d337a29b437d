"""Training internals on 8 fake CPU devices: meshes, accumulation, LoRA, schedules, config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from helpers.train_helpers import data, small_config

from octojax.convert.octojax_checkpoint import load_params
from octojax.model import get_preset, init_model, model_from_params, param_dict
from octojax.model.gptbigcode import GPTBigCode
from octojax.model.lora import init_lora, merge_into_params
from octojax.train import ConfigError, Trainer, config_from_dict, load_config
from octojax.train.metrics import read_metrics
from octojax.train.optimizer import decay_mask, learning_rate_schedule
from octojax.train.step import StepSpec, make_train_step, token_losses

needs_8 = pytest.mark.skipif(
    jax.device_count() < 8,
    reason="needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)",
)


@needs_8
def test_one_step_is_the_same_on_every_mesh(tmp_path):
    """Loss and updated parameters on meshes (8,1,1), (2,4,1), (2,2,2), (1,1,8) equal one device.

    Tolerance: loss rtol 1e-5; parameters atol 2e-5 (lr 1e-3: one Adam step moves each weight by
    about 1e-3, so this is 2% of the update; reductions are summed in a different order per mesh).
    """
    runs = {}
    for shape in [(1, 1, 1), (8, 1, 1), (2, 4, 1), (2, 2, 2), (1, 1, 8)]:
        devices = jax.devices()[: int(np.prod(shape))]
        from octojax.mesh import build_mesh

        cfg = small_config(tmp_path / "x".join(map(str, shape)),
                           mesh={"data": shape[0], "fsdp": shape[1], "tensor": shape[2]})  # fmt: skip
        mesh = build_mesh(cfg.mesh, devices=devices)
        result = Trainer(cfg, data=data(), mesh=mesh).run()
        _, params = load_params(result.run_dir / "checkpoints")
        runs[shape] = (result.losses[0], params)
    ref_loss, ref_params = runs[(1, 1, 1)]
    for shape, (loss, params) in runs.items():
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-5, err_msg=str(shape))
        for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(ref_params)):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-5, err_msg=str(shape))


def test_gradient_accumulation_equals_one_big_batch():
    import optax

    cfg = get_preset("test")
    model = init_model(cfg)
    graphdef = nnx.graphdef(model)
    params = param_dict(model)
    batch = {k: jnp.asarray(v) for k, v in next(data()).items()}
    tx = optax.sgd(0.1)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    out = {}
    for n in (1, 2, 4):
        step = jax.jit(make_train_step(StepSpec(graphdef, None, n), tx))
        out[n] = step(state, None, batch)
    for n in (2, 4):
        np.testing.assert_allclose(out[n][1]["loss"], out[1][1]["loss"], rtol=1e-6)
        for a, b in zip(jax.tree.leaves(out[n][0]["params"]), jax.tree.leaves(out[1][0]["params"])):
            np.testing.assert_allclose(a, b, atol=1e-6)


def test_loss_is_mean_over_weighted_tokens_and_ignores_padding():
    cfg = get_preset("test")
    model = init_model(cfg)
    graphdef, params = nnx.graphdef(model), param_dict(model)
    b = {k: jnp.asarray(v) for k, v in next(data()).items()}
    total, weight = token_losses(graphdef, params, b)
    assert float(weight) == float(b["loss_weights"].sum())
    # changing tokens where the weight is 0 (padding) does not change the loss
    pad = b["segment_ids"] == 0
    b2 = dict(b, targets=jnp.where(pad, 7, b["targets"]))
    np.testing.assert_allclose(token_losses(graphdef, params, b2)[0], total, rtol=1e-6)
    # a fresh model's loss is close to log(vocab)
    assert abs(float(total / weight) - np.log(cfg.vocab_size)) < 0.5


def test_lora_trains_adapters_only_and_merged_export_matches(tmp_path):
    cfg = small_config(tmp_path, train={"steps": 3}, lora={"enabled": True, "rank": 4, "alpha": 8},
                       export={"hf": True, "dtype": "float32"}, optimizer={"lr": 1e-2})  # fmt: skip
    trainer = Trainer(cfg, data=data())
    base = param_dict(GPTBigCode(trainer.model_cfg, rngs=nnx.Rngs(params=0)))
    result = trainer.run()
    assert result.losses[-1] < result.losses[0] + 1.0
    # the checkpoint holds adapters only; the base is untouched
    from octojax.train.checkpointing import Checkpointer

    ckpt = Checkpointer(tmp_path / "checkpoints", keep=3, async_save=False, param_item="lora")
    import orbax.checkpoint as ocp

    adapters = ckpt.manager.restore(
        3, args=ocp.args.Composite(lora=ocp.args.StandardRestore())
    ).lora
    ckpt.close()
    assert set(adapters) == {"q_kernel", "kv_kernel", "o_kernel"}
    assert float(jnp.abs(adapters["q_kernel"]["b"]).max()) > 0  # B moved away from zero
    # merged export == base + adapters through the model's LoRA path
    from octojax.convert import load_hf_params

    _, exported = load_hf_params(result.hf_dir, trainer.model_cfg, progress=False)
    ids = jnp.asarray(np.random.RandomState(0).randint(0, 512, (2, 16)))
    via_adapters = model_from_params(trainer.model_cfg, base)(ids, lora=adapters, lora_scale=2.0)
    merged = model_from_params(trainer.model_cfg, exported)(ids)
    np.testing.assert_allclose(np.asarray(merged), np.asarray(via_adapters), atol=1e-4)
    np.testing.assert_allclose(
        np.asarray(merged),
        np.asarray(
            model_from_params(trainer.model_cfg, merge_into_params(base, adapters, 2.0))(ids)
        ),
        atol=1e-5,
    )


def test_lora_gradients_do_not_touch_base_weights():
    import optax

    cfg = get_preset("test")
    model = init_model(cfg)
    graphdef, base = nnx.graphdef(model), param_dict(model)
    lora = init_lora(cfg, ["q", "kv", "o"], 4, jax.random.key(0))
    tx = optax.adam(1e-2)
    state = {"step": jnp.zeros((), jnp.int32), "params": lora, "opt_state": tx.init(lora)}
    step = jax.jit(make_train_step(StepSpec(graphdef, 2.0, 1), tx))
    batch = {k: jnp.asarray(v) for k, v in next(data()).items()}
    before = jax.tree.map(np.asarray, base)
    for _ in range(2):
        state, _ = step(state, base, batch)
    for a, b in zip(jax.tree.leaves(base), jax.tree.leaves(before)):
        np.testing.assert_array_equal(np.asarray(a), b)
    assert set(state["params"]) == {"q_kernel", "kv_kernel", "o_kernel"}


def test_schedule_and_weight_decay_mask():
    cfg = small_config("/tmp/unused", optimizer={"lr": 1.0, "warmup_steps": 5, "schedule": "cosine"},
                       train={"steps": 35}).optimizer  # fmt: skip
    s = learning_rate_schedule(cfg, 35)
    assert float(s(0)) == 0.0 and abs(float(s(5)) - 1.0) < 1e-6
    assert float(s(20)) < 1.0 and abs(float(s(35))) < 1e-6
    mask = decay_mask(param_dict(init_model(get_preset("test"))))
    assert mask["wte"] and mask["blocks"]["q_kernel"]
    assert (
        not mask["blocks"]["q_bias"] and not mask["blocks"]["ln_1_scale"] and not mask["ln_f_bias"]
    )


def test_config_errors_name_the_key(tmp_path):
    with pytest.raises(ConfigError, match=r"config: train\.stepz: unknown key; known: steps"):
        config_from_dict({"train": {"stepz": 3}})
    with pytest.raises(ConfigError, match=r"config: train\.steps: .*valid integer \(got 'many'\)"):
        config_from_dict({"train": {"steps": "many"}})
    with pytest.raises(ConfigError, match="micro_batch_size 3 must divide"):
        config_from_dict({"train": {"global_batch_size": 8, "micro_batch_size": 3}})
    with pytest.raises(ConfigError, match=r"lora\.targets\[0\]"):
        config_from_dict({"lora": {"enabled": True, "targets": ["c_attn"]}})
    with pytest.raises(ConfigError, match="init.path is required"):
        config_from_dict({"init": {"source": "hf"}})
    f = tmp_path / "c.yaml"
    f.write_text("train: {steps: 5}\n")
    assert load_config(f, ["train.steps=7", "optimizer.lr=0.1"]).train.steps == 7
    with pytest.raises(ConfigError, match="expected key=value"):
        load_config(f, ["train.steps"])
    f.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="c.yaml: invalid YAML"):
        load_config(f)


def test_shipped_configs_load():
    from pathlib import Path

    for path in sorted(Path(__file__).resolve().parents[2].joinpath("configs").glob("*.yaml")):
        cfg = load_config(path)
        assert cfg.train.steps > 0, path


def test_metrics_log_has_throughput_and_lr(tmp_path):
    cfg = small_config(tmp_path, train={"steps": 3}, log={"peak_tflops_per_device": 1.0})
    Trainer(cfg, data=data()).run()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [1, 2, 3]
    for r in records:
        assert r["tokens_per_s"] > 0 and r["mfu"] > 0 and r["lr"] == pytest.approx(1e-3)
        assert np.isfinite(r["loss"]) and r["grad_norm"] > 0
