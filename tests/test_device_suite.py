"""bench/device_suite.sh --dry-run: every command of the GPU suite starts and finishes on CPU with
tiny shapes, and the summary is built from their JSON."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_device_suite_dry_run(tmp_path):
    pytest.importorskip("torch", reason="the suite's --compare-hf runs need torch")
    env = {k: v for k, v in os.environ.items() if k not in ("OUT", "XLA_FLAGS")}
    env["PYTHON"] = sys.executable
    proc = subprocess.run(
        ["bash", str(ROOT / "bench" / "device_suite.sh"), "--dry-run", "--out", str(tmp_path)],
        env=env, capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    status = [line.split("\t") for line in (tmp_path / "status.tsv").read_text().splitlines()]
    assert [(name, rc) for name, rc, *_ in status] == [
        ("gpu_tests", "0"), ("train", "0"), ("generate", "0"),
    ]  # fmt: skip
    train = json.loads((tmp_path / "train.json").read_text())
    assert train["octojax"]["tokens_per_s"] > 0 and train["hf"]["tokens_per_s"] > 0
    gen = json.loads((tmp_path / "generate.json").read_text())
    assert gen["runs"][0]["hf_tokens_per_s"] > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "octojax / HF" in summary and "| 1 |" in summary
    assert "jax 0." in (tmp_path / "env.txt").read_text()
