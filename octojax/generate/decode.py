"""Batched prefill + KV-cache decoding, the decode loop a jitted `lax.while_loop`.

Prompts are left-padded (padding is segment 0, positions restart at the first real token), so every
row's next token is predicted from the last column. The loop stops as soon as every row has finished
(EOS, or a stop sequence found by the caller between chunks); finished rows emit padding.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from octojax.generate.sampling import SamplingParams, sample
from octojax.model.gptbigcode import GPTBigCode, KVCache


@jax.tree_util.register_dataclass
@dataclasses.dataclass
class DecodeState:
    """Everything the decode loop carries between steps (and between chunks)."""

    cache: KVCache
    next_token_B: jax.Array  # sampled but not yet emitted
    position_B: jax.Array  # position id of next_token_B
    done_B: jax.Array
    tokens_BN: jax.Array  # emitted tokens, pad_id after a row finished
    num_tokens_B: jax.Array  # tokens emitted per row before it finished (EOS not counted)
    step: jax.Array  # number of tokens emitted so far (columns of tokens_BN filled)
    key: jax.Array


def _forward(graphdef, state, tokens_BT, segment_BT, positions_BT, cache):
    model = nnx.merge(graphdef, state)
    logits_BTV, cache = model(
        tokens_BT, segment_ids_BT=segment_BT, positions_BT=positions_BT, cache=cache
    )
    return logits_BTV[:, -1], cache


@functools.partial(jax.jit, static_argnames=("graphdef", "max_new_tokens", "sampling", "pad_id"))
def prefill(
    graphdef,
    state,
    prompt_BT: jax.Array,
    mask_BT: jax.Array,
    key: jax.Array,
    *,
    max_new_tokens: int,
    sampling: SamplingParams,
    pad_id: int,
) -> DecodeState:
    """Run the left-padded prompts through the model, fill the cache, sample the first token."""
    cfg = nnx.merge(graphdef, state).cfg
    B, T = prompt_BT.shape
    mask_BT = mask_BT.astype(jnp.int32)
    positions_BT = jnp.maximum(jnp.cumsum(mask_BT, axis=1) - 1, 0)
    cache = KVCache.zeros(cfg, B, T + max_new_tokens, jnp.dtype(cfg.dtype))
    logits_BV, cache = _forward(graphdef, state, prompt_BT, mask_BT, positions_BT, cache)
    first_B = sample(logits_BV, jax.random.fold_in(key, 0), sampling)
    return DecodeState(
        cache=cache,
        next_token_B=first_B,
        position_B=mask_BT.sum(axis=1).astype(jnp.int32),
        done_B=jnp.zeros((B,), bool),
        tokens_BN=jnp.full((B, max_new_tokens), pad_id, jnp.int32),
        num_tokens_B=jnp.zeros((B,), jnp.int32),
        step=jnp.zeros((), jnp.int32),
        key=key,
    )


@functools.partial(
    jax.jit, static_argnames=("graphdef", "sampling", "pad_id"), donate_argnames=("ds",)
)
def decode_chunk(
    graphdef,
    state,
    ds: DecodeState,
    limit: jax.Array,
    eos_ids: jax.Array,
    *,
    sampling: SamplingParams,
    pad_id: int,
) -> DecodeState:
    """Emit tokens until `limit` tokens are out or every row is done; one compiled loop."""
    B = ds.done_B.shape[0]

    def cond(ds: DecodeState):
        return (ds.step < limit) & ~jnp.all(ds.done_B)

    def body(ds: DecodeState):
        tok_B = ds.next_token_B
        is_eos_B = jnp.isin(tok_B, eos_ids)
        emit_B = ~ds.done_B & ~is_eos_B
        tokens_BN = jax.lax.dynamic_update_slice(
            ds.tokens_BN, jnp.where(emit_B, tok_B, pad_id)[:, None], (0, ds.step)
        )
        done_B = ds.done_B | is_eos_B
        logits_BV, cache = _forward(
            graphdef,
            state,
            tok_B[:, None],
            jnp.ones((B, 1), jnp.int32),
            ds.position_B[:, None],
            ds.cache,
        )
        next_B = sample(logits_BV, jax.random.fold_in(ds.key, ds.step + 1), sampling)
        return DecodeState(
            cache=cache,
            next_token_B=next_B,
            position_B=ds.position_B + 1,
            done_B=done_B,
            tokens_BN=tokens_BN,
            num_tokens_B=ds.num_tokens_B + emit_B.astype(jnp.int32),
            step=ds.step + 1,
            key=ds.key,
        )

    return jax.lax.while_loop(cond, body, ds)


def generate_tokens(
    model: GPTBigCode,
    prompt_BT: np.ndarray,
    mask_BT: np.ndarray,
    *,
    max_new_tokens: int,
    sampling: SamplingParams | None = None,
    eos_ids: tuple[int, ...] = (0,),
    pad_id: int = 0,
    seed: int = 0,
    chunk_size: int | None = None,
    on_chunk=None,
) -> tuple[np.ndarray, np.ndarray]:
    """New tokens [B, max_new_tokens] (pad after a row ends) and the count per row.

    on_chunk(tokens_BN, num_tokens_B, done_B) -> done_B may mark rows finished between chunks
    (stop sequences); with chunk_size None the whole generation is one jitted call.
    """
    if max_new_tokens <= 0:
        raise ValueError(f"max_new_tokens must be positive, got {max_new_tokens}")
    B, T = prompt_BT.shape
    if T + max_new_tokens > model.cfg.n_positions:
        raise ValueError(
            f"prompt length {T} + max_new_tokens {max_new_tokens} exceeds the model's "
            f"n_positions={model.cfg.n_positions}"
        )
    if not np.all(np.asarray(mask_BT)[:, -1]):
        raise ValueError("prompts must be left-padded: the last column must be a real token")
    sampling = sampling or SamplingParams()
    graphdef, state = nnx.split(model)
    ds = prefill(
        graphdef,
        state,
        jnp.asarray(prompt_BT, jnp.int32),
        jnp.asarray(mask_BT, jnp.int32),
        jax.random.key(seed),
        max_new_tokens=max_new_tokens,
        sampling=sampling,
        pad_id=pad_id,
    )
    eos = jnp.asarray(eos_ids, jnp.int32)
    chunk = chunk_size or max_new_tokens
    emitted = 0
    while emitted < max_new_tokens:
        limit = min(emitted + chunk, max_new_tokens)
        ds = decode_chunk(
            graphdef,
            state,
            ds,
            jnp.asarray(limit, jnp.int32),
            eos,
            sampling=sampling,
            pad_id=pad_id,
        )
        emitted = int(ds.step)
        done = np.array(ds.done_B)
        if on_chunk is not None and not done.all():
            new_done = on_chunk(np.asarray(ds.tokens_BN), np.asarray(ds.num_tokens_B), done)
            ds.done_B = jnp.asarray(new_done | done)
        if bool(np.asarray(ds.done_B).all()):
            break
    return np.asarray(ds.tokens_BN), np.asarray(ds.num_tokens_B)
