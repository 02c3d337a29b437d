"""Causal self-attention through `jax.nn.dot_product_attention`, with segment-id masking.

One function serves training (packed rows), prefill and cached decoding: a query at absolute index i
of segment s sees keys at indices <= i of the same segment. Padding is segment 0, so a padding mask
is just a segment-id array. On GPU the cuDNN fused kernel is used when dtype and shape allow it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp


@functools.cache
def _default_backend() -> str:
    return jax.default_backend()


def _use_cudnn(impl: str, dtype: jnp.dtype, head_dim: int) -> bool:
    if impl == "xla":
        return False
    supported = (
        _default_backend() == "gpu"
        and dtype in (jnp.bfloat16, jnp.float16)
        and head_dim % 8 == 0
        and head_dim <= 256
    )
    if impl == "cudnn" and not supported:
        raise ValueError(
            f"attention_impl='cudnn' needs a GPU and bf16/fp16 with head_dim % 8 == 0 "
            f"(backend={_default_backend()}, dtype={dtype}, head_dim={head_dim})"
        )
    return supported


def attention_mask(
    q_index_BT: jax.Array,
    kv_index_BS: jax.Array,
    q_segment_BT: jax.Array,
    kv_segment_BS: jax.Array,
) -> jax.Array:
    """Boolean [B, 1, T, S] mask: causal by absolute index, and within the same segment."""
    causal = q_index_BT[:, :, None] >= kv_index_BS[:, None, :]
    same = q_segment_BT[:, :, None] == kv_segment_BS[:, None, :]
    return (causal & same)[:, None, :, :]


def dot_product_attention(
    q_BTNH: jax.Array,
    k_BSKH: jax.Array,
    v_BSKH: jax.Array,
    mask_B1TS: jax.Array | None,
    *,
    impl: str = "auto",
) -> jax.Array:
    """Softmax attention (fp32 softmax); mask None means plain causal with T == S."""
    use_cudnn = _use_cudnn(impl, q_BTNH.dtype, q_BTNH.shape[-1])
    kwargs = {"is_causal": True} if mask_B1TS is None else {"mask": mask_B1TS}
    if use_cudnn:
        try:
            return jax.nn.dot_product_attention(
                q_BTNH, k_BSKH, v_BSKH, implementation="cudnn", **kwargs
            )
        except (NotImplementedError, ValueError, RuntimeError):
            if impl == "cudnn":
                raise
            # shape or mask not supported by this cuDNN: fall through to XLA
    return jax.nn.dot_product_attention(q_BTNH, k_BSKH, v_BSKH, implementation="xla", **kwargs)
