"""A quiet jax start on hosts without TPU chips when libtpu is installed (`octojax[tpu]`).

jax would load libtpu, print its TPU_ACCELERATOR_TYPE / TPU_WORKER_HOSTNAMES warnings, fail to
find a chip and fall back to the CPU. `quiet_cpu_start` (run when `octojax` is imported) picks
that CPU up front instead: same backend, no noise, no libtpu load. Compiling for a TPU slice from
such a host (`octojax plan --compile`) still works: libtpu's topology API loads it on demand.

The chip checks read the PCI vendor ids in sysfs, as jax does, by hand: jax has no public call
for "is there a chip without initializing a backend".
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

GOOGLE_PCI_VENDOR = "0x1ae0"  # TPU chips
NVIDIA_PCI_VENDOR = "0x10de"


def libtpu_installed() -> bool:
    """Whether jax can find libtpu (the package, or TPU_LIBRARY_PATH)."""
    return (
        bool(os.environ.get("TPU_LIBRARY_PATH")) or importlib.util.find_spec("libtpu") is not None
    )


def pci_vendors(root: Path = Path("/sys/bus/pci/devices")) -> set[str] | None:
    """The vendor ids of the host's PCI devices; None when sysfs cannot say (not Linux)."""
    try:
        return {(d / "vendor").read_text().strip().lower() for d in root.iterdir()}
    except OSError:
        return None


def host_has_accelerator() -> bool:
    """Whether a TPU or NVIDIA chip is on this host; True when unsure."""
    vendors = pci_vendors()
    return vendors is None or bool(vendors & {GOOGLE_PCI_VENDOR, NVIDIA_PCI_VENDOR})


def host_has_tpu() -> bool:
    """Whether TPU chips are on this host; True when unsure."""
    vendors = pci_vendors()
    return vendors is None or GOOGLE_PCI_VENDOR in vendors


def quiet_cpu_start() -> None:
    """Keep jax on the CPU when libtpu is installed but no chip is here (JAX_PLATFORMS unset).

    Before jax is imported this sets JAX_PLATFORMS=cpu (child processes inherit the same
    choice); once it is, jax's own flag, which only takes effect before its first backend."""
    if os.environ.get("JAX_PLATFORMS") or not libtpu_installed() or host_has_accelerator():
        return
    if "jax" not in sys.modules:
        os.environ["JAX_PLATFORMS"] = "cpu"
        return
    import jax

    if not jax.config.jax_platforms:
        jax.config.update("jax_platforms", "cpu")
