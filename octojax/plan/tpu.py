"""The TPU compiler on a host without TPUs: libtpu's compile-only devices for a slice, and a
quiet start for everyone else (`octojax/quiet_start.py`).

libtpu (`pip install 'octojax[tpu]'`) describes any slice's devices
(`jax.experimental.topologies.get_topology_desc`) and compiles for them; nothing may execute on
those devices. Loading it on a host without TPU chips prints warnings about
TPU_ACCELERATOR_TYPE / TPU_WORKER_HOSTNAMES: `octojax.quiet_start` keeps jax from loading it at
all when it could only fail, and `slice_devices` holds libtpu's start-up chatter back.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import tempfile
from collections.abc import Iterator

from octojax.config import ConfigError
from octojax.plan.devices import TpuSlice
from octojax.quiet_start import host_has_tpu, libtpu_installed

INSTALL_HINT = "pip install 'octojax[tpu]' (jax[tpu]: the libtpu matching jax)"


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
