"""Slot-based KV-cache decoding on device: prefill, insert into slots, and a jitted decode loop.

The cache has a fixed number of rows ("slots") B and columns S. A row's tokens sit at columns
[0, length) in order (no padding inside a row), so a row's numbers never depend on which slot it
sits in, on its neighbours, or on when it was inserted: static batching, continuous batching and
several hosts all produce the same tokens. Three jitted programs do all the work:

- `prefill`: G prompts (right-padded to a length bucket T) through the model once; returns their
  K/V and the logits of each prompt's last token (a `Prefix`). Only the last position is
  projected onto the vocabulary.
- `insert`: copy prefixes into R slots (one prefix may fill many slots: n samples share one
  prefill) and sample each row's first token from its own key.
- `decode_chunk`: a `lax.while_loop` that feeds every slot's last token, writes its K/V in place
  at the row's own column, and samples the next; it stops after `steps` tokens, when every row is
  done, or as soon as `free_target` slots are free (so the host can refill them).

Shape suffixes as in octojax/model/gptbigcode.py; G prompts in a prefill, R rows inserted, C
tokens emitted per chunk, P the key data of one PRNG key.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import nnx

from octojax.generate.sampling import SamplingParams, sample_rows
from octojax.model.gptbigcode import GPTBigCode, KVCache, layer_norm
from octojax.sharding import CACHE_AXES, constrain

# Layers are unrolled in the decode step up to this depth (fewer loop and copy overheads on
# small models); deeper models scan, keeping compile time flat.
UNROLL_LAYERS = 8


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class Prefix:
    """Prefilled prompts: K/V of columns [0, T), true lengths, logits after the last token."""

    k_LGTKH: jax.Array
    v_LGTKH: jax.Array
    length_G: jax.Array
    logits_GV: jax.Array  # float32


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class SlotState:
    """The decode slots: cache plus per-row bookkeeping. Free slots are `done`."""

    k_LBSKH: jax.Array
    v_LBSKH: jax.Array
    length_B: jax.Array  # cache columns in use = column (and position id) of next_token_B
    next_token_B: jax.Array  # sampled, not yet emitted
    num_tokens_B: jax.Array  # tokens emitted so far (EOS not counted)
    limit_B: jax.Array  # most new tokens this row may emit
    done_B: jax.Array
    key_BP: jax.Array  # raw key data of each row's PRNG key


def _model(graphdef, state) -> GPTBigCode:
    return nnx.merge(graphdef, state)


def _keys(key_BP: jax.Array) -> jax.Array:
    return jax.random.wrap_key_data(key_BP)


def _sample_at(logits_BV, key_BP, index_B, sampling: SamplingParams) -> jax.Array:
    """Sample token number index_B of each row from fold_in(row key, index)."""
    keys_B = jax.vmap(jax.random.fold_in)(_keys(key_BP), index_B)
    return sample_rows(logits_BV, keys_B, sampling)


def init_slots(cfg, slots: int, size: int, key_shape: tuple[int, ...]) -> SlotState:
    """Empty slots (all done) with a zero cache of `size` columns."""
    cache = KVCache.zeros(cfg, slots, size, jnp.dtype(cfg.dtype))
    zeros_B = jnp.zeros((slots,), jnp.int32)
    return SlotState(
        k_LBSKH=constrain(cache.k_LBSKH, CACHE_AXES),
        v_LBSKH=constrain(cache.v_LBSKH, CACHE_AXES),
        length_B=zeros_B,
        next_token_B=zeros_B,
        num_tokens_B=zeros_B,
        limit_B=zeros_B,
        done_B=jnp.ones((slots,), bool),
        key_BP=jnp.zeros((slots, *key_shape), jnp.uint32),
    )


@functools.partial(jax.jit, static_argnames=("graphdef",))
def prefill(graphdef, state, tokens_GT: jax.Array, length_G: jax.Array) -> Prefix:
    """Right-padded prompts through the model; K/V of every column, logits of the last token."""
    model = _model(graphdef, state)
    G, T = tokens_GT.shape
    t_GT = jnp.broadcast_to(jnp.arange(T, dtype=jnp.int32), (G, T))
    segment_GT = (t_GT < length_G[:, None]).astype(jnp.int32)
    cache = KVCache.zeros(model.cfg, G, T, jnp.dtype(model.cfg.dtype))
    h_GTD, cache = model.hidden_states(
        tokens_GT, segment_ids_BT=segment_GT, positions_BT=t_GT, cache=cache
    )
    h_G1D = jnp.take_along_axis(h_GTD, (length_G - 1)[:, None, None], axis=1)
    logits_GV = model.logits(h_G1D)[:, 0].astype(jnp.float32)
    return Prefix(cache.k_LBSKH, cache.v_LBSKH, length_G, logits_GV)


@functools.partial(jax.jit, static_argnames=("sampling",), donate_argnames=("slots",))
def insert(
    slots: SlotState,
    prefix: Prefix,
    src_R: jax.Array,
    slot_R: jax.Array,
    key_RP: jax.Array,
    limit_R: jax.Array,
    *,
    sampling: SamplingParams,
) -> SlotState:
    """Start rows: slot_R[r] gets prefix row src_R[r] (slot index B = padding, dropped)."""
    T = prefix.k_LGTKH.shape[2]
    put = lambda a, v: a.at[slot_R].set(v, mode="drop")  # noqa: E731
    k = slots.k_LBSKH.at[:, slot_R, :T].set(prefix.k_LGTKH[:, src_R], mode="drop")
    v = slots.v_LBSKH.at[:, slot_R, :T].set(prefix.v_LGTKH[:, src_R], mode="drop")
    first_R = _sample_at(prefix.logits_GV[src_R], key_RP, jnp.zeros_like(src_R), sampling)
    return SlotState(
        k_LBSKH=constrain(k, CACHE_AXES),
        v_LBSKH=constrain(v, CACHE_AXES),
        length_B=put(slots.length_B, prefix.length_G[src_R]),
        next_token_B=put(slots.next_token_B, first_R),
        num_tokens_B=put(slots.num_tokens_B, jnp.zeros_like(src_R)),
        limit_B=put(slots.limit_B, limit_R),
        done_B=put(slots.done_B, jnp.zeros_like(src_R, bool)),
        key_BP=put(slots.key_BP, key_RP),
    )


def _write_column(cache_LBSKH, layer, new_BKH, column_B):
    """cache[layer, b, column_B[b]] = new_BKH[b], in place (a per-row, batch-parallel update)."""

    rows_B = jnp.arange(cache_LBSKH.shape[1])
    return cache_LBSKH.at[layer, rows_B, column_B].set(new_BKH, mode="clip")


def _attend(q_BNH, k_BSKH, v_BSKH, valid_BS):
    """One query per row against its cache; K/V heads shared by groups of query heads."""
    B, N, H = q_BNH.shape
    K = k_BSKH.shape[2]
    q_BKGH = q_BNH.reshape(B, K, N // K, H)
    s_BKGS = jnp.einsum("bkgh,bskh->bkgs", q_BKGH, k_BSKH, preferred_element_type=jnp.float32)
    s_BKGS = s_BKGS * (1.0 / H**0.5)
    s_BKGS = jnp.where(valid_BS[:, None, None, :], s_BKGS, jnp.finfo(jnp.float32).min)
    p_BKGS = jax.nn.softmax(s_BKGS, axis=-1).astype(v_BSKH.dtype)
    o_BKGH = jnp.einsum("bkgs,bskh->bkgh", p_BKGS, v_BSKH)
    return o_BKGH.reshape(B, N, H)


def decode_step(model: GPTBigCode, tok_B, column_B, k_LBSKH, v_LBSKH):
    """Feed one token per row at its own column: next-token logits [B, V] and the cache.

    The cache travels through the layer scan as carry and is updated in place (no per-step copy
    of the whole cache as scan outputs).
    """
    cfg = model.cfg
    dt = jnp.dtype(cfg.dtype)
    eps = cfg.layer_norm_epsilon
    S = k_LBSKH.shape[2]
    wte_VD = constrain(model.wte[...], ("vocab", None))
    wpe_PD = constrain(model.wpe[...], (None, None))
    x_BD = wte_VD[tok_B].astype(dt) + wpe_PD[column_B].astype(dt)
    x_BD = constrain(x_BD, ("batch", "act_embed"))
    valid_BS = jnp.arange(S, dtype=jnp.int32)[None, :] <= column_B[:, None]
    params = nnx.to_pure_dict(nnx.state(model.blocks, nnx.Param))

    def layer(carry, xs):
        x_BD, k_all, v_all = carry
        p, i = xs
        w = {k: v.astype(dt) for k, v in p.items()}
        h_BD = layer_norm(x_BD, w["ln_1_scale"], w["ln_1_bias"], eps)
        q_BNH = jnp.einsum("bd,dnh->bnh", h_BD, w["q_kernel"]) + w["q_bias"]
        q_BNH = constrain(q_BNH, ("batch", "act_heads", "kv"))
        kv_B2KH = jnp.einsum("bd,dckh->bckh", h_BD, w["kv_kernel"]) + w["kv_bias"]
        k_all = _write_column(k_all, i, kv_B2KH[:, 0].astype(k_all.dtype), column_B)
        v_all = _write_column(v_all, i, kv_B2KH[:, 1].astype(v_all.dtype), column_B)
        k_BSKH = jax.lax.dynamic_index_in_dim(k_all, i, keepdims=False).astype(dt)
        v_BSKH = jax.lax.dynamic_index_in_dim(v_all, i, keepdims=False).astype(dt)
        o_BNH = _attend(q_BNH, k_BSKH, v_BSKH, valid_BS)
        x_BD = x_BD + jnp.einsum("bnh,nhd->bd", o_BNH, w["o_kernel"]) + w["o_bias"]
        h_BD = layer_norm(x_BD, w["ln_2_scale"], w["ln_2_bias"], eps)
        u_BM = jnp.einsum("bd,dm->bm", h_BD, w["fc_kernel"]) + w["fc_bias"]
        u_BM = constrain(u_BM, ("batch", "act_mlp"))
        u_BM = jax.nn.gelu(u_BM, approximate=cfg.gelu_approximate)
        x_BD = x_BD + jnp.einsum("bm,md->bd", u_BM, w["proj_kernel"]) + w["proj_bias"]
        return (constrain(x_BD, ("batch", "act_embed")), k_all, v_all), None

    layers = jnp.arange(cfg.n_layer, dtype=jnp.int32)
    carry = (x_BD, k_LBSKH, v_LBSKH)
    (x_BD, k_LBSKH, v_LBSKH), _ = jax.lax.scan(
        layer, carry, (params, layers), unroll=cfg.n_layer if cfg.n_layer <= UNROLL_LAYERS else 1
    )
    h_BD = layer_norm(x_BD, model.ln_f_scale[...], model.ln_f_bias[...], eps)
    logits_BV = model.logits(h_BD[:, None])[:, 0]
    return logits_BV, constrain(k_LBSKH, CACHE_AXES), constrain(v_LBSKH, CACHE_AXES)


@functools.partial(
    jax.jit, static_argnames=("graphdef", "sampling", "pad_id", "steps"), donate_argnames=("slots",)
)
def decode_chunk(
    graphdef,
    state,
    slots: SlotState,
    stop_B: jax.Array,
    eos_ids: jax.Array,
    free_target: jax.Array,
    *,
    steps: int,
    sampling: SamplingParams,
    pad_id: int,
) -> tuple[SlotState, jax.Array, jax.Array, jax.Array]:
    """Emit up to `steps` tokens per row: slots, tokens [B, steps], counts [B], steps run.

    stop_B marks rows the host ended (stop sequences); the loop also ends once `free_target`
    slots are done, so the host can refill them while the rest keep their caches.
    """
    model = _model(graphdef, state)
    B = slots.done_B.shape[0]
    S = slots.k_LBSKH.shape[2]
    slots = dataclasses.replace(slots, done_B=slots.done_B | stop_B)
    out_BC = jnp.full((B, steps), pad_id, jnp.int32)
    count_B = jnp.zeros((B,), jnp.int32)

    def cond(carry):
        s, c, _, _ = carry
        n_done = jnp.sum(s.done_B.astype(jnp.int32))
        return (c < steps) & (n_done < B) & (n_done < free_target)

    def body(carry):
        s, c, out_BC, count_B = carry
        tok_B = s.next_token_B
        emit_B = ~s.done_B & ~jnp.isin(tok_B, eos_ids)
        out_BC = jax.lax.dynamic_update_slice(
            out_BC, jnp.where(emit_B, tok_B, pad_id)[:, None], (0, c)
        )
        num_B = s.num_tokens_B + emit_B.astype(jnp.int32)
        done_B = s.done_B | ~emit_B | (num_B >= s.limit_B)
        column_B = jnp.minimum(s.length_B, S - 1)
        logits_BV, k, v = decode_step(model, tok_B, column_B, s.k_LBSKH, s.v_LBSKH)
        next_B = _sample_at(logits_BV, s.key_BP, num_B, sampling)
        s = SlotState(
            k_LBSKH=k,
            v_LBSKH=v,
            length_B=s.length_B + emit_B.astype(jnp.int32),
            next_token_B=jnp.where(done_B, s.next_token_B, next_B),
            num_tokens_B=num_B,
            limit_B=s.limit_B,
            done_B=done_B,
            key_BP=s.key_BP,
        )
        return s, c + 1, out_BC, count_B + emit_B.astype(jnp.int32)

    carry = (slots, jnp.zeros((), jnp.int32), out_BC, count_B)
    slots, ran, out_BC, count_B = jax.lax.while_loop(cond, body, carry)
    return slots, out_BC, count_B, ran


def generate_tokens(
    model: GPTBigCode,
    prompt_BT,
    mask_BT,
    *,
    max_new_tokens: int,
    sampling: SamplingParams | None = None,
    eos_ids: tuple[int, ...] = (0,),
    pad_id: int = 0,
    seed: int = 0,
    scheduler: str = "continuous",
    slots: int | None = None,
):
    """Left-padded prompt arrays in; new tokens [B, max_new_tokens] (pad after EOS) and counts.

    The array-level entry point (parity tests, benchmarks): rows are taken from the mask, then
    run through the slot engine (octojax/generate/engine.py) with one slot per row by default.
    """
    import numpy as np

    from octojax.generate.engine import Engine

    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    prompt_BT, mask_BT = np.asarray(prompt_BT), np.asarray(mask_BT)
    B, T = prompt_BT.shape
    if T + max_new_tokens > model.cfg.n_positions:
        raise ValueError(
            f"prompt length {T} + max_new_tokens {max_new_tokens} exceeds the model's "
            f"n_positions={model.cfg.n_positions}"
        )
    if not np.all(mask_BT[:, -1]):
        raise ValueError("prompts must be left-padded: the last column must be a real token")
    engine = Engine(model, eos_ids=eos_ids, pad_id=pad_id, slots=slots or B)
    prompts = [row[m.astype(bool)].tolist() for row, m in zip(prompt_BT, mask_BT)]
    results = engine.run(
        prompts, [max_new_tokens] * B, sampling=sampling or SamplingParams(), seed=seed,
        scheduler=scheduler,
    )  # fmt: skip
    tokens_BN = np.full((B, max_new_tokens), pad_id, np.int32)
    for b, r in enumerate(results):
        tokens_BN[b, : len(r.token_ids)] = r.token_ids
    return tokens_BN, np.asarray([len(r.token_ids) for r in results], np.int32)
