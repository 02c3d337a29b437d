"""The TPU compiler on a host without TPUs: libtpu's compile-only devices for a slice, and a
quiet start for everyone else.

libtpu (`pip install 'octojax[tpu]'`) describes any slice's devices
(`jax.experimental.topologies.get_topology_desc`) and compiles for them; nothing may execute on
those devices. Loading it on a host without TPU chips prints warnings about
TPU_ACCELERATOR_TYPE / TPU_WORKER_HOSTNAMES: `quiet_cpu_start` keeps jax from loading it at all
when it could only fail, and `slice_devices` holds libtpu's start-up chatter back.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator

from octojax.config import ConfigError
from octojax.plan.devices import TpuSlice

INSTALL_HINT = "pip install 'octojax[tpu]' (jax[tpu]: the libtpu matching jax)"


def libtpu_installed() -> bool:
    """Whether jax can find libtpu (the package, or TPU_LIBRARY_PATH)."""
    return (
        bool(os.environ.get("TPU_LIBRARY_PATH")) or importlib.util.find_spec("libtpu") is not None
    )


def quiet_cpu_start() -> None:
    """With libtpu installed on a host with no TPU chip (and JAX_PLATFORMS unset), jax would load
    libtpu, print its TPU_* warnings, fail and fall back to the CPU: restrict jax to the CPU up
    front instead (same backend, no noise, no libtpu load). Does nothing when JAX_PLATFORMS is
    set, a TPU or NVIDIA GPU is on the host, or jax's backends already exist."""
    if os.environ.get("JAX_PLATFORMS") or not libtpu_installed():
        return
    import jax

    try:
        from jax._src import hardware_utils, xla_bridge

        if jax.config.jax_platforms or xla_bridge.backends_are_initialized():
            return
        if host_has_tpu() or hardware_utils.has_visible_nvidia_gpu():
            return
    except (ImportError, AttributeError):  # another jax layout: leave jax to choose
        return
    jax.config.update("jax_platforms", "cpu")


def host_has_tpu() -> bool:
    """Whether this host has TPU chips (PCI vendor scan, as jax does); True when unsure."""
    try:
        from jax._src import hardware_utils

        return hardware_utils.num_available_tpu_chips_and_device_id()[0] > 0
    except (ImportError, AttributeError):
        return True


@contextlib.contextmanager
def held_stderr() -> Iterator[list[str]]:
    """Redirect file descriptor 2 (where libtpu's C++ logging writes) into a temporary file for
    the block; yields a list that holds the captured text afterwards."""
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))


@functools.lru_cache(maxsize=8)
def slice_devices(target: TpuSlice, *, quiet: bool = True) -> tuple:
    """libtpu's compile-only devices of the slice (one per chip; v4/v5p megacore), in the
    order libtpu gives them (process_index = host). ConfigError when libtpu is absent or
    refuses the topology."""
    if not libtpu_installed():
        raise ConfigError(f"compiling for {target.name} needs libtpu: {INSTALL_HINT}")
    from jax.experimental import topologies

    if not host_has_tpu():  # compile-only: let several processes load libtpu (no chip to share)
        os.environ.setdefault("ALLOW_MULTIPLE_LIBTPU_LOAD", "1")
    context = held_stderr() if quiet else contextlib.nullcontext([])
    try:
        with context:
            desc = topologies.get_topology_desc(platform="tpu", **target.get_topology_kwargs())
    except Exception as e:  # libtpu says why in its message (INVALID_ARGUMENT: ...)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"TPU topology {target.topology}: {reason}") from None
    return tuple(desc.devices)


def hosts(devices) -> int:
    """Hosts (processes) the devices belong to."""
    return len({d.process_index for d in devices})
