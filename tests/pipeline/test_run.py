"""`octojax run`: the README's main job on its embedded default, and resumption after a kill."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _env():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu"
    )
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "octojax", "run", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, **kw)  # fmt: skip


@pytest.mark.slow
def test_main_job_on_the_embedded_default(tmp_path, humanevalpack_dir, instruct_mix):
    """Exactly the README's main-job command, in a fresh directory."""
    t0 = time.time()
    proc = _run([], cwd=tmp_path, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    seconds = time.time() - t0
    run = tmp_path / "runs" / "octopack"
    for stage in ("tokenizer", "commitpack", "train", "evaluate", "report"):
        assert (run / stage / ".done.json").exists(), stage
    assert (run / "tokenizer" / "tokenizer.json").exists()
    assert list((run / "commitpack" / "data" / "commitpackft").glob("*.tfrecord*"))
    assert (run / "train" / "hf" / "model.safetensors").exists()
    assert list((run / "train" / "checkpoints").glob("300"))
    assert (run / "report" / "training_curve.png").stat().st_size > 10_000
    report = json.loads((run / "report" / "report.json").read_text())
    cells = {(r["task"], r["language"]) for r in report["results"]}
    assert cells == {
        (t, lang)
        for t in ("humanevalfix-tests", "humanevalsynthesize")
        for lang in ("python", "js")
    }
    for r in report["results"]:
        assert 0.0 <= r["pass@1"] <= 100.0
    assert report["training"]["last_loss"] < report["training"]["first_loss"] - 1.0
    assert report["data"]["commitpackft_kept"] > 0
    assert report["throughput"]["train_tokens_per_s"] > 0
    md = (run / "report" / "report.md").read_text()
    assert "| Fix | octojax-smoke |" in md and "| Synthesize | octojax-smoke |" in md
    assert "# octojax run report" in proc.stdout  # printed to the terminal too
    assert seconds < 600, f"the main job took {seconds:.0f}s (budget: 10 minutes on 2 cores)"


@pytest.mark.slow
def test_interrupted_run_resumes_without_redoing_finished_stages(tmp_path, humanevalpack_dir):
    small = ["train.train.steps=60", "train.checkpoint.every=10", "train.log.every=1",
             "evaluate.limit=4", "evaluate.languages=[python]", "evaluate.tasks=[humanevalsynthesize]",
             "evaluate.sampling.max_new_tokens=16", "commitpack.repos=[demo]"]  # fmt: skip
    cmd = [sys.executable, "-m", "octojax", "run", *small]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    ckpts = tmp_path / "runs" / "octopack" / "train" / "checkpoints"
    deadline = time.time() + 600
    while not any(p.name.isdigit() and int(p.name) >= 20 for p in ckpts.glob("*")):
        assert proc.poll() is None, proc.stdout.read()[-3000:]
        assert time.time() < deadline
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = tmp_path / "runs" / "octopack"
    assert (run / "commitpack" / ".done.json").exists() and not (
        run / "train" / ".done.json"
    ).exists()
    commitpack_marker = (run / "commitpack" / ".done.json").read_text()

    again = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=900
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "tokenizer: done earlier" in again.stdout and "commitpack: done earlier" in again.stdout
    assert "resumed from" in again.stdout
    assert (run / "commitpack" / ".done.json").read_text() == commitpack_marker
    assert (run / "report" / "report.md").exists()

    third = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=300
    )
    assert third.returncode == 0
    for stage in ("tokenizer", "commitpack", "train", "evaluate"):
        assert f"{stage}: done earlier" in third.stdout
