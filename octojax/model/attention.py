"""Causal self-attention: XLA, cuDNN (GPU) or splash (TPU), with segment-id masking.

One function serves training (packed rows), prefill and cached decoding: a query at absolute index i
of segment s sees keys at indices <= i of the same segment. Padding is segment 0, so a padding mask
is just a segment-id array. `impl`:

- "xla": `jax.nn.dot_product_attention`'s plain XLA implementation, everywhere.
- "cudnn": the cuDNN fused kernel (GPU, bf16/fp16); an error if it cannot run. Packed rows run
  cuDNN's causal mask (which skips the blocks above the diagonal) plus a same-segment mask, not a
  dense causal-and-segment mask (a bias over all T x T blocks: twice the attention FLOPs).
  Before its first use for a shape, forward and backward are compiled once on their own
  (`_cudnn_refusal`), so a refusal at trace, differentiation or compile time is seen there.
- "splash": the Pallas splash kernel (octojax/model/splash.py) for self-attention; interpret mode
  off TPU. Calls that attend to a KV cache use XLA (the kernel has no cache).
- "auto": splash on TPU, cuDNN on GPU where dtype and shape allow, XLA otherwise. The platform is
  the one of the mesh being traced for (`jax.set_mesh`; a TPU slice compiled from a CPU host is
  TPU), else jax's default backend: see splash.target_platform. Each reason for
  falling back to XLA is logged once (logger "octojax.model.attention").
"""

from __future__ import annotations

import functools
import logging

import jax
import jax.numpy as jnp

from octojax.model.config import ATTENTION_IMPLS
from octojax.model.splash import splash_attention, target_platform

logger = logging.getLogger(__name__)
_logged: set[str] = set()


def _default_backend() -> str:
    """The platform attention is traced for: the mesh's devices' (splash.target_platform)."""
    return target_platform()


def _log_once(message: str) -> None:
    """Log a fallback reason once per process (attention is traced once per layer and shape)."""
    if message not in _logged:
        _logged.add(message)
        logger.warning(message)


def _cudnn_unsupported(dtype: jnp.dtype, head_dim: int) -> str | None:
    """Why the cuDNN kernel cannot run here, or None when it can."""
    if _default_backend() != "gpu":
        return f"backend is {_default_backend()}, not gpu"
    if dtype not in (jnp.bfloat16, jnp.float16):
        return f"dtype {jnp.dtype(dtype).name} (cuDNN needs bfloat16/float16)"
    if head_dim % 8 or head_dim > 256:
        return f"head_dim {head_dim} (cuDNN needs a multiple of 8, at most 256)"
    return None


def _choose(impl: str, dtype: jnp.dtype, head_dim: int, self_attention: bool) -> str:
    """The implementation to run: impl resolved against backend, dtype and call kind."""
    if impl not in ATTENTION_IMPLS:
        raise ValueError(f"attention impl {impl!r}; expected one of {ATTENTION_IMPLS}")
    if impl == "xla":
        return "xla"
    if impl == "splash" or (impl == "auto" and _default_backend() == "tpu"):
        if self_attention:
            return "splash"
        _log_once(f"attention_impl={impl}: splash has no KV-cache path; cached attention uses XLA")
        return "xla"
    reason = _cudnn_unsupported(dtype, head_dim)
    if impl == "cudnn" and reason:
        raise ValueError(f"attention_impl='cudnn' cannot run: {reason}")
    if reason is None:
        return "cudnn"
    if _default_backend() == "gpu":  # on CPU there is nothing to fall back from
        _log_once(f"attention_impl=auto: cuDNN not used ({reason}); using XLA")
    return "xla"


@functools.lru_cache(maxsize=64)
def _cudnn_refusal(
    q_shape: tuple, kv_shape: tuple, dtype: str, causal: bool, masked: bool, grads: bool
) -> str | None:
    """Why cuDNN refuses attention of these shapes (forward, gradients if `grads`, compilation),
    or None. Compiled on its own once per shape from abstract inputs (nothing runs), so a refusal
    that only shows in the backward rule or in the compiler falls back to XLA like a trace-time
    one. Attention over a KV cache (inference only) is probed without gradients."""
    B, T = q_shape[:2]
    spec = [jax.ShapeDtypeStruct(s, jnp.dtype(dtype)) for s in (q_shape, kv_shape, kv_shape)]
    mask = jax.ShapeDtypeStruct((B, 1, T, kv_shape[1]), jnp.bool_) if masked else None

    def loss(q, k, v, mask):
        out = jax.nn.dot_product_attention(
            q, k, v, mask=mask, is_causal=causal, implementation="cudnn"
        )
        return jnp.sum(out.astype(jnp.float32))

    program = jax.grad(loss, argnums=(0, 1, 2)) if grads else loss
    try:
        jax.jit(program).lower(*spec, mask).compile()
    except Exception as e:  # noqa: BLE001 -- any refusal means: use XLA; its reason is logged
        return f"{type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
    return None


def same_segment_mask(segment_BT: jax.Array) -> jax.Array:
    """Boolean [B, 1, T, T]: query and key in the same segment (the causal part is separate)."""
    return (segment_BT[:, :, None] == segment_BT[:, None, :])[:, None, :, :]


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
    self_segment_ids_BT: jax.Array | None = None,
) -> jax.Array:
    """Softmax attention (fp32 softmax); mask None means plain causal with T == S.

    self_segment_ids_BT: for self-attention (keys are the queries' own T tokens, causal by array
    index), their segment ids; with it (or with mask None) the splash kernel can run, which needs
    segment ids rather than a dense mask. Leave it None for attention over a KV cache.
    """
    self_attention = mask_B1TS is None or self_segment_ids_BT is not None
    choice = _choose(impl, q_BTNH.dtype, q_BTNH.shape[-1], self_attention)
    if choice == "splash":
        return splash_attention(q_BTNH, k_BSKH, v_BSKH, self_segment_ids_BT)
    if mask_B1TS is None:
        kwargs = {"is_causal": True}
    elif self_segment_ids_BT is not None:  # causal by array index: the kernel's causal mask
        kwargs = {"is_causal": True, "mask": same_segment_mask(self_segment_ids_BT)}
    else:
        kwargs = {"mask": mask_B1TS}
    if choice == "cudnn":
        refusal = _cudnn_refusal(
            q_BTNH.shape, k_BSKH.shape, jnp.dtype(q_BTNH.dtype).name,
            kwargs.get("is_causal", False), "mask" in kwargs, self_attention,
        )  # fmt: skip
        if refusal is None:
            return jax.nn.dot_product_attention(
                q_BTNH, k_BSKH, v_BSKH, implementation="cudnn", **kwargs
            )
        if impl == "cudnn":
            raise ValueError(f"attention_impl='cudnn' cannot run: cuDNN refused ({refusal})")
        _log_once(f"attention_impl=auto: cuDNN refused this call ({refusal}); using XLA")
    return jax.nn.dot_product_attention(q_BTNH, k_BSKH, v_BSKH, implementation="xla", **kwargs)
