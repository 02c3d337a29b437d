"""`octojax train` / `convert` refuse bad input before touching data, and say what they do.

Every case goes through the CLI in a subprocess and checks the exit code, the first line of the
message, and that files that existed before are byte-identical afterwards (docs/reliability.md).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from helpers.cli_helpers import first_error_line, octojax, snapshot


def write_config(path: Path, run_dir: Path, **sections) -> Path:
    cfg = {
        "run_dir": str(run_dir),
        "model": {"preset": "test", "dtype": "float32"},
        "train": {"steps": 2, "global_batch_size": 4},
        "optimizer": {"lr": 1e-3, "warmup_steps": 0},
        "checkpoint": {"every": 1, "keep": 3, "async_save": True},
        "log": {"tensorboard": False, "progress": False},
        "export": {"hf": False},
    }
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value}
    path.write_text(yaml.safe_dump(cfg))
    return path


def train(config: Path, *extra: str) -> subprocess.CompletedProcess:
    return octojax("train", "--config", str(config), "--synthetic-data", "--seq-len", "32", *extra)


@pytest.mark.slow
def test_resume_with_a_changed_model_is_refused_and_changes_nothing(tmp_path):
    run = tmp_path / "run"
    first = train(write_config(tmp_path / "a.yaml", run))
    assert first.returncode == 0, first.stderr[-2000:]
    before = snapshot(run)
    changed = write_config(tmp_path / "b.yaml", run, model={"n_embd": 32}, train={"steps": 4})
    second = train(changed)
    assert second.returncode == 2, second.stderr[-2000:]
    line = first_error_line(second)
    assert line.startswith(
        f"octojax train: error: {run}: the run there was started with a different config"
    )
    assert "model.n_embd: None -> 32" in line and "--reset" in line
    assert "Traceback" not in second.stderr
    assert snapshot(run) == before  # nothing renamed corrupt-*, nothing overwritten

    reset = train(changed, "--reset")
    assert reset.returncode == 0, reset.stderr[-2000:]
    assert "--reset: moved the earlier run's files to" in reset.stdout
    assert "no checkpoint in" in reset.stdout  # says it starts at step 0
    aside = [p for p in run.iterdir() if p.name.startswith("reset-")]
    assert len(aside) == 1 and (aside[0] / "checkpoints").is_dir()


@pytest.mark.slow
def test_bad_configs_fail_at_load_in_one_line_and_create_nothing(tmp_path):
    run = tmp_path / "never"
    long_seq = write_config(tmp_path / "seq.yaml", run)
    cfg = yaml.safe_load(long_seq.read_text())
    cfg["data"] = {"tokenizer": "t", "seq_len": 256, "sources": [{"kind": "jsonl", "path": "x"}]}
    long_seq.write_text(yaml.safe_dump(cfg))
    cases = [
        (long_seq, "data.seq_len 256 is larger than the model's n_positions 128"),
        (write_config(tmp_path / "p.yaml", run, model={"preset": "starcodr"}), "model.preset:"),
        (tmp_path / "missing.yaml", "missing.yaml: training config does not exist"),
    ]
    for config, expected in cases:
        proc = octojax("train", "--config", str(config))
        assert proc.returncode == 2, proc.stderr[-2000:]
        assert first_error_line(proc).startswith("octojax train: error: "), proc.stderr
        assert expected in first_error_line(proc)
        assert "Traceback" not in proc.stderr
    assert not run.exists()
    debug = octojax("--debug", "train", "--config", str(tmp_path / "missing.yaml"))
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.slow
def test_an_interrupted_save_is_removed_and_reported(tmp_path):
    run = tmp_path / "run"
    unfinished = run / "checkpoints" / "7.orbax-checkpoint-tmp-1234567"
    (unfinished / "params").mkdir(parents=True)
    (unfinished / "params" / "half-written").write_bytes(b"\0" * 10)
    proc = train(write_config(tmp_path / "a.yaml", run))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"removed unfinished checkpoint save {unfinished}" in proc.stdout
    assert f"no checkpoint in {run / 'checkpoints'}: starting at step 0" in proc.stdout
    assert not unfinished.exists()


@pytest.mark.slow
def test_export_of_a_run_with_a_damaged_newest_step_uses_the_previous_one(tmp_path):
    run = tmp_path / "run"
    proc = train(write_config(tmp_path / "a.yaml", run, train={"steps": 3}))
    assert proc.returncode == 0, proc.stderr[-2000:]
    steps = sorted(int(p.name) for p in (run / "checkpoints").iterdir() if p.name.isdigit())
    assert steps[-1] == 3 and 2 in steps
    shutil.rmtree(run / "checkpoints" / "3" / "params")
    (run / "checkpoints" / "3" / "params").mkdir()  # present but empty: unreadable
    out = tmp_path / "hf"
    export = octojax("convert", "export", str(run), str(out), "--dtype", "float32")
    assert export.returncode == 0, export.stderr[-3000:]
    assert f"using {run / 'checkpoints' / '2' / 'params'}" in export.stdout
    assert (out / "config.json").exists()
    # the fallback is one line, with no library noise around it
    said = [x for x in (export.stdout + export.stderr).splitlines() if x.strip()]
    assert len(said) == 2 and "unreadable" in said[0] and said[1].startswith("wrote"), said
    shutil.rmtree(run / "checkpoints" / "2" / "params")
    (run / "checkpoints" / "2" / "params").mkdir()
    shutil.rmtree(run / "checkpoints" / "1" / "params")
    (run / "checkpoints" / "1" / "params").mkdir()
    none = octojax("convert", "export", str(run), str(tmp_path / "hf2"))
    assert none.returncode == 2
    assert first_error_line(none).startswith(
        f"octojax convert: error: {run}: no readable parameters"
    )


@pytest.fixture
def tiny_disk(tmp_path):
    """A 320 KiB tmpfs: room for the run's small files, not for a checkpoint of the test model."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(mount)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs as a full disk here ({proc.stderr.strip()})")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("async_save", [True, False], ids=["async", "sync"])
def test_failed_checkpoint_save_stops_training_in_one_line(tmp_path, tiny_disk, async_save):
    """Disk full at the first save (step 2 of 30): training stops there, not at step 30."""
    run = tmp_path / "run"
    config = write_config(
        tmp_path / "c.yaml", run, train={"steps": 30},
        checkpoint={"every": 2, "async_save": async_save, "dir": str(tiny_disk / "ckpt")},
        log={"every": 1},
    )  # fmt: skip
    proc = train(config)
    line = first_error_line(proc)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "saving step 2 failed" in line or "a checkpoint save failed" in line, line
    assert "training stopped" in line and "last good checkpoint is none" in line, line
    assert "Traceback" not in proc.stderr
    logged = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert max(logged, default=0) <= 4, logged  # stopped within a step or two of the failure


def test_a_refused_resume_leaves_the_run_dir_unchanged(tmp_path):
    """A checkpoint that cannot be restored onto the new model (shape mismatch, found only when
    restoring: the saved configs are gone) is refused before anything in the run dir changes."""
    run = tmp_path / "run"
    config = write_config(tmp_path / "c.yaml", run)
    assert train(config).returncode == 0
    (run / "config.json").unlink()
    (run / "checkpoints" / "model_config.json").unlink()
    before = snapshot(run)
    changed = write_config(tmp_path / "c2.yaml", run, model={"n_embd": 128})
    proc = train(changed, "model.n_head=4")
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert snapshot(run) == before


def _mount_tmpfs(path: Path, options: str) -> None:
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()})")


def test_read_only_run_dir_and_full_disk_export_are_one_line(tmp_path):
    """The machine's state, not a bug: one line naming the path and the reason, exit 2."""
    read_only, full = tmp_path / "ro", tmp_path / "full"
    _mount_tmpfs(read_only, "ro,size=64k")
    _mount_tmpfs(full, "size=48k")
    try:
        proc = train(write_config(tmp_path / "c.yaml", read_only / "run"))
        assert proc.returncode == 2 and "Read-only file system" in first_error_line(proc), (
            proc.stderr[-2000:]
        )
        assert "Traceback" not in proc.stderr
        run = tmp_path / "run"
        assert train(write_config(tmp_path / "ok.yaml", run)).returncode == 0
        export = octojax("convert", "export", str(run), str(full / "hf"))
        line = first_error_line(export)
        assert export.returncode == 2 and "No space left on device" in line, export.stderr[-2000:]
        assert "Traceback" not in export.stderr
    finally:
        for mount in (read_only, full):
            subprocess.run(["umount", "-l", str(mount)], check=False)
