"""Multi-host generation: two processes (jax.distributed on localhost, CPU) write the same file
as one process.

Each process has 2 fake CPU devices and a data=2 mesh over them; the single-process reference uses
the same per-process mesh, so the only difference is that the prompts are split over processes
and the results all-gathered.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
from helpers.xla import xla_flags

from octojax.generate.testing import tiny_model_dir

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _cmd(model, prompts, out, *extra):
    return [
        sys.executable, "-m", "octojax", "generate", "--model", str(model),
        "--prompts-file", str(prompts), "--output", str(out), "--dtype", "float32",
        "--max-new-tokens", "12", "--temperature", "0.8", "--top-p", "0.95", "--seed", "3",
        "--n-samples", "3", "--batch-size", "4", "--stop", "\n\n", "--mesh", "data=2", *extra,
    ]  # fmt: skip


def test_two_processes_write_the_same_file_as_one(tmp_path):
    model = tiny_model_dir(tmp_path / "model", initializer_range=0.3)
    prompts = tmp_path / "prompts.jsonl"
    texts = ["def add(a, b):", "import os\n", "class A:\n    def f(self):", "x = [", "# sum\n"]
    prompts.write_text("".join(json.dumps({"prompt": t}) + "\n" for t in texts))
    env = {**os.environ, "XLA_FLAGS": xla_flags(2)}
    env["JAX_PLATFORMS"] = "cpu"

    one = tmp_path / "one.jsonl"
    subprocess.run(_cmd(model, prompts, one), env=env, check=True, capture_output=True, timeout=600)

    two = tmp_path / "two.jsonl"
    port = _free_port()
    procs = [
        subprocess.Popen(
            _cmd(
                model,
                prompts,
                two,
                "--distributed",
                "--coordinator",
                f"localhost:{port}",
                "--num-processes",
                "2",
                "--process-id",
                str(i),
            ),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        for i in range(2)
    ]
    logs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], "\n".join(logs)[-3000:]
    assert two.read_text() == one.read_text()
    rows = [json.loads(line) for line in one.read_text().splitlines()]
    assert [r["prompt"] for r in rows] == [t for t in texts for _ in range(3)]
    assert len({tuple(r["token_ids"]) for r in rows}) > len(texts)  # samples differ
    assert "wrote 15 completions" in logs[0] and "wrote" not in logs[1]
