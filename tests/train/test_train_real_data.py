"""The real Trainer fed by the real input pipeline (the config's `data:` section).

1. On the real instruction mix with a tokenizer trained on it, a tiny model's loss falls clearly.
2. CommitPackFT TFRecords written by the Beam pipeline from a real git repository, mixed with the
   instruction mix: a run stopped after a checkpoint and resumed by a second Trainer continues on
   the exact next batch (same loss sequence as an uninterrupted run).
3. loss_on "answer" trains on fewer tokens than loss_on "all".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from octojax.mesh import build_mesh
from octojax.train import Trainer, config_from_dict
from octojax.train.metrics import read_metrics

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def mix_tokenizer(instruct_mix, tmp_path_factory) -> str:
    """A byte-level BPE (vocab 1024, StarCoder's specials) trained on the instruction mix itself."""
    from octojax.tokenizer import train_bpe_tokenizer

    def texts():
        with open(instruct_mix, encoding="utf-8") as f:
            for line in f:
                row = json.loads(line)
                yield f"Question: {row['prompt']}\n\nAnswer:\n{row['completion']}"

    out = tmp_path_factory.mktemp("mix_tokenizer")
    train_bpe_tokenizer(texts(), out, vocab_size=1024)
    return str(out)


def train_config(run_dir: Path, tokenizer: str, sources: list[dict], **sections):
    """A small from-scratch run on the real pipeline; `sections` update the defaults below."""
    d = {
        "run_dir": str(run_dir),
        "model": {"preset": "test", "dtype": "float32", "param_dtype": "float32"},
        "init": {"source": "scratch", "seed": 0},
        "data": {"tokenizer": tokenizer, "seq_len": 128, "sources": sources, "num_epochs": None},
        "mesh": {"data": 2, "fsdp": -1} if jax.device_count() % 2 == 0 else {"fsdp": -1},
        "optimizer": {"lr": 3e-3, "schedule": "constant", "warmup_steps": 0},
        "train": {"steps": 4, "global_batch_size": 8},
        "checkpoint": {"every": 1000, "async_save": False},
        "log": {"every": 1, "tensorboard": False, "progress": False},
        "export": {"hf": False},
    }
    for key, value in sections.items():
        d[key] = {**d[key], **value} if isinstance(value, dict) and key in d else value
    return config_from_dict(d)


# ---- 1. the loss falls on the real instruction mix ----------------------------------------------


@pytest.mark.slow
def test_loss_falls_on_the_real_instruction_mix(instruct_mix, mix_tokenizer, tmp_path):
    """Preset "smoke" (4 layers, d=128) from scratch, vocab 1024, 200 steps of 16 x 128 tokens.

    Observed (2-core container, load average 5-6): mean of the first 20 logged losses (steps
    2..40) 6.26, of the last 20 (steps 162..200) 5.63; ln(1024) = 6.93 at initialisation. Adam's
    b2 = 0.95 (the usual LLM setting) avoids the loss spike after warm-up seen with 0.999 at this
    lr, and falls faster (0.999: 6.22 -> 5.97 in 200 steps). The assertion asks for a drop of
    0.3, about half of what was seen. 50-70 s on 2 busy cores.
    """
    seq_len = 128
    cfg = train_config(
        tmp_path / "run",
        mix_tokenizer,
        [{"kind": "jsonl", "path": str(instruct_mix)}],
        model={"preset": "smoke", "n_positions": seq_len},
        data={"seq_len": seq_len},
        optimizer=dict(
            lr=5e-3,
            schedule="cosine",
            warmup_steps=20,
            final_lr_ratio=0.1,
            weight_decay=0.01,
            b2=0.95,
        ),  # fmt: skip
        train={"steps": 200, "global_batch_size": 16},
        log={"every": 2},
        mesh={"data": 1, "fsdp": 1},
    )
    # One device: on 2 cores the 8 fake devices only add collective overhead to a 1M-param model.
    mesh = build_mesh(cfg.mesh, devices=jax.devices()[:1])
    result = Trainer(cfg, mesh=mesh).run()

    records = read_metrics(result.run_dir)
    assert [r["step"] for r in records] == list(range(2, 201, 2))
    losses = np.array([r["loss"] for r in records])
    assert np.isfinite(losses).all()
    first, last = losses[:20].mean(), losses[-20:].mean()
    assert abs(losses[0] - np.log(1024)) < 0.3, losses[0]  # a fresh model is near uniform
    print(f"mean loss: first 20 logged {first:.3f}, last 20 {last:.3f}")
    assert last < first - 0.3, f"loss did not fall clearly: first 20 {first:.3f}, last {last:.3f}"
    # packed rows: little padding
    assert all(r["loss_tokens"] > 0.9 * 16 * seq_len for r in records)


# ---- 2. Beam CommitPackFT from a real git repository, resumed exactly ---------------------------

LICENSE = (
    "Apache License\nVersion 2.0, January 2004\nhttp://www.apache.org/licenses/\n\n"
    'Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file '
    "except in compliance with the License.\n"
)
STACK_1 = (
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n"
    "    def push(self, item):\n        self.items.append(item)\n\n"
    "    def pop(self):\n        return self.items.pop()\n"
)
STACK_2 = STACK_1.replace(
    "    def pop(self):\n        return self.items.pop()\n",
    "    def pop(self):\n        if not self.items:\n            raise IndexError('pop from an empty "
    "stack')\n        return self.items.pop()\n",
)
STACK_3 = STACK_2 + "\n    def peek(self):\n        return self.items[-1] if self.items else None\n"
STACK_4 = STACK_3 + "\n    def __len__(self):\n        return len(self.items)\n"
GO_1 = (
    "package mathx\n\n// Max returns the larger of two integers.\nfunc Max(a, b int) int {\n"
    "\tif a > b {\n\t\treturn a\n\t}\n\treturn b\n}\n"
)
GO_2 = GO_1 + (
    "\n// Min returns the smaller of two integers.\nfunc Min(a, b int) int {\n"
    "\tif a < b {\n\t\treturn a\n\t}\n\treturn b\n}\n"
)
GO_3 = GO_2 + (
    "\n// Clamp limits v to the range [lo, hi].\nfunc Clamp(v, lo, hi int) int {\n"
    "\treturn Max(lo, Min(v, hi))\n}\n"
)


def make_git_repo(root: Path) -> Path:
    """A real repository with a handful of single-file commits that pass the CommitPackFT filters."""
    repo = root / "repo"
    repo.mkdir()
    seconds = iter(range(10, 60))

    def git(*args: str) -> None:
        date = f"2021-06-01T12:00:{next(seconds):02d}Z"
        env = {**os.environ, "GIT_AUTHOR_DATE": date, "GIT_COMMITTER_DATE": date}
        subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)

    def commit(message: str, path: str, text: str) -> None:
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
        git("add", "-A")
        git("commit", "-q", "-m", message)

    git("init", "-q", "-b", "main")
    git("config", "user.email", "maintainer@example.org")
    git("config", "user.name", "Maintainer")
    git("config", "commit.gpgsign", "false")
    commit("Initial commit", "LICENSE", LICENSE)
    commit("Create a simple container class", "lib/stack.py", STACK_1)
    commit("Raise a clear error when popping from nothing", "lib/stack.py", STACK_2)
    commit("Add a way to look at the top item", "lib/stack.py", STACK_3)
    commit("Support len() on the container", "lib/stack.py", STACK_4)
    commit("Create integer helpers for Go code", "mathx/mathx.go", GO_1)
    commit("Add the smaller-of-two helper", "mathx/mathx.go", GO_2)
    commit("Implement limiting a value to a range", "mathx/mathx.go", GO_3)
    return repo


@pytest.fixture(scope="module")
def beam_commitpackft(tmp_path_factory, mix_tokenizer) -> Path:
    """`python -m beam_pipelines.commitpack --source git --stage ft` on a fresh git repository."""
    pytest.importorskip("apache_beam", reason="the Beam pipeline needs apache-beam (octojax[beam])")
    root = tmp_path_factory.mktemp("beam_git")
    repo = make_git_repo(root)
    out = root / "out"
    cmd = [
        sys.executable, "-m", "beam_pipelines.commitpack", "--source", "git",
        "--repos", f"{repo} octo/stack-and-math", "--output", str(out), "--stage", "ft",
        "--tokenizer", mix_tokenizer, "--runner", "DirectRunner",
    ]  # fmt: skip
    done = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out / "commitpackft"


@pytest.mark.slow
def test_beam_commits_and_mix_resume_exactly(
    beam_commitpackft, instruct_mix, mix_tokenizer, tmp_path, capsys
):
    """A run stopped at step 3 (final checkpoint) and resumed to step 6 by a second Trainer gives
    exactly the losses of an uninterrupted 6-step run: parameters, optimizer state and the data
    iterator's position all come back. The schedule is constant because a warm-up/decay schedule
    is a function of train.steps, which differs between the stopped and the full run."""
    from beam_pipelines.records import read_dataset

    records = list(read_dataset(beam_commitpackft))
    subjects = {r["subject"] for r in records}
    assert "Raise a clear error when popping from nothing" in subjects, subjects
    assert {r["lang"] for r in records} == {"Python", "Go"}, records

    sources = [
        {"kind": "commitpackft", "path": str(beam_commitpackft), "weight": 4.0},
        {"kind": "jsonl", "path": str(instruct_mix), "weight": 0.1},
    ]
    model = {"n_positions": 256}

    def config(run_dir: Path, steps: int):
        return train_config(
            run_dir, mix_tokenizer, sources, model=model, data={"seq_len": 256},
            train={"steps": steps, "global_batch_size": 8},
            checkpoint={"every": 2, "keep": 3, "async_save": True},  # orbax async, the default
        )  # fmt: skip

    full = Trainer(config(tmp_path / "full", 6)).run()
    assert len(full.losses) == 6 and np.isfinite(full.losses).all()

    stopped = Trainer(config(tmp_path / "resumed", 3)).run()
    assert stopped.final_step == 3
    assert stopped.losses == full.losses[:3]
    ckpt_dir = tmp_path / "resumed" / "checkpoints"
    assert {p.name for p in ckpt_dir.iterdir() if p.name.isdigit()} == {"2", "3"}
    capsys.readouterr()

    resumed = Trainer(config(tmp_path / "resumed", 6)).run()
    assert f"resumed from {ckpt_dir / '3'} at step 3" in capsys.readouterr().out
    assert resumed.final_step == 6
    assert resumed.losses == full.losses[3:]  # exact: same batches, same state, same program
    steps = [r["step"] for r in read_metrics(tmp_path / "resumed")]
    assert steps == [1, 2, 3, 4, 5, 6]

    # the saved data position is the trainer's step (the iterator state travels with the checkpoint)
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(ckpt_dir, item_names=("meta",)) as manager:
        meta = manager.restore(3, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]
    assert meta["step"] == 3 and meta["data_state"]["step"] == 3


# ---- 3. loss on answers only ---------------------------------------------------------------------


@pytest.mark.slow
def test_loss_on_answer_counts_fewer_tokens_than_all(instruct_mix, mix_tokenizer, tmp_path):
    """The same batches with loss_on "answer" weigh only answer tokens; "all" every real token.
    Both counts equal what an independently built iterator says its first two batches hold."""
    from octojax.data.config import DataConfig
    from octojax.data.pipeline import make_train_iterator

    sources = [{"kind": "jsonl", "path": str(instruct_mix)}]
    counts = {}
    for loss_on in ("all", "answer"):
        cfg = train_config(
            tmp_path / loss_on, mix_tokenizer, sources,
            data={"loss_on": loss_on}, train={"steps": 2, "global_batch_size": 8},
        )  # fmt: skip
        result = Trainer(cfg).run()
        records = read_metrics(result.run_dir)
        assert [r["step"] for r in records] == [1, 2]
        assert all(np.isfinite(r["loss"]) for r in records)
        counts[loss_on] = [r["loss_tokens"] for r in records]

        it = make_train_iterator(DataConfig.from_dict(cfg.data.to_dict()), global_batch_size=8)
        expected = []
        for _ in range(2):
            before = it.stats["loss_tokens"]
            batch = next(it)
            expected.append(it.stats["loss_tokens"] - before)
            assert batch["loss_weights"].sum() == expected[-1]
        assert counts[loss_on] == expected, (loss_on, counts[loss_on], expected)

    for all_tokens, answer_tokens in zip(counts["all"], counts["answer"]):
        assert 0 < answer_tokens < all_tokens
