"""The smoke run's demo repository: octojax's modules rebuilt one function per commit, by one
`git fast-import`, published whole (a leftover half-built directory is not reused)."""

import subprocess
from pathlib import Path

import octojax
from octojax.pipeline.demo_repo import build_demo_repo


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout  # fmt: skip


def test_history_rebuilds_the_modules_one_function_per_commit(tmp_path):
    (tmp_path / "demo.partial").mkdir()  # as an interrupted build leaves it
    (tmp_path / "demo.partial" / "junk").write_text("half-built")
    repo = build_demo_repo(tmp_path / "demo", max_commits=30)
    assert not (tmp_path / "demo.partial").exists() and not (repo / "junk").exists()
    subjects = _git(repo, "log", "--reverse", "--format=%s").splitlines()
    assert subjects[0] == "Initial commit with the license"
    assert sum(s.startswith("Add ") for s in subjects) == 30
    assert all(s.startswith(("Add ", "Create ")) for s in subjects[1:])
    # every commit changes exactly one file, and the working tree is the last commit's
    for sha in _git(repo, "log", "--format=%H").split()[:-1]:
        assert len(_git(repo, "show", "--format=", "--name-only", sha).split()) == 1
    assert _git(repo, "status", "--porcelain") == ""
    # a module whose every function was committed is the source file itself
    first = subjects[1].removeprefix("Create ")
    last_touched = _git(repo, "log", "-1", "--format=", "--name-only").strip()
    if first != last_touched:
        source = Path(octojax.__file__).parent.parent / first
        assert (repo / first).read_text() == source.read_text()
    assert build_demo_repo(tmp_path / "demo") == repo  # reused as it is
