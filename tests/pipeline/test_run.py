"""`octojax run`: the README's main job on its embedded default, and resumption after a kill.

Nothing here asserts on wall-clock time, which depends on what else the machine runs: the main
job's budget is checked in CPU time, and the waits are on events with deadlines for hangs only.
"""

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.waiting import wait_for

REPO = Path(__file__).resolve().parents[2]
# The main job's budget: 10 minutes on 2 cores, i.e. at most 2 x 600 CPU-seconds. CPU time is
# charged only while the job runs, so other work on the machine does not count against it.
BUDGET_CPU_S = 2 * 600
HANG_S = 1800  # a deadline for a hang only: 7 times the main job's time on an idle machine


def _env():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_PLATFORMS="cpu"
    )
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(args, cwd, **kw):
    return subprocess.run([sys.executable, "-m", "octojax", "run", *args], cwd=cwd, env=_env(),
                          capture_output=True, text=True, **kw)  # fmt: skip


def _children_cpu_s() -> float:
    """CPU-seconds (user + system) of this process's finished children and their descendants."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.slow
@pytest.mark.timeout(HANG_S + 300)
def test_main_job_on_the_embedded_default(tmp_path, humanevalpack_dir, instruct_mix):
    """Exactly the README's main-job command, in a fresh directory."""
    cpu_before = _children_cpu_s()
    proc = _run([], cwd=tmp_path, timeout=HANG_S)
    cpu_s = _children_cpu_s() - cpu_before
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    print(f"main job: {cpu_s:.0f} CPU-seconds")
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
    # issue 23's bar: final loss no worse than 5.40, the 16 rows x 256 tokens default's. The data
    # (this checkout's own history and modules) changes with every commit, and with it the final
    # logged loss by +-0.15 (32 x 128 rows, 20 warm-up steps: 5.12-5.30; 50 warm-up steps: 4.86-4.96
    # in the last fresh-clone runs, 2026-12-03): the last five logged losses' mean is checked, with
    # room for that drift, so that a broken curve fails and drift does not.
    records = [json.loads(line) for line in (run / "train" / "metrics.jsonl").open()]
    tail = sum(r["loss"] for r in records[-5:]) / 5
    assert tail <= 5.40 + 0.15, f"mean of the last five logged losses {tail:.3f}"
    assert report["data"]["commitpackft_kept"] > 0
    assert report["throughput"]["train_tokens_per_s"] > 0
    md = (run / "report" / "report.md").read_text()
    assert "| Fix | octojax-smoke |" in md and "| Synthesize | octojax-smoke |" in md
    assert "# octojax run report" in proc.stdout  # printed to the terminal too
    assert 0 < cpu_s < BUDGET_CPU_S, (
        f"the main job used {cpu_s:.0f} CPU-seconds (budget: 10 minutes on 2 cores, "
        f"{BUDGET_CPU_S} CPU-seconds)"
    )


@pytest.mark.slow
@pytest.mark.timeout(HANG_S + 300)
def test_interrupted_run_resumes_without_redoing_finished_stages(tmp_path, humanevalpack_dir):
    small = ["train.train.steps=60", "train.checkpoint.every=10", "train.log.every=1",
             "evaluate.limit=4", "evaluate.languages=[python]", "evaluate.tasks=[humanevalsynthesize]",
             "evaluate.sampling.max_new_tokens=16", "commitpack.repos=[demo]"]  # fmt: skip
    cmd = [sys.executable, "-m", "octojax", "run", *small]
    log = tmp_path / "first.log"  # a file, not a pipe: an unread pipe could fill and stop the run
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=_env(), stdout=out, stderr=subprocess.STDOUT)
    ckpts = tmp_path / "runs" / "octopack" / "train" / "checkpoints"

    def step_20_saved() -> bool:
        assert proc.poll() is None, f"the run ended early: {log.read_text()[-3000:]}"
        return any(p.name.isdigit() and int(p.name) >= 20 for p in ckpts.glob("*"))

    wait_for(step_20_saved, HANG_S, f"the step-20 checkpoint in {ckpts}",
             detail=lambda: log.read_text()[-3000:])  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    run = tmp_path / "runs" / "octopack"
    assert (run / "commitpack" / ".done.json").exists() and not (
        run / "train" / ".done.json"
    ).exists()
    commitpack_marker = (run / "commitpack" / ".done.json").read_text()

    again = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=HANG_S
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "tokenizer: done earlier" in again.stdout and "commitpack: done earlier" in again.stdout
    assert "resumed from" in again.stdout
    assert (run / "commitpack" / ".done.json").read_text() == commitpack_marker
    assert (run / "report" / "report.md").exists()

    third = subprocess.run(
        cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=HANG_S
    )
    assert third.returncode == 0
    for stage in ("tokenizer", "commitpack", "train", "evaluate"):
        assert f"{stage}: done earlier" in third.stdout
