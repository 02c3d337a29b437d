"""Logical axis names -> mesh axes: the one rules table, and helpers that apply it.

Every parameter and key activation in octojax is annotated with logical names ("batch", "embed",
"heads", ...). This module is the only place that maps them to the mesh axes ("data", "fsdp",
"tensor"), so the same model runs on 1 CPU, 8 fake devices, one GPU or a TPU pod slice.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator, Mapping, Sequence

import jax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

log = logging.getLogger(__name__)

MESH_AXES = ("data", "fsdp", "tensor")

# Logical axis -> mesh axis (or a tuple of mesh axes, or None for replicated).
# Parameters are sharded over "fsdp" on their embed dimension (ZeRO-3 style) and over "tensor" on
# heads / mlp / vocab (Megatron style). The single K/V head of multi-query attention ("kv_heads" of
# size 1) cannot be split: `spec_for_shape` replicates any dimension the mesh axis does not divide,
# and says so. A config overrides entries with `mesh.rules` (applied with `use_rules`).
Rules = Mapping[str, "str | tuple[str, ...] | None"]
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


_ACTIVE_RULES: contextvars.ContextVar[Rules] = contextvars.ContextVar(
    "octojax_logical_rules", default=LOGICAL_RULES
)


@contextlib.contextmanager
def use_rules(rules: Rules | None) -> Iterator[None]:
    """Make `rules` (a full table, e.g. MeshSection.logical_rules()) the default of every helper
    here while tracing/placing inside the block, like flax's logical_axis_rules context."""
    token = _ACTIVE_RULES.set(LOGICAL_RULES if rules is None else rules)
    try:
        yield
    finally:
        _ACTIVE_RULES.reset(token)


def active_rules() -> Rules:
    """The rules table in effect (LOGICAL_RULES unless inside `use_rules`)."""
    return _ACTIVE_RULES.get()


def logical_to_spec(names: Sequence[str | None], rules: Rules | None = None) -> PartitionSpec:
    """PartitionSpec for a tuple of logical names; a mesh axis is used at most once."""
    rules = active_rules() if rules is None else rules
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


_WARNED: set[tuple] = set()


def _warn_replicated(what: str, shape: Sequence[int], dim: int, axis: str, mesh: Mesh) -> None:
    key = (what, tuple(shape), axis, mesh.shape[axis])
    if key not in _WARNED:
        _WARNED.add(key)
        log.warning(
            "%s %s: dimension %d (size %d) is replicated over mesh axis %r (size %d), which does "
            "not divide it; each device holds that dimension whole",
            what, tuple(shape), dim, shape[dim], axis, mesh.shape[axis],
        )  # fmt: skip


def spec_for_shape(
    spec: PartitionSpec, shape: Sequence[int], mesh: Mesh, name: str | None = None
) -> PartitionSpec:
    """Drop mesh axes that do not divide the dimension they would shard (replicate it instead).

    With `name` (a parameter's path), every such replication is logged once as a warning naming the
    parameter, its shape and the mesh axis: on a 15B model it explains the memory it costs.
    """
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
            elif name is not None and mesh.shape[a] > 1:
                _warn_replicated(name, shape, len(out), a, mesh)
        out.append(None if not kept else kept[0] if len(kept) == 1 else tuple(kept))
    return PartitionSpec(*out)


def named_sharding(
    names: Sequence[str | None],
    shape: Sequence[int],
    mesh: Mesh,
    rules: Rules | None = None,
    *,
    what: str | None = None,
) -> NamedSharding:
    """NamedSharding for an array of `shape` annotated with logical `names` (`what`: its name, for
    the replication warning)."""
    return NamedSharding(mesh, spec_for_shape(logical_to_spec(names, rules), shape, mesh, what))


def tree_shardings(axes: dict, shapes: dict, mesh: Mesh, rules: Rules | None = None) -> dict:
    """NamedShardings for a tree of arrays from a same-shaped tree of logical-axis tuples."""
    return jax.tree_util.tree_map_with_path(
        lambda path, names, s: named_sharding(
            names, s.shape, mesh, rules, what=jax.tree_util.keystr(path, simple=True, separator=".")
        ),
        axes,
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )


# A training batch: these int32/float32 arrays, each [global_batch, seq_len] (octojax.data makes
# them, octojax.train.step consumes them), sharded by BATCH_AXES.
BATCH_KEYS = ("inputs", "targets", "segment_ids", "positions", "loss_weights")
BATCH_AXES = ("batch", "length")

# The generation KV cache [layers, batch, length, kv_heads, head_dim]: rows over data x fsdp, K/V
# heads over tensor where the model has several (octojax/generate/decode.py; octojax plan).
CACHE_AXES = ("layers", "batch", "length", "kv_heads", "kv")


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
