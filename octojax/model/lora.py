"""LoRA adapters for the stacked block kernels: W + (alpha / r) * A @ B, merged per layer.

Adapters are a separate parameter tree {kernel name: {"a": [L, *in, r], "b": [L, r, *out]}} so that
the base weights stay frozen and only adapters enter the optimizer. The merge happens inside the
layer scan, one layer at a time, so no second copy of the model's weights is ever materialised.
With LoRA dropout (training only) adapters cannot be merged: each then runs beside its kernel on
the dropped-out input, as PEFT does (`LayerAdapters`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from octojax.model.config import ModelConfig

# target name -> (block parameter, number of input dimensions after the layer axis).
# "q", "kv" are Hugging Face's fused c_attn; "o" is attn.c_proj; "fc"/"proj" are the MLP.
LORA_TARGETS = {
    "q": ("q_kernel", 1),
    "kv": ("kv_kernel", 1),
    "o": ("o_kernel", 2),
    "fc": ("fc_kernel", 1),
    "proj": ("proj_kernel", 1),
}


def _shapes(cfg: ModelConfig) -> dict[str, tuple[tuple[str | None, ...], tuple[int, ...]]]:
    from octojax.model.gptbigcode import param_logical_axes

    axes = param_logical_axes(cfg)["blocks"]
    L, D, N, K, H, M = cfg.n_layer, cfg.n_embd, cfg.n_head, cfg.kv_heads, cfg.head_dim, cfg.mlp_dim
    shapes = {
        "q_kernel": (L, D, N, H),
        "kv_kernel": (L, D, 2, K, H),
        "o_kernel": (L, N, H, D),
        "fc_kernel": (L, D, M),
        "proj_kernel": (L, M, D),
    }
    return {k: (axes[k], s) for k, s in shapes.items()}


def _check_targets(targets) -> None:
    unknown = sorted(set(targets) - set(LORA_TARGETS))
    if unknown or not targets:
        raise ValueError(
            f"LoRA targets {unknown or '[]'} invalid; choose from {sorted(LORA_TARGETS)}"
        )


def init_lora(cfg: ModelConfig, targets, rank: int, key: jax.Array, dtype=jnp.float32) -> dict:
    """A ~ N(0, 1/rank) (PEFT uses Kaiming-uniform), B = 0: the adapted model starts as the base."""
    _check_targets(targets)
    shapes = _shapes(cfg)
    out = {}
    for i, t in enumerate(targets):
        name, n_in = LORA_TARGETS[t]
        shape = shapes[name][1]
        a_shape = (*shape[: 1 + n_in], rank)
        b_shape = (shape[0], rank, *shape[1 + n_in :])
        a = jax.random.normal(jax.random.fold_in(key, i), a_shape, dtype) / rank**0.5
        out[name] = {"a": a, "b": jnp.zeros(b_shape, dtype)}
    return out


def lora_logical_axes(cfg: ModelConfig, targets) -> dict:
    """Logical axis names of the adapter tree (the rank axis is never sharded)."""
    shapes = _shapes(cfg)
    out = {}
    for t in targets:
        name, n_in = LORA_TARGETS[t]
        axes = shapes[name][0]
        out[name] = {
            "a": (*axes[: 1 + n_in], "lora_rank"),
            "b": (axes[0], "lora_rank", *axes[1 + n_in :]),
        }
    return out


def merge_layer(params: dict, lora: dict, scale: float) -> dict:
    """One layer's (or every layer's, with the leading L axis) kernels with the adapters added."""
    merged = dict(params)
    for name, ab in lora.items():
        a, b = ab["a"], ab["b"]
        stacked = a.ndim > 1 + LORA_TARGETS[_target_of(name)][1]
        if stacked:
            delta = jax.vmap(lambda x, y: jnp.tensordot(x, y, axes=1))(a, b)
        else:
            delta = jnp.tensordot(a, b, axes=1)
        merged[name] = (params[name] + scale * delta.astype(params[name].dtype)).astype(
            params[name].dtype
        )
    return merged


def _target_of(param_name: str) -> str:
    return next(t for t, (n, _) in LORA_TARGETS.items() if n == param_name)


def merge_into_params(params: dict, lora: dict, scale: float) -> dict:
    """Full model parameters with the adapters folded in (for export to Hugging Face format)."""
    return {**params, "blocks": merge_layer(params["blocks"], lora, scale)}


# Kernels that read the same input share one dropout mask (PEFT adapts HF's fused c_attn, i.e.
# q and kv together, on one dropped-out input).
_INPUT_OF = {"q_kernel": 0, "kv_kernel": 0, "o_kernel": 1, "fc_kernel": 2, "proj_kernel": 3}


@dataclasses.dataclass(frozen=True)
class LayerAdapters:
    """One layer's adapters applied unmerged: kernel(x) + scale * (dropout(x) @ A) @ B."""

    ab: dict  # {kernel name: {"a": [*in, r], "b": [r, *out]}} of this layer
    scale: float
    dropout: float
    key: jax.Array

    def delta(self, name: str, x: jax.Array) -> jax.Array | None:
        """The adapter's addition to kernel `name` applied to x [B, T, *in] (None: no adapter)."""
        if name not in self.ab:
            return None
        a, b = self.ab[name]["a"], self.ab[name]["b"]
        keep = 1.0 - self.dropout
        mask = jax.random.bernoulli(jax.random.fold_in(self.key, _INPUT_OF[name]), keep, x.shape)
        x = jnp.where(mask, x / keep, 0).astype(x.dtype)
        n_in = LORA_TARGETS[_target_of(name)][1]
        xa = jnp.tensordot(x, a.astype(x.dtype), axes=n_in)
        return (self.scale * jnp.tensordot(xa, b.astype(x.dtype), axes=1)).astype(x.dtype)
