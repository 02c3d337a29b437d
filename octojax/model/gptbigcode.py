"""GPTBigCode (StarCoder) in Flax NNX.

Shape suffixes: B batch, T query length, S key length (cache size), D n_embd, N query heads,
K key/value heads (1 for multi-query), H head_dim, M mlp width, V vocab, L layers.

Blocks are stored stacked (leading L axis) so the forward pass can `lax.scan` over them: compile time
does not grow with depth, and one parameter layout serves scan and unrolled execution alike. Every
parameter carries logical axis names in its `logical_axes` metadata (see octojax/sharding.py).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from octojax.model.attention import attention_mask, dot_product_attention
from octojax.model.config import ModelConfig
from octojax.model.lora import LayerAdapters, merge_layer
from octojax.sharding import constrain

_REMAT_POLICIES = {
    "full": None,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class KVCache:
    """Keys and values of every layer for positions [0, S), plus what the mask needs.

    `index` is the next cache slot to write; `segment_BS` is 0 for padding and unwritten slots.
    """

    k_LBSKH: jax.Array
    v_LBSKH: jax.Array
    segment_BS: jax.Array
    index: jax.Array  # int32 scalar

    @classmethod
    def zeros(cls, cfg: ModelConfig, batch: int, size: int, dtype: Any) -> KVCache:
        shape = (cfg.n_layer, batch, size, cfg.kv_heads, cfg.head_dim)
        return cls(
            k_LBSKH=jnp.zeros(shape, dtype),
            v_LBSKH=jnp.zeros(shape, dtype),
            segment_BS=jnp.zeros((batch, size), jnp.int32),
            index=jnp.zeros((), jnp.int32),
        )


def _param(rngs: nnx.Rngs, init, shape, dtype, axes) -> nnx.Param:
    return nnx.Param(init(rngs.params(), shape, dtype), logical_axes=axes)


def positions_from_segments(segment_BT: jax.Array) -> jax.Array:
    """Positions that restart at 0 at the start of every segment (packed rows, left padding)."""
    T = segment_BT.shape[1]
    t = jnp.arange(T, dtype=jnp.int32)[None, :]
    starts = jnp.concatenate(
        [jnp.ones_like(segment_BT[:, :1], bool), segment_BT[:, 1:] != segment_BT[:, :-1]], axis=1
    )
    start_index = jax.lax.cummax(jnp.where(starts, t, 0), axis=1)
    return t - start_index


class Blocks(nnx.Module):
    """All n_layer transformer blocks, parameters stacked on a leading `layers` axis."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        L, D, N, K, H, M = (
            cfg.n_layer,
            cfg.n_embd,
            cfg.n_head,
            cfg.kv_heads,
            cfg.head_dim,
            cfg.mlp_dim,
        )
        pd = jnp.dtype(cfg.param_dtype)
        normal = jax.nn.initializers.normal(cfg.initializer_range)
        # GPT-2 style scaled init of the residual projections.
        proj = jax.nn.initializers.normal(cfg.initializer_range / (2 * L) ** 0.5)
        zeros, ones = jax.nn.initializers.zeros, jax.nn.initializers.ones
        self.ln_1_scale = _param(rngs, ones, (L, D), pd, ("layers", "embed"))
        self.ln_1_bias = _param(rngs, zeros, (L, D), pd, ("layers", "embed"))
        self.q_kernel = _param(rngs, normal, (L, D, N, H), pd, ("layers", "embed", "heads", "kv"))
        self.q_bias = _param(rngs, zeros, (L, N, H), pd, ("layers", "heads", "kv"))
        self.kv_kernel = _param(
            rngs, normal, (L, D, 2, K, H), pd, ("layers", "embed", None, "kv_heads", "kv")
        )
        self.kv_bias = _param(rngs, zeros, (L, 2, K, H), pd, ("layers", None, "kv_heads", "kv"))
        self.o_kernel = _param(rngs, proj, (L, N, H, D), pd, ("layers", "heads", "kv", "embed"))
        self.o_bias = _param(rngs, zeros, (L, D), pd, ("layers", "embed"))
        self.ln_2_scale = _param(rngs, ones, (L, D), pd, ("layers", "embed"))
        self.ln_2_bias = _param(rngs, zeros, (L, D), pd, ("layers", "embed"))
        self.fc_kernel = _param(rngs, normal, (L, D, M), pd, ("layers", "embed", "mlp"))
        self.fc_bias = _param(rngs, zeros, (L, M), pd, ("layers", "mlp"))
        self.proj_kernel = _param(rngs, proj, (L, M, D), pd, ("layers", "mlp", "embed"))
        self.proj_bias = _param(rngs, zeros, (L, D), pd, ("layers", "embed"))


def layer_norm(x: jax.Array, scale: jax.Array, bias: jax.Array, eps: float) -> jax.Array:
    """LayerNorm with statistics in float32, output in x's dtype."""
    x32 = x.astype(jnp.float32)
    mean = x32.mean(-1, keepdims=True)
    var = jnp.square(x32 - mean).mean(-1, keepdims=True)
    y = (x32 - mean) * jax.lax.rsqrt(var + eps)
    return (y * scale.astype(jnp.float32) + bias.astype(jnp.float32)).astype(x.dtype)


@dataclasses.dataclass(frozen=True)
class AttentionContext:
    """Per-call inputs every layer's attention shares: query positions and segments, and the
    cache's segment ids and write index when decoding with a KV cache."""

    q_index_BT: jax.Array
    q_segment_BT: jax.Array
    cache_segment_BS: jax.Array | None = None
    cache_index: jax.Array | None = None
    causal_only: bool = False  # no segments, no cache: plain causal attention, no mask array


def _project(
    spec: str, x: jax.Array, w: dict, name: str, adapters: LayerAdapters | None
) -> jax.Array:
    """x times kernel `name`, plus its unmerged LoRA adapter when one runs beside it."""
    y = jnp.einsum(spec, x, w[name])
    delta = None if adapters is None else adapters.delta(name, x)
    return y if delta is None else y + delta


def block_forward(
    cfg: ModelConfig,
    p: dict[str, jax.Array],
    x_BTD: jax.Array,
    ctx: AttentionContext,
    cache_kv: tuple[jax.Array, jax.Array] | None,
    adapters: LayerAdapters | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """One pre-LayerNorm block; writes this step's K/V into the cache when one is given.
    `adapters`: LoRA applied beside the kernels (training with LoRA dropout), not merged."""
    dt = x_BTD.dtype
    w = {k: v.astype(dt) for k, v in p.items()}
    eps = cfg.layer_norm_epsilon

    h_BTD = layer_norm(x_BTD, w["ln_1_scale"], w["ln_1_bias"], eps)
    q_BTNH = _project("btd,dnh->btnh", h_BTD, w, "q_kernel", adapters) + w["q_bias"]
    kv_BT2KH = _project("btd,dckh->btckh", h_BTD, w, "kv_kernel", adapters) + w["kv_bias"]
    k_BTKH, v_BTKH = kv_BT2KH[:, :, 0], kv_BT2KH[:, :, 1]
    q_BTNH = constrain(q_BTNH, ("batch", "length", "act_heads", "kv"))

    if cache_kv is None:
        k_BSKH, v_BSKH = k_BTKH, v_BTKH
        if ctx.causal_only:
            mask = None
        else:
            mask = attention_mask(
                ctx.q_index_BT, ctx.q_index_BT, ctx.q_segment_BT, ctx.q_segment_BT
            )
    else:
        cache_k_BSKH, cache_v_BSKH = cache_kv
        start = (0, ctx.cache_index, 0, 0)
        cache_k_BSKH = jax.lax.dynamic_update_slice(
            cache_k_BSKH, k_BTKH.astype(cache_k_BSKH.dtype), start
        )
        cache_v_BSKH = jax.lax.dynamic_update_slice(
            cache_v_BSKH, v_BTKH.astype(cache_v_BSKH.dtype), start
        )
        cache_kv = (cache_k_BSKH, cache_v_BSKH)
        k_BSKH, v_BSKH = cache_k_BSKH.astype(dt), cache_v_BSKH.astype(dt)
        B, S = ctx.cache_segment_BS.shape
        kv_index_BS = jnp.broadcast_to(jnp.arange(S, dtype=jnp.int32), (B, S))
        mask = attention_mask(ctx.q_index_BT, kv_index_BS, ctx.q_segment_BT, ctx.cache_segment_BS)

    o_BTNH = dot_product_attention(
        q_BTNH,
        k_BSKH,
        v_BSKH,
        mask,
        impl=cfg.attention_impl,
        self_segment_ids_BT=None if cache_kv is not None or ctx.causal_only else ctx.q_segment_BT,
    )
    x_BTD = x_BTD + _project("btnh,nhd->btd", o_BTNH, w, "o_kernel", adapters) + w["o_bias"]

    h_BTD = layer_norm(x_BTD, w["ln_2_scale"], w["ln_2_bias"], eps)
    u_BTM = _project("btd,dm->btm", h_BTD, w, "fc_kernel", adapters) + w["fc_bias"]
    u_BTM = constrain(u_BTM, ("batch", "length", "act_mlp"))
    u_BTM = jax.nn.gelu(u_BTM, approximate=cfg.gelu_approximate)
    x_BTD = x_BTD + _project("btm,md->btd", u_BTM, w, "proj_kernel", adapters) + w["proj_bias"]
    x_BTD = constrain(x_BTD, ("batch", "length", "act_embed"))
    return x_BTD, cache_kv


def attention_context(
    shape_BT: tuple[int, int],
    segment_ids_BT: jax.Array | None,
    positions_BT: jax.Array | None,
    cache: KVCache | None,
) -> tuple[AttentionContext, jax.Array]:
    """The AttentionContext of a forward call and its position ids (defaults: one segment per
    row, positions restarting per segment, offset by the cache index when decoding)."""
    B, T = shape_BT
    causal_only = segment_ids_BT is None and cache is None
    if segment_ids_BT is None:
        segment_ids_BT = jnp.ones((B, T), jnp.int32)
    if positions_BT is None:
        positions_BT = positions_from_segments(segment_ids_BT)
        if cache is not None:
            positions_BT = positions_BT + cache.index
    q_index_BT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (B, T))
    cache_segment_BS = None
    if cache is not None:
        q_index_BT = q_index_BT + cache.index
        cache_segment_BS = jax.lax.dynamic_update_slice(
            cache.segment_BS, segment_ids_BT.astype(jnp.int32), (0, cache.index)
        )
    ctx = AttentionContext(
        q_index_BT=q_index_BT,
        q_segment_BT=segment_ids_BT,
        cache_segment_BS=cache_segment_BS,
        cache_index=None if cache is None else cache.index,
        causal_only=causal_only,
    )
    return ctx, positions_BT


def run_layers(
    cfg: ModelConfig,
    params: dict,
    x_BTD: jax.Array,
    ctx: AttentionContext,
    cache_kv: tuple[jax.Array, jax.Array] | None,
    lora: dict | None,
    lora_scale: float,
    lora_dropout: float = 0.0,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, tuple[jax.Array, jax.Array] | None]:
    """Every block over x (a lax.scan over the stacked layers, or unrolled), with remat and LoRA
    merged per layer (or, with dropout and a key, applied beside the kernels); returns x and the
    updated stacked K/V cache (None without a cache)."""
    unmerged = lora is not None and lora_dropout > 0 and dropout_key is not None

    def layer(x_BTD, xs):
        p, ck, cv, lora_l, key_l = xs
        adapters = None
        if unmerged:
            adapters = LayerAdapters(lora_l, lora_scale, lora_dropout, key_l)
        elif lora_l is not None:
            p = merge_layer(p, lora_l, lora_scale)
        x_BTD, kv = block_forward(cfg, p, x_BTD, ctx, None if ck is None else (ck, cv), adapters)
        return x_BTD, (None, None) if kv is None else kv

    if cfg.remat != "none":
        layer = jax.checkpoint(
            layer, policy=_REMAT_POLICIES[cfg.remat], prevent_cse=not cfg.scan_layers
        )
    keys = jax.random.split(dropout_key, cfg.n_layer) if unmerged else None
    xs = (params, *(cache_kv or (None, None)), lora, keys)
    if cfg.scan_layers:
        x_BTD, (new_k, new_v) = jax.lax.scan(layer, x_BTD, xs)
    else:
        ks, vs = [], []
        for i in range(cfg.n_layer):
            x_BTD, (ck, cv) = layer(x_BTD, jax.tree.map(lambda a, i=i: a[i], xs))
            ks.append(ck)
            vs.append(cv)
        new_k, new_v = (None, None) if cache_kv is None else (jnp.stack(ks), jnp.stack(vs))
    return x_BTD, None if cache_kv is None else (new_k, new_v)


class GPTBigCode(nnx.Module):
    """StarCoder decoder: token + learned position embeddings, n_layer blocks, tied output."""

    def __init__(self, cfg: ModelConfig, *, rngs: nnx.Rngs):
        self.cfg = cfg
        pd = jnp.dtype(cfg.param_dtype)
        normal = jax.nn.initializers.normal(cfg.initializer_range)
        D = cfg.n_embd
        self.wte = _param(rngs, normal, (cfg.vocab_size, D), pd, ("vocab", "embed"))
        self.wpe = _param(rngs, normal, (cfg.n_positions, D), pd, (None, "embed"))
        self.blocks = Blocks(cfg, rngs=rngs)
        self.ln_f_scale = _param(rngs, jax.nn.initializers.ones, (D,), pd, ("embed",))
        self.ln_f_bias = _param(rngs, jax.nn.initializers.zeros, (D,), pd, ("embed",))

    def hidden_states(
        self,
        tokens_BT: jax.Array,
        *,
        segment_ids_BT: jax.Array | None = None,
        positions_BT: jax.Array | None = None,
        cache: KVCache | None = None,
        lora: dict | None = None,
        lora_scale: float = 1.0,
        lora_dropout: float = 0.0,
        dropout_key: jax.Array | None = None,
    ) -> tuple[jax.Array, KVCache | None]:
        """Final LayerNorm output [B, T, D] (compute dtype) and the updated cache.

        segment_ids_BT: packed-example ids (0 = padding); a padding mask is a valid segment array.
        positions_BT: position ids; by default they restart at 0 in every segment.
        cache: when given, the T new tokens are written at cache.index and attend to the cache.
        lora: adapters from octojax.model.lora (merged into each layer inside the scan).
        lora_dropout, dropout_key: training with LoRA dropout (both given and rate > 0): the
            adapters run beside the kernels on dropped-out inputs instead of being merged.
        """
        cfg = self.cfg
        ctx, positions_BT = attention_context(tokens_BT.shape, segment_ids_BT, positions_BT, cache)
        # Gather from tables whose embed dimension is whole on every device (an all-gather over
        # fsdp), so the partitioner never has to reshard a gather output between mesh layouts.
        dt = jnp.dtype(cfg.dtype)
        wte_VD = constrain(self.wte[...], ("vocab", None))
        wpe_PD = constrain(self.wpe[...], (None, None))
        x_BTD = wte_VD[tokens_BT].astype(dt) + wpe_PD[positions_BT].astype(dt)
        x_BTD = constrain(x_BTD, ("batch", "length", "act_embed"))
        params = nnx.to_pure_dict(nnx.state(self.blocks, nnx.Param))
        cache_kv = None if cache is None else (cache.k_LBSKH, cache.v_LBSKH)
        x_BTD, new_kv = run_layers(
            cfg, params, x_BTD, ctx, cache_kv, lora, lora_scale, lora_dropout, dropout_key
        )
        x_BTD = layer_norm(x_BTD, self.ln_f_scale[...], self.ln_f_bias[...], cfg.layer_norm_epsilon)
        new_cache = None
        if cache is not None:
            T = tokens_BT.shape[1]
            new_cache = KVCache(*new_kv, ctx.cache_segment_BS, cache.index + T)
        return x_BTD, new_cache

    def logits(self, h_BTD: jax.Array) -> jax.Array:
        """Tied output projection: h @ wte.T in the compute dtype."""
        logits_BTV = jnp.einsum("btd,vd->btv", h_BTD, self.wte[...].astype(h_BTD.dtype))
        return constrain(logits_BTV, ("batch", "length", "act_vocab"))

    def __call__(self, tokens_BT: jax.Array, **kwargs: Any):
        """Logits [B, T, V]; with a cache, returns (logits, new_cache). Keyword arguments are
        hidden_states' (segment_ids_BT, positions_BT, cache, lora, lora_scale, lora_dropout,
        dropout_key)."""
        h_BTD, new_cache = self.hidden_states(tokens_BT, **kwargs)
        logits_BTV = self.logits(h_BTD)
        return logits_BTV if kwargs.get("cache") is None else (logits_BTV, new_cache)


def init_model(cfg: ModelConfig, seed: int = 0) -> GPTBigCode:
    """A randomly initialised model (weights as Hugging Face initialises GPTBigCode)."""
    return GPTBigCode(cfg, rngs=nnx.Rngs(params=seed))


def param_dict(model: GPTBigCode) -> dict:
    """The model's parameters as a plain nested dict of arrays (the layout conversion uses)."""
    return nnx.to_pure_dict(nnx.state(model, nnx.Param))


def abstract_model(cfg: ModelConfig) -> GPTBigCode:
    """The model with shape-only parameters (jax.ShapeDtypeStruct): no memory, no computation."""
    return nnx.eval_shape(lambda: GPTBigCode(cfg, rngs=nnx.Rngs(0)))


def param_shapes(cfg: ModelConfig) -> dict:
    """Shape/dtype structs of every parameter, in param_dict's nested layout."""
    return nnx.to_pure_dict(nnx.state(abstract_model(cfg), nnx.Param))


def model_from_params(cfg: ModelConfig, params: dict) -> GPTBigCode:
    """A GPTBigCode holding the given parameter dict (no random initialisation is run)."""
    model = abstract_model(cfg)
    state = nnx.state(model)
    nnx.replace_by_pure_dict(state, jax.tree.map(jnp.asarray, params))
    nnx.update(model, state)
    return model


def param_logical_axes(cfg: ModelConfig) -> dict:
    """Logical axis names of every parameter, in param_dict's nested layout (leaves are tuples)."""
    abstract = abstract_model(cfg)
    flat = jax.tree_util.tree_flatten_with_path(
        nnx.state(abstract, nnx.Param), is_leaf=lambda x: isinstance(x, nnx.Variable)
    )[0]
    out: dict = {}
    for path, var in flat:
        keys = [getattr(k, "key", getattr(k, "name", k)) for k in path]
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
        node[keys[-1]] = tuple(var.get_metadata()["logical_axes"])
    return out
