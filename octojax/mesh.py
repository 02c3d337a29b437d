"""Where a job runs: the typed mesh section, its "data=2,tensor=4" form, the Mesh, multi-host start.

Training (`mesh:` in a train config) and generation (`--mesh`, `evaluate.mesh`) share this one
section and this one builder, so a mesh written for one works for the other, `dcn_*` and
`rules` included. The logical-axis rules table itself lives in octojax/sharding.py.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh
from pydantic import Field, field_validator

from octojax.config import ConfigError, Section
from octojax.sharding import LOGICAL_RULES, MESH_AXES

log = logging.getLogger(__name__)

MeshRule = str | list[str] | None
SPEC_KEYS = (*MESH_AXES, *(f"dcn_{a}" for a in MESH_AXES))


class MeshSection(Section):
    """Device mesh sizes; -1 fills with the remaining devices. `dcn_*` split an axis across hosts
    / slices (multi-slice TPU, multi-node GPU) and the rest within a host. `rules` overrides
    entries of the logical-axis table (octojax/sharding.py), e.g. {kv_heads: null}."""

    data: int = Field(1, ge=-1)
    fsdp: int = Field(-1, ge=-1)
    tensor: int = Field(1, ge=-1)
    dcn_data: int = Field(1, ge=1)
    dcn_fsdp: int = Field(1, ge=1)
    dcn_tensor: int = Field(1, ge=1)
    distributed: bool = False  # call jax.distributed.initialize() first (multi-host)
    rules: dict[str, MeshRule] = {}

    @field_validator("data", "fsdp", "tensor")
    @classmethod
    def _not_zero(cls, v: int) -> int:
        if v == 0:
            raise ValueError("must be -1 (fill) or positive")
        return v

    @field_validator("rules")
    @classmethod
    def _known_rules(cls, rules: dict[str, MeshRule]) -> dict[str, MeshRule]:
        for name, target in rules.items():
            if name not in LOGICAL_RULES:
                raise ValueError(
                    f"unknown logical axis {name!r}; known: {', '.join(LOGICAL_RULES)}"
                )
            axes = [target] if isinstance(target, str) else list(target or [])
            bad = [a for a in axes if a not in MESH_AXES]
            if bad:
                raise ValueError(f"{name}: {bad} are not mesh axes {MESH_AXES}")
        return rules

    @classmethod
    def parse(cls, spec: str) -> MeshSection:
        """ "data=2,fsdp=1,tensor=4" (dcn_* too) -> a section; -1 fills, an axis not named is 1."""
        sizes: dict[str, int] = dict.fromkeys(MESH_AXES, 1)
        for part in filter(None, (p.strip() for p in spec.split(","))):
            name, eq, value = (s.strip() for s in part.partition("="))
            if not eq or name not in SPEC_KEYS:
                raise ConfigError(
                    f"mesh {spec!r}: expected a comma list of {'/'.join(SPEC_KEYS)}=N"
                )
            try:
                sizes[name] = int(value)
            except ValueError:
                raise ConfigError(
                    f"mesh {spec!r}: {name} needs an integer, got {value!r}"
                ) from None
            if (
                sizes[name] == 0
                or sizes[name] < -1
                or (name.startswith("dcn_") and sizes[name] < 1)
            ):
                raise ConfigError(f"mesh {spec!r}: {name} must be positive or -1")
        return cls(**sizes)

    def logical_rules(self) -> dict[str, Any]:
        """The full rules table with this section's overrides applied."""
        out = dict(LOGICAL_RULES)
        out.update({k: tuple(v) if isinstance(v, list) else v for k, v in self.rules.items()})
        return out

    def dcn_sizes(self) -> dict[str, int]:
        return {a: getattr(self, f"dcn_{a}") for a in MESH_AXES}

    def ici_sizes(self) -> dict[str, int]:
        return {a: getattr(self, a) for a in MESH_AXES}


def as_mesh_section(mesh: str | MeshSection | None) -> MeshSection | None:
    """A section from a spec string (or the section itself; None stays None)."""
    return MeshSection.parse(mesh) if isinstance(mesh, str) else mesh


LAUNCH_HELP = (
    "run one process per host under a launcher jax detects (a Cloud TPU VM slice, SLURM srun, "
    "Open MPI mpirun), or give --coordinator HOST:PORT --num-processes N --process-id I "
    "(JAX_COORDINATOR_ADDRESS works for the first); for one host, set mesh.distributed=false"
)


def initialize_distributed(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """jax.distributed.initialize() once; unset arguments come from the cluster's environment
    (TPU pod metadata, SLURM, Open MPI, ...). ConfigError saying what to set when there is none."""
    if jax.distributed.is_initialized():
        return
    kwargs = {
        k: v
        for k, v in (
            ("coordinator_address", coordinator),
            ("num_processes", num_processes),
            ("process_id", process_id),
        )
        if v is not None
    }
    try:
        jax.distributed.initialize(**kwargs)
    except (ValueError, TypeError) as e:  # jax: "coordinator_address should be defined." etc.
        raise ConfigError(f"multi-host start: {e} -- {LAUNCH_HELP}") from None
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


def build_mesh(cfg: MeshSection, devices: list | None = None, *, subset_ok: bool = False) -> Mesh:
    """A Mesh over `devices` (default: all) with axes ("data", "fsdp", "tensor"), Auto axis types.

    With several hosts or slices and dcn_* sizes > 1, the DCN part of each axis spans hosts and
    the rest stays within a host (jax.experimental.mesh_utils.create_hybrid_device_mesh).
    `subset_ok`: explicit sizes that need fewer devices than given take the first ones
    (generation on part of a host); training refuses that, so no device idles unnoticed.
    """
    devices = list(devices if devices is not None else jax.devices())
    dcn = cfg.dcn_sizes()
    n_dcn = math.prod(dcn.values())
    wanted = math.prod(cfg.ici_sizes().values()) * n_dcn
    if subset_ok and -1 not in cfg.ici_sizes().values() and wanted < len(devices):
        devices = devices[:wanted]
    if len(devices) % n_dcn:
        raise ConfigError(f"mesh: {len(devices)} devices not divisible by the DCN sizes {dcn}")
    ici = resolve_axis_sizes(cfg.ici_sizes(), len(devices) // n_dcn, "per-host")
    axis_types = (AxisType.Auto,) * len(MESH_AXES)
    if n_dcn > 1:
        from jax.experimental import mesh_utils

        # The DCN part spans slices on a multi-slice job; within one slice (a v5e-64 is 16
        # hosts of one slice) or on GPU nodes without slice_index it spans processes.
        slices = {getattr(d, "slice_index", None) for d in devices}
        grid = mesh_utils.create_hybrid_device_mesh(
            ici, tuple(dcn[a] for a in MESH_AXES), devices=devices,
            process_is_granule=len(slices) <= 1,
        )  # fmt: skip
        return Mesh(grid, MESH_AXES, axis_types=axis_types)
    if len(devices) == len(jax.devices()):
        return jax.make_mesh(ici, MESH_AXES, axis_types=axis_types, devices=devices)
    return Mesh(np.asarray(devices).reshape(ici), MESH_AXES, axis_types=axis_types)
