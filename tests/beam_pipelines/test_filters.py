"""Every CommitPack rule (after the reference SQL, scrape_github.py and the opt-out list) and the
language table: kept and dropped cases on concrete messages and paths."""

from __future__ import annotations

import pytest

from beam_pipelines import filters_commitpack as cp
from beam_pipelines.language_table import PROGRAMMING_LANGUAGES
from beam_pipelines.languages import (
    ENDING_TO_LANGUAGE,
    ft_extension_allowed,
    language_of,
    repo_language_selected,
)
from beam_pipelines.optout import OPT_OUT_LOGINS

OLD = "def parse(value):\n    return value.strip()\n"
NEW = "def parse(value, default=None):\n    return (value or default).strip()\n"


def cp_record(**kw) -> dict:
    rec = {
        "commit": "c" * 40,
        "old_file": "src/parser.py",
        "new_file": "src/parser.py",
        "old_contents": OLD,
        "new_contents": NEW,
        "subject": "Handle missing values in the input",
        "message": "Handle missing values in the input\n",
        "lang": "",
        "license": "mit",
        "repos": "a/b",
        "_parents": 1,
        "_changes": [
            {
                "status": "M",
                "old_mode": "100644",
                "new_mode": "100644",
                "old_path": "src/parser.py",
                "new_path": "src/parser.py",
            }
        ],
    }
    rec.update(kw)
    return cp.with_language(rec)


def change(status="M", old_mode="100644", new_mode="100644", old="a.py", new="a.py"):
    return {
        "status": status,
        "old_mode": old_mode,
        "new_mode": new_mode,
        "old_path": old,
        "new_path": new,
    }


def test_good_record_is_kept_by_commitpack():
    assert cp.commitpack_drop_reason(cp_record()) is None
    assert cp_record()["lang"] == "Python"


@pytest.mark.parametrize(
    ("reason", "overrides"),
    [
        ("merge_commit", {"_parents": 2}),
        ("no_file_changed", {"_changes": []}),
        ("multi_file", {"_changes": [change(), change(new="b.py", old="b.py")]}),
        ("multi_file", {"_changes": [change(), change("T", old="l.py", new="l.py")]}),
        ("file_added", {"_changes": [change("A", old_mode="000000")]}),
        ("file_deleted", {"_changes": [change("D", new_mode="000000")]}),
        ("file_renamed", {"_changes": [change("R", new="b.py")]}),
        ("no_in_place_change", {"_changes": [change("A", new="n.py"), change("D", old="o.py")]}),
        ("not_regular_file", {"_changes": [change(old_mode="120000", new_mode="120000")]}),
        ("not_regular_file", {"_changes": [change(old_mode="160000", new_mode="160000")]}),
        ("not_regular_file", {"_changes": [change("T", new_mode="120000")]}),
        ("license_not_allowed", {"license": "gpl-3.0"}),
        ("license_not_allowed", {"license": ""}),
        ("repo_language_not_selected", {"_repo_languages": frozenset({"Markdown", "YAML"})}),
        ("message_length", {"message": "fix\n"}),
        ("message_length", {"message": "x" * 10_000}),
        ("boring_message", {"message": "Initial commit"}),
        ("boring_message", {"message": "UPDATE README.md"}),
        ("boring_message", {"message": "Update Xconfig.yaml"}),  # LIKE: "_" is any character
        ("merge_message", {"message": "Merged the upstream changes\n"}),
        ("unknown_language", {"old_file": "a.zzz", "new_file": "a.zzz", "_changes": None}),
        ("unknown_language", {"old_file": "A.PY", "new_file": "A.PY", "_changes": None}),
        ("update_filename_message", {"message": "Update src/parser.py"}),
        ("nonsense_message", {"message": "please\n"}),
        ("nonsense_message", {"message": "lalala"}),
    ],
)
def test_commitpack_rule_drops(reason, overrides):
    rec = cp_record(**overrides)
    if rec.get("_changes") is None:
        rec.pop("_changes")
    assert cp.commitpack_drop_reason(rec) == reason


def test_rename_from_paths_when_no_git_structure():
    rec = cp_record(new_file="src/other.py")
    del rec["_changes"]
    assert cp.commitpack_drop_reason(rec) == "file_renamed"
    rec["new_file"] = rec["old_file"]
    assert cp.commitpack_drop_reason(rec) is None


def test_allowed_licenses_pass():
    for lic in cp.ALLOWED_LICENSES:
        assert cp.commitpack_drop_reason(cp_record(license=lic)) is None


def test_merge_duplicates_aggregates_repos():
    a, b = cp_record(repos="z/z"), cp_record(repos="a/a,m/m")
    merged = cp.merge_duplicates([a, b])
    assert merged["repos"] == "a/a,m/m,z/z"
    assert cp.dedup_key(a) == cp.dedup_key(b)


@pytest.mark.parametrize(
    "overrides",
    [
        # sql_5 counts in-place entries only: an added, deleted or renamed file beside one
        # modification does not make the commit multi-file
        {"_changes": [change(old="src/parser.py", new="src/parser.py"), change("A", new="n.py")]},
        {"_changes": [change("D", old="o.py"), change(old="src/parser.py", new="src/parser.py")]},
        {"_changes": [change(old="src/parser.py", new="src/parser.py"), change("R", new="z.py")]},
        # the boring list compares the whole message: git's final newline makes it not boring
        {"message": "Initial commit\n"},
        {"message": "update\n"},
        {"message": " Merge the parsers\n"},  # LIKE 'merge%' on the unstripped message
        {"message": "Update src/parser.py\n"},  # compared exactly, newline included
        {"message": "Please\n"},
        {"_repo_languages": frozenset({"Perl6", "Markdown"})},  # LIKE 'Perl%'
    ],
)
def test_commitpack_rule_keeps(overrides):
    assert cp.commitpack_drop_reason(cp_record(**overrides)) is None


def test_opt_out_after_dedup():
    login = sorted(OPT_OUT_LOGINS)[0]
    assert len(OPT_OUT_LOGINS) == 44 and "tomas" in OPT_OUT_LOGINS
    assert cp.is_opted_out(cp_record(repos=f"{login}/proj"))
    assert not cp.is_opted_out(cp_record(repos=f"{login}/proj,other/proj"))  # two repositories
    assert not cp.is_opted_out(cp_record(repos=f"{login.upper()}/proj"))  # case-sensitive
    assert not cp.is_opted_out(cp_record(repos="pallets/flask"))


def test_language_table():
    assert len(PROGRAMMING_LANGUAGES) == 358
    assert len(ENDING_TO_LANGUAGE) == 853
    assert language_of("lib/x.rs") == "Rust"
    assert language_of("lib/x.RS") is None  # case-sensitive endswith, as the reference
    assert language_of("src/X.C") == "C++" and language_of("src/x.c") == "C"
    assert language_of("include/x.h") == "C"
    assert language_of("build/Makefile") == "Makefile"
    assert language_of("docker/app.Dockerfile") == "Dockerfile"  # endswith, not a file name
    assert language_of("docs/index.rst.txt") == "reStructuredText"  # longest ending wins
    assert language_of("notes.txt") == "Text"
    assert language_of("run.sh.in") == "Shell"
    assert language_of(".travis.yml") == "YAML"
    assert language_of("README") is None


def test_repo_language_join():
    assert repo_language_selected({"Python", "Markdown"})
    assert repo_language_selected({"MATLAB"}) and repo_language_selected({"Perl 6"})
    assert not repo_language_selected({"Markdown", "YAML", "Text"})
    assert not repo_language_selected({"python"})  # LIKE is case-sensitive


@pytest.mark.parametrize(
    ("path", "lang", "allowed"),
    [
        ("src/app.py", "Python", True),
        ("src/app.pyw", "Python", False),  # restricted: only "py"
        ("include/x.h", "C", True),  # C keeps .c and .h
        ("src/x.hpp", "C++", False),  # C++ keeps only .cpp
        ("web/index.html", "HTML", True),
        ("run.sh", "Shell", True),
        ("run.bats", "Shell", False),  # shell keeps sh/bash/zsh/csh/slurm only
        ("conf/app.yaml", "YAML", True),  # unrestricted language: any extension
        ("web/app.tsx", "TypeScript", True),
        ("build/Makefile", "Makefile", False),  # no dot anywhere in the path
        ("pkg.d/Makefile", "Makefile", True),  # the whole path is split, as in the reference
    ],
)
def test_ft_extension_rule(path, lang, allowed):
    assert ft_extension_allowed(path, lang) is allowed
