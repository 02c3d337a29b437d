"""Next-token sampling: greedy, temperature, top-k and top-p (nucleus), all inside jit."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from octojax.sampling_config import SamplingConfig


@dataclasses.dataclass(frozen=True)
class SamplingParams:
    """The per-token part of a SamplingConfig: hashable, a static argument of the jitted decode
    step. temperature 0 means greedy; top_k 0 and top_p 1.0 disable those filters."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise ValueError(f"top_k must be >= 0, got {self.top_k}")

    @classmethod
    def of(cls, config: SamplingConfig) -> SamplingParams:
        """The decode-step part of a SamplingConfig (static under jit: a change recompiles)."""
        return cls(temperature=config.temperature, top_p=config.top_p, top_k=config.top_k)


def filter_logits(logits_BV: jax.Array, params: SamplingParams) -> jax.Array:
    """Temperature-scaled float32 logits with tokens outside top-k / top-p set to -inf."""
    logits_BV = logits_BV.astype(jnp.float32) / params.temperature
    neg_inf = jnp.finfo(jnp.float32).min
    if params.top_k > 0:
        k = min(params.top_k, logits_BV.shape[-1])
        kth_B1 = jax.lax.top_k(logits_BV, k)[0][:, -1:]
        logits_BV = jnp.where(logits_BV < kth_B1, neg_inf, logits_BV)
    if params.top_p < 1.0:
        sorted_BV = jnp.sort(logits_BV, axis=-1)[:, ::-1]
        probs_BV = jax.nn.softmax(sorted_BV, axis=-1)
        # keep the smallest prefix whose mass reaches top_p (the top token is always kept)
        mass_before_BV = jnp.cumsum(probs_BV, axis=-1) - probs_BV
        keep_BV = mass_before_BV < params.top_p
        threshold_B1 = jnp.min(jnp.where(keep_BV, sorted_BV, jnp.inf), axis=-1, keepdims=True)
        logits_BV = jnp.where(logits_BV < threshold_B1, neg_inf, logits_BV)
    return logits_BV


def sample(logits_BV: jax.Array, key: jax.Array, params: SamplingParams) -> jax.Array:
    """One token id per row."""
    if params.temperature == 0.0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    return jax.random.categorical(key, filter_logits(logits_BV, params), axis=-1).astype(jnp.int32)


# Rows whose nucleus fits in this many top tokens sample among them (one top_k, no full sort).
CANDIDATES = 64


def _sample_full(logits_BV: jax.Array, keys_B: jax.Array, params: SamplingParams) -> jax.Array:
    """Per-row categorical over the whole vocabulary after the top-k / top-p filters."""
    filtered_BV = filter_logits(logits_BV, params)
    draw = jax.vmap(lambda k, lg: jax.random.categorical(k, lg))
    return draw(keys_B, filtered_BV).astype(jnp.int32)


def sample_rows(logits_BV: jax.Array, keys_B: jax.Array, params: SamplingParams) -> jax.Array:
    """One token per row, each row from its own key: a row's draw never depends on other rows.

    That independence is what makes outputs identical across batch sizes, slot assignments,
    continuous vs static batching and hosts. Sampling is exact: rows whose top-k / top-p set
    lies within the top CANDIDATES tokens draw among those (the common case at temperature 0.2,
    and far cheaper than sorting 49k logits per row); if any row's nucleus is wider, the full
    sort runs and is used for those rows only.
    """
    if params.temperature == 0.0:
        return jnp.argmax(logits_BV, axis=-1).astype(jnp.int32)
    V = logits_BV.shape[-1]
    c = min(CANDIDATES, V, params.top_k) if params.top_k > 0 else min(CANDIDATES, V)
    if params.top_k == 0 and params.top_p >= 1.0 or c == V:
        return _sample_full(logits_BV, keys_B, params)
    scaled_BV = logits_BV.astype(jnp.float32) / params.temperature
    top_BC, idx_BC = jax.lax.top_k(scaled_BV, c)
    # the nucleus is inside the candidates when their mass reaches top_p (or top_k <= c)
    log_z_B1 = jax.nn.logsumexp(scaled_BV, axis=-1, keepdims=True)
    probs_BC = jnp.exp(top_BC - log_z_B1)
    mass_before_BC = jnp.cumsum(probs_BC, axis=-1) - probs_BC
    keep_BC = mass_before_BC < params.top_p
    if params.top_k > 0:
        keep_BC &= jnp.arange(c) < params.top_k
    fits_B = ~keep_BC[:, -1] | (params.top_k > 0 and params.top_k <= c)
    neg_inf = jnp.finfo(jnp.float32).min
    cand_BC = jnp.where(keep_BC, top_BC, neg_inf)
    pick_B = jax.vmap(lambda k, lg: jax.random.categorical(k, lg))(keys_B, cand_BC)
    fast_B = jnp.take_along_axis(idx_BC, pick_B[:, None], axis=1)[:, 0].astype(jnp.int32)
    return jax.lax.cond(
        jnp.all(fits_B),
        lambda: fast_B,
        lambda: jnp.where(fits_B, fast_B, _sample_full(logits_BV, keys_B, params)),
    )
