"""The cuDNN path's form on CPU: packed rows as "causal + same segment" (what cuDNN gets) equal the
dense causal-and-segment mask, forward and gradients; a cuDNN refusal (here: the CPU compiler's)
falls back to XLA for forward, gradients and compilation, logged once. tests/test_gpu.py runs the
kernel itself."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from octojax.model import attention
from octojax.model.attention import attention_mask, dot_product_attention


def _packed(B=2, T=48, N=4, K=1, H=16, dtype=jnp.float32):
    rs = np.random.RandomState(0)
    seg = np.ones((B, T), np.int32)
    seg[:, T // 3 :] = 2
    seg[1, T // 2 :] = 3
    seg[:, -5:] = 0  # padding
    q, k, v = (jnp.asarray(rs.randn(B, T, n, H), dtype) for n in (N, K, K))
    index = jnp.broadcast_to(jnp.arange(T), (B, T))
    seg = jnp.asarray(seg)
    return q, k, v, attention_mask(index, index, seg, seg), seg


def _loss(mask, seg, impl="xla"):
    def f(q, k, v):
        out = dot_product_attention(q, k, v, mask, impl=impl, self_segment_ids_BT=seg)
        return jnp.sum(out.astype(jnp.float32) * jnp.cos(jnp.arange(q.shape[-1])))

    return jax.jit(jax.value_and_grad(f, argnums=(0, 1, 2)))


def test_causal_plus_segment_mask_equals_the_dense_mask():
    q, k, v, mask, seg = _packed()
    packed = _loss(mask, seg)(q, k, v)  # is_causal + same-segment mask
    dense = _loss(mask, None)(q, k, v)  # the dense [B, 1, T, T] mask alone
    for a, b in zip(jax.tree.leaves(packed), jax.tree.leaves(dense)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-6)


def test_a_cudnn_refusal_falls_back_for_forward_gradients_and_compile(monkeypatch, caplog):
    """auto on a (pretend) GPU backend: the probe compiles cuDNN's forward and backward on its
    own; this CPU refuses, so the step traces, differentiates and compiles with XLA, logged
    once; an explicit cudnn is an error naming the refusal."""
    monkeypatch.setattr(attention, "_default_backend", lambda: "gpu")
    attention._logged.clear()
    attention._cudnn_refusal.cache_clear()
    q, k, v, mask, seg = _packed(dtype=jnp.bfloat16)
    with caplog.at_level(logging.WARNING, logger="octojax.model.attention"):
        auto = _loss(mask, seg, "auto")(q, k, v)
        _loss(mask, seg, "auto")(q, k, v)  # traced again: no second message
    xla = _loss(mask, seg, "xla")(q, k, v)
    for a, b in zip(jax.tree.leaves(auto), jax.tree.leaves(xla)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "cuDNN refused this call" in messages[0], messages
    with pytest.raises(ValueError, match="cudnn' cannot run: cuDNN refused"):
        _loss(mask, seg, "cudnn")(q, k, v)
