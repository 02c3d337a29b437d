"""Git mining over real repositories with scripted histories (no Beam)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from beam_pipelines import filters_commitpack as cp
from beam_pipelines import filters_ft as ft
from beam_pipelines.git_mining import (
    BlobReader,
    RepoSpec,
    default_repo_name,
    detect_repo_license,
    mine_repository,
)
from beam_pipelines.schema import FIELDS
from beam_pipelines.tokenization import TokenCounter

REPO_ROOT = Path(__file__).resolve().parents[2]


def outcome_of(kind: str, payload: dict, counter: TokenCounter) -> str:
    """The expected-outcome label (see the alpha_repo fixture) of one mined item."""
    if kind == "dead":
        return f"dead:{payload['reason']}"
    record = cp.with_language(payload)
    reason = cp.commitpack_drop_reason(record)
    if reason is not None:
        return reason
    ft_reason = ft.ft_drop_reason(record, counter.count_pair)
    return "ft" if ft_reason is None else f"cp:{ft_reason}"


def expected_label(label: str, sha: str) -> str:
    if label == "cp":  # the bump subject: dropped with probability 0.9 by a hash of the sha
        return "cp:downsampled_bump" if ft.keep_fraction(sha) < 0.9 else "ft"
    return label


def test_scripted_history_gives_expected_outcomes(alpha_repo, tokenizer_dir):
    repo, expected = alpha_repo
    counter = TokenCounter(tokenizer_dir)
    items = list(mine_repository(RepoSpec(str(repo.path), "octo/alpha"), max_file_bytes=20_000))
    got = {}
    for kind, payload in items:
        assert payload["commit"] not in got
        got[payload["commit"]] = outcome_of(kind, payload, counter)
    want = {sha: expected_label(label, sha) for sha, label in expected.items()}
    assert got == want
    assert len(items) == len(expected)


def test_kept_record_contents_and_fields(alpha_repo):
    repo, expected = alpha_repo
    sha = next(s for s, label in expected.items() if label == "ft")
    items = dict(
        (p["commit"], (k, p)) for k, p in mine_repository(RepoSpec(str(repo.path), "octo/alpha"))
    )
    kind, record = items[sha]
    assert kind == "commit"
    assert set(FIELDS) <= set(record)
    assert record["old_file"] == record["new_file"] == "src/util.py"
    assert record["old_contents"].startswith("def parse(value):")
    assert "default=None" in record["new_contents"]
    assert record["subject"] == "Handle missing values when parsing input"
    assert record["message"].startswith("Handle missing values when parsing input\n\nReturn")
    assert record["license"] == "mit"
    assert record["repos"] == "octo/alpha"
    assert record["_parents"] == 1
    assert cp.with_language(record)["lang"] == "Python"


def test_dead_letters_name_the_problem(alpha_repo):
    repo, _ = alpha_repo
    dead = [
        p
        for k, p in mine_repository(RepoSpec(str(repo.path), "a"), max_file_bytes=20_000)
        if k == "dead"
    ]
    by_reason = {d["reason"]: d for d in dead}
    assert set(by_reason) == {"binary", "invalid_utf8", "oversize"}
    assert by_reason["binary"]["path"] == "data.bin"
    assert by_reason["invalid_utf8"]["path"] == "legacy.py"
    assert "30000 bytes (limit 20000)" in by_reason["oversize"]["detail"]
    assert all(d["commit"] and d["source"].startswith("git:") for d in dead)


def test_unreadable_repository_is_one_dead_letter(tmp_path):
    items = list(mine_repository(RepoSpec(str(tmp_path / "missing"), "missing")))
    assert [(k, p["reason"]) for k, p in items] == [("dead", "repo_unreadable")]
    (tmp_path / "plain").mkdir()
    items = list(mine_repository(RepoSpec(str(tmp_path / "plain"), "plain")))
    assert [(k, p["reason"]) for k, p in items] == [("dead", "repo_unreadable")]
    assert "plain" in items[0][1]["detail"]


def test_empty_repository_yields_nothing(git_repo):
    repo = git_repo("empty")
    assert list(mine_repository(RepoSpec(str(repo.path), "empty"))) == []


def test_clone_url_is_mined_like_the_local_path(alpha_repo):
    repo, expected = alpha_repo
    url = f"file://{repo.path}"
    items = list(mine_repository(RepoSpec.parse(f"{url} octo/alpha"), max_file_bytes=20_000))
    assert {p["commit"] for _, p in items} == set(expected)
    assert all(p.get("repos", "octo/alpha") == "octo/alpha" for _, p in items)


def test_non_utf8_message_is_dead_letter(git_repo):
    repo = git_repo("enc")
    repo.commit("Add module", {"m.py": "a = 1\n"})
    repo.write("m.py", "a = 2\n")
    repo.git("add", "-A")
    # `git commit` would re-encode the message as Latin-1 -> UTF-8; write the object directly
    tree = repo.git("write-tree").strip()
    parent = repo.head()
    ident = "Dev <dev@example.com> 1577836800 +0000"
    body = f"tree {tree}\nparent {parent}\nauthor {ident}\ncommitter {ident}\n\n".encode()
    body += "Change the value caf\xe9\n".encode("latin-1")
    sha = (
        subprocess.run(
            ["git", "-C", str(repo.path), "hash-object", "-t", "commit", "-w", "--stdin"],
            input=body,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .strip()
    )
    repo.git("update-ref", "HEAD", sha)
    items = list(mine_repository(RepoSpec(str(repo.path), "enc")))
    assert [p.get("reason") for k, p in items if k == "dead"] == ["invalid_utf8"]


@pytest.mark.parametrize(
    ("location", "name"),
    [
        ("https://github.com/bigcode-project/octopack.git", "bigcode-project/octopack"),
        ("git@github.com:owner/repo.git", "owner/repo"),
        ("/srv/git/project.git", "project"),
        ("/srv/git/project/", "project"),
    ],
)
def test_default_repo_names(location, name):
    assert default_repo_name(location) == name


def test_license_detection_per_repository(git_repo, license_texts):
    APACHE_TEXT, GPL3_TEXT, MIT_TEXT = (license_texts[k] for k in ("apache", "gpl3", "mit"))

    gpl = git_repo("gpl")
    gpl.commit("Add license", {"COPYING": GPL3_TEXT})
    assert detect_repo_license(str(gpl.path)) == "gpl-3.0"
    dual = git_repo("dual")
    dual.commit("Add licenses", {"LICENSE-APACHE": APACHE_TEXT, "LICENSE-MIT": MIT_TEXT})
    assert detect_repo_license(str(dual.path)) == "apache-2.0"
    md = git_repo("md")
    md.commit("Add license", {"LICENSE.md": "## " + MIT_TEXT})
    assert detect_repo_license(str(md.path)) == "mit"
    none = git_repo("none")
    none.commit("Add code", {"a.py": "x = 1\n", "LICENSE": "All rights reserved.\n"})
    assert detect_repo_license(str(none.path)) is None
    assert detect_repo_license(str(git_repo("empty").path)) is None


def _commit_count(path: Path) -> int:
    out = subprocess.run(
        ["git", "-C", str(path), "rev-list", "--count", "HEAD"], capture_output=True, check=False
    )
    return int(out.stdout) if out.returncode == 0 else 0


def test_project_history_is_mined(tokenizer_dir):
    """This repository's own history as a real input: every commit is accounted for."""
    if not (REPO_ROOT / ".git").exists() or _commit_count(REPO_ROOT) == 0:
        pytest.skip(f"{REPO_ROOT} has no git history (not a clone, or no commits yet)")
    n = _commit_count(REPO_ROOT)
    counter = TokenCounter(tokenizer_dir)
    labels = [
        outcome_of(k, p, counter) for k, p in mine_repository(RepoSpec(str(REPO_ROOT), "octojax"))
    ]
    assert len(labels) == n  # exactly one outcome per commit of `git rev-list HEAD`
    assert all(label for label in labels)


def test_blob_reader_reads_several_blobs_with_one_request(git_repo):
    """read_many answers in request order; a skipped oversize blob does not shift the others."""
    repo = git_repo("blobs")
    repo.commit("Add files", {"small.txt": "tiny\n", "big.txt": "x" * 5000 + "\n"})
    shas = [repo.git("rev-parse", f"HEAD:{name}").strip() for name in ("small.txt", "big.txt")]
    blobs = BlobReader(str(repo.path))
    try:
        answers = blobs.read_many([shas[0], shas[1], shas[0]], max_bytes=100)
        assert answers == [(b"tiny\n", 5), (None, 5001), (b"tiny\n", 5)]
        assert blobs.read(shas[1], max_bytes=10_000) == (b"x" * 5000 + b"\n", 5001)
    finally:
        blobs.close()


def test_blob_stream_larger_than_the_pipes_and_early_close(git_repo):
    """Requests and answers far beyond a pipe's buffer stream without deadlock (a thread writes
    the requests while answers are read); closing mid-stream kills git instead of hanging."""
    repo = git_repo("stream")
    repo.commit("Add a file", {"a.txt": "y" * 3000 + "\n"})
    sha = repo.git("rev-parse", "HEAD:a.txt").strip()
    blobs = BlobReader(str(repo.path))
    try:
        answers = list(blobs.stream([sha] * 4000, max_bytes=10_000))  # ~12 MB of answers
        assert len(answers) == 4000 and set(answers) == {(b"y" * 3000 + b"\n", 3001)}
        partial = blobs.stream([sha] * 4000, max_bytes=10_000)
        assert next(partial)[1] == 3001
    finally:
        blobs.close()  # 3,999 answers unread: must return, not wait on git
    assert blobs.proc.returncode is not None
