"""Exact resumption: SIGKILL and SIGTERM mid-run, a different mesh, a corrupt checkpoint."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
import yaml
from helpers.train_helpers import data, small_config
from helpers.waiting import wait_for
from helpers.xla import xla_flags

from octojax.mesh import build_mesh
from octojax.train import Trainer
from octojax.train.metrics import read_metrics

STEPS = 300
# Deadlines for a hang only (start-up, compile and a few steps take seconds on an idle machine):
# the tests wait on events (a checkpoint, a logged step, the exit) and never on a fixed time.
HANG_S = 900


def _write_config(run_dir: Path, steps: int = STEPS, every: int = 25, warmup: int = 10) -> Path:
    cfg = {
        "run_dir": str(run_dir),
        "model": {"preset": "test", "dtype": "float32"},
        "train": {"steps": steps, "global_batch_size": 4},
        "optimizer": {"lr": 1e-3, "warmup_steps": warmup},
        "checkpoint": {"every": every, "keep": 3, "async_save": True},
        "log": {"tensorboard": False, "progress": False, "every": 1},
        "export": {"hf": False},
    }
    path = run_dir.parent / f"{run_dir.name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _train_cmd(config: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "octojax",
        "train",
        "--config",
        str(config),
        "--synthetic-data",
        "--seq-len",
        "32",
    ]


def _env() -> dict:
    env = dict(os.environ, XLA_FLAGS=xla_flags(1), JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = (
        str(Path(__file__).resolve().parents[2]) + os.pathsep + env.get("PYTHONPATH", "")
    )
    return env


def _losses(run_dir: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in read_metrics(run_dir)}  # a re-run step overwrites


def _start(config: Path, log: Path) -> subprocess.Popen:
    """Training in the background, its output to a file (a pipe nobody reads could fill up
    and stop it)."""
    with log.open("w") as out:
        return subprocess.Popen(
            _train_cmd(config), env=_env(), stdout=out, stderr=subprocess.STDOUT
        )


def _running(proc: subprocess.Popen, log: Path) -> None:
    """Fail at once, with its output, if the training has exited."""
    if proc.poll() is not None:
        raise AssertionError(
            f"training exited early ({proc.returncode}): {log.read_text()[-3000:]}"
        )


def _wait_for_checkpoint(ckpt_dir: Path, proc: subprocess.Popen, log: Path) -> int:
    """Wait for a finished checkpoint (a step-numbered dir: written in a temporary one, then
    renamed); the latest step saved."""

    def saved() -> list[int]:
        _running(proc, log)
        return [int(p.name) for p in ckpt_dir.glob("*") if p.name.isdigit()]

    steps = wait_for(
        saved, HANG_S, f"a checkpoint in {ckpt_dir}", detail=lambda: log.read_text()[-3000:]
    )
    return max(steps)


@pytest.mark.slow
def test_sigkill_then_resume_gives_the_uninterrupted_loss_sequence(tmp_path):
    ref = subprocess.run(
        _train_cmd(_write_config(tmp_path / "ref")), env=_env(), capture_output=True, text=True
    )
    assert ref.returncode == 0, ref.stderr[-3000:]

    config = _write_config(tmp_path / "killed")
    log = tmp_path / "killed.log"
    proc = _start(config, log)
    saved = _wait_for_checkpoint(tmp_path / "killed" / "checkpoints", proc, log)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    logged = max(_losses(tmp_path / "killed"))
    assert logged < STEPS, "the run finished before it could be killed"

    resumed = subprocess.run(_train_cmd(config), env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "resumed from" in resumed.stdout and saved >= 25
    expected, got = _losses(tmp_path / "ref"), _losses(tmp_path / "killed")
    assert [r["step"] for r in read_metrics(tmp_path / "killed")] == list(range(1, STEPS + 1))
    assert got == expected  # bit-for-bit: same batches, same state, same program


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_and_a_rerun_finishes(tmp_path, signum, code):
    # warm-up 2 < the >= 5 steps saved: the rerun (saved + 3 steps) is valid however fast the
    # machine is (with warm-up 10 it was refused whenever the save landed before step 8)
    config = _write_config(tmp_path / "run", steps=100000, every=100000, warmup=2)
    log = tmp_path / "run.log"
    proc = _start(config, log)
    metrics = tmp_path / "run" / "metrics.jsonl"

    def logged_five() -> bool:
        _running(proc, log)
        return metrics.exists() and len(metrics.read_text().splitlines()) >= 5

    wait_for(logged_five, HANG_S, f"5 steps in {metrics}", detail=lambda: log.read_text()[-3000:])
    proc.send_signal(signum)
    try:
        proc.wait(timeout=HANG_S)  # the save, then the exit
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError(
            f"no exit {HANG_S} s after {signum!r}: {log.read_text()[-3000:]}"
        ) from None
    out = log.read_text()
    assert proc.returncode == code, out[-2000:]
    assert f"{signal.Signals(signum).name}: saving step" in out
    assert "Traceback" not in out
    saved = [int(p.name) for p in (tmp_path / "run" / "checkpoints").glob("*") if p.name.isdigit()]
    assert len(saved) == 1 and saved[0] >= 5
    config = _write_config(tmp_path / "run", steps=saved[0] + 3, every=100000, warmup=2)
    rerun = subprocess.run(_train_cmd(config), env=_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    assert f"resumed from {tmp_path / 'run' / 'checkpoints' / str(saved[0])}" in rerun.stdout
    assert max(_losses(tmp_path / "run")) == saved[0] + 3


def _mesh(shape):
    if jax.device_count() < int(np.prod(shape)):
        pytest.skip("needs 8 devices")
    cfg = small_config("/tmp/unused", mesh=dict(zip(("data", "fsdp", "tensor"), shape)))
    return build_mesh(cfg.mesh, devices=jax.devices()[: int(np.prod(shape))])


def test_checkpoint_from_one_mesh_continues_on_another(tmp_path):
    ref = Trainer(
        small_config(tmp_path / "ref", train={"steps": 4}), data=data(), mesh=_mesh((8, 1, 1))
    ).run()
    first = Trainer(
        small_config(tmp_path / "run", train={"steps": 2}), data=data(), mesh=_mesh((8, 1, 1))
    ).run()
    assert first.final_step == 2
    it = data()
    second = Trainer(
        small_config(tmp_path / "run", train={"steps": 4}), data=it, mesh=_mesh((2, 2, 2))
    ).run()
    assert second.final_step == 4 and it.index == 4  # the data iterator was restored to batch 2
    np.testing.assert_allclose(second.losses, ref.losses[2:], rtol=1e-5)


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog):
    cfg = small_config(tmp_path, train={"steps": 4}, checkpoint={"every": 2})
    Trainer(cfg, data=data()).run()
    ckpts = tmp_path / "checkpoints"
    assert sorted(int(p.name) for p in ckpts.glob("*") if p.name.isdigit()) == [2, 4]
    # damage every data file of step 4's parameters
    for f in (ckpts / "4" / "params").rglob("*"):
        if (
            f.is_file()
            and f.stat().st_size > 0
            and "ocdbt" in str(f.relative_to(ckpts))
            or f.parent.name == "d"
        ):
            f.write_bytes(b"\0" * 16)
    cfg = small_config(tmp_path, train={"steps": 6}, checkpoint={"every": 2})
    with caplog.at_level("ERROR"):
        result = Trainer(cfg, data=data()).run()
    assert "is corrupt or incomplete" in caplog.text and str(ckpts / "4") in caplog.text
    assert (ckpts / "corrupt-4").is_dir()  # kept for inspection, never reused
    assert result.final_step == 6
    assert [r["step"] for r in read_metrics(tmp_path)] == [1, 2, 3, 4, 5, 6]  # resumed from step 2
    discarded = (tmp_path / "metrics.discarded.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in discarded] == [3, 4]  # the abandoned stretch
