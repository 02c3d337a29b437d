"""The accelerators `octojax plan` knows: memory, peak bf16 FLOP/s and HBM bandwidth per chip,
how a slice name such as `v4-32` counts chips, and the TPU topology a slice compiles for; plus
parsing of `--device`, `--topology` and `--device-memory`. Pure data: no jax import."""

from __future__ import annotations

import dataclasses
import math
import re

from octojax.config import ConfigError

GiB = 1024**3


@dataclasses.dataclass(frozen=True)
class Chip:
    """One accelerator kind. A slice name "kind-N" counts TensorCores on v4 and v5p (2 per chip:
    v4-32 is 16 chips, v5p-16 is 8) and chips on v5e/v6e; GPUs take --devices (default 8)."""

    hbm_bytes: int  # device memory per chip
    platform: str  # "tpu" or "gpu": picks the attention kernel the step will use
    cores_per_chip: int  # TensorCores a slice name counts per chip
    peak_bf16_tflops: float  # dense bf16 matmul peak per chip (no sparsity)
    hbm_gbytes_per_s: float  # memory bandwidth per chip, 1e9 bytes/s
    device_kinds: tuple[str, ...]  # jax `device_kind` substrings naming this chip
    topology: str | None = None  # TPU topology-name prefix ("v5e" -> "v5e:8x8"); None: no TPU
    torus_dims: int = 2  # TPU interconnect: 2-D (v5e, v6e) or 3-D (v4, v5p)


# Sources: Cloud TPU system-architecture pages (cloud.google.com/tpu/docs/v4, /v5e, /v5p, /v6e:
# "peak compute per chip (bf16)", "HBM2/HBM capacity and bandwidth per chip") and NVIDIA's data
# sheets (H100 SXM5, H200 SXM, A100 80GB SXM, L4: dense BF16 tensor TFLOP/s, i.e. half the
# "with sparsity" figure). Order matters for device_kind matching: "TPU v5 lite" before "TPU v5".
DEVICES: dict[str, Chip] = {
    "v5e": Chip(16 * GiB, "tpu", 1, 197.0, 819.0, ("TPU v5 lite", "TPU v5e"), "v5e", 2),
    "v6e": Chip(32 * GiB, "tpu", 1, 918.0, 1640.0, ("TPU v6 lite", "TPU v6"), "v6e", 2),
    "v5p": Chip(95 * GiB, "tpu", 2, 459.0, 2765.0, ("TPU v5p", "TPU v5"), "v5p", 3),
    "v4": Chip(32 * GiB, "tpu", 2, 275.0, 1200.0, ("TPU v4",), "v4", 3),
    "h100": Chip(80 * GiB, "gpu", 1, 989.0, 3350.0, ("H100",)),
    "h200": Chip(141 * 10**9, "gpu", 1, 989.0, 4800.0, ("H200",)),
    "a100": Chip(80 * GiB, "gpu", 1, 312.0, 2039.0, ("A100",)),
    "l4": Chip(24 * 10**9, "gpu", 1, 121.0, 300.0, ("L4",)),
}


def chip_for_device_kind(kind: str) -> Chip | None:
    """The Chip whose device_kinds name jax's `device.device_kind` (None: CPU or unknown)."""
    for chip in DEVICES.values():
        if any(k.lower() in kind.lower() for k in chip.device_kinds):
            return chip
    return None


_UNITS = {"": 1, "b": 1, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12}
_UNITS.update({"kib": 1024, "mib": 1024**2, "gib": GiB, "tib": 1024**4})


def parse_bytes(text: str) -> int:
    """'16GiB', '80 GB', '1.5e9' -> bytes (GiB/MiB binary, GB/MB decimal)."""
    m = re.fullmatch(r"\s*([0-9.eE+]+)\s*([a-zA-Z]*)\s*", text)
    if not m or m.group(2).lower() not in _UNITS:
        raise ConfigError(f"--device-memory {text!r}: expected a size such as 16GiB or 80GB")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def parse_device(name: str) -> tuple[int, str, int | None]:
    """'v4-32' -> (HBM bytes per chip, platform, chips = 16); 'h100' -> (..., None)."""
    kind, _, count = name.lower().partition("-")
    if kind not in DEVICES or (count and not count.isdigit()):
        raise ConfigError(f"--device {name!r}: expected one of {sorted(DEVICES)}, optionally -N")
    chip = DEVICES[kind]
    chips = None
    if count:
        if int(count) % chip.cores_per_chip:
            raise ConfigError(f"--device {name}: {count} is not a whole number of chips")
        chips = int(count) // chip.cores_per_chip
    return chip.hbm_bytes, chip.platform, chips


@dataclasses.dataclass(frozen=True)
class TpuSlice:
    """A TPU slice to compile for: what jax.experimental.topologies.get_topology_desc takes."""

    kind: str  # key of DEVICES
    topology: str  # "v5e:8x8", "v5p:2x2x4"
    chips: int
    chips_per_host_bounds: tuple[int, int, int]
    wrap: tuple[bool, bool, bool]  # torus wrap-around links per dimension

    @property
    def chip(self) -> Chip:
        return DEVICES[self.kind]

    @property
    def name(self) -> str:
        """The slice name a user rents: v5e-64, v4-32 (TensorCores), v5p-16."""
        return f"{self.kind}-{self.chips * self.chip.cores_per_chip}"

    @property
    def hosts(self) -> int:
        return self.chips // math.prod(self.chips_per_host_bounds)

    def one_host(self) -> TpuSlice:
        """The slice of one of its hosts (what one host's generation compiles for: the compiler
        takes a whole topology, not a subset of one)."""
        dims = self.chips_per_host_bounds[: self.chip.torus_dims]
        return _slice(self.kind, dims)

    def get_topology_kwargs(self) -> dict:
        """Keyword arguments of get_topology_desc (megacore: one jax device per v4/v5p chip)."""
        return {
            "topology_name": self.topology,
            "chip_config_name": "megacore" if self.chip.cores_per_chip == 2 else "default",
            "chips_per_host_bounds": self.chips_per_host_bounds,
            "num_slices": 1,
            "wrap": self.wrap,
        }


# Standard slice shapes (Cloud TPU docs, "TPU versions" / accelerator types).
_SHAPES_2D = {1: (1, 1), 4: (2, 2), 8: (2, 4), 16: (4, 4), 32: (4, 8), 64: (8, 8), 128: (8, 16),
              256: (16, 16)}  # fmt: skip
_SHAPES_3D = {4: (2, 2, 1), 8: (2, 2, 2), 16: (2, 2, 4), 32: (2, 4, 4), 64: (4, 4, 4),
              128: (4, 4, 8), 256: (4, 8, 8), 512: (8, 8, 8)}  # fmt: skip


def _slice(kind: str, dims: tuple[int, ...]) -> TpuSlice:
    """Hosts hold 4 chips (2x2x1); single-host v5e/v6e machines hold up to 8 (2x4: v5e-8, v6e-8).
    Full 16-chip (2-D) or >= 4-chip (3-D, at 64+ chips) dimensions wrap around (a torus)."""
    chips = math.prod(dims)
    dims3 = tuple(dims) + (1,) * (3 - len(dims))
    if len(dims) == 2 and chips <= 8:
        per_host = dims3  # one host: v5e-1/4/8, v6e-1/4/8
    else:
        per_host = (2, 2, 1)
    if len(dims) == 2:
        wrap = tuple(d == 16 for d in dims) + (False,)
    else:
        wrap = (chips >= 64,) * 3
    return TpuSlice(kind, f"{kind}:{'x'.join(map(str, dims))}", chips, per_host, wrap)  # type: ignore[arg-type]


def tpu_slice(device: str | None = None, topology: str | None = None) -> TpuSlice:
    """The slice of `--device v5e-64` (a standard shape) or `--topology v5e:8x8`; ConfigError
    naming the flag when it is not a TPU slice this table can lay out."""
    if topology:
        kind, _, shape = topology.lower().partition(":")
        chip = DEVICES.get(kind)
        if chip is None or chip.topology is None or not re.fullmatch(r"\d+(x\d+)*", shape):
            tpus = sorted(k for k, c in DEVICES.items() if c.topology)
            raise ConfigError(
                f"--topology {topology!r}: expected KIND:AxB (v5e, v6e) or KIND:AxBxC (v4, v5p); "
                f"kinds {tpus}"
            )
        dims = tuple(int(d) for d in shape.split("x"))
        if len(dims) != chip.torus_dims or 0 in dims:
            raise ConfigError(f"--topology {topology}: {kind} needs {chip.torus_dims} dimensions")
        return _slice(kind, dims)
    if not device:
        raise ConfigError("--compile needs a TPU target: --device v5e-64 or --topology v5e:8x8")
    _, _, chips = parse_device(device)
    kind = device.lower().partition("-")[0]
    shapes = _SHAPES_2D if DEVICES[kind].torus_dims == 2 else _SHAPES_3D
    if DEVICES[kind].topology is None or chips is None:
        raise ConfigError(f"--device {device}: --compile needs a TPU slice such as v5e-64")
    if chips not in shapes:
        raise ConfigError(
            f"--device {device}: no standard {kind} slice of {chips} chips "
            f"(known: {sorted(shapes)}); give its shape with --topology {kind}:..."
        )
    return _slice(kind, shapes[chips])
