"""XLA_FLAGS for the jax processes of the tests: fake CPU devices and compile-lean CPU code.

The tests' programs are tiny, so XLA's compile time (mostly LLVM optimising the CPU code) is most
of their time: LLVM at -O0 compiles a test model's train step in 3.3 s instead of 5.0 s and its
parameter init in 1.1 s instead of 3.2 s, with bit-identical losses; steps run ~1.8x slower, which
only a long run notices. tests/train/test_train_core.py, tests/generate/test_engine.py and
tests/model/test_model.py together: 357 s -> 229 s (2-core machine, idle, 2026-12-03). The
README's main job (tests/pipeline/test_run.py: 300 steps, a CPU-time budget) keeps XLA's default.
"""

from __future__ import annotations

#: XLA's CPU code generation at LLVM -O0 (XLA's own graph optimisations are unchanged).
COMPILE_LEAN = "--xla_backend_optimization_level=0"


def xla_flags(devices: int) -> str:
    """XLA_FLAGS for a test process with `devices` fake CPU devices."""
    return f"--xla_force_host_platform_device_count={devices} {COMPILE_LEAN}"
