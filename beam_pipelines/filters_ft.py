"""CommitPackFT filters (the instruction-quality subset), each a small pure function with a reason.

All message checks apply to ``subject``. :func:`ft_drop_reason` runs the rules in the documented
order; the subject is cleaned ("[skip ci]", leading "[tag]" / "scope:" tokens, trailing "[tag]")
part-way through and the cleaned subject is what later rules see and what the output record holds.
The 0.9 down-sampling of version bumps is deterministic: a seeded hash of the commit id.
"""

from __future__ import annotations

import hashlib
import posixpath
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beam_pipelines.languages import has_typical_extension
from beam_pipelines.verbs import IMPERATIVE_VERBS

Record = Mapping[str, Any]
TokenCount = Callable[[str, str], int]

MAX_OLD_CONTENTS_CHARS = 50_000  # exclusive
MIN_SUBJECT_CHARS, MAX_SUBJECT_CHARS = 10, 1000  # both exclusive
MIN_SUBJECT_WORDS, MAX_SUBJECT_WORDS = 4, 1000  # both exclusive
MIN_TOKENS, MAX_TOKENS = 50, 768  # both inclusive
BUMP_DROP_PROBABILITY = 0.9
DEFAULT_SEED = 0

BAD_EXACT_SUBJECTS: frozenset[str] = frozenset(
    {
        "readme",
        "update",
        "dummy",
        "updated",
        "test",
        "update readme",
        "update readme.md",
        "updated readme.md",
        "updated readme",
    }
)
BAD_SUBSTRINGS: tuple[str, ...] = (
    "auto commit",
    "update contributing",
    "<?xml",
    "merge branch",
    "merge pull request",
    "signed-off-by",
    "cherry picked from commit",
    " i ",
    "i've",
    "i'm",
    "code review",
    "work in progress",
    "wip",
    "https://",
    "http://",
    "| leetcode",
)
VERSION_RE = re.compile(r"(?:v)?\d+\.\d+\.\d+(?=$|\S)", re.IGNORECASE)
HEX_ONLY_RE = re.compile(r"^[a-f0-9]+(?:-[a-f0-9]+)*$", re.IGNORECASE)
SHA_RE = re.compile(r"\b[a-f0-9]{40}\b", re.IGNORECASE)
TICKET_RE = re.compile(r"(?:issue|bug|feature)\s*\d+", re.IGNORECASE)
SKIP_CI_RE = re.compile(r"\[(?:skip ci|ci skip)\]", re.IGNORECASE)
BUMP_PREFIXES: tuple[str, ...] = ("bump", "set version", "update version")


# --- rules on the raw record -----------------------------------------------------------------------


def old_contents_too_long(record: Record) -> bool:
    return len(record["old_contents"]) >= MAX_OLD_CONTENTS_CHARS


def new_contents_empty(record: Record) -> bool:
    return not record["new_contents"]


def contents_unchanged(record: Record) -> bool:
    return record["old_contents"] == record["new_contents"]


def hash_in_subject(record: Record) -> bool:
    return "#" in record["subject"]


def atypical_extension(record: Record) -> bool:
    return not has_typical_extension(record["new_file"], record["lang"])


def file_name_in_subject(record: Record) -> bool:
    """The file's stem (name without extension) appears in the subject (case-insensitive)."""
    name = posixpath.basename(record["new_file"])
    stem = name.split(".", 1)[0] if not name.startswith(".") else name
    return bool(stem) and stem.lower() in record["subject"].lower()


def subject_length_out_of_range(record: Record) -> bool:
    return not MIN_SUBJECT_CHARS < len(record["subject"]) < MAX_SUBJECT_CHARS


def subject_words_out_of_range(record: Record) -> bool:
    return not MIN_SUBJECT_WORDS < len(record["subject"].split()) < MAX_SUBJECT_WORDS


# --- subject cleaning -----------------------------------------------------------------------------


def clean_subject(subject: str) -> str:
    """Strip "[skip ci]"/"[ci skip]", a leading "[...]" token, a leading token ending in ":" and
    a trailing "[...]" token."""
    text = re.sub(r"\s+", " ", SKIP_CI_RE.sub(" ", subject)).strip()
    tokens = text.split(" ") if text else []
    if tokens and tokens[0].startswith("[") and tokens[0].endswith("]"):
        tokens = tokens[1:]
    if tokens and tokens[0].endswith(":"):
        tokens = tokens[1:]
    if tokens and tokens[-1].startswith("[") and tokens[-1].endswith("]"):
        tokens = tokens[:-1]
    return " ".join(tokens)


# --- rules on the cleaned subject -----------------------------------------------------------------


def not_capitalised(record: Record) -> bool:
    subject = record["subject"]
    return not subject or not subject[0].isupper()


def no_imperative_verb(record: Record) -> bool:
    lowered = record["subject"].lower()
    first, sep, _ = lowered.partition(" ")
    return not sep or first not in IMPERATIVE_VERBS


def bad_exact_subject(record: Record) -> bool:
    return record["subject"].strip().lower() in BAD_EXACT_SUBJECTS


def bad_substring(record: Record) -> bool:
    lowered = record["subject"].lower()
    if any(s in lowered for s in BAD_SUBSTRINGS):
        return True
    return "thanks to" in lowered and "for" in lowered


def version_string(record: Record) -> bool:
    return VERSION_RE.search(record["subject"]) is not None


def hex_only(record: Record) -> bool:
    return HEX_ONLY_RE.match(record["subject"]) is not None


def contains_sha(record: Record) -> bool:
    return SHA_RE.search(record["subject"]) is not None


def ticket_reference(record: Record) -> bool:
    return TICKET_RE.search(record["subject"]) is not None


def keep_fraction(commit: str, seed: int = DEFAULT_SEED) -> float:
    """A deterministic number in [0, 1) from (seed, commit): the down-sampling coin."""
    digest = hashlib.sha256(f"{seed}:{commit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_bump_subject(subject: str) -> bool:
    return subject.lower().startswith(BUMP_PREFIXES)


def downsampled_bump(record: Record, seed: int = DEFAULT_SEED) -> bool:
    """Subjects starting with Bump / Set version / Update version are dropped with p = 0.9."""
    return (
        is_bump_subject(record["subject"])
        and keep_fraction(record["commit"], seed) < BUMP_DROP_PROBABILITY
    )


# --- the whole stage ------------------------------------------------------------------------------

PRE_CLEAN_RULES: tuple[tuple[str, Callable[[Record], bool]], ...] = (
    ("old_contents_too_long", old_contents_too_long),
    ("new_contents_empty", new_contents_empty),
    ("contents_unchanged", contents_unchanged),
    ("hash_in_subject", hash_in_subject),
    ("atypical_extension", atypical_extension),
    ("file_name_in_subject", file_name_in_subject),
    ("subject_length", subject_length_out_of_range),
    ("subject_words", subject_words_out_of_range),
)
POST_CLEAN_RULES: tuple[tuple[str, Callable[[Record], bool]], ...] = (
    ("cleaned_subject_length", subject_length_out_of_range),
    ("cleaned_subject_words", subject_words_out_of_range),
    ("not_capitalised", not_capitalised),
)
# then the token rule ("too_few_tokens" / "too_many_tokens")
LATE_RULES: tuple[tuple[str, Callable[[Record], bool]], ...] = (
    ("no_imperative_verb", no_imperative_verb),
    ("bad_exact_subject", bad_exact_subject),
    ("bad_substring", bad_substring),
    ("version_string", version_string),
    ("hex_only", hex_only),
    ("contains_sha", contains_sha),
    ("ticket_reference", ticket_reference),
)

FT_REASONS: tuple[str, ...] = (
    *(r for r, _ in PRE_CLEAN_RULES),
    *(r for r, _ in POST_CLEAN_RULES),
    "too_few_tokens",
    "too_many_tokens",
    *(r for r, _ in LATE_RULES),
    "downsampled_bump",
)
"""Every drop reason of the CommitPackFT stage, in check order."""


@dataclass(frozen=True)
class FTDecision:
    """Outcome of the FT stage for one record: ``reason`` is None when kept."""

    reason: str | None
    record: dict[str, Any]


def ft_decide(record: Record, count_tokens: TokenCount, seed: int = DEFAULT_SEED) -> FTDecision:
    """Apply every CommitPackFT rule in order; the returned record holds the cleaned subject."""
    out = dict(record)
    for reason, drops in PRE_CLEAN_RULES:
        if drops(out):
            return FTDecision(reason, out)
    out["subject"] = clean_subject(out["subject"])
    for reason, drops in POST_CLEAN_RULES:
        if drops(out):
            return FTDecision(reason, out)
    tokens = count_tokens(out["old_contents"], out["new_contents"])
    if tokens < MIN_TOKENS:
        return FTDecision("too_few_tokens", out)
    if tokens > MAX_TOKENS:
        return FTDecision("too_many_tokens", out)
    for reason, drops in LATE_RULES:
        if drops(out):
            return FTDecision(reason, out)
    if downsampled_bump(out, seed):
        return FTDecision("downsampled_bump", out)
    return FTDecision(None, out)


def ft_drop_reason(
    record: Record, count_tokens: TokenCount, seed: int = DEFAULT_SEED
) -> str | None:
    """The first CommitPackFT rule that drops ``record``, or ``None`` to keep it."""
    return ft_decide(record, count_tokens, seed).reason
