"""The core install (`pip install octojax`, no extras) trains without Beam, TFDS, TensorFlow or torch.

(a) `octojax train` on JSONL and CommitPackFT TFRecord data in a Python that cannot see the optional
    packages (a sitecustomize hides them from imports and from importlib.metadata, as if they were
    not installed); a missing config or model, and the commands that need Beam, fail in one line.
(b) slow: the same in a fresh venv after `pip install -e <repo>` alone, the way a new user starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.records import commitpackft_records
from helpers.xla import xla_flags

from beam_pipelines.records import write_tfrecord
from octojax.cli import _INPUT_ERRORS, OPTIONAL_MODULES, known_errors

REPO = Path(__file__).resolve().parents[1]
# Distribution names of the optional packages (what importlib.metadata would find).
OPTIONAL_DISTS = {
    "apache-beam", "tensorflow-datasets", "tensorflow", "tensorflow-cpu", "torch", "datasets",
}  # fmt: skip

# Wraps every finder on sys.meta_path so that the optional packages look absent: imports fail with
# ModuleNotFoundError, importlib.util.find_spec returns None and their metadata is not found (so
# libraries that probe for torch, as transformers does, take their "not installed" branch).
SITECUSTOMIZE = """\
import sys

MODULES = {modules!r}
DISTS = {dists!r}


class _Hide:
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in MODULES:
            return None
        find = getattr(self.inner, "find_spec", None)
        return find(name, path, target) if find else None

    def find_distributions(self, *args, **kwargs):
        find = getattr(self.inner, "find_distributions", None)
        for dist in find(*args, **kwargs) if find else ():
            if (dist.metadata["Name"] or "").lower().replace("_", "-") not in DISTS:
                yield dist

    def invalidate_caches(self):
        if hasattr(self.inner, "invalidate_caches"):
            self.inner.invalidate_caches()


sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""

# Exits 0 when none of the optional modules can be found or imported.
PROBE = f"""
import importlib, importlib.util, sys
for name in {sorted(OPTIONAL_MODULES)!r}:
    assert importlib.util.find_spec(name) is None, name
    try:
        importlib.import_module(name)
    except ModuleNotFoundError:
        continue
    sys.exit(f"{{name}} imported")
"""

# Calls octojax.cli.main on each argv of argv[1] (JSON) and prints [[exit code, stderr], ...].
MAINS = """
import contextlib, io, json, sys
from octojax.cli import main

answers = []
for argv in json.loads(sys.argv[1]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        answers.append([main(argv), err.getvalue()])
print(json.dumps(answers))
"""


def instruction_rows(n: int = 40) -> list[dict[str, str]]:
    return [
        {"prompt": f"Add {i} and {i + 1}.", "completion": f"def f():\n    return {i} + {i + 1}\n"}
        for i in range(n)
    ]


def write_run(root: Path) -> Path:
    """JSONL + TFRecord sources, a small BPE tokenizer and a 2-step config; returns the config."""
    from octojax.tokenizer import train_bpe_tokenizer

    rows = instruction_rows()
    jsonl = root / "data.jsonl"
    jsonl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    shards = root / "commitpackft"
    shards.mkdir()
    write_tfrecord(shards / "python-00000.tfrecord", commitpackft_records(8))
    texts = [f"Question: {r['prompt']}\n\nAnswer: {r['completion']}" for r in rows]
    train_bpe_tokenizer(texts, root / "tokenizer", vocab_size=300)
    cfg = {
        "run_dir": str(root / "run"),
        "model": {"preset": "test", "dtype": "float32"},
        "data": {
            "tokenizer": str(root / "tokenizer"),
            "seq_len": 32,
            "num_epochs": None,
            "sources": [
                {"kind": "jsonl", "path": str(jsonl)},
                {"kind": "commitpackft", "path": str(shards)},
            ],
        },
        "train": {"steps": 2, "global_batch_size": 4},
        "optimizer": {"lr": 1e-3, "warmup_steps": 0},
        "checkpoint": {"every": 100, "async_save": False},
        "log": {"every": 1, "tensorboard": False, "progress": False},
        "export": {"hf": False},
    }
    path = root / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def run(cmd: list[str], env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def cpu_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "XLA_FLAGS")}
    env.update(JAX_PLATFORMS="cpu", TOKENIZERS_PARALLELISM="false", **extra)
    return env


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.strip()]


def check_core_commands(python: str, octojax: list[str], env: dict[str, str], config: Path) -> None:
    """Train on both sources; a missing config or model, and Beam commands, fail in one line."""
    trained = run([*octojax, "train", "--config", str(config)], env)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "stopped at step 2" in trained.stdout, trained.stdout
    metrics = (config.parent / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(metrics) == 2 and all(json.loads(m)["loss"] > 0 for m in metrics)

    missing = run([*octojax, "train", "--config", "/nonexistent.yaml"], env)
    assert missing.returncode == 2, missing.stderr[-3000:]
    assert error_lines(missing) == [
        "octojax train: error: /nonexistent.yaml: training config does not exist"
    ]

    # More refusals, in one process to save interpreter starts.
    cases = {
        "generate --model /nonexistent --prompt hi": "octojax generate: error: /nonexistent: ",
        "commitpack": "octojax commitpack: error: it needs Apache Beam, which the core install "
        "lacks: pip install 'octojax[beam]'",
        "run": "octojax run: error: the commitpack stage needs Apache Beam, which the core "
        "install lacks: pip install 'octojax[beam]' (or pick other stages with --only)",
    }
    refused = run([python, "-c", MAINS, json.dumps([argv.split() for argv in cases])], env)
    assert refused.returncode == 0, refused.stderr[-3000:]
    answers = json.loads(refused.stdout.splitlines()[-1])
    for (argv, expected), (code, stderr) in zip(cases.items(), answers):
        assert code == 2, (argv, stderr)
        assert len(stderr.splitlines()) == 1 and stderr.startswith(expected), (argv, stderr)


def test_known_errors_name_real_classes():
    """Every (module, class) that known_errors() looks up exists, once its module is loaded."""
    import importlib

    for module, name in _INPUT_ERRORS:
        cls = getattr(importlib.import_module(module), name)
        assert issubclass(cls, Exception) and cls in known_errors(), (module, name)


def test_train_without_the_optional_packages(tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    text = SITECUSTOMIZE.format(modules=set(OPTIONAL_MODULES), dists=OPTIONAL_DISTS)
    (blocker / "sitecustomize.py").write_text(text)
    env = cpu_env(
        PYTHONPATH=os.pathsep.join([str(blocker), str(REPO)]),
        XLA_FLAGS=xla_flags(1),
    )
    probe = run([sys.executable, "-c", PROBE], env)
    assert probe.returncode == 0, probe.stderr[-3000:]  # the blocker works
    octojax = [sys.executable, "-m", "octojax"]
    check_core_commands(sys.executable, octojax, env, write_run(tmp_path))


@pytest.mark.slow
def test_core_only_install_in_a_fresh_venv(tmp_path):
    """`pip install -e <repo>` (no extras) into a new venv, then train and the one-line errors.

    Needs PyPI (or the local index pip is configured with): a failed install fails the test.
    """
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = str(venv / "bin" / "python")
    env = cpu_env(PYTHONNOUSERSITE="1", XLA_FLAGS=xla_flags(1))
    t0 = time.perf_counter()
    install = run([python, "-m", "pip", "install", "-q", "-e", str(REPO)], env, timeout=900)
    print(f"core-only pip install -e: {time.perf_counter() - t0:.0f} s")
    assert install.returncode == 0, install.stdout[-2000:] + install.stderr[-3000:]
    lacking = run([python, "-c", PROBE], env)
    assert lacking.returncode == 0, lacking.stderr[-3000:]  # no extra came in with the core
    check_core_commands(python, [str(venv / "bin" / "octojax")], env, write_run(tmp_path))
