"""Splash attention (Pallas interpret mode on CPU) against the XLA path: packed rows, MQA and MHA,
forward and gradients, one device and under shard_map on a (data, fsdp, tensor) mesh; the
implementation choice and its once-only fallback logs."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from octojax.model import attention
from octojax.model.attention import attention_mask, dot_product_attention


def _packed_segments(B: int, T: int) -> np.ndarray:
    """Rows of several examples of uneven lengths, ending in padding (segment 0)."""
    rs = np.random.RandomState(7)
    rows = []
    for _ in range(B):
        cuts = np.sort(rs.choice(np.arange(10, T - 10), 3, replace=False))
        seg = np.zeros(T, np.int32)
        for i, (a, b) in enumerate(zip([0, *cuts[:-1]], cuts)):
            seg[a:b] = i + 1
        rows.append(seg)  # positions >= cuts[-1] stay padding
    return np.stack(rows)


def _inputs(B, T, N, K, H, seed=0):
    rs = np.random.RandomState(seed)
    q = jnp.asarray(rs.randn(B, T, N, H), jnp.float32)
    k = jnp.asarray(rs.randn(B, T, K, H), jnp.float32)
    v = jnp.asarray(rs.randn(B, T, K, H), jnp.float32)
    return q, k, v


def _attend(impl, seg_BT):
    """Attention of one implementation as a function of (q, k, v), for forward and gradients."""
    B, T = seg_BT.shape
    index = jnp.broadcast_to(jnp.arange(T), (B, T))
    mask = attention_mask(index, index, seg_BT, seg_BT)
    return lambda q, k, v: dot_product_attention(
        q, k, v, mask, impl=impl, self_segment_ids_BT=seg_BT
    )


def _loss(f):
    # a position- and channel-weighted sum, so every output element matters to the gradient
    return lambda q, k, v: jnp.sum(f(q, k, v) * jnp.cos(jnp.arange(q.shape[-1])))


def _assert_close(a, b, rel=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1e-6)
    assert float(np.abs(a - b).max()) <= rel * scale, (np.abs(a - b).max(), scale)


@pytest.mark.slow
@pytest.mark.parametrize("kv_heads", [1, 2], ids=["mqa", "mha"])
def test_splash_matches_xla_forward_and_gradients_on_packed_rows(kv_heads):
    q, k, v = _inputs(B=2, T=256, N=2, K=kv_heads, H=32)
    seg = jnp.asarray(_packed_segments(2, 256))
    splash, xla = _attend("splash", seg), _attend("xla", seg)
    _assert_close(jax.jit(splash)(q, k, v), xla(q, k, v), rel=2e-6)
    grads = jax.jit(jax.grad(_loss(splash), argnums=(0, 1, 2)))(q, k, v)
    ref = jax.grad(_loss(xla), argnums=(0, 1, 2))(q, k, v)
    for name, g, r in zip("qkv", grads, ref):
        assert g.shape == r.shape, name
        _assert_close(g, r)


def test_splash_pads_a_ragged_length_and_runs_plain_causal():
    # T = 200 is not a multiple of the kernel's 128-lane blocks; mask None is plain causal
    q, k, v = _inputs(B=1, T=200, N=2, K=1, H=32, seed=1)
    out = jax.jit(lambda q, k, v: dot_product_attention(q, k, v, None, impl="splash"))(q, k, v)
    ref = dot_product_attention(q, k, v, None, impl="xla")
    _assert_close(out, ref, rel=2e-6)


@pytest.mark.slow
@pytest.mark.parametrize("kv_heads", [1, 4], ids=["mqa", "mha"])
def test_splash_under_shard_map_on_a_mesh(kv_heads):
    if jax.device_count() < 8:
        pytest.skip("needs 8 devices (XLA_FLAGS=--xla_force_host_platform_device_count=8)")
    mesh = jax.make_mesh(
        (2, 2, 2), ("data", "fsdp", "tensor"), axis_types=(jax.sharding.AxisType.Auto,) * 3
    )
    q, k, v = _inputs(B=4, T=128, N=4, K=kv_heads, H=16, seed=2)
    seg = jnp.asarray(_packed_segments(4, 128))
    splash, xla = _attend("splash", seg), _attend("xla", seg)
    with jax.set_mesh(mesh):
        fn = jax.jit(jax.value_and_grad(_loss(splash), argnums=(0, 1, 2)))
        lowered = fn.lower(q, k, v).as_text()
        loss, grads = fn(q, k, v)
    assert "shard_map" in lowered or "sdy.manual_computation" in lowered
    ref_loss, ref_grads = jax.value_and_grad(_loss(xla), argnums=(0, 1, 2))(q, k, v)
    _assert_close(loss, ref_loss)
    for g, r in zip(grads, ref_grads):  # MQA: dK/dV summed over the tensor-parallel head shards
        _assert_close(g, r)


def test_cached_attention_with_splash_uses_xla_and_logs_once(caplog):
    attention._logged.clear()
    B, T, S = 1, 3, 8
    q, _, _ = _inputs(B, T, 2, 1, 16, seed=3)
    _, k, v = _inputs(B, S, 2, 1, 16, seed=4)
    q_index = jnp.broadcast_to(jnp.arange(5, 5 + T), (B, T))
    kv_index = jnp.broadcast_to(jnp.arange(S), (B, S))
    mask = attention_mask(q_index, kv_index, jnp.ones((B, T)), jnp.ones((B, S)))
    with caplog.at_level(logging.WARNING, logger="octojax.model.attention"):
        out = dot_product_attention(q, k, v, mask, impl="splash")
        dot_product_attention(q, k, v, mask, impl="splash")
    ref = dot_product_attention(q, k, v, mask, impl="xla")
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ref))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "KV-cache" in messages[0], messages


def test_auto_choice_and_cudnn_errors(monkeypatch, caplog):
    """auto: XLA on CPU silently; on a GPU backend an unsupported dtype is logged once; an
    explicit cudnn that cannot run is an error, an unknown impl too."""
    attention._logged.clear()
    with caplog.at_level(logging.WARNING, logger="octojax.model.attention"):
        assert attention._choose("auto", jnp.float32, 64, True) == "xla"
        assert not caplog.records
        with pytest.raises(ValueError, match="cudnn.*cannot run: backend is cpu"):
            attention._choose("cudnn", jnp.bfloat16, 64, True)
        with pytest.raises(ValueError, match="expected one of"):
            attention._choose("flash", jnp.float32, 64, True)
        monkeypatch.setattr(attention, "_default_backend", lambda: "gpu")
        assert attention._choose("auto", jnp.bfloat16, 64, True) == "cudnn"
        for _ in range(3):
            assert attention._choose("auto", jnp.float32, 64, True) == "xla"
        monkeypatch.setattr(attention, "_default_backend", lambda: "tpu")
        assert attention._choose("auto", jnp.float32, 64, True) == "splash"
        assert attention._choose("auto", jnp.float32, 64, False) == "xla"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "cuDNN not used (dtype float32" in messages[0]
    assert "KV-cache" in messages[1]


@pytest.mark.slow
def test_model_with_splash_equals_xla_on_a_packed_row():
    from octojax.model import get_preset, init_model, model_from_params, param_dict

    cfg = get_preset("test", attention_impl="xla")
    params = jax.tree.map(lambda a: a * 3.0 if a.ndim > 1 else a, param_dict(init_model(cfg)))
    seg = jnp.asarray(_packed_segments(2, 128))
    ids = jnp.asarray(np.random.RandomState(5).randint(1, cfg.vocab_size, (2, 128)))
    logits = {}
    for impl in ("xla", "splash"):
        model = model_from_params(cfg.replace(attention_impl=impl), params)
        logits[impl] = jax.jit(lambda ids, s, m=model: m(ids, segment_ids_BT=s))(ids, seg)
    _assert_close(logits["splash"], logits["xla"], rel=1e-5)
