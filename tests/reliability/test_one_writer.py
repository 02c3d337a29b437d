"""One writer per run: a second `octojax train` / `octojax run` / CommitPack pipeline on a folder in
use is refused at once, naming the holder; the lock of a process that died is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers.cli_helpers import first_error_line, octojax

from beam_pipelines.run_lock import LOCK_NAME, FolderLocked, RunLock

REPO = Path(__file__).resolve().parents[2]
HOLD = (
    "import sys, time\n"
    "from beam_pipelines.run_lock import RunLock\n"
    "RunLock(sys.argv[1], 'the holder').acquire()\n"
    "print('held', flush=True)\n"
    "time.sleep(600)\n"
)


@pytest.fixture
def holder(tmp_path):
    """A live process holding the lock of tmp_path/'folder' (killed with SIGKILL at the end)."""
    folder = tmp_path / "folder"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], env=env,
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline().strip() == "held"
    yield folder, proc
    proc.kill()
    proc.wait()


def test_second_writer_is_refused_naming_the_holder(holder):
    folder, proc = holder
    with pytest.raises(FolderLocked, match=f"the holder \\(PID {proc.pid} on "):
        RunLock(folder, "second").acquire()


def test_lock_of_a_dead_process_is_taken_over_with_a_message(holder, capsys):
    folder, proc = holder
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lock = RunLock(folder, "next").acquire()
    try:
        assert lock.took_over["pid"] == proc.pid
        assert f"took over the lock of the holder (PID {proc.pid}" in capsys.readouterr().err
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    finally:
        lock.release()
    assert (folder / LOCK_NAME).read_text() == ""  # a clean end leaves no stale holder
    RunLock(folder, "again").acquire().release()  # and no message next time


def test_train_and_run_on_a_folder_in_use_are_refused_in_one_line(holder, tmp_path):
    folder, proc = holder
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "run_dir": str(folder), "model": {"preset": "test", "dtype": "float32"},
        "train": {"steps": 2, "global_batch_size": 4},
        "log": {"tensorboard": False, "progress": False}, "export": {"hf": False},
    }))  # fmt: skip
    train = octojax("train", "--config", str(config), "--synthetic-data", "--seq-len", "32")
    assert train.returncode == 2, train.stderr[-2000:]
    assert f"in use by the holder (PID {proc.pid}" in first_error_line(train)
    assert not (folder / "checkpoints").exists()
    run = octojax("run", f"run_dir={folder}", "--only", "tokenizer")
    assert run.returncode == 2, run.stderr[-2000:]
    assert f"in use by the holder (PID {proc.pid}" in first_error_line(run)
    assert not (folder / "tokenizer").exists()


def test_commitpack_output_in_use_is_refused(tmp_path):
    """The lock of a dataset folder sits beside it (the folder itself is swapped when published)."""
    output = tmp_path / "dataset"
    with RunLock(output, "the holder", beside=True):
        proc = subprocess.run(
            [sys.executable, "-m", "beam_pipelines.commitpack", "--source", "git", "--repos",
             str(tmp_path), "--output", str(output), "--stage", "commitpack"],
            env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
            timeout=300,
        )  # fmt: skip
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"in use by the holder (PID {os.getpid()}" in proc.stderr
    assert not output.exists()
