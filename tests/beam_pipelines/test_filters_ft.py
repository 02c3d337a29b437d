"""CommitPackFT rules, decision for decision as commitpackft_filters1.py / _filters2.py: each rule
pinned on concrete subjects and paths, including the reference's own lists and edge cases."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from beam_pipelines import filters_ft as ft
from beam_pipelines.verbs import GOOD_START_PREFIXES, GOOD_STARTS_EN

OLD = "def parse(value):\n    return value.strip()\n"
NEW = "def parse(value, default=None):\n    return (value or default).strip()\n"
REFERENCE_F1 = Path("/work/.mirror/bigcode-project+octopack/repo")


def ft_record(**kw) -> dict:
    rec = {
        "commit": "c" * 40,
        "old_file": "src/util.py",
        "new_file": "src/util.py",
        "old_contents": OLD,
        "new_contents": NEW,
        "subject": "Handle missing values in the input",
        "message": "Handle missing values in the input\n",
        "lang": "Python",
        "license": "mit",
        "repos": "a/b",
    }
    rec.update(kw)
    return rec


def tokens(n: int):
    return lambda old, new: n


def decide(subject: str, n_tokens: int = 100, **kw) -> ft.FTDecision:
    return ft.ft_decide(ft_record(subject=subject, **kw), tokens(n_tokens))


def test_verb_list_is_the_reference_list():
    assert len(GOOD_STARTS_EN) == 257
    assert {"speed up", "deal with", "brush up", "plug "} <= GOOD_STARTS_EN
    assert {"test", "reword", "tag", "rebase", "prepend", "downgrade", "backup"} <= GOOD_STARTS_EN
    assert {"solve", "package", "purge"} <= GOOD_STARTS_EN
    assert not {"do", "get", "show", "ensure", "avoid", "skip", "sync"} & GOOD_STARTS_EN
    assert all(p.endswith(" ") for p in GOOD_START_PREFIXES)


@pytest.mark.skipif(not REFERENCE_F1.exists(), reason="no local copy of bigcode-project/octopack")
def test_verb_list_matches_the_reference_file():
    """When a mirror of the reference repository is on this machine, compare with its file."""
    text = subprocess.run(
        [
            "git",
            "-C",
            str(REFERENCE_F1),
            "show",
            "HEAD:dataset/commitpackft/commitpackft_filters1.py",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    block = re.search(r"GOOD_STARTS_EN = \{(.*?)\}\n", text).group(1)
    assert set(re.findall(r"'([^']*)'", block)) == set(GOOD_STARTS_EN)


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("Speed up the parser for long inputs", None),  # multi-word entry
        ("Deal with empty values in the parser", None),
        ("Brush up the wording of the parser errors", None),
        ("Reword the error message of the parser", None),
        ("Rebase the parser onto the new tokenizer", None),
        ("Prepend the base path to relative imports", None),
        ("Downgrade the dependency to the last release", None),
        ("Test the parser with empty input values", None),
        ("Ensure the parser handles empty input", "no_imperative_verb"),
        ("Skip empty values when parsing the input", "no_imperative_verb"),
        ("Fixes the parser for empty input values", "no_imperative_verb"),  # "fix " needed
        ("Speedup the parser for long input values", "no_imperative_verb"),
        ("Plug the leak in the parser for inputs", "no_imperative_verb"),  # entry is "plug  "
        ("Plug  the leak in the parser for inputs", "no_imperative_verb"),  # spaces collapsed
    ],
)
def test_start_verb(subject, reason):
    assert decide(subject).reason == reason


@pytest.mark.parametrize(
    ("subject", "new_file", "reason"),
    [
        ("Handle values in the parser module now", "src/parser.py", "file_name_in_subject"),
        ("Handle values in the Parser module now", "src/parser.py", None),  # case-sensitive
        ("Handle values in the tar module of it", "pkg/data.tar.gz", "file_name_in_subject"),
        ("Handle values in the data module of it", "pkg/data.tar.gz", None),  # [-2] is "tar"
        ("Handle the travis settings for the build", "ci/.travis.yml", "file_name_in_subject"),
        ("Handle the build settings of the project", "ci/.gitignore", "file_name_in_subject"),
        ("Handle the build settings of the project", "ci/Makefile.am", None),
    ],
)
def test_file_name_in_subject(subject, new_file, reason):
    rec = ft_record(subject=subject, new_file=new_file, old_file=new_file, lang="YAML")
    assert ft.ft_decide(rec, tokens(100)).reason == reason


@pytest.mark.parametrize(
    ("new_file", "lang", "reason"),
    [
        ("src/x.h", "C", None),
        ("src/x.hpp", "C++", "extension_not_allowed"),
        ("src/x.cpp", "C++", None),
        ("conf/app.yaml", "YAML", None),
        ("web/app.tsx", "TypeScript", None),
        ("scripts/run.bats", "Shell", "extension_not_allowed"),
    ],
)
def test_extension_rule(new_file, lang, reason):
    rec = ft_record(new_file=new_file, old_file=new_file, lang=lang)
    assert ft.ft_decide(rec, tokens(100)).reason == reason


@pytest.mark.parametrize(
    ("subject", "cleaned", "reason"),
    [
        ("[skip ci] Add a retry to the client", "Add a retry to the client", None),
        ("Add a retry to the client [skip ci]", "Add a retry to the client", None),
        ("Add a retry to the client [ci skip]", "Add a retry to the client", None),
        ("[docs] Add a section on retries here", "Add a section on retries here", None),
        ("client: Add a retry to the client", "Add a retry to the client", None),
        ("Add a retry to the client [WIP]", "Add a retry to the client", None),
        ("Add  a retry\tto the client", "Add a retry to the client", None),
        (
            "[Skip CI] Add a retry to the client",
            "[Skip CI] Add a retry to the client",
            "not_capitalised",
        ),
        ("Add retry [ci skip] [skip ci]", "Add retry", "cleaned_subject_words"),
        ("Add retries here [ci skip]", "Add retries here", "too_few_words"),
    ],
)
def test_subject_cleaning_both_passes(subject, cleaned, reason):
    decision = decide(subject)
    assert decision.reason == reason
    assert decision.record["subject"] == cleaned or reason in ("cleaned_subject_words",)


@pytest.mark.parametrize(
    ("subject", "reason"),
    [
        ("Bump certifi from 2022.9.24 to 2022.12.7", "downsampled_bump?"),
        ("Handle breaking changes of Werkzeug v1.0.0", None),  # version anywhere: kept
        ("Add support for the 2.0.1 config files", None),
        ("Add the Cherry picked from commit fix here", None),  # case-sensitive
        ("Add a fix, cherry picked from commit", "cherry_picked"),
        ("Revert f514fe31f0c6efd4a18cfdfe8871aab65138afa3 for now please", "contains_sha"),
        ("Revert F514FE31F0C6EFD4A18CFDFE8871AAB65138AFA3 for now please", None),  # lower only
        ("Fix the thing I broke last week", "first_person"),
        ("Fix what i've broken in the parser", "first_person"),
        ("Add fix thanks to Bob for the report", "thanks"),
        ("Add fix thanks to Bob, FOR the report", None),  # "for" is case-sensitive
        ("Fix the issues raised in code review", "code_review"),
        ("Fix that bug where things didn't work but now they should", "specific_subject"),
        ("Fix the crash reported in issue 159", "ticket_reference"),
        ("Fix the crash reported in Bug182 here", "ticket_reference"),
        ("Add the CDPCP settings to the parser", "cdpcp"),
        ("Add link to //codereview.example/123 here", "codereview_link"),
        ("Add parser support, work in progress", "work_in_progress"),
        ("Add wiper settings to the parser", "work_in_progress"),  # "wip" as a substring
        ("Add docs from https://example.org here", "url"),
        ("Add solution for two sum | LeetCode", "leetcode"),
        ("Update contributing notes for the parser", "bad_substring"),
        ("Merge branch 'main' into the parser", "bad_substring"),  # "merge" is a start verb
        ("Add auto commit of the parser output", "bad_substring"),
        ("Add the parser, Signed-off-by: Bob", "bad_substring"),
    ],
)
def test_subject_rules(subject, reason):
    got = decide(subject).reason
    if reason == "downsampled_bump?":  # dropped with p = 0.9 by a seeded coin
        expected = "downsampled_bump" if ft.keep_fraction("c" * 40) < 0.9 else None
        assert got == expected
    else:
        assert got == reason


def test_version_rule_is_anchored_at_the_start():
    assert ft.version_string({"subject": "v1.2.3-rc1 release notes"})
    assert not ft.version_string({"subject": "v1.2.3 release notes"})  # (?=$|\S) after it
    assert ft.version_string({"subject": "1.2.3"})
    assert not ft.version_string({"subject": "Release v1.2.3"})


def test_exact_and_hex_rules_compare_the_whole_lower_cased_subject():
    assert ft.bad_exact_subject({"subject": "Update README"})
    assert not ft.bad_exact_subject({"subject": "Update README "})  # not stripped
    assert ft.hex_only({"subject": "0239-2A41"})
    assert not ft.hex_only({"subject": "debug it"})


def test_bump_is_case_sensitive_and_deterministic():
    assert ft.is_bump_subject("Bump the version") and not ft.is_bump_subject("bump the version")
    assert ft.is_bump_subject("Set version to two") and ft.is_bump_subject("Update version file")
    commits = [f"{i:040x}" for i in range(2000)]
    dropped = sum(ft.keep_fraction(c) < 0.9 for c in commits)
    assert 1700 < dropped < 1900
    assert [ft.keep_fraction(c) for c in commits[:5]] == [ft.keep_fraction(c) for c in commits[:5]]
    assert ft.keep_fraction(commits[0], seed=1) != ft.keep_fraction(commits[0])


@pytest.mark.parametrize(
    ("overrides", "n_tokens", "reason"),
    [
        ({"old_contents": "x" * 50_000}, 100, "old_contents_too_long"),
        ({"old_contents": "x" * 49_999}, 100, None),
        ({"new_contents": ""}, 100, "new_contents_empty"),
        ({"new_contents": OLD}, 100, "contents_unchanged"),
        ({"subject": "Fix #12 in the parser now"}, 100, "hash_in_subject"),
        ({"subject": "Fix the parser now"}, 100, "subject_words"),  # needs five words
        ({"subject": "Fix a b c"}, 100, "subject_length"),
        ({"subject": "[x] Fix the parser now"}, 100, "cleaned_subject_words"),
        ({"subject": "handle missing values in the input"}, 100, "not_capitalised"),
        ({}, 49, "too_few_tokens"),
        ({}, 50, None),
        ({}, 768, None),
        ({}, 769, "too_many_tokens"),
    ],
)
def test_content_size_and_token_rules(overrides, n_tokens, reason):
    assert ft.ft_decide(ft_record(**overrides), tokens(n_tokens)).reason == reason


def test_reasons_are_unique_and_content_key_ignores_the_commit():
    assert len(set(ft.FT_REASONS)) == len(ft.FT_REASONS)
    a, b = ft_record(commit="a" * 40), ft_record(commit="b" * 40)
    assert ft.content_key(a) == ft.content_key(b)
    assert ft.content_key(a) != ft.content_key(ft_record(repos="other/repo"))
    assert ft.content_key(a) != ft.content_key(ft_record(new_contents=NEW + "\n"))
