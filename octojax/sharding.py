"""Logical axis names -> mesh axes: the one rules table, and helpers that apply it.

Every parameter and key activation in octojax is annotated with logical names ("batch", "embed",
"heads", ...). This module is the only place that maps them to the mesh axes ("data", "fsdp",
"tensor"), so the same model runs on 1 CPU, 8 fake devices, one GPU or a TPU pod slice.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axis (or a tuple of mesh axes, or None for replicated).
# Parameters are sharded over "fsdp" on their embed dimension (ZeRO-3 style) and over "tensor" on
# heads / mlp / vocab (Megatron style). The single K/V head of multi-query attention ("kv_heads" of
# size 1) cannot be split: `spec_for_shape` replicates any dimension the mesh axis does not divide.
LOGICAL_RULES: dict[str, str | tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "length": None,
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "kv": None,  # head_dim
    "mlp": "tensor",
    "vocab": "tensor",
    "layers": None,
    "lora_rank": None,
    # activations: the embed dimension of activations is not sharded (sequence-local compute)
    "act_embed": None,
    "act_heads": "tensor",
    "act_mlp": "tensor",
    "act_vocab": "tensor",
}


def logical_to_spec(
    names: Sequence[str | None], rules: dict[str, str | tuple[str, ...] | None] | None = None
) -> PartitionSpec:
    """PartitionSpec for a tuple of logical names; a mesh axis is used at most once."""
    rules = LOGICAL_RULES if rules is None else rules
    used: set[str] = set()
    out = []
    for name in names:
        target = None if name is None else rules.get(name)
        if name is not None and name not in rules:
            raise KeyError(f"logical axis {name!r} has no rule; known: {sorted(rules)}")
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a not in used)
        used.update(axes)
        out.append(None if not axes else axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*out)


def spec_for_shape(spec: PartitionSpec, shape: Sequence[int], mesh: Mesh) -> PartitionSpec:
    """Drop mesh axes that do not divide the dimension they would shard (replicate it instead)."""
    out = []
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        if axes is None:
            out.append(None)
            continue
        axes_t = (axes,) if isinstance(axes, str) else tuple(axes)
        kept, size = [], 1
        for a in axes_t:
            if dim % (size * mesh.shape[a]) == 0:
                kept.append(a)
                size *= mesh.shape[a]
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return PartitionSpec(*out)


def named_sharding(
    names: Sequence[str | None], shape: Sequence[int], mesh: Mesh, rules=None
) -> NamedSharding:
    """NamedSharding for an array of `shape` annotated with logical `names`."""
    return NamedSharding(mesh, spec_for_shape(logical_to_spec(names, rules), shape, mesh))


# A training batch: these int32/float32 arrays, each [global_batch, seq_len] (octojax.data makes
# them, octojax.train.step consumes them), sharded by BATCH_AXES.
BATCH_KEYS = ("inputs", "targets", "segment_ids", "positions", "loss_weights")
BATCH_AXES = ("batch", "length")


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """The sharding of every batch array: rows over ("data", "fsdp"), length replicated."""
    return NamedSharding(mesh, logical_to_spec(BATCH_AXES))


def constrain(x: jax.Array, names: Sequence[str | None], rules=None) -> jax.Array:
    """with_sharding_constraint by logical names when a mesh is set (jax.set_mesh); else a no-op."""
    mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or mesh.empty:
        return x
    spec = logical_to_spec(names, rules)
    spec = spec_for_shape(spec, x.shape, mesh)
    return jax.lax.with_sharding_constraint(x, spec)
