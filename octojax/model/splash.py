"""Splash attention (the Pallas TPU kernel that ships with jax) for causal self-attention.

Used for training and any call whose keys are the queries' own tokens (T == S, causal by array
index), with segment ids so packed examples do not attend to each other. The kernel works on one
example with heads first ([N, T, H] queries, [T, H] keys for multi-query or [K, T, H]); we vmap it
over the batch and, when a mesh is set, run it under `jax.shard_map`: rows over ("data", "fsdp"),
query heads over "tensor" (the single K/V head of multi-query attention is replicated), exactly the
layout octojax/sharding.py gives the activations, so no resharding happens around the kernel.

Off TPU the kernel runs in Pallas interpret mode (slow; for tests). "On TPU" means the devices of
the mesh being traced for (`jax.set_mesh`), so a step compiled for a TPU slice from a CPU host
gets the real Mosaic kernel; without a mesh, jax's default backend. The kernel needs the sequence
to be a multiple of 128: shorter or ragged sequences are padded at the end and the padding is sliced
off again. Padded queries come after every real key and the mask is causal, so no real query ever
sees a padded key and the sliced-off outputs carry no gradient.
"""

from __future__ import annotations

import concurrent.futures
import functools

import jax
import jax.numpy as jnp
from jax.experimental.pallas.ops.tpu import splash_attention as sa
from jax.sharding import PartitionSpec

from octojax.sharding import logical_to_spec, spec_for_shape

LANES = 128  # the kernel's sequence blocks must be multiples of this
_BLOCKS = (512, 256, 128)  # largest that divides the (padded) sequence is used


def target_platform() -> str:
    """The platform a trace is for: that of the mesh set with `jax.set_mesh` (its devices may
    be a TPU slice described by libtpu on a CPU host), else jax's default backend."""
    device = getattr(jax.sharding.get_abstract_mesh(), "abstract_device", None)
    return device.platform if device is not None else jax.default_backend()


def _block_sizes(T: int) -> sa.BlockSizes:
    """Forward and backward tiles: the largest of 512/256/128 that divides T."""
    b = next(b for b in _BLOCKS if T % b == 0)
    return sa.BlockSizes(
        block_q=b,
        block_kv=b,
        block_kv_compute=b,
        block_q_dkv=b,
        block_kv_dkv=b,
        block_kv_dkv_compute=b,
        block_q_dq=b,
        block_kv_dq=b,
    )


@functools.lru_cache(maxsize=64)
def _kernel(n_heads: int, T: int, multi_query: bool, interpret: bool) -> sa.SplashAttentionKernel:
    """A causal splash kernel for n_heads local query heads of length T (cached: building the
    mask's block tables costs numpy work at every trace otherwise)."""
    mask = sa.MultiHeadMask([sa.CausalMask((T, T)) for _ in range(n_heads)])
    make = sa.make_splash_mqa if multi_query else sa.make_splash_mha
    # Built in a fresh thread: trace and mesh contexts are thread-local, so the mask tables are
    # concrete arrays on the default device even when first called inside a trace (the cached
    # kernel holds no tracers) and never land on a mesh of compile-only TPU devices.
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(
            make,
            mask,
            block_sizes=_block_sizes(T),
            head_shards=1,
            q_seq_shards=1,
            interpret=interpret,
        ).result()


def _local_splash(
    q_BTNH: jax.Array,
    k_BTKH: jax.Array,
    v_BTKH: jax.Array,
    segment_ids_BT: jax.Array | None,
    interpret: bool,
) -> jax.Array:
    """Splash on arrays local to one device (or unsharded): pad, transpose, vmap, un-pad."""
    B, T, N, H = q_BTNH.shape
    K = k_BTKH.shape[2]
    Tp = -(-T // LANES) * LANES
    pad = [(0, 0), (0, Tp - T), (0, 0), (0, 0)]
    q_BTNH = q_BTNH * jnp.asarray(H**-0.5, q_BTNH.dtype)
    q_BNTH = jnp.pad(q_BTNH, pad).transpose(0, 2, 1, 3)
    k_BKTH = jnp.pad(k_BTKH, pad).transpose(0, 2, 1, 3)
    v_BKTH = jnp.pad(v_BTKH, pad).transpose(0, 2, 1, 3)
    multi_query = K == 1 and N > 1
    if multi_query:  # the MQA kernel takes keys and values without a head axis
        k_BKTH, v_BKTH = k_BKTH[:, 0], v_BKTH[:, 0]
    kernel = _kernel(N, Tp, multi_query, interpret)
    if segment_ids_BT is None:
        o_BNTH = jax.vmap(kernel)(q_BNTH, k_BKTH, v_BKTH)
    else:
        seg_BT = jnp.pad(segment_ids_BT.astype(jnp.int32), [(0, 0), (0, Tp - T)])
        ids = sa.SegmentIds(q=seg_BT, kv=seg_BT)
        o_BNTH = jax.vmap(kernel)(q_BNTH, k_BKTH, v_BKTH, ids)
    return o_BNTH.transpose(0, 2, 1, 3)[:, :T].astype(q_BTNH.dtype)


def splash_attention(
    q_BTNH: jax.Array,
    k_BTKH: jax.Array,
    v_BTKH: jax.Array,
    segment_ids_BT: jax.Array | None,
    *,
    interpret: bool | None = None,
) -> jax.Array:
    """Causal self-attention softmax(q k^T / sqrt(H)) v within segments, via the splash kernel.

    segment_ids_BT None means one segment per row (plain causal). interpret None: interpret
    mode unless the target platform (target_platform()) is TPU. Under a mesh set with `jax.set_mesh`, runs per shard (shard_map).
    """
    if interpret is None:
        interpret = target_platform() != "tpu"
    K, N = k_BTKH.shape[2], q_BTNH.shape[2]
    if N % K:
        raise ValueError(f"query heads ({N}) must be a multiple of key/value heads ({K})")
    if K not in (1, N):
        # grouped-query: repeat K/V heads so the MHA kernel sees one K/V head per query head
        k_BTKH = jnp.repeat(k_BTKH, N // K, axis=2)
        v_BTKH = jnp.repeat(v_BTKH, N // K, axis=2)
    fn = functools.partial(_local_splash, interpret=interpret)
    mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty:
        return fn(q_BTNH, k_BTKH, v_BTKH, segment_ids_BT)

    def spec(names, x):
        return spec_for_shape(logical_to_spec(names), x.shape, mesh)

    q_spec = spec(("batch", "length", "act_heads", "kv"), q_BTNH)
    # K/V heads are split like the query heads, except a single multi-query head (replicated)
    kv_names = ("batch", "length", "act_heads" if k_BTKH.shape[2] == N else None, "kv")
    kv_spec = spec(kv_names, k_BTKH)
    if kv_spec[0] != q_spec[0] or (kv_names[2] and kv_spec[2] != q_spec[2]):
        raise ValueError(f"splash: K/V sharding {kv_spec} does not follow the queries' {q_spec}")
    seg_spec = PartitionSpec(q_spec[0], None)
    if segment_ids_BT is None:
        mapped = jax.shard_map(
            lambda q, k, v: fn(q, k, v, None),
            in_specs=(q_spec, kv_spec, kv_spec),
            out_specs=q_spec,
            check_vma=False,
        )
        return mapped(q_BTNH, k_BTKH, v_BTKH)
    mapped = jax.shard_map(
        fn, in_specs=(q_spec, kv_spec, kv_spec, seg_spec), out_specs=q_spec, check_vma=False
    )
    return mapped(q_BTNH, k_BTKH, v_BTKH, segment_ids_BT)
