"""Multi-host training, with several local processes as the hosts of one job (tests/helpers/multihost.py).

Each process has 2 fake CPU devices; the data are CommitPackFT TFRecord shards packed by the real
input pipeline. A run over N processes must train, checkpoint, stop on a preemption notice,
survive a lost peer and export exactly as the single-process run on the same global mesh.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers.multihost import Job, process_env
from helpers.records import commitpackft_records
from helpers.waiting import wait_for

from beam_pipelines.records import write_tfrecord
from octojax.train.trainer import EXIT_PEER_LOST, EXIT_PREEMPTED

pytestmark = pytest.mark.slow

STEPS = 6


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> dict:
    """Four TFRecord shards of CommitPackFT records and a small BPE tokenizer."""
    from octojax.tokenizer import train_bpe_tokenizer

    root = tmp_path_factory.mktemp("multihost_data")
    shards = root / "commitpackft"
    (shards / "python").mkdir(parents=True)
    texts = []
    for s in range(4):
        records = commitpackft_records(12, start=12 * s)
        write_tfrecord(shards / "python" / f"train-{s:05d}.tfrecord", records)
        texts += [r["old_contents"] + r["subject"] + r["new_contents"] for r in records]
    train_bpe_tokenizer(texts, root / "tokenizer", vocab_size=300)
    return {"shards": str(shards), "tokenizer": str(root / "tokenizer")}


def _config(path: Path, dataset: dict, **mesh) -> Path:
    cfg = {
        "run_dir": str(path.parent / "run"),
        "model": {"preset": "test", "dtype": "float32", "param_dtype": "float32"},
        "data": {"tokenizer": dataset["tokenizer"], "seq_len": 64, "num_epochs": None,
                 "sources": [{"kind": "commitpackft", "path": dataset["shards"]}]},
        "mesh": {"data": 1, "fsdp": -1, **mesh},
        "optimizer": {"lr": 3e-3, "schedule": "constant", "warmup_steps": 0},
        "train": {"steps": STEPS, "global_batch_size": 8},
        "checkpoint": {"every": 3, "keep": 5},
        "log": {"every": 1, "tensorboard": False, "progress": False},
        "export": {"hf": True, "dtype": "float32"},
    }  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg))
    return path


def _single(config: Path, devices: int, *overrides: str, timeout: int = 300) -> str:
    """One process on `devices` fake devices: the reference."""
    cmd = [sys.executable, "-m", "octojax", "train", "--config", str(config), *overrides]
    proc = subprocess.run(cmd, env=process_env(devices), capture_output=True, text=True,
                          timeout=timeout)  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


def _losses(run: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())]


def _weights(run: Path) -> bytes:
    return (run / "hf" / "model.safetensors").read_bytes()


def _examples_per_process(log: str) -> int:
    """Examples this process decoded and tokenised (the data pipeline's start-up line)."""
    line = next(x for x in log.splitlines() if x.startswith("[train] data: process"))
    return int(line.split(" examples")[0].rsplit(" ", 1)[1])


@pytest.fixture(scope="module")
def reference(dataset, tmp_path_factory) -> Path:
    """The single-process run on a data=2 x fsdp=2 mesh (4 devices)."""
    config = _config(tmp_path_factory.mktemp("single") / "c.yaml", dataset, data=2, fsdp=2)
    log = _single(config, 4)
    run = config.parent / "run"
    run.joinpath("log.txt").write_text(log)
    return run


def test_two_hosts_train_and_export_like_one(dataset, reference, tmp_path):
    """dcn_data=2: the data axis across the two processes, fsdp within each."""
    config = _config(tmp_path / "c.yaml", dataset, fsdp=-1, dcn_data=2)
    job = Job(["train", "--config", str(config)], processes=2, devices=2)
    assert job.run(timeout=300) == [0, 0], job.tail()
    run = tmp_path / "run"
    np.testing.assert_allclose(_losses(run), _losses(reference), rtol=2e-5)
    # each process decoded only its share of the records
    single = _examples_per_process((reference / "log.txt").read_text())
    shares = [_examples_per_process(log) for log in job.logs]
    assert sum(shares) == single and max(shares) < single, shares
    # the export from parameters sharded over two hosts = a one-process export of the same step
    again = tmp_path / "again"
    subprocess.run([sys.executable, "-m", "octojax", "convert", "export", str(run), str(again)],
                   env=process_env(1), check=True, capture_output=True, timeout=300)  # fmt: skip
    assert (again / "model.safetensors").read_bytes() == _weights(run)


def test_fsdp_over_processes_trains_like_fsdp_on_one(dataset, tmp_path):
    """fsdp=4 spanning both processes vs fsdp=4 on one process with 4 devices."""
    single = _config(tmp_path / "one" / "c.yaml", dataset, fsdp=4)
    _single(single, 4)
    config = _config(tmp_path / "two" / "c.yaml", dataset, fsdp=-1)
    job = Job(["train", "--config", str(config)], processes=2, devices=2)
    assert job.run(timeout=300) == [0, 0], job.tail()
    np.testing.assert_allclose(
        _losses(tmp_path / "two" / "run"), _losses(tmp_path / "one" / "run"), rtol=2e-5
    )


def test_four_hosts_with_dcn_data_train_like_one(dataset, tmp_path):
    single = _config(tmp_path / "one" / "c.yaml", dataset, data=4, fsdp=2)
    _single(single, 8)
    config = _config(tmp_path / "four" / "c.yaml", dataset, fsdp=-1, dcn_data=4)
    job = Job(["train", "--config", str(config)], processes=4, devices=2)
    assert job.run(timeout=300) == [0, 0, 0, 0], job.tail()
    np.testing.assert_allclose(
        _losses(tmp_path / "four" / "run"), _losses(tmp_path / "one" / "run"), rtol=2e-5
    )


@pytest.fixture(scope="module")
def uninterrupted(dataset, tmp_path_factory) -> Path:
    """Two processes, dcn_data=2, 40 steps without interruption."""
    config = _config(tmp_path_factory.mktemp("whole") / "c.yaml", dataset, dcn_data=2)
    job = Job(["train", "--config", str(config), "train.steps=40"], processes=2)
    assert job.run(timeout=300) == [0, 0], job.tail()
    return config.parent / "run"


def _logged_steps(run: Path) -> int:
    path = run / "metrics.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_sigterm_to_one_host_stops_all_at_one_step_and_resumes_exactly(
    dataset, uninterrupted, tmp_path
):
    config = _config(tmp_path / "c.yaml", dataset, dcn_data=2)
    args = ["train", "--config", str(config), "train.steps=40", "checkpoint.every=1000"]
    job = Job(args, processes=2).start()
    run = tmp_path / "run"
    wait_for(lambda: _logged_steps(run) >= 3, 240, "step 3 of the job")
    job.signal(1, signal.SIGTERM)
    assert job.wait(timeout=300) == [EXIT_PREEMPTED, EXIT_PREEMPTED], job.tail()
    saved = [int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit()]
    assert len(saved) == 1 and 3 <= saved[0] < 40, saved
    assert all(f"saving step {saved[0]}" in log for log in job.logs[:1]), job.tail()
    resumed = Job(args, processes=2)
    assert resumed.run(timeout=300) == [0, 0], resumed.tail()
    assert f"resumed from {run / 'checkpoints' / str(saved[0])}" in resumed.logs[0]
    assert _weights(run) == _weights(uninterrupted)
    assert _losses(run)[-5:] == _losses(uninterrupted)[-5:]


def test_lost_peer_ends_the_others_and_a_rerun_resumes(dataset, uninterrupted, tmp_path):
    config = _config(tmp_path / "c.yaml", dataset, dcn_data=2)
    args = ["train", "--config", str(config), "train.steps=40", "checkpoint.every=5"]
    job = Job(args, processes=2).start()
    run = tmp_path / "run"
    wait_for(lambda: _logged_steps(run) >= 12, 240, "step 12 of the job")
    job.signal(1, signal.SIGKILL)
    # bounded well below jax's shutdown barrier + heartbeat timeouts (100 s + 300 s), with room
    # for a loaded machine: a hang in a collective or a barrier fails this
    codes = job.wait(timeout=150)
    assert codes == [EXIT_PEER_LOST, -signal.SIGKILL], job.tail()
    assert "lost the process at" in job.logs[0] and "last complete checkpoint" in job.logs[0]
    rerun = Job(args, processes=2)
    assert rerun.run(timeout=300) == [0, 0], rerun.tail()
    assert "resumed from" in rerun.logs[0]
    assert _weights(run) == _weights(uninterrupted)


def test_synthetic_data_is_the_global_batch(dataset, tmp_path):
    """--synthetic-data on two hosts trains on the same 8 rows as one process does."""
    single = _config(tmp_path / "one" / "c.yaml", dataset, data=2, fsdp=2)
    _single(single, 4, "--synthetic-data", "--seq-len", "32", "export.hf=false")
    config = _config(tmp_path / "two" / "c.yaml", dataset, dcn_data=2)
    job = Job(["train", "--config", str(config), "--synthetic-data", "--seq-len", "32",
               "export.hf=false"], processes=2)  # fmt: skip
    assert job.run(timeout=300) == [0, 0], job.tail()
    np.testing.assert_allclose(
        _losses(tmp_path / "two" / "run"), _losses(tmp_path / "one" / "run"), rtol=2e-5
    )


def test_distributed_without_a_cluster_is_refused_in_one_line(dataset, tmp_path):
    config = _config(tmp_path / "c.yaml", dataset)
    cmd = [sys.executable, "-m", "octojax", "train", "--config", str(config),
           "mesh.distributed=true"]  # fmt: skip
    env = {k: v for k, v in process_env(2).items() if not k.startswith(("SLURM_", "OMPI_", "PMI_"))}
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    lines = [x for x in proc.stderr.splitlines() if x.startswith("octojax train")]
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr[-2000:]
    assert "--coordinator" in lines[0] and "mesh.distributed=false" in lines[0]
    assert not (tmp_path / "run").exists()


def test_host_local_checkpoint_dir_warns_at_start(dataset, tmp_path):
    """A relative checkpoint dir resolved in two working directories: two host-local folders."""
    config = _config(tmp_path / "c.yaml", dataset, dcn_data=2)
    cwds = [tmp_path / f"host{i}" for i in range(2)]
    for d in cwds:
        d.mkdir()
    args = ["train", "--config", str(config), "checkpoint.dir=ckpt", "--synthetic-data"]
    job = Job(args, processes=2, cwds=cwds).start()
    try:
        wait_for(lambda: "does not see process 0's checkpoint dir" in job.log(1), 240,
                 "the host-local checkpoint warning")  # fmt: skip
        assert "does not see" not in job.log(0)
    finally:
        job.kill()
