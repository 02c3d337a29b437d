"""Token cross-entropy without the full [B, T, V] logits: a remat'ed scan over sequence chunks.

With StarCoder's 49,152-token vocabulary the fp32 logits of one 8 x 2048 batch are 3.2 GB, and the
plain loss keeps them (plus their bf16 copy and the softmax gradient) alive through the backward
pass. Here the sequence is cut into chunks of `chunk` positions; a `lax.scan` computes each chunk's
logits, their log-sum-exp and the weighted target log-probability, and keeps only a scalar sum.
The scan body is wrapped in `jax.checkpoint`, so the backward pass recomputes one chunk's logits
at a time: peak memory is O(B x chunk x V) instead of O(B x T x V), for one extra output-projection
matmul (about 2 x D x V FLOPs per token, ~1-3% of a StarCoder step). Loss and gradients equal the
plain path's up to float rounding (summation order).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax

# loss_chunk=None ("auto") chunks when the vocabulary is at least this large ...
AUTO_MIN_VOCAB = 16384
# ... into chunks of this many sequence positions (per row of the micro-batch).
AUTO_CHUNK = 512


def resolve_loss_chunk(loss_chunk: int | None, vocab_size: int, seq_len: int) -> int:
    """Chunk length to use; 0 means the plain full-logits loss.

    loss_chunk: None = auto (AUTO_CHUNK positions when vocab_size >= AUTO_MIN_VOCAB and the
    sequence is longer than one chunk, else plain), 0 = plain, n > 0 = chunks of n positions.
    """
    if loss_chunk is None:
        return AUTO_CHUNK if vocab_size >= AUTO_MIN_VOCAB and seq_len > AUTO_CHUNK else 0
    if loss_chunk < 0:
        raise ValueError(f"loss_chunk must be >= 0 or None (auto), got {loss_chunk}")
    return 0 if loss_chunk >= seq_len else loss_chunk


def plain_cross_entropy(
    h_BTD: jax.Array,
    targets_BT: jax.Array,
    weights_BT: jax.Array,
    logits_fn: Callable[[jax.Array], jax.Array],
) -> tuple[jax.Array, jax.Array]:
    """(sum of weighted token cross-entropies, sum of weights) from the full fp32 logits."""
    logits_BTV = logits_fn(h_BTD).astype(jnp.float32)
    ce_BT = optax.softmax_cross_entropy_with_integer_labels(logits_BTV, targets_BT)
    w_BT = weights_BT.astype(jnp.float32)
    return jnp.sum(ce_BT * w_BT), jnp.sum(w_BT)


def chunked_cross_entropy(
    h_BTD: jax.Array,
    targets_BT: jax.Array,
    weights_BT: jax.Array,
    logits_fn: Callable[[jax.Array], jax.Array],
    *,
    chunk: int,
) -> tuple[jax.Array, jax.Array]:
    """plain_cross_entropy's result, computed `chunk` sequence positions at a time.

    h_BTD: final hidden states (before the output projection); logits_fn maps [B, c, D] to
    [B, c, V] (the model's tied projection, e.g. GPTBigCode.logits). T need not be a multiple of
    chunk: the tail is padded with weight 0.
    """
    if chunk <= 0:
        raise ValueError(f"chunk must be positive, got {chunk}")
    B, T, D = h_BTD.shape
    n = -(-T // chunk)
    pad = n * chunk - T
    w_BT = weights_BT.astype(jnp.float32)
    if pad:
        h_BTD = jnp.pad(h_BTD, ((0, 0), (0, pad), (0, 0)))
        targets_BT = jnp.pad(targets_BT, ((0, 0), (0, pad)))
        w_BT = jnp.pad(w_BT, ((0, 0), (0, pad)))
    # [B, n*c, ...] -> [n, B, c, ...]: the batch axis (and its sharding) is kept whole per chunk
    h_NBcD = h_BTD.reshape(B, n, chunk, D).swapaxes(0, 1)
    t_NBc = targets_BT.reshape(B, n, chunk).swapaxes(0, 1)
    w_NBc = w_BT.reshape(B, n, chunk).swapaxes(0, 1)

    @jax.checkpoint  # save only the chunk's inputs; recompute its logits in the backward pass
    def body(total, xs):
        h_BcD, t_Bc, w_Bc = xs
        logits_BcV = logits_fn(h_BcD).astype(jnp.float32)
        ce_Bc = optax.softmax_cross_entropy_with_integer_labels(logits_BcV, t_Bc)
        return total + jnp.sum(ce_Bc * w_Bc), None

    total, _ = jax.lax.scan(body, jnp.zeros((), jnp.float32), (h_NBcD, t_NBc, w_NBc))
    return total, jnp.sum(w_BT)


def cross_entropy(
    h_BTD: jax.Array,
    targets_BT: jax.Array,
    weights_BT: jax.Array,
    logits_fn: Callable[[jax.Array], jax.Array],
    *,
    loss_chunk: int | None = None,
    vocab_size: int,
) -> tuple[jax.Array, jax.Array]:
    """(weighted CE sum, weight sum): chunked or plain as resolve_loss_chunk decides."""
    chunk = resolve_loss_chunk(loss_chunk, vocab_size, h_BTD.shape[1])
    if chunk == 0:
        return plain_cross_entropy(h_BTD, targets_BT, weights_BT, logits_fn)
    return chunked_cross_entropy(h_BTD, targets_BT, weights_BT, logits_fn, chunk=chunk)
