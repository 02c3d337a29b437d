"""Meshes and multi-host plumbing for generation, on the one mesh module (octojax/mesh.py).

A generation mesh has the training axes (data, fsdp, tensor) and the one logical-rules table
(octojax/sharding.py): parameters are sharded exactly as in training, the KV cache over
batch (data, fsdp) and, where the model has several K/V heads, over tensor (a multi-query cache
has one K/V head, so it is split over batch only and each tensor device keeps its rows' cache).

Multi-host (`distributed=True`): every process builds the mesh over its own devices
(`jax.local_devices()`) and generates its share of the prompts (whole prompt groups, dealt
round-robin); the results are then all-gathered, so every process returns every output in prompt
order and process 0 writes the file. Hosts never wait on each other while decoding, which is what
continuous batching wants, and a model that fits one host (StarCoder 15.5B fits a v5e-8 or v4-8
host, or one H100) needs no traffic between hosts at all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import jax
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from jax.sharding import Mesh

from octojax.config import ConfigError
from octojax.mesh import MeshSection, as_mesh_section, build_mesh
from octojax.model.config import ModelConfig
from octojax.model.gptbigcode import GPTBigCode, param_logical_axes
from octojax.sharding import named_sharding


def generation_mesh(
    mesh: str | MeshSection | Mesh | None, *, distributed: bool = False
) -> tuple[Mesh | None, MeshSection | None]:
    """The Mesh for a spec string or section (over this process's devices when distributed),
    and the section it came from (for its rules); a Mesh or None passes through.

    Explicit sizes smaller than the host take its first devices. dcn_* must stay 1 when
    distributed: each host then generates its own share of the prompts on its own devices.
    """
    if mesh is None or isinstance(mesh, Mesh):
        return mesh, None
    section = as_mesh_section(mesh)
    if distributed and math.prod(section.dcn_sizes().values()) > 1:
        raise ConfigError(
            "mesh: dcn_* must be 1 for distributed generation (each host generates its share "
            "of the prompts on its own devices)"
        )
    devices = jax.local_devices() if distributed else jax.devices()
    return build_mesh(section, devices, subset_ok=True), section


def param_shardings(cfg: ModelConfig, mesh: Mesh) -> dict:
    """NamedShardings of every parameter (param_dict layout) by its logical axes."""
    axes = param_logical_axes(cfg)
    abstract = nnx.eval_shape(lambda: GPTBigCode(cfg, rngs=nnx.Rngs(0)))
    shapes = nnx.to_pure_dict(nnx.state(abstract, nnx.Param))
    return jax.tree.map(
        lambda names, s: named_sharding(names, s.shape, mesh),
        axes,
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )


def placer(shardings: dict):
    """place(path, array) for the streaming importer: device_put with that tensor's sharding."""

    def place(path: tuple[str, ...], array: np.ndarray) -> jax.Array:
        s = shardings
        for p in path:
            s = s[p]
        return jax.device_put(array, s)

    return place


def share(groups: Sequence[Sequence[int]], process: int, processes: int) -> list[int]:
    """Row indices this process generates: prompt groups dealt round-robin, kept whole."""
    return [r for j, g in enumerate(groups) if j % processes == process for r in g]


def all_gather_rows(
    local: dict[int, tuple[list[int], int]], n_rows: int, shares: list[list[int]], width: int
) -> dict[int, tuple[list[int], int]]:
    """Every process's {row: (token ids, reason code)} on every process (one all-gather).

    Rows travel as int32 [row, code, n, ids padded to width]; shapes agree across processes
    because every process computes every share.
    """
    per = max(1, max(len(s) for s in shares))
    buf = np.full((per, 3 + width), -1, np.int32)
    for i, (row, (ids, code)) in enumerate(sorted(local.items())):
        buf[i, :3] = (row, code, len(ids))
        buf[i, 3 : 3 + len(ids)] = ids
    everything = np.asarray(multihost_utils.process_allgather(buf)).reshape(-1, 3 + width)
    out = {}
    for rec in everything:
        if rec[0] >= 0:
            out[int(rec[0])] = (rec[3 : 3 + rec[2]].tolist(), int(rec[1]))
    if len(out) != n_rows:
        raise RuntimeError(f"all-gather returned {len(out)} of {n_rows} rows")
    return out


def batch_ways(mesh: Mesh | None) -> int:
    """How many ways a batch is split on this mesh (data x fsdp)."""
    return 1 if mesh is None else math.prod(mesh.shape[a] for a in ("data", "fsdp"))
