"""`octojax plan --compile` with the real TPU compiler (libtpu) on this CPU host: tiny models
compiled for one-host (v5e:2x2) and four-host (v5e:4x4) slices, training (splash attention,
chunked loss, LoRA, micro-batches) and generation (prefill + decode chunk); the splash kernel
lowered through Mosaic at sequence lengths that are and are not multiples of 512; a config that
does not fit exits 3 naming its largest term; a CPU start with libtpu installed stays silent.

Needs libtpu (`pip install 'octojax[tpu]'`, part of the test extra); skipped without it.
"""

import json
import os
import subprocess
import sys

import pytest

from octojax.cli import main
from octojax.plan.tpu import libtpu_installed

pytestmark = pytest.mark.skipif(
    not libtpu_installed(),
    reason="libtpu is not installed: pip install 'octojax[tpu]' to compile for TPU slices",
)

TINY = """\
model: {preset: smoke, n_layer: 2, dtype: bfloat16, remat: full, attention_impl: auto}
mesh: {fsdp: -1}
lora: {enabled: true, rank: 4, targets: [q, kv, o, proj], dropout: 0.05}
train: {global_batch_size: 16, micro_batch_size: 8, loss_chunk: 64}
"""


def _plan(tmp_path, capsys, config: str, *flags: str) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of `octojax plan --config <config> --seq-len 256 flags`."""
    path = tmp_path / "tiny.yaml"
    path.write_text(config)
    code = main(["plan", "--config", str(path), "--seq-len", "256", *flags])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(("where", "hosts"), [("--device=v5e-4", 1), ("--topology=v5e:4x4", 4)])
def test_tiny_lora_model_compiles_for_training_and_generation(tmp_path, capsys, where, hosts):
    code, text, _ = _plan(tmp_path, capsys, TINY, where, "--compile", "all", "--json",
                       "--generate-batch", "8", "--generate-length", "512")  # fmt: skip
    out = json.loads(text)
    assert code == 0 and out["fits"] is True and out["hosts"] == hosts
    train, gen = out["train"], out["generation"]
    assert out["attention_impl"] == train["attention_impl"] == "splash"  # auto on TPU
    assert out["compiled"]["total_bytes"] == train["compiled"]["total"] > 0
    assert out["estimate"]["total_bytes"] > 0
    # two micro-batches, two layers, four loss chunks: every loop iteration counted
    assert {2, 4} <= set(train["compiled"]["loop_trip_counts"])
    assert out["compiled"]["flops"] > 2 * train["compiled"]["cost_analysis"]["flops"]
    assert train["mesh"] == {"data": 1, "fsdp": 4 * hosts, "tensor": 1}
    assert 0 < train["roofline"]["mfu"] < 1 and train["roofline"]["tokens_per_s"] > 0
    # generation: one host's chips, the slots' cache donated, a decode chunk of 32 steps
    assert gen["fits"] and gen["host_chips"] == 4 and gen["mesh"]["tensor"] == 4
    assert gen["compiled"]["decode"]["aliased"] > 0 and 32 in gen["compiled"]["decode"][
        "loop_trip_counts"]  # fmt: skip
    assert gen["roofline"]["new_tokens_per_s"] == pytest.approx(
        hosts * gen["roofline"]["new_tokens_per_s_per_host"]
    )


@pytest.mark.parametrize("seq", [1920, 2048])
def test_splash_lowers_through_mosaic_with_packed_segments(seq):
    """Forward and backward of the splash kernel (multi-query, segment ids) for a TPU mesh:
    1920 is not a multiple of 512 (128-blocks), 2048 is."""
    import jax
    import jax.numpy as jnp
    from jax.sharding import NamedSharding, PartitionSpec

    from octojax.mesh import MeshSection, build_mesh
    from octojax.model.splash import splash_attention
    from octojax.plan.devices import tpu_slice
    from octojax.plan.tpu import slice_devices

    mesh = build_mesh(MeshSection(fsdp=-1), list(slice_devices(tpu_slice(topology="v5e:2x2"))))
    rows = NamedSharding(mesh, PartitionSpec(("data", "fsdp")))
    q = jax.ShapeDtypeStruct((4, seq, 8, 128), jnp.bfloat16, sharding=rows)
    kv = jax.ShapeDtypeStruct((4, seq, 1, 128), jnp.bfloat16, sharding=rows)
    seg = jax.ShapeDtypeStruct((4, seq), jnp.int32, sharding=rows)

    def loss(q, k, v, s):
        return splash_attention(q, k, v, s).astype(jnp.float32).sum()

    with jax.set_mesh(mesh):
        text = jax.jit(jax.grad(loss, argnums=(0, 1, 2))).lower(q, kv, kv, seg).compile().as_text()
    kernels = [line for line in text.splitlines() if 'custom_call_target="tpu_custom_call"' in line]
    assert any("splash_mqa_fwd" in k for k in kernels), "forward kernel not lowered"
    assert any("splash_mqa_dkv" in k or "bwd" in k for k in kernels), "backward kernel missing"


def test_a_config_that_cannot_fit_exits_3_naming_the_largest_term(tmp_path, capsys):
    """XLA attention without remat keeps [B, N, T, T] scores: temporaries dwarf the rest."""
    big = """\
model: {preset: smoke, n_layer: 1, remat: none, attention_impl: xla}
mesh: {fsdp: -1}
train: {global_batch_size: 32, loss_chunk: 0}
"""
    code, text, _ = _plan(tmp_path, capsys, big, "--seq-len", "1024", "--device", "v5e-4",
                          "--device-memory", "64MiB", "--compile")  # fmt: skip
    assert code == 3, text
    assert "does NOT fit" in text and "largest term: temporaries" in text


def test_bad_target_is_exit_2(tmp_path, capsys):
    code, _, err = _plan(tmp_path, capsys, TINY, "--device", "v5e-3", "--compile")
    assert code == 2 and "no standard v5e slice of 3 chips" in err


def test_cpu_start_with_libtpu_installed_says_nothing(tmp_path):
    """With libtpu installed and JAX_PLATFORMS unset, octojax's start on a host without TPU
    chips keeps libtpu's TPU_ACCELERATOR_TYPE / TPU_WORKER_HOSTNAMES warnings away."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_PLATFORMS", "XLA_FLAGS")}
    script = "import octojax.model, jax; print(jax.devices()[0].platform)"
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0 and run.stdout.strip() == "cpu", run.stderr
    assert "TPU_" not in run.stderr and run.stderr.strip() == "", run.stderr
    (tmp_path / "c.yaml").write_text(TINY)
    cmd = [sys.executable, "-m", "octojax", "plan", "--config", str(tmp_path / "c.yaml"),
           "--device", "v5e-8"]  # fmt: skip
    run = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and "fits" in run.stdout and run.stderr == "", run.stderr
