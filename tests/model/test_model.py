"""Model behaviour beyond parity: packing, scan/unrolled/remat equivalence, KV cache, presets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from octojax.model import (
    KVCache,
    ModelConfig,
    get_preset,
    init_model,
    model_from_params,
    param_dict,
)
from octojax.model.config import ConfigError
from octojax.model.gptbigcode import positions_from_segments


def _random_model(**overrides):
    cfg = get_preset("test", **overrides)
    model = init_model(cfg, seed=0)
    # scale weights so that mistakes show up in the logits
    params = jax.tree.map(lambda a: a * 4.0 if a.ndim > 1 else a, param_dict(model))
    return model_from_params(cfg, params)


def test_positions_restart_per_segment():
    seg = jnp.array([[1, 1, 1, 2, 2, 3, 0, 0], [0, 0, 0, 1, 1, 1, 1, 1]])
    np.testing.assert_array_equal(
        positions_from_segments(seg), [[0, 1, 2, 0, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2, 3, 4]]
    )


@pytest.mark.parametrize("multi_query", [True, False])
def test_packed_row_equals_each_example_alone(multi_query):
    model = _random_model(multi_query=multi_query)
    rs = np.random.RandomState(0)
    lengths = [7, 12, 5]
    examples = [rs.randint(1, 512, n) for n in lengths]
    row = np.concatenate(examples + [np.zeros(8, int)])  # 8 padding tokens at the end
    seg = np.concatenate([np.full(n, i + 1) for i, n in enumerate(lengths)] + [np.zeros(8, int)])
    packed = np.asarray(model(jnp.asarray(row[None]), segment_ids_BT=jnp.asarray(seg[None])))[0]
    start = 0
    for ex in examples:
        alone = np.asarray(model(jnp.asarray(ex[None])))[0]
        np.testing.assert_allclose(packed[start : start + len(ex)], alone, atol=1e-4, rtol=0)
        start += len(ex)


def test_scan_unrolled_and_remat_agree():
    model = _random_model()
    ids = jnp.asarray(np.random.RandomState(1).randint(0, 512, (2, 16)))
    ref = np.asarray(model(ids))
    params = param_dict(model)

    def loss(cfg):
        def f(p):
            return jnp.mean(model_from_params(cfg, p)(ids) ** 2)

        return jax.jit(jax.value_and_grad(f))(params)

    base_loss, base_grad = loss(model.cfg)
    for overrides in (
        {"scan_layers": False},
        {"remat": "full"},
        {"remat": "dots_saveable", "scan_layers": False},
    ):
        cfg = model.cfg.replace(**overrides)
        np.testing.assert_allclose(np.asarray(model_from_params(cfg, params)(ids)), ref, atol=1e-5)
        value, g = loss(cfg)
        np.testing.assert_allclose(value, base_loss, rtol=1e-6)
        for a, b in zip(jax.tree.leaves(g), jax.tree.leaves(base_grad)):
            np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-4)


def test_compile_time_does_not_grow_with_depth_under_scan():
    """The scanned program's HLO has one block body regardless of n_layer."""

    def hlo_size(n_layer, scan):
        cfg = get_preset("test", n_layer=n_layer, scan_layers=scan)
        model = init_model(cfg)
        from flax import nnx

        graphdef, state = nnx.split(model)
        f = jax.jit(lambda s, x: nnx.merge(graphdef, s)(x))
        return len(f.lower(state, jnp.zeros((1, 8), jnp.int32)).as_text())

    assert hlo_size(8, True) < 1.1 * hlo_size(2, True)
    assert hlo_size(8, False) > 2.0 * hlo_size(2, False)


@pytest.mark.parametrize("multi_query", [True, False])
def test_kv_cache_decode_equals_full_forward_at_every_step(multi_query):
    model = _random_model(multi_query=multi_query)
    rs = np.random.RandomState(2)
    B, T0, steps = 2, 6, 10
    seq = rs.randint(1, 512, (B, T0 + steps))
    mask = np.ones_like(seq)
    mask[1, :3] = 0  # left padding in row 1
    seq = seq * mask
    positions = np.maximum(np.cumsum(mask, 1) - 1, 0)
    full = np.asarray(
        model(
            jnp.asarray(seq), segment_ids_BT=jnp.asarray(mask), positions_BT=jnp.asarray(positions)
        )
    )
    cache = KVCache.zeros(model.cfg, B, T0 + steps, jnp.float32)
    logits, cache = model(
        jnp.asarray(seq[:, :T0]),
        segment_ids_BT=jnp.asarray(mask[:, :T0]),
        positions_BT=jnp.asarray(positions[:, :T0]),
        cache=cache,
    )
    np.testing.assert_allclose(
        np.asarray(logits)[mask[:, :T0] == 1], full[:, :T0][mask[:, :T0] == 1], atol=1e-4
    )
    for t in range(T0, T0 + steps):
        logits, cache = model(
            jnp.asarray(seq[:, t : t + 1]),
            segment_ids_BT=jnp.ones((B, 1), jnp.int32),
            positions_BT=jnp.asarray(positions[:, t : t + 1]),
            cache=cache,
        )
        np.testing.assert_allclose(np.asarray(logits)[:, 0], full[:, t], atol=1e-4, rtol=0)
    assert int(cache.index) == T0 + steps


def test_bfloat16_compute_is_close_to_float32():
    model = _random_model()
    ids = jnp.asarray(np.random.RandomState(3).randint(0, 512, (2, 16)))
    ref = np.asarray(model(ids))
    for param_dtype in ("float32", "bfloat16"):
        cfg = model.cfg.replace(dtype="bfloat16", param_dtype=param_dtype)
        params = jax.tree.map(lambda a, d=param_dtype: a.astype(d), param_dict(model))
        out = model_from_params(cfg, params)(ids)
        assert out.dtype == jnp.bfloat16
        err = np.abs(np.asarray(out, np.float32) - ref).max() / np.abs(ref).max()
        assert err < 0.05, err


def test_presets_have_published_sizes():
    expect = {
        "starcoder": 15.5e9,
        "starcoderbase-7b": 7.3e9,
        "starcoderbase-3b": 3.0e9,
        "starcoderbase-1b": 1.14e9,
        "tiny_starcoder": 164e6,
    }
    for name, n in expect.items():
        assert abs(get_preset(name).num_params() - n) / n < 0.03, name


def test_config_validation_and_hf_round_trip():
    with pytest.raises(ConfigError, match="not divisible"):
        ModelConfig(n_embd=10, n_head=3)
    with pytest.raises(ConfigError, match="activation_function"):
        ModelConfig(activation_function="relu")
    with pytest.raises(ConfigError, match="remat"):
        ModelConfig(remat="sometimes")
    cfg = get_preset("starcoderbase-1b")
    assert ModelConfig.from_hf_dict(cfg.to_hf_dict()) == cfg
    with pytest.raises(ConfigError, match="missing keys"):
        ModelConfig.from_hf_dict({"model_type": "gpt_bigcode"})
