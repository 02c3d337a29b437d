"""Chunked cross-entropy (octojax/train/loss.py): same loss and gradients as the full-logits loss,
through the real train step (loss weights, per-real-token normalisation, accumulation, LoRA), and
a compiled peak memory below one fp32 copy of the logits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from octojax.model import get_preset, init_model, model_from_params, param_dict
from octojax.model.lora import init_lora
from octojax.train.loss import (
    AUTO_CHUNK,
    chunked_cross_entropy,
    plain_cross_entropy,
    resolve_loss_chunk,
)
from octojax.train.step import StepSpec, make_train_step, token_losses
from octojax.train.synthetic import SyntheticBatches


def _model(seed=0):
    cfg = get_preset("test")
    params = jax.tree.map(lambda a: a * 3.0 if a.ndim > 1 else a, param_dict(init_model(cfg, seed)))
    return cfg, model_from_params(cfg, params)


def _batch(T=20, B=4, seed=0):
    """Packed rows with padding (weight 0), and some real tokens' weights zeroed too."""
    data = SyntheticBatches(
        vocab_size=512, global_batch_size=B, seq_len=T, seed=seed,
        segments_per_row=3, pad_fraction=0.2,
    )  # fmt: skip
    b = {k: jnp.asarray(v) for k, v in next(data).items()}
    drop = jnp.asarray(np.random.RandomState(seed).rand(B, T) < 0.3)
    b["loss_weights"] = jnp.where(drop, 0.0, b["loss_weights"])
    assert 0 < float(b["loss_weights"].sum()) < B * T
    return b


def _close(a, b, rel=1e-5):
    a, b = np.asarray(a), np.asarray(b)
    scale = max(float(np.abs(b).max()), 1e-8)
    assert float(np.abs(a - b).max()) <= rel * scale, (float(np.abs(a - b).max()), scale)


@pytest.mark.parametrize("chunk", [7])  # 20 positions: a padded tail
def test_chunked_loss_and_gradients_equal_plain(chunk):
    cfg, model = _model()
    graphdef, params = nnx.graphdef(model), param_dict(model)
    batch = _batch()

    def f(p, c):
        total, weight = token_losses(graphdef, p, batch, loss_chunk=c)
        return total / weight, weight

    grad_fn = jax.jit(jax.value_and_grad(f, has_aux=True), static_argnums=1)
    (loss, weight), grads = grad_fn(params, chunk)
    (ref_loss, ref_weight), ref_grads = grad_fn(params, 0)
    assert float(weight) == float(ref_weight) == float(batch["loss_weights"].sum())
    _close(loss, ref_loss)
    for path, g in jax.tree_util.tree_leaves_with_path(grads):
        r = ref_grads
        for k in path:
            r = r[k.key]
        _close(g, r)


def test_zero_weight_tokens_do_not_count():
    cfg, model = _model()
    h = jax.random.normal(jax.random.key(0), (2, 12, cfg.n_embd))
    t = jax.random.randint(jax.random.key(1), (2, 12), 0, cfg.vocab_size)
    w = jnp.ones((2, 12)).at[:, 6:].set(0.0)
    chunked = jax.jit(lambda h, t, w: chunked_cross_entropy(h, t, w, model.logits, chunk=5))
    total, weight = chunked(h, t, w)
    other_t = t.at[:, 6:].set(3)  # targets under weight 0 are irrelevant
    np.testing.assert_array_equal(total, chunked(h, other_t, w)[0])
    ref = plain_cross_entropy(h[:, :6], t[:, :6], w[:, :6], model.logits)
    _close(total, ref[0])
    assert float(weight) == 12.0


@pytest.mark.parametrize("lora", [False, True])
def test_train_step_chunked_equals_plain_with_accumulation(lora):
    cfg, model = _model(seed=1)
    graphdef, params = nnx.graphdef(model), param_dict(model)
    batch = _batch(T=24, B=4, seed=2)
    tx = optax.adamw(1e-3)
    if lora:
        trainable = init_lora(cfg, rank=2, targets=("q", "kv", "fc"), key=jax.random.key(3))
        trainable = jax.tree.map(lambda a: a + 0.01, trainable)  # non-zero B: gradients reach A
        frozen = params
    else:
        trainable, frozen = params, None
    state = {"step": jnp.zeros((), jnp.int32), "params": trainable, "opt_state": tx.init(trainable)}
    out = {}
    for chunk in (0, 6):  # 24 positions: exact fit
        spec = StepSpec(graphdef, 2.0 if lora else None, num_micro_batches=2, loss_chunk=chunk)
        out[chunk] = jax.jit(make_train_step(spec, tx))(state, frozen, batch)
    (s6, m6), (s0, m0) = out[6], out[0]
    _close(m6["loss"], m0["loss"])
    _close(m6["grad_norm"], m0["grad_norm"])
    assert float(m6["tokens"]) == float(m0["tokens"]) == float(batch["loss_weights"].sum())
    for a, b in zip(jax.tree.leaves(s6["params"]), jax.tree.leaves(s0["params"])):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_chunked_peak_memory_is_below_the_full_logits():
    """Compiled temp memory of value_and_grad: plain holds [B, T, V] fp32 logits, chunked does not."""
    B, T, D, V = 2, 1024, 64, 16384
    logits_bytes = B * T * V * 4  # 128 MiB
    wte = jax.ShapeDtypeStruct((V, D), jnp.float32)
    h = jax.ShapeDtypeStruct((B, T, D), jnp.float32)
    t = jax.ShapeDtypeStruct((B, T), jnp.int32)
    w = jax.ShapeDtypeStruct((B, T), jnp.float32)

    def temp_bytes(chunk):
        def loss(wte_VD, h_BTD, t_BT, w_BT):
            fn = lambda x: jnp.einsum("btd,vd->btv", x, wte_VD)  # noqa: E731
            if chunk:
                return chunked_cross_entropy(h_BTD, t_BT, w_BT, fn, chunk=chunk)[0]
            return plain_cross_entropy(h_BTD, t_BT, w_BT, fn)[0]

        grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
        return grad.lower(wte, h, t, w).compile().memory_analysis().temp_size_in_bytes

    plain, chunked = temp_bytes(0), temp_bytes(128)
    chunk_bytes = B * 128 * V * 4  # one chunk's fp32 logits: 16 MiB
    assert plain >= logits_bytes, plain  # measured: 2x (logits and their gradient)
    assert chunked < 3 * chunk_bytes, (chunked, chunk_bytes)  # measured: 37 MiB


def test_resolve_loss_chunk():
    assert resolve_loss_chunk(None, 49152, 2048) == AUTO_CHUNK
    assert resolve_loss_chunk(None, 49152, AUTO_CHUNK) == 0  # one chunk: plain is the same
    assert resolve_loss_chunk(None, 512, 2048) == 0  # small vocabulary: plain
    assert resolve_loss_chunk(0, 49152, 2048) == 0
    assert resolve_loss_chunk(256, 512, 2048) == 256
    with pytest.raises(ValueError, match="loss_chunk"):
        resolve_loss_chunk(-1, 512, 16)
