"""End-to-end runs of ``python -m beam_pipelines.commitpack`` on the DirectRunner."""

from __future__ import annotations

import gzip
import json
import subprocess
from pathlib import Path

import pytest

from beam_pipelines import commitpack
from beam_pipelines.filters_ft import keep_fraction
from beam_pipelines.records import iter_tfrecord, list_shards, read_dataset, read_manifest
from beam_pipelines.schema import FIELDS
from beam_pipelines.sinks import language_slug

REPO_ROOT = Path(__file__).resolve().parents[2]


def run(argv: list[str]) -> int:
    return commitpack.main([*argv, "--runner", "DirectRunner"])


def load_stats(out: Path) -> dict:
    return json.loads((out / "stats.json").read_text())


def dead_letters(out: Path) -> list[dict]:
    rows = []
    for path in sorted((out / "deadletter").glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows


@pytest.fixture
def repos(alpha_repo, git_repo, tmp_path, license_texts):
    """alpha (MIT), its fork (same commits, other name), and a GPL repository."""
    alpha, expected = alpha_repo
    fork = tmp_path / "fork"
    subprocess.run(["git", "clone", "-q", str(alpha.path), str(fork)], check=True)
    gpl = git_repo("gpl")
    gpl.commit("Add license and code", {"COPYING": license_texts["gpl3"], "a.py": "x = 1\n"})
    gpl.commit("Change the value of x", {"a.py": "x = 2\n"})
    return alpha, expected, fork, gpl


def test_git_to_commitpack_and_ft(repos, tokenizer_dir, tmp_path):
    alpha, expected, fork, gpl = repos
    out = tmp_path / "out"
    rc = run(
        [
            "--source",
            "git",
            "--repos",
            f"{alpha.path} octo/alpha",
            f"{fork} someone/alpha-fork",
            str(gpl.path),
            "--output",
            str(out),
            "--stage",
            "ft",
            "--tokenizer",
            tokenizer_dir,
            "--max_file_bytes",
            "20000",
            "--records_per_shard",
            "2",
        ]
    )
    assert rc == 0
    stats = load_stats(out)
    n_alpha = len(expected)
    assert stats["input"]["total"] == 2 * n_alpha + 2
    assert stats["accounting"]["ok"] is True

    kept_cp = {
        s for s, label in expected.items() if label in ("ft", "cp") or label.startswith("cp:")
    }
    cp_records = list(read_dataset(out / "commitpack"))
    assert {r["commit"] for r in cp_records} == kept_cp
    assert all(r["repos"] == "octo/alpha,someone/alpha-fork" for r in cp_records)
    assert all(r["license"] == "mit" for r in cp_records)
    assert all(list(r) == list(FIELDS) for r in cp_records)

    cp_stats = stats["commitpack"]
    assert cp_stats["kept"] == len(kept_cp)
    assert cp_stats["dropped"]["by_reason"]["duplicate"] == len(kept_cp)
    assert cp_stats["dropped"]["by_reason"]["license_not_allowed"] == 1  # the GPL modification
    drop_labels = [lbl for lbl in expected.values() if ":" not in lbl and lbl not in ("ft", "cp")]
    for reason in set(drop_labels):
        want = 2 * drop_labels.count(reason) + (1 if reason == "no_in_place_change" else 0)
        assert cp_stats["dropped"]["by_reason"][reason] == want, reason
    assert cp_stats["kept_by_license"] == {"mit": len(kept_cp)}

    dead = dead_letters(out)
    assert sorted(d["reason"] for d in dead) == sorted(["binary", "invalid_utf8", "oversize"] * 2)
    assert stats["dead_letter"]["by_stage"]["source"]["by_reason"] == {
        "binary": 2,
        "invalid_utf8": 2,
        "oversize": 2,
    }

    bump = next(s for s, label in expected.items() if label == "cp")
    want_ft = {s for s, label in expected.items() if label == "ft"}
    if keep_fraction(bump) >= 0.9:
        want_ft.add(bump)
    ft_records = list(read_dataset(out / "commitpackft"))
    assert {r["commit"] for r in ft_records} == want_ft
    assert stats["commitpackft"]["input"] == len(kept_cp)
    assert stats["commitpackft"]["kept"] == len(want_ft)
    assert stats["commitpackft"]["dropped"]["by_reason"]["not_capitalised"] == 1
    assert stats["commitpackft"]["dropped"]["by_reason"]["too_few_tokens"] == 1

    manifest = read_manifest(out / "commitpack")
    assert manifest["num_records"] == len(kept_cp)
    assert manifest["num_shards"] == -(-len(kept_cp) // 2)
    assert [f["name"] for f in manifest["schema"]] == list(FIELDS)
    for shard in manifest["shards"]:
        assert len(list(iter_tfrecord(out / "commitpack" / shard["path"]))) == shard["num_records"]


def test_split_by_language_and_project_history(tokenizer_dir, tmp_path, alpha_repo):
    """The project's own git history plus alpha, split per language."""
    alpha, _ = alpha_repo
    out = tmp_path / "out"
    repos_file = tmp_path / "repos.txt"
    repos_file.write_text(f"# repositories\n{REPO_ROOT} octojax/octojax\n{alpha.path} octo/alpha\n")
    n_project = int(
        subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-list", "--count", "HEAD"],
            capture_output=True,
            check=False,
        ).stdout
        or 0
    )
    assert (
        run(
            [
                "--source",
                "git",
                "--repos_file",
                str(repos_file),
                "--output",
                str(out),
                "--split_by_language",
                "--max_file_bytes",
                "20000",
            ]
        )
        == 0
    )
    stats = load_stats(out)
    assert stats["accounting"]["ok"]
    assert stats["input"]["total"] == n_project + len(alpha_repo[1])
    manifest = read_manifest(out / "commitpack")
    langs = {s["lang"] for s in manifest["shards"]}
    # alpha's languages; the project's own history adds whatever it holds (Markdown, YAML, ...)
    assert {"Python", "JavaScript"} <= langs
    assert all(s["path"].split("/")[0] == language_slug(s["lang"]) for s in manifest["shards"])
    py = list(read_dataset(out / "commitpack", languages=["python"]))
    assert py and all(r["lang"] == "Python" for r in py)
    assert len(list_shards(out / "commitpack", languages=["Python"])) == 1
    assert manifest["num_records_by_language"] == stats["commitpack"]["kept_by_language"]


def test_jsonl_source_with_bad_lines(tokenizer_dir, tmp_path):
    good = {
        "commit": "a" * 40,
        "old_file": "src/m.py",
        "new_file": "src/m.py",
        "old_contents": "def f():\n    return 1\n",
        "new_contents": "def f():\n    return 2\n",
        "subject": "Return two from the helper function",
        "message": "Return two from the helper function\n",
        "lang": "Python",
        "license": "mit",
        "repos": "x/y",
    }
    dup = {**good, "repos": "z/w"}
    gpl = {**good, "commit": "b" * 40, "license": "gpl-3.0"}
    lines = [
        json.dumps(good).encode(),
        json.dumps(dup).encode(),
        json.dumps(gpl).encode(),
        b"{not json",
        b"[1, 2]",
        json.dumps({k: v for k, v in good.items() if k != "new_contents"}).encode(),
        json.dumps({**good, "old_contents": 5}).encode(),
        b'{"commit": "\xff\xfe"}',
        json.dumps({**good, "commit": "c" * 40, "old_contents": "x" * 3000}).encode(),
    ]
    plain = tmp_path / "part1.jsonl"
    plain.write_bytes(b"\n".join(lines[:5]) + b"\n")
    with gzip.open(tmp_path / "part2.jsonl.gz", "wb") as fileobj:
        fileobj.write(b"\n".join(lines[5:]) + b"\n")
    out = tmp_path / "out"
    assert (
        run(
            [
                "--source",
                "jsonl",
                "--jsonl",
                str(tmp_path / "*.jsonl*"),
                "--output",
                str(out),
                "--max_record_bytes",
                "2000",
            ]
        )
        == 0
    )
    stats = load_stats(out)
    assert stats["input"] == {"total": 9, "by_source": {"jsonl": 9}}
    assert stats["dead_letter"]["by_stage"]["source"]["by_reason"] == {
        "malformed_json": 2,
        "missing_field": 1,
        "invalid_type": 1,
        "invalid_utf8": 1,
        "oversize": 1,
    }
    assert stats["commitpack"]["dropped"]["by_reason"] == {"duplicate": 1, "license_not_allowed": 1}
    records = list(read_dataset(out / "commitpack"))
    assert len(records) == 1 and records[0]["repos"] == "x/y,z/w"
    dead = dead_letters(out)
    assert len(dead) == 6
    assert all(d["source"].endswith((".jsonl", ".jsonl.gz")) for d in dead)
    utf8 = next(d for d in dead if d["reason"] == "invalid_utf8")
    assert "raw_base64" in utf8  # nothing is lost


def test_ft_stage_refuses_without_tokenizer(tmp_path, capsys):
    with pytest.raises(SystemExit) as err:
        run(
            [
                "--source",
                "git",
                "--repos",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--stage",
                "ft",
            ]
        )
    assert err.value.code == 2
    assert "needs --tokenizer" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run(
            [
                "--source",
                "git",
                "--repos",
                str(tmp_path),
                "--output",
                str(tmp_path / "o"),
                "--stage",
                "ft",
                "--tokenizer",
                str(tmp_path / "nowhere"),
            ]
        )
    assert "tokenizer not found" in capsys.readouterr().err


def test_existing_output_needs_overwrite(tmp_path, git_repo, capsys):
    repo = git_repo("r")
    repo.commit("Add module", {"m.py": "a = 1\n"})
    out = tmp_path / "out"
    assert run(["--source", "git", "--repos", str(repo.path), "--output", str(out)]) == 0
    assert run(["--source", "git", "--repos", str(repo.path), "--output", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (
        run(["--source", "git", "--repos", str(repo.path), "--output", str(out), "--overwrite"])
        == 0
    )
    assert load_stats(out)["input"]["total"] == 1


def _dataset_files(out: Path) -> dict[str, object]:
    """Every shard's records (as a sorted list), every manifest without its time, stats.json."""
    files: dict[str, object] = {}
    for path in sorted(out.rglob("*")):
        rel = str(path.relative_to(out))
        if path.suffix == ".tfrecord":
            files[rel] = sorted(json.dumps(r, sort_keys=True) for r in iter_tfrecord(path))
        elif path.name == "manifest.json":
            files[rel] = {k: v for k, v in json.loads(path.read_text()).items() if k != "created"}
        elif path.name == "stats.json":
            files[rel] = {k: v for k, v in json.loads(path.read_text()).items() if k != "run"}
    return files


@pytest.mark.parametrize("split", [False, True])
def test_shard_writers_write_the_same_files(repos, tokenizer_dir, tmp_path, split):
    """per_group (the local default) and per_shard (Dataflow's) write the same shards, records,
    manifests and stats, empty shards included."""
    alpha, _, fork, gpl = repos
    outputs = {}
    for writer in ("per_group", "per_shard"):
        out = tmp_path / writer
        argv = ["--source", "git", "--repos", f"{alpha.path} octo/alpha", f"{fork} x/fork"]
        argv += [str(gpl.path), "--output", str(out), "--stage", "ft", "--tokenizer"]
        argv += [tokenizer_dir, "--records_per_shard", "2", "--shard_writer", writer]
        assert run(argv + (["--split_by_language"] if split else [])) == 0
        outputs[writer] = _dataset_files(out)
    per_group, per_shard = outputs["per_group"], outputs["per_shard"]
    assert per_group == per_shard
    shards = [k for k in per_group if k.endswith(".tfrecord")]
    assert len(shards) >= 3
    assert (
        sum(len(per_group[k]) for k in shards if k.startswith("commitpack/"))
        == (per_group["commitpack/manifest.json"]["num_records"])
    )


@pytest.mark.parametrize(
    ("choice", "runner", "want"),
    [
        ("auto", "DirectRunner", "per_group"),
        ("auto", "DataflowRunner", "per_shard"),
        ("per_shard", "DirectRunner", "per_shard"),
        ("per_group", "DataflowRunner", "per_group"),
    ],
)
def test_shard_writer_choice(choice, runner, want):
    options = commitpack.pipeline_options(["--runner", runner])
    assert commitpack.resolve_shard_writer(choice, options) == want


def test_group_writer_writes_empty_shards_and_hash_order(tmp_path):
    """Three records, one per shard wanted: two hash to the same shard, so one shard is empty
    and still written; each record is in the shard ``shard_index`` names."""
    from beam_pipelines.sinks import encode_for_shard, shard_index, write_group_shards

    def record(i: int) -> dict[str, str]:
        return {f: (f"c{i}" if f == "commit" else f"{f} {i}") for f in FIELDS}

    candidates = [record(i) for i in range(50)]
    first = candidates[0]
    twin = next(r for r in candidates[1:] if shard_index(r, 3) == shard_index(first, 3))
    records = [
        first,
        twin,
        next(r for r in candidates if shard_index(r, 3) != shard_index(first, 3)),
    ]
    values = [encode_for_shard(r) for r in records]
    infos = list(write_group_shards(str(tmp_path), "commitpack", "all", values, 1))
    assert [i["path"] for i in infos] == [f"commitpack-0000{k}-of-00003.tfrecord" for k in range(3)]
    assert sorted(i["num_records"] for i in infos) == [0, 1, 2]
    for k, info in enumerate(infos):
        got = list(iter_tfrecord(tmp_path / info["path"]))
        assert got == sorted(
            (r for r in records if shard_index(r, 3) == k), key=lambda r: shard_index(r, 2**64)
        )
