"""The command line: staged output (a failed or input-less run leaves the old dataset byte for
byte), one ``error:`` line and exit 2 for unusable inputs, ``--revs --all``, dead-letter reasons
in the summary, no Prism download, and one run under multi_processing (pickled DoFns)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipelines import commitpack

REPO_ROOT = Path(__file__).resolve().parents[2]
FLASK_BUNDLE = REPO_ROOT.parent / "shared" / "data" / "repos" / "flask.bundle"


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "beam_pipelines.commitpack", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )


def snapshot(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def small_repo(git_repo, license_texts):
    repo = git_repo("small")
    repo.commit("Add the license and module", {"LICENSE": license_texts["mit"], "m.py": "a = 1\n"})
    repo.commit("Change the value of a here", {"m.py": "a = 2\n"})
    repo.git("checkout", "-q", "-b", "side")
    repo.commit("Change the value of a there", {"m.py": "a = 3\n"})
    repo.git("checkout", "-q", "main")
    return repo


def test_typos_leave_the_old_dataset_byte_identical(small_repo, tmp_path):
    out = tmp_path / "out"
    done = cli("--source", "git", "--repos", str(small_repo.path), "--output", str(out))
    assert done.returncode == 0, done.stderr[-2000:]
    before = snapshot(out)
    assert "stats.json" in before
    cases = [
        ("--source", "git", "--repos", str(tmp_path / "typo")),
        ("--source", "jsonl", "--jsonl", str(tmp_path / "typo*.jsonl")),
    ]
    for case in cases:
        done = cli(*case, "--output", str(out), "--overwrite")
        assert done.returncode == 2, done.stderr[-2000:]
        first = done.stderr.strip().splitlines()[0]
        assert first.startswith("error: no usable input: ") and "typo" in first, first
        assert snapshot(out) == before


def test_unreadable_only_input_found_during_the_run_keeps_old_output(small_repo, tmp_path):
    """A clone URL passes the up-front check (it is cloned on a worker) and fails there."""
    out = tmp_path / "out"
    assert (
        cli("--source", "git", "--repos", str(small_repo.path), "--output", str(out)).returncode
        == 0
    )
    before = snapshot(out)
    url = f"file://{tmp_path}/no-such-repo.git"
    done = cli("--source", "git", "--repos", url, "--output", str(out), "--overwrite")
    assert done.returncode == 2, done.stderr[-2000:]
    assert done.stderr.strip().splitlines()[-1].startswith("error: no input could be read")
    assert "source/repo_unreadable: 1" in done.stderr
    assert snapshot(out) == before


def test_revs_all_and_dead_letter_reasons_in_summary(small_repo, tmp_path):
    out = tmp_path / "out"
    done = cli(
        "--source", "git", "--repos", str(small_repo.path), str(tmp_path / "missing"),
        "--revs", "--all", "--output", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"]["total"] == 3 + 1  # the side branch is mined; the missing repo counts
    assert "source/repo_unreadable: 1 (e.g. git:" in done.stderr
    assert "missing" in done.stderr.split("source/repo_unreadable: 1", 1)[1].splitlines()[0]
    head_only = cli("--source", "git", "--repos", str(small_repo.path), "--output", str(out),
                    "--overwrite", "--revs", "HEAD")  # fmt: skip
    assert head_only.returncode == 0
    assert json.loads((out / "stats.json").read_text())["input"]["total"] == 2


def test_expand_revs():
    assert commitpack.expand_revs(["--revs", "--all", "main", "--output", "o"]) == [
        "--revs=--all",
        "--revs=main",
        "--output",
        "o",
    ]
    assert commitpack.expand_revs(["--revs", "--branches=rel*", "--tags"]) == [
        "--revs=--branches=rel*",
        "--revs=--tags",
    ]


def test_no_prism_download_and_multi_processing(small_repo, tmp_path, monkeypatch, tokenizer_dir):
    """The default runner never starts Prism (which downloads a binary); the run under
    multi_processing pickles every DoFn to worker processes, as Dataflow does."""
    from apache_beam.runners.portability import prism_runner

    calls = []
    monkeypatch.setattr(
        prism_runner.PrismRunner, "run_pipeline", lambda *a, **k: calls.append(a) or 1 / 0
    )
    monkeypatch.setattr(
        prism_runner.PrismJobServer, "local_bin", lambda *a, **k: calls.append(a) or 1 / 0
    )
    out = tmp_path / "out"
    args = ["--source", "git", "--repos", str(small_repo.path), "--output", str(out)]
    assert commitpack.main(args) == 0
    assert calls == []
    assert json.loads((out / "stats.json").read_text())["accounting"]["ok"]
    mp = tmp_path / "mp"
    done = cli(
        "--source", "git", "--repos", str(small_repo.path), "--revs", "--all", "--output", str(mp),
        "--stage", "ft", "--tokenizer", tokenizer_dir,
        "--direct_running_mode", "multi_processing", "--direct_num_workers", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((mp / "stats.json").read_text())
    assert stats["input"]["total"] == 3 and stats["accounting"]["ok"]
    assert stats["commitpack"]["kept"] == 2


@pytest.mark.skipif(not FLASK_BUNDLE.exists(), reason="../shared/data/repos/flask.bundle absent")
def test_real_history_content_duplicates_and_accounting(tmp_path, tokenizer_dir):
    """pallets/flask, all refs: the accounting identity holds on 5,572 real commits."""
    flask = tmp_path / "flask"
    subprocess.run(["git", "clone", "-q", str(FLASK_BUNDLE), str(flask)], check=True)
    out = tmp_path / "out"
    done = cli("--source", "git", "--repos", f"{flask} pallets/flask", "--revs", "--all",
               "--output", str(out), "--stage", "ft", "--tokenizer", tokenizer_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["input"]["total"] == 5572 and stats["accounting"]["ok"]
    assert stats["commitpack"]["dropped"]["by_reason"]["multi_file"] > 1000
    assert stats["commitpack"]["kept"] > 2000


def test_a_run_does_not_import_ipython(tmp_path, git_repo):
    """Beam's IPython probe is answered without importing IPython (a fixed 1.5 s per process)."""
    repo = git_repo("tiny")
    repo.commit("Add the module", {"LICENSE": "MIT License\n", "m.py": "x = 1\n"})
    repo.commit("Change the value of x", {"m.py": "x = 2\n"})
    code = (
        "import sys; from beam_pipelines import commitpack; "
        f"rc = commitpack.main(['--source', 'git', '--repos', {str(repo.path)!r}, "
        f"'--output', {str(tmp_path / 'out')!r}]); "
        "print('ipython' if 'IPython' in sys.modules else 'no-ipython', rc)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split()[-2:] == ["no-ipython", "0"]


def test_a_full_disk_is_one_error_line(small_repo, tmp_path):
    """The output on a nearly full filesystem: one `error:` line naming it, no traceback."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8k", "tmpfs", str(disk)],
                           capture_output=True, text=True)  # fmt: skip
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs as a full disk here ({mount.stderr.strip()})")
    try:
        done = cli("--source", "git", "--repos", str(small_repo.path), "--output", str(disk / "o"))
        assert done.returncode == 2, done.stderr[-3000:]
        errors = [x for x in done.stderr.splitlines() if x.startswith("error:")]
        assert errors == [f"error: {disk / 'o'}: No space left on device; the output is left as "
                          "it was"], done.stderr[-3000:]  # fmt: skip
        assert "Traceback" not in done.stderr  # Beam's own error log is held back
        assert not (disk / "o").exists()
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)
