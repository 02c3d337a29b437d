"""GPU correctness checks (skipped without a GPU): cuDNN attention against XLA (forward and
gradients), a bf16 training step, KV-cache generation. Run by bench/device_suite.sh with
JAX_PLATFORMS=cuda (tests/conftest.py defaults JAX_PLATFORMS to cpu)."""

import logging

import jax
import jax.numpy as jnp
import numpy as np
import pytest

pytestmark = pytest.mark.skipif(
    jax.default_backend() != "gpu", reason="needs a GPU (run with JAX_PLATFORMS=cuda)"
)


def _rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float32), np.asarray(b, np.float32)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def _qkv(B=2, T=512, N=16, K=1, H=128, dtype=jnp.bfloat16, seed=0):
    ks = jax.random.split(jax.random.key(seed), 3)
    return tuple(
        jax.random.normal(k, (B, T, n, H), jnp.float32).astype(dtype) for k, n in zip(ks, (N, K, K))
    )


def _packed_mask(B, T):
    from octojax.model.attention import attention_mask

    seg = np.ones((B, T), np.int32)
    seg[:, T // 3 :] = 2
    seg[:, -T // 8 :] = 0  # padding
    index = jnp.broadcast_to(jnp.arange(T), (B, T))
    seg = jnp.asarray(seg)
    return attention_mask(index, index, seg, seg), seg


@pytest.mark.parametrize("kv_heads", [1, 16], ids=["mqa", "mha"])
def test_cudnn_attention_matches_xla_forward_and_gradients(kv_heads):
    """bf16 cuDNN (causal) vs XLA on the same bf16 inputs; both against an fp32 reference."""
    from octojax.model.attention import dot_product_attention

    q, k, v = _qkv(K=kv_heads)
    w = jnp.cos(jnp.arange(q.shape[-1]))

    def loss(impl):
        return lambda q, k, v: jnp.sum(
            dot_product_attention(q, k, v, None, impl=impl).astype(jnp.float32) * w
        )

    cudnn = jax.jit(jax.value_and_grad(loss("cudnn"), argnums=(0, 1, 2)))
    assert "cudnn" in cudnn.lower(q, k, v).compile().as_text().lower()
    out_c = jax.jit(lambda *a: dot_product_attention(*a, None, impl="cudnn"))(q, k, v)
    out_x = jax.jit(lambda *a: dot_product_attention(*a, None, impl="xla"))(q, k, v)
    f32 = [a.astype(jnp.float32) for a in (q, k, v)]
    out_ref = dot_product_attention(*f32, None, impl="xla")
    assert _rel_err(out_c, out_x) < 2e-2
    assert _rel_err(out_c, out_ref) < 2 * _rel_err(out_x, out_ref) + 1e-2
    (_, g_c), (_, g_x) = (
        cudnn(q, k, v),
        jax.jit(jax.value_and_grad(loss("xla"), (0, 1, 2)))(q, k, v),
    )
    for name, a, b in zip("qkv", g_c, g_x):
        assert _rel_err(a, b) < 3e-2, name


def test_packed_rows_run_cudnn_causal_forward_and_backward(caplog):
    """Packed rows (segment ids) under auto: cuDNN with its causal mask + a same-segment mask,
    forward and gradients compiled into cuDNN calls with no fallback, equal to XLA's."""
    from octojax.model.attention import dot_product_attention

    q, k, v = _qkv(B=2, T=256, N=16, K=1)
    mask, seg = _packed_mask(2, 256)
    w = jnp.cos(jnp.arange(q.shape[-1]))

    def loss(impl):
        return lambda q, k, v: jnp.sum(
            dot_product_attention(q, k, v, mask, impl=impl, self_segment_ids_BT=seg).astype(
                jnp.float32
            )
            * w
        )

    with caplog.at_level(logging.WARNING, logger="octojax.model.attention"):
        auto = jax.jit(jax.value_and_grad(loss("auto"), argnums=(0, 1, 2)))
        hlo = auto.lower(q, k, v).compile().as_text().lower()
        (_, g_a) = auto(q, k, v)
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert hlo.count("cudnn") >= 2, "forward and backward should both be cuDNN calls"
    (_, g_x) = jax.jit(jax.value_and_grad(loss("xla"), argnums=(0, 1, 2)))(q, k, v)
    for name, a, b in zip("qkv", g_a, g_x):
        assert _rel_err(a, b) < 3e-2, name


def test_bf16_train_step_matches_fp32_and_chunked_loss():
    """One bf16-compute step on a StarCoder-vocabulary model: finite, close to the fp32 step, and
    the chunked loss equals the plain one."""
    import optax
    from flax import nnx

    from octojax.model import get_preset, init_model, model_from_params, param_dict
    from octojax.train.step import StepSpec, make_train_step
    from octojax.train.synthetic import SyntheticBatches

    base = get_preset("starcoderbase-1b", n_embd=512, n_layer=4, n_head=4, n_inner=2048)
    params = param_dict(init_model(base, seed=0))
    batch = {
        k: jnp.asarray(v)
        for k, v in next(
            SyntheticBatches(vocab_size=base.vocab_size, global_batch_size=4, seq_len=1024)
        ).items()
    }
    tx = optax.adamw(1e-4)
    state = {"step": jnp.zeros((), jnp.int32), "params": params, "opt_state": tx.init(params)}
    metrics = {}
    for dtype, chunk in (("float32", 0), ("bfloat16", 0), ("bfloat16", 256)):
        cfg = base.replace(dtype=dtype, remat="dots_saveable")
        graphdef = nnx.graphdef(model_from_params(cfg, params))
        step = jax.jit(make_train_step(StepSpec(graphdef, None, 1, loss_chunk=chunk), tx))
        metrics[dtype, chunk] = jax.tree.map(float, step(state, None, batch)[1])
    ref, bf, bf_chunked = metrics["float32", 0], metrics["bfloat16", 0], metrics["bfloat16", 256]
    assert np.isfinite(bf["loss"]) and np.isfinite(bf["grad_norm"])
    assert abs(bf["loss"] - ref["loss"]) < 2e-2 * ref["loss"]
    assert abs(bf["grad_norm"] - ref["grad_norm"]) < 1e-1 * ref["grad_norm"]
    assert abs(bf_chunked["loss"] - bf["loss"]) < 1e-3 * bf["loss"]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_greedy_generation_equals_argmax_of_the_full_forward(dtype):
    """KV-cache decoding on the GPU: every greedy token is the argmax of a no-cache forward pass
    over prompt + tokens so far (up to near-ties within bf16/fp32 rounding)."""
    from octojax.generate.decode import generate_tokens
    from octojax.model import get_preset, init_model, model_from_params, param_dict

    cfg = get_preset("test", n_positions=256)
    params = jax.tree.map(lambda a: a * 3.0 if a.ndim > 1 else a, param_dict(init_model(cfg)))
    model = model_from_params(cfg.replace(dtype=dtype), params)
    rs = np.random.RandomState(0)
    prompt = rs.randint(1, cfg.vocab_size, (4, 24)).astype(np.int32)
    mask = np.ones_like(prompt)
    mask[1, :5] = 0  # one left-padded row
    tokens, counts = generate_tokens(model, prompt, mask, max_new_tokens=32, eos_ids=(-1,))
    assert (counts == 32).all()
    for b in range(4):
        row = np.concatenate([prompt[b][mask[b].astype(bool)], tokens[b]])
        logits = np.asarray(model(jnp.asarray(row[None])), np.float32)[0]
        n = mask[b].sum()
        pred = logits[n - 1 : -1]
        chosen = pred[np.arange(32), tokens[b]]
        gap = pred.max(-1) - chosen  # 0 where the greedy token is the full forward's argmax
        tol = 1e-3 if dtype == "float32" else 0.1
        assert (gap <= tol * np.maximum(1.0, np.abs(pred).max(-1))).all(), (b, gap.max())
