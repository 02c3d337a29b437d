"""The device mesh (data, fsdp, tensor) from the config, on one host or many."""

from __future__ import annotations

import logging
import math

import jax
import numpy as np
from jax.sharding import AxisType, Mesh

from octojax.config import ConfigError
from octojax.sharding import MESH_AXES
from octojax.train.config import MeshSection

log = logging.getLogger(__name__)


def maybe_initialize_distributed(cfg: MeshSection) -> None:
    """jax.distributed.initialize() for multi-host runs (TPU pods, multi-node GPU), once."""
    if cfg.distributed and not jax.distributed.is_initialized():
        jax.distributed.initialize()
        log.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())


def resolve_axis_sizes(sizes: dict[str, int], n: int, what: str) -> tuple[int, ...]:
    """Fill the one -1 axis so the product is n; error if impossible."""
    fill = [a for a, s in sizes.items() if s == -1]
    if len(fill) > 1:
        raise ConfigError(f"mesh: at most one {what} axis may be -1, got {fill}")
    known = math.prod(s for s in sizes.values() if s != -1)
    if fill:
        if n % known:
            raise ConfigError(f"mesh: {n} {what} devices not divisible by {known}")
        sizes = {**sizes, fill[0]: n // known}
    if math.prod(sizes.values()) != n:
        raise ConfigError(
            f"mesh: {what} axis sizes {sizes} need {math.prod(sizes.values())} devices, have {n}"
        )
    return tuple(sizes[a] for a in MESH_AXES)


def build_mesh(cfg: MeshSection, devices: list | None = None) -> Mesh:
    """A Mesh over all devices with axes ("data", "fsdp", "tensor") and Auto axis types.

    With several hosts or slices and dcn_* sizes > 1, the DCN part of each axis spans hosts and
    the rest stays within a host (jax.experimental.mesh_utils.create_hybrid_device_mesh).
    """
    devices = devices if devices is not None else jax.devices()
    dcn = {a: getattr(cfg, f"dcn_{a}") for a in MESH_AXES}
    n_dcn = math.prod(dcn.values())
    if len(devices) % n_dcn:
        raise ConfigError(f"mesh: {len(devices)} devices not divisible by the DCN sizes {dcn}")
    ici = resolve_axis_sizes(
        {a: getattr(cfg, a) for a in MESH_AXES}, len(devices) // n_dcn, "per-host"
    )
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if n_dcn > 1:
        from jax.experimental import mesh_utils

        grid = mesh_utils.create_hybrid_device_mesh(
            ici, tuple(dcn[a] for a in MESH_AXES), devices=devices
        )
        return Mesh(grid, MESH_AXES, axis_types=axis_types)
    if len(devices) == len(jax.devices()):
        return jax.make_mesh(ici, MESH_AXES, axis_types=axis_types, devices=devices)
    return Mesh(np.asarray(devices).reshape(ici), MESH_AXES, axis_types=axis_types)
