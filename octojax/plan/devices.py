"""The accelerators `octojax plan` knows: memory per chip, platform, and how a slice name such
as `v4-32` counts chips; plus parsing of `--device` and `--device-memory`."""

from __future__ import annotations

import dataclasses
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


DEVICES: dict[str, Chip] = {
    "v5e": Chip(hbm_bytes=16 * GiB, platform="tpu", cores_per_chip=1),
    "v4": Chip(hbm_bytes=32 * GiB, platform="tpu", cores_per_chip=2),
    "v5p": Chip(hbm_bytes=95 * GiB, platform="tpu", cores_per_chip=2),
    "v6e": Chip(hbm_bytes=32 * GiB, platform="tpu", cores_per_chip=1),
    "h100": Chip(hbm_bytes=80 * GiB, platform="gpu", cores_per_chip=1),
    "a100": Chip(hbm_bytes=80 * GiB, platform="gpu", cores_per_chip=1),
}

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
