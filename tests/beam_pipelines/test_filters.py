"""Every CommitPack and CommitPackFT rule: one kept and one dropped case each."""

from __future__ import annotations

import pytest

from beam_pipelines import filters_commitpack as cp
from beam_pipelines import filters_ft as ft
from beam_pipelines.languages import (
    EXTENSION_TO_LANGUAGE,
    LANGUAGE_EXTENSIONS,
    has_typical_extension,
    language_of,
)
from beam_pipelines.verbs import IMPERATIVE_VERBS

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
        ("file_added", {"_changes": [change("A", old_mode="000000")]}),
        ("file_deleted", {"_changes": [change("D", new_mode="000000")]}),
        ("file_renamed", {"_changes": [change("R", new="b.py")]}),
        ("not_regular_file", {"_changes": [change(old_mode="120000", new_mode="120000")]}),
        ("not_regular_file", {"_changes": [change(old_mode="160000", new_mode="160000")]}),
        ("license_not_allowed", {"license": "gpl-3.0"}),
        ("license_not_allowed", {"license": ""}),
        ("message_length", {"message": "fix"}),
        ("message_length", {"message": "x" * 10_000}),
        ("boring_message", {"message": "Initial commit\n"}),
        ("boring_message", {"message": "Update README.md"}),
        ("merge_message", {"message": "Merged the upstream changes\n"}),
        ("unknown_language", {"old_file": "a.zzz", "new_file": "a.zzz", "_changes": None}),
        ("update_filename_message", {"message": "Update src/parser.py\n"}),
        ("nonsense_message", {"message": "please"}),
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


def test_language_table():
    assert len(LANGUAGE_EXTENSIONS) >= 300
    assert len(EXTENSION_TO_LANGUAGE) > 700
    assert language_of("lib/x.RS") == "Rust"
    assert language_of("Makefile") == "Makefile"
    assert language_of("src/a.hpp") == "C++"
    assert language_of("README") is None
    assert has_typical_extension("x.py", "Python")
    assert not has_typical_extension("x.pyw", "Python")
    assert has_typical_extension("x.cpp", "C++") and not has_typical_extension("x.cc", "C++")


# --- CommitPackFT -------------------------------------------------------------------------------


def fake_tokens(n: int):
    return lambda old, new: n


def ft_record(**kw) -> dict:
    rec = cp_record(**kw)
    rec.pop("_parents"), rec.pop("_changes")
    return rec


def test_good_record_is_kept_by_ft():
    assert ft.ft_drop_reason(ft_record(), fake_tokens(100)) is None


@pytest.mark.parametrize(
    ("reason", "overrides", "tokens"),
    [
        ("old_contents_too_long", {"old_contents": "x" * 50_000}, 100),
        ("new_contents_empty", {"new_contents": ""}, 100),
        ("contents_unchanged", {"new_contents": OLD}, 100),
        ("hash_in_subject", {"subject": "Handle missing values (see #12)"}, 100),
        ("atypical_extension", {"old_file": "a.pyw", "new_file": "a.pyw", "lang": "Python"}, 100),
        ("file_name_in_subject", {"subject": "Handle missing values in the Parser"}, 100),
        ("subject_length", {"subject": "Fix a b c"}, 100),
        ("subject_length", {"subject": "Fix " + "x" * 1000}, 100),
        ("subject_words", {"subject": "Handle missing-values-in-input"}, 100),
        ("cleaned_subject_length", {"subject": "[core] Fix x y z [wip]"}, 100),
        ("cleaned_subject_words", {"subject": "fix(core): Handle missing values now"}, 100),
        ("not_capitalised", {"subject": "handle missing values in the input"}, 100),
        ("too_few_tokens", {}, 49),
        ("too_many_tokens", {}, 769),
        ("no_imperative_verb", {"subject": "Missing values are handled now"}, 100),
        ("no_imperative_verb", {"subject": "Handled missing values in input"}, 100),
        ("bad_substring", {"subject": "Add what i think is the fix"}, 100),
        ("bad_substring", {"subject": "Add the docs, see https://example.com"}, 100),
        ("bad_substring", {"subject": "Add tests thanks to Bob for the report"}, 100),
        ("version_string", {"subject": "Release the package as v1.2.3"}, 100),
        ("contains_sha", {"subject": "Revert the change " + "ab" * 20 + " today"}, 100),
        ("ticket_reference", {"subject": "Fix the crash reported in issue 42"}, 100),
        ("ticket_reference", {"subject": "Fix the crash from Bug12 again"}, 100),
    ],
)
def test_ft_rule_drops(reason, overrides, tokens):
    assert ft.ft_drop_reason(ft_record(**overrides), fake_tokens(tokens)) == reason


@pytest.mark.parametrize(
    ("reason", "overrides", "tokens"),
    [
        ("old_contents_too_long", {"old_contents": "x" * 49_999}, 100),
        ("hash_in_subject", {"subject": "Handle missing values in the input"}, 100),
        ("file_name_in_subject", {"subject": "Handle missing values in pars"}, 100),
        ("subject_words", {"subject": "Handle all the missing values"}, 100),
        (
            "cleaned_subject_words",
            {"subject": "[core] Handle all the missing values [skip ci]"},
            100,
        ),
        ("too_few_tokens", {}, 50),
        ("too_many_tokens", {}, 768),
        ("bad_exact_subject", {"subject": "Update the readme with examples"}, 100),
        ("version_string", {"subject": "Add support for python 3 in setup"}, 100),
        ("ticket_reference", {"subject": "Fix the issue with parsing"}, 100),
    ],
)
def test_ft_rule_keeps_borderline(reason, overrides, tokens):
    assert ft.ft_drop_reason(ft_record(**overrides), fake_tokens(tokens)) is None, reason


def test_bad_exact_subject_rule():
    # every listed subject has < 5 words, so the word-count rule drops them first in the pipeline
    assert ft.bad_exact_subject({"subject": "Update README.md"})
    assert ft.bad_exact_subject({"subject": "updated readme"})
    assert not ft.bad_exact_subject({"subject": "Update readme with install steps"})


def test_hex_only_rule():
    assert ft.hex_only({"subject": "deadbeef-cafe"})
    assert not ft.hex_only({"subject": "Add deadbeef"})


def test_clean_subject():
    assert ft.clean_subject("[core] Handle values [skip ci]") == "Handle values"
    assert ft.clean_subject("fix(parser): Handle values [ci skip] [#12]") == "Handle values"
    assert ft.clean_subject("Handle values") == "Handle values"
    assert ft.clean_subject("[skip ci]") == ""
    decision = ft.ft_decide(
        ft_record(subject="[api] Handle missing values in input [v2]"), fake_tokens(100)
    )
    assert decision.reason is None
    assert decision.record["subject"] == "Handle missing values in input"


def test_bump_downsampling_is_deterministic_and_about_ninety_percent():
    commits = [f"{i:040x}" for i in range(2000)]
    subject = "Bump the requests dependency to the latest"
    drops = [
        ft.ft_drop_reason(ft_record(commit=c, subject=subject), fake_tokens(100)) for c in commits
    ]
    assert set(drops) == {None, "downsampled_bump"}
    rate = drops.count("downsampled_bump") / len(drops)
    assert 0.87 < rate < 0.93
    again = [
        ft.ft_drop_reason(ft_record(commit=c, subject=subject), fake_tokens(100)) for c in commits
    ]
    assert drops == again
    other_seed = [
        ft.ft_drop_reason(ft_record(commit=c, subject=subject), fake_tokens(100), 7)
        for c in commits
    ]
    assert other_seed != drops
    not_bump = ft_record(commit=commits[0], subject="Handle missing values in the input")
    assert ft.ft_drop_reason(not_bump, fake_tokens(100)) is None


def test_verbs_and_reasons():
    assert len(IMPERATIVE_VERBS) >= 280
    assert {"add", "fix", "remove", "update", "refactor", "implement"} <= IMPERATIVE_VERBS
    assert len(set(ft.FT_REASONS)) == len(ft.FT_REASONS)


def test_token_counter_counts_eos_as_one_token(tokenizer_dir):
    from beam_pipelines.tokenization import TokenCounter

    counter = TokenCounter(tokenizer_dir)
    assert counter.count("<|endoftext|>") == 1
    assert counter.count_pair("a", "b") == counter.count("a") + 1 + counter.count("b")
    assert counter.count_pair(OLD, NEW) > 20


def test_token_counter_errors(tmp_path):
    from beam_pipelines.tokenization import TokenCounter, TokenizerNotFoundError

    with pytest.raises(TokenizerNotFoundError, match="tokenizer.json"):
        TokenCounter(str(tmp_path))
    bad = tmp_path / "tokenizer.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a Hugging Face tokenizer"):
        TokenCounter(str(tmp_path))
