"""Publishing is one atomic step, and published folders get ordinary permissions (issue 22).

The real commands (`octojax convert export CKPT OUT` into an existing OUT, `python -m
beam_pipelines.commitpack ... --overwrite`) run in subprocesses with the fault armed
(OCTOJAX_FAULT_AT=n: exit right before the n-th rename/replace/rmtree of the publish code,
beam_pipelines/atomic_publish.py), for every n until the command completes. After each kill the
target is byte for byte the old or the new result, or missing with the old one set aside whole,
which the next start renames back; the next run completes and leaves no leftover. A publish has
three steps when the target exists (rename old aside, rename new in, delete old).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from helpers.xla import xla_flags

from beam_pipelines import atomic_publish
from beam_pipelines.atomic_publish import FAULT_ENV, FAULT_EXIT
from beam_pipelines.records import iter_tfrecord

REPO = Path(__file__).resolve().parents[2]
SWAP_STEPS = 3
MIT_TEXT = """MIT License
 Everyone is permitted to copy and distribute verbatim copies
 of this license document, but changing it is not allowed.
"""

Tree = dict[str, object]


def run_all(commands: Sequence[tuple[list[str], int | None]]) -> list[tuple[int, str]]:
    """Run `python ARGS` for each (args, fault) at once under umask 022; [(exit status, stderr)]."""
    env = dict(os.environ, XLA_FLAGS=xla_flags(1))
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.pop(FAULT_ENV, None)
    procs = [
        subprocess.Popen(
            [sys.executable, *args],
            env=env if fault is None else {**env, FAULT_ENV: str(fault)},
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            umask=0o022,
        )
        for args, fault in commands
    ]
    errs = [p.communicate(timeout=600)[1] for p in procs]
    return [(p.returncode, err) for p, err in zip(procs, errs)]


def tree(root: Path) -> Tree:
    """Every entry below root: file bytes, '<dir>' or '-> link target'."""
    out: Tree = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_symlink():
            out[rel] = "-> " + os.readlink(path)
        elif path.is_dir():
            out[rel] = "<dir>"
        else:
            out[rel] = path.read_bytes()
    return out


def leftovers(parent: Path) -> list[str]:
    """Hidden partial / old-aside / staging entries in parent (none may stay after a run)."""
    return sorted(
        p.name
        for p in parent.rglob(".*")
        if any(tag in p.name for tag in (".partial-", ".old-", ".staging-"))
    )


def modes(root: Path) -> set[tuple[str, str]]:
    """(kind, octal mode) of root and everything below it."""
    paths = [root, *root.rglob("*")]
    return {("dir" if p.is_dir() else "file", oct(stat.S_IMODE(p.stat().st_mode))) for p in paths}


def check_killed_state(
    parent: Path, name: str, old: Tree, new: Tree, norm: Callable[[Tree], Tree]
) -> str:
    """After a kill: the target is the old or the new result, or missing with the one it replaced
    set aside whole (recovering a copy brings it back). Returns 'old', 'new' or 'aside'."""
    target = parent / name
    if target.exists():
        found = tree(target)
        assert found == old or norm(found) == norm(new), sorted(found)
        state = "old" if found == old else "new"
    else:
        asides = [tree(p) for p in parent.iterdir() if p.name.startswith(f".{name}.old-")]
        assert len(asides) == 1, sorted(os.listdir(parent))
        assert asides[0] == old or norm(asides[0]) == norm(new)
        state = "aside"
    copy = Path(tempfile.mkdtemp(dir=parent.parent))
    shutil.copytree(parent, copy, symlinks=True, dirs_exist_ok=True)
    atomic_publish.recover(copy / name)  # what the next start does first
    recovered = tree(copy / name)
    assert recovered == old or norm(recovered) == norm(new)
    assert leftovers(copy) == []
    shutil.rmtree(copy)
    return state


def kill_at_every_step(
    tmp_path: Path,
    old_parent: Path,
    name: str,
    command: Callable[[Path], list[str]],
    norm: Callable[[Tree], Tree] = lambda t: t,
    reference: Tree | None = None,
) -> tuple[list[str], Tree]:
    """Copy old_parent per case, run command with the fault at 1..SWAP_STEPS+1 (all at once, with
    a clean reference run unless `reference` is the new result), check every killed state and
    that a rerun finishes it. Returns the killed states in order and the new result."""
    faults = list(range(1, SWAP_STEPS + 2))
    cases = {}
    for key in [*(["ref"] if reference is None else []), *faults]:
        cases[key] = tmp_path / f"case-{key}"
        shutil.copytree(old_parent, cases[key], symlinks=True)
    old = tree(old_parent / name)
    done = run_all([(command(cases[k] / name), None if k == "ref" else k) for k in cases])
    if reference is None:
        assert done[0][0] == 0, done[0][1][-3000:]
        done = done[1:]
    new = tree(cases["ref"] / name) if reference is None else reference
    assert norm(new) != norm(old)
    statuses = [rc for rc, _ in done]
    assert statuses == [FAULT_EXIT] * SWAP_STEPS + [0], [err[-2000:] for _, err in done]
    for n, (_, err) in zip(faults, done):
        assert n == faults[-1] or f"fault injected before filesystem step {n}:" in err, err
    states = [check_killed_state(cases[n], name, old, new, norm) for n in faults[:-1]]
    reruns = run_all([(command(cases[n] / name), None) for n in faults[:-1]])
    for n in faults:
        assert n == faults[-1] or reruns[n - 1][0] == 0, reruns[n - 1][1][-3000:]
        assert norm(tree(cases[n] / name)) == norm(new)
        # beside the target only its lock (beam_pipelines/run_lock.py), emptied when released
        beside = sorted(set(os.listdir(cases[n])) - {f".{name}.lock"})
        assert beside == [name] and leftovers(cases[n]) == []
        assert modes(cases[n] / name) <= {("dir", "0o755"), ("file", "0o644")}
    return states, new


def test_export_killed_before_each_step_leaves_the_old_or_the_new_model(tmp_path):
    from octojax.convert import save_hf_checkpoint
    from octojax.convert.octojax_checkpoint import save_params
    from octojax.model import get_preset, init_model, param_dict

    cfg = get_preset("test")
    old_parent = tmp_path / "old"
    out = save_hf_checkpoint(old_parent / "hf", cfg, param_dict(init_model(cfg, seed=0)))
    (out / "README.md").write_text("mine\n")  # carried into every new export
    os.chmod(out / "README.md", 0o644)
    params = param_dict(init_model(cfg, seed=1))
    ckpt = save_params(tmp_path / "ckpt", cfg, params)
    shutil.copytree(old_parent, tmp_path / "ref")  # the new result, written by the same function
    reference = tree(save_hf_checkpoint(tmp_path / "ref" / "hf", cfg, params))
    command = lambda target: ["-m", "octojax", "convert", "export", str(ckpt), str(target)]
    states, new = kill_at_every_step(tmp_path, old_parent, "hf", command, reference=reference)
    assert states == ["old", "aside", "new"]
    assert new["README.md"] == b"mine\n" and "model.safetensors" in new


def _git(repo: Path, *args: str, tick: int = 0) -> None:
    date = f"2020-01-01T00:00:{tick:02d}Z"
    env = dict(os.environ, GIT_AUTHOR_DATE=date, GIT_COMMITTER_DATE=date)
    subprocess.run(["git", "-C", str(repo), *args], env=env, check=True, capture_output=True)


def tiny_repo(path: Path) -> Path:
    """MIT repository with three commits: two in-place edits of one file."""
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _git(path, "config", "user.email", "dev@example.com")
    _git(path, "config", "user.name", "Dev")
    for tick, (message, value) in enumerate(
        [("Add the license and module", 1), ("Change the value of a", 2), ("Change it again", 3)]
    ):
        (path / "LICENSE").write_text(MIT_TEXT)
        (path / "m.py").write_text(f"a = {value}\n")
        _git(path, "add", "-A")
        _git(path, "commit", "-q", "-m", message, tick=tick)
    return path


def dataset_norm(files: Tree) -> Tree:
    """A dataset tree without what differs between two runs over the same input: the times in
    manifests and stats, the order of records in a shard."""
    out: Tree = {}
    for rel, content in files.items():
        if rel.endswith(".json") and isinstance(content, bytes):
            data = json.loads(content)
            out[rel] = {k: v for k, v in data.items() if k not in ("created", "run")}
        elif rel.endswith(".tfrecord") and isinstance(content, bytes):
            with tempfile.NamedTemporaryFile(suffix=".tfrecord") as f:
                f.write(content)
                f.flush()
                out[rel] = sorted(json.dumps(r, sort_keys=True) for r in iter_tfrecord(f.name))
        else:
            out[rel] = content
    return out


def test_commitpack_killed_before_each_step_leaves_the_old_or_the_new_dataset(tmp_path):
    repo = tiny_repo(tmp_path / "repo")

    def command(target: Path, revs: str = "HEAD") -> list[str]:
        return ["-m", "beam_pipelines.commitpack", "--source", "git", "--repos", str(repo),
                "--output", str(target), "--overwrite", "--revs", revs]  # fmt: skip

    old_parent = tmp_path / "old"
    [(status, err)] = run_all([(command(old_parent / "out", "HEAD~1"), None)])
    assert status == 0, err[-3000:]
    (old_parent / "out" / "notes.txt").write_text("not a run's output\n")  # carried over
    os.chmod(old_parent / "out" / "notes.txt", 0o644)
    states, new = kill_at_every_step(tmp_path, old_parent, "out", command, dataset_norm)
    assert states == ["old", "aside", "new"]
    assert new["notes.txt"] == b"not a run's output\n"
    assert json.loads(new["stats.json"])["input"]["total"] == 3


_DRIVER = """
import sys
from pathlib import Path
from beam_pipelines import atomic_publish as ap
target, version = Path(sys.argv[1]), sys.argv[2]
ap.recover(target)
new = ap.new_folder(target)
(new / "sub").mkdir()
(new / "sub" / "data.txt").write_text(version * 3)
(new / "version.txt").write_text(version)
ap.publish_folder(new, target, keep=ap.keep_unless(["sub", "version.txt"]))
"""


def test_a_kill_during_recovery_still_leaves_the_old_or_the_new_folder(tmp_path):
    """Every state a kill leaves, killed again at every step of the next start's recovery and
    publish (the module alone: milliseconds per run instead of seconds)."""
    drive = lambda target, version: ["-c", _DRIVER, str(target), version]
    old_parent = tmp_path / "old"
    assert run_all([(drive(old_parent / "t", "1"), None)])[0][0] == 0
    (old_parent / "t" / "notes.txt").write_text("kept")
    old = tree(old_parent / "t")
    new = {**old, "sub/data.txt": b"222", "version.txt": b"2"}
    checked = 0
    for n in range(1, SWAP_STEPS + 1):
        killed = tmp_path / f"k{n}"
        shutil.copytree(old_parent, killed)
        assert run_all([(drive(killed / "t", "2"), n)])[0][0] == FAULT_EXIT
        for m in range(1, 10):
            case = tmp_path / f"k{n}-{m}"
            shutil.copytree(killed, case)
            [(status, err)] = run_all([(drive(case / "t", "2"), m)])
            if status == 0:
                break
            assert status == FAULT_EXIT, err
            check_killed_state(case, "t", old, new, lambda t: t)
            checked += 1
            assert run_all([(drive(case / "t", "2"), None)])[0][0] == 0
            assert tree(case / "t") == new and sorted(os.listdir(case)) == ["t"]
        assert tree(case / "t") == new and sorted(os.listdir(case)) == ["t"]
    assert checked == (1 + 3) + (2 + 3) + (1 + 3)  # recovery steps + the publish's own three


def test_published_folders_get_ordinary_permissions_under_the_umask(tmp_path):
    from octojax.convert.staging import staged_dir

    before = os.umask(0o027)
    try:
        with staged_dir(tmp_path / "model") as tmp:
            (tmp / "config.json").write_text("{}")
            os.close(tempfile.mkstemp(dir=tmp)[0])  # 0600, as some libraries write
            inner = Path(tempfile.mkdtemp(dir=tmp))  # 0700
            (inner / "run.sh").write_text("#!/bin/sh\n")
            os.chmod(inner / "run.sh", 0o700)
    finally:
        os.umask(before)
    out = tmp_path / "model"
    assert stat.S_IMODE(out.stat().st_mode) == 0o750
    assert modes(out) == {("dir", "0o750"), ("file", "0o640"), ("file", "0o750")}
    assert leftovers(tmp_path) == []


_EVAL_WRITE = """
import sys
from eval.harness_format import save_generations
from eval.report import write_results
from eval.tasks import FIX_TESTS
out, score = sys.argv[1], float(sys.argv[2])
write_results(out, [{"task": FIX_TESTS, "language": "python", "model": "m", "pass@1": score}])
save_generations(out + "/generations.json", [[str(score)]])
"""


EVAL_FILES = ("results.json", "results.md", "generations.json")  # in the order written


@pytest.mark.parametrize("fault", [1, 2, 3])
def test_eval_result_files_are_each_whole_after_a_kill(tmp_path, fault):
    """results.json, results.md and a generations file: each the old or the new bytes (those
    written before the kill new, the others old), and the next write removes the partial file."""
    write = lambda out, score, fault=None: run_all([(["-c", _EVAL_WRITE, str(out), score], fault)])
    base, ref, killed = tmp_path / "base", tmp_path / "ref", tmp_path / "killed"
    assert write(base, "0.25")[0][0] == 0
    shutil.copytree(base, ref)
    shutil.copytree(base, killed)
    assert write(ref, "0.75")[0][0] == 0
    old, new = tree(base), tree(ref)
    assert sorted(old) == sorted(EVAL_FILES) and all(old[f] != new[f] for f in EVAL_FILES)
    [(status, err)] = write(killed, "0.75", fault)
    assert status == FAULT_EXIT, err
    assert f"fault injected before filesystem step {fault}: replace" in err
    for i, name in enumerate(EVAL_FILES):
        assert (killed / name).read_bytes() == (new if i < fault - 1 else old)[name], name
    assert len(leftovers(killed)) == 1  # the synced partial file that was not moved in
    assert write(killed, "0.75")[0][0] == 0
    assert tree(killed) == new and leftovers(killed) == []
