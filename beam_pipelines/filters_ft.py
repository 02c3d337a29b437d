"""CommitPackFT filters, decision for decision as the OctoPack reference made them.

The reference runs two scripts over CommitPack: ``dataset/commitpackft/commitpackft_filters1.py``
(file and subject rules, a first subject cleaning, the 50..768 token rule, the start-verb list)
and then ``commitpackft_filters2.py`` (more subject rules, removing "[ci skip]", down-sampling
version bumps, a final >= 4 words rule). Each rule below is a pure function on the record (or its
subject) and names the script and the step it reproduces ("f1: ..." / "f2: ..."); :func:`ft_decide`
applies them in the scripts' order and returns the first reason that drops, or the record with
its cleaned subject. The bump down-sampling (``random.random() < 0.9`` in f2) uses a seeded hash
of the commit id instead, so reruns give the same data set.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from beam_pipelines.languages import ft_extension_allowed
from beam_pipelines.verbs import GOOD_START_PREFIXES

Record = Mapping[str, Any]
TokenCount = Callable[[str, str], int]
"""``(old_contents, new_contents) -> tokens of old + "<|endoftext|>" + new``; the count may stop
early once it is past :data:`MAX_TOKENS` (any number above it means "too many")."""

MAX_OLD_CONTENTS_CHARS = 50_000  # exclusive
MIN_SUBJECT_CHARS, MAX_SUBJECT_CHARS = 10, 1000  # both exclusive
MIN_SUBJECT_WORDS, MAX_SUBJECT_WORDS = 4, 1000  # both exclusive: 5..999 words
MIN_TOKENS, MAX_TOKENS = 50, 768  # both inclusive
FINAL_MIN_WORDS = 4  # f2 "words filtering": fewer than 4 words drops
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
"""f1 ``BAD_MESSAGE``: lower-cased subjects dropped when equal (not stripped)."""

BAD_SUBSTRINGS: tuple[str, ...] = (
    "auto commit",
    "update contributing",
    "<?xml",
    "merge branch",
    "merge pull request",
    "signed-off-by",
)
"""f1 ``BAD_SUB_MESSAGE``: substrings of the lower-cased subject that drop it."""

SPECIFIC_SUBJECTS: frozenset[str] = frozenset(
    {
        "fix that bug where things didn't work but now they should",
        "put the thingie in the thingie",
        "add a beter commit message",
    }
)
"""f2 ``rmv_specific``: lower-cased subjects dropped when equal."""

VERSION_RE = re.compile(r"(?:v)?\d+\.\d+\.\d+(?=$|\S)")
HEX_ONLY_RE = re.compile(r"^[a-f0-9]+(?:-[a-f0-9]+)*$")
SHA_RE = re.compile(r"([a-f0-9]{40})")
TICKET_RES = tuple(
    re.compile(rf"{word}\s*\d+", re.IGNORECASE) for word in ("issue", "bug", "feature")
)
BUMP_PREFIXES: tuple[str, ...] = ("Bump", "Set version", "Update version")


# --- f1, before the subject is cleaned -------------------------------------------------------------


def old_contents_too_long(record: Record) -> bool:
    """f1 "content length filtering": ``len(old_contents) < 50_000`` keeps."""
    return len(record["old_contents"]) >= MAX_OLD_CONTENTS_CHARS


def new_contents_empty(record: Record) -> bool:
    """f1 "empty new content filtering"."""
    return not record["new_contents"]


def contents_unchanged(record: Record) -> bool:
    """f1 "content equality filtering"."""
    return record["old_contents"] == record["new_contents"]


def hash_in_subject(record: Record) -> bool:
    """f1 "hashtag filtering": any "#" in the subject."""
    return "#" in record["subject"]


def extension_not_allowed(record: Record) -> bool:
    """f1 extension filter (``LANG_TO_EXTENSIONS``), see :func:`ft_extension_allowed`."""
    return not ft_extension_allowed(record["new_file"], record["lang"])


def file_name_in_subject(record: Record) -> bool:
    """f1 "filename from the subject": with the base name split at dots, the part before the
    last dot (``split(".")[-2]``: "b" for "a.b.c", "travis" for ".travis.yml", "" for
    ".gitignore") occurs in the subject, case-sensitively. An empty part always occurs."""
    parts = record["new_file"].split("/")[-1].split(".")
    return len(parts) >= 2 and parts[-2] in record["subject"]


def subject_length_out_of_range(record: Record) -> bool:
    """f1 ``filter_empty_messages``, first half: 10 < len(subject) < 1000 keeps."""
    return not MIN_SUBJECT_CHARS < len(record["subject"]) < MAX_SUBJECT_CHARS


def subject_words_out_of_range(record: Record) -> bool:
    """f1 ``filter_empty_messages``, second half: 4 < words < 1000 keeps (five or more)."""
    return not MIN_SUBJECT_WORDS < len(record["subject"].split()) < MAX_SUBJECT_WORDS


def clean_subject(subject: str) -> str:
    """f1 ``clean_issues_and_refs``: strip, remove "[skip ci]" (exactly that spelling), split on
    whitespace, drop a first word in brackets, then a first word ending in ":", then a last word
    in brackets, and join with single spaces. An empty subject is returned as it is."""
    if not subject:
        return subject
    words = subject.strip().replace("[skip ci]", "").strip().split()
    if words and words[0].startswith("[") and words[0].endswith("]"):
        words = words[1:]
    if words and words[0].endswith(":"):
        words = words[1:]
    if words and words[-1].startswith("[") and words[-1].endswith("]"):
        words = words[:-1]
    return " ".join(words).strip()


# --- f1, after cleaning --------------------------------------------------------------------------


def not_capitalised(record: Record) -> bool:
    """f1 "capitalized subjects": the first character of the stripped subject is upper case."""
    subject = record["subject"].strip()
    return not subject or not subject[0].isupper()


def no_imperative_verb(record: Record) -> bool:
    """f1 ``filter_messages``: the lower-cased subject starts with a start-list entry + space."""
    return not record["subject"].lower().startswith(GOOD_START_PREFIXES)


def bad_exact_subject(record: Record) -> bool:
    """f1 ``filter_messages``: ``lower_subject in BAD_MESSAGE``."""
    return record["subject"].lower() in BAD_EXACT_SUBJECTS


def bad_substring(record: Record) -> bool:
    """f1 ``filter_messages``: a ``BAD_SUB_MESSAGE`` entry in the lower-cased subject."""
    lowered = record["subject"].lower()
    return any(s in lowered for s in BAD_SUBSTRINGS)


def version_string(record: Record) -> bool:
    """f1 ``filter_messages``: ``re.match`` (anchored at the start) of a version like v1.2.3."""
    return VERSION_RE.match(record["subject"].lower()) is not None


def hex_only(record: Record) -> bool:
    """f1 ``filter_messages``: the lower-cased subject is only hex groups (``0239-2a41``)."""
    return HEX_ONLY_RE.match(record["subject"].lower()) is not None


# --- f2 -----------------------------------------------------------------------------------------


def cherry_picked(record: Record) -> bool:
    """f2: "cherry picked from commit" in the subject (case-sensitive)."""
    return "cherry picked from commit" in record["subject"]


def contains_sha(record: Record) -> bool:
    """f2 "commit filtering": 40 lower-case hex characters anywhere in the subject."""
    return SHA_RE.search(record["subject"]) is not None


def remove_ci_skip(subject: str) -> str:
    """f2 ``remove_ci_skip``: remove "[ci skip]" (exactly that spelling), then strip."""
    return subject.replace("[ci skip]", "").strip()


def keep_fraction(commit: str, seed: int = DEFAULT_SEED) -> float:
    """A deterministic number in [0, 1) from (seed, commit): the down-sampling coin."""
    digest = hashlib.sha256(f"{seed}:{commit}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_bump_subject(subject: str) -> bool:
    """f2 ``remove_bump``: starts with "Bump", "Set version" or "Update version" (case-sensitive)."""
    return subject.startswith(BUMP_PREFIXES)


def downsampled_bump(record: Record, seed: int = DEFAULT_SEED) -> bool:
    """f2 ``remove_bump``: a bump subject is dropped with probability 0.9."""
    return (
        is_bump_subject(record["subject"])
        and keep_fraction(record["commit"], seed) < BUMP_DROP_PROBABILITY
    )


def first_person(record: Record) -> bool:
    """f2 ``check_i``: " i ", "i've" or "i'm" in the lower-cased subject."""
    lowered = record["subject"].lower()
    return " i " in lowered or "i've" in lowered or "i'm" in lowered


def thanks(record: Record) -> bool:
    """f2 ``check_thanks``: "thanks to" (any case) and "for" (this case) in the subject."""
    return "thanks to" in record["subject"].lower() and "for" in record["subject"]


def _contains(*needles: str) -> Callable[[Record], bool]:
    """A rule: any of ``needles`` in the lower-cased subject."""

    def rule(record: Record) -> bool:
        lowered = record["subject"].lower()
        return any(n in lowered for n in needles)

    rule.__doc__ = f"f2: any of {needles} in the lower-cased subject."
    return rule


def specific_subject(record: Record) -> bool:
    """f2 ``rmv_specific``: three joke subjects."""
    return record["subject"].lower() in SPECIFIC_SUBJECTS


def ticket_reference(record: Record) -> bool:
    """f2 ``check_issue``: "issue 159", "bug 182", "feature 7" (any case, optional space)."""
    lowered = record["subject"].lower()
    return any(r.search(lowered) for r in TICKET_RES)


def too_few_words(record: Record) -> bool:
    """f2 "words filtering": fewer than four whitespace-separated words."""
    return len(record["subject"].split()) < FINAL_MIN_WORDS


# --- the whole stage ------------------------------------------------------------------------------

Rule = Callable[[Record], bool]

F1_BEFORE_CLEANING: tuple[tuple[str, Rule], ...] = (
    ("old_contents_too_long", old_contents_too_long),
    ("new_contents_empty", new_contents_empty),
    ("contents_unchanged", contents_unchanged),
    ("hash_in_subject", hash_in_subject),
    ("extension_not_allowed", extension_not_allowed),
    ("file_name_in_subject", file_name_in_subject),
    ("subject_length", subject_length_out_of_range),
    ("subject_words", subject_words_out_of_range),
)
F1_AFTER_CLEANING: tuple[tuple[str, Rule], ...] = (
    ("cleaned_subject_length", subject_length_out_of_range),
    ("cleaned_subject_words", subject_words_out_of_range),
    ("not_capitalised", not_capitalised),
)
# then f1's token rule ("too_few_tokens" / "too_many_tokens"), then:
F1_MESSAGE_RULES: tuple[tuple[str, Rule], ...] = (
    ("no_imperative_verb", no_imperative_verb),
    ("bad_exact_subject", bad_exact_subject),
    ("bad_substring", bad_substring),
    ("version_string", version_string),
    ("hex_only", hex_only),
)
F2_BEFORE_CI_SKIP: tuple[tuple[str, Rule], ...] = (
    ("cherry_picked", cherry_picked),
    ("contains_sha", contains_sha),
)
# then "[ci skip]" is removed and bumps are down-sampled ("downsampled_bump"), then:
F2_AFTER_CI_SKIP: tuple[tuple[str, Rule], ...] = (
    ("first_person", first_person),
    ("thanks", thanks),
    ("code_review", _contains("code review")),
    ("specific_subject", specific_subject),
    ("ticket_reference", ticket_reference),
    ("cdpcp", _contains("cdpcp")),
    ("codereview_link", _contains("//codereview")),
    ("work_in_progress", _contains("work in progress", "wip")),
    ("url", _contains("https://", "http://")),
    ("leetcode", _contains("| leetcode")),
    ("too_few_words", too_few_words),
)

FT_REASONS: tuple[str, ...] = (
    *(r for r, _ in F1_BEFORE_CLEANING),
    *(r for r, _ in F1_AFTER_CLEANING),
    "too_few_tokens",
    "too_many_tokens",
    *(r for r, _ in F1_MESSAGE_RULES),
    *(r for r, _ in F2_BEFORE_CI_SKIP),
    "downsampled_bump",
    *(r for r, _ in F2_AFTER_CI_SKIP),
    "duplicate_content",
)
"""Every drop reason of the CommitPackFT stage, in check order (``duplicate_content`` is decided
after the rules, across records: see :func:`content_key`)."""


@dataclass(frozen=True)
class FTDecision:
    """Outcome of the FT rules for one record: ``reason`` is None when kept."""

    reason: str | None
    record: dict[str, Any]


def _first(rules: tuple[tuple[str, Rule], ...], record: Record) -> str | None:
    for reason, drops in rules:
        if drops(record):
            return reason
    return None


def ft_decide(record: Record, count_tokens: TokenCount, seed: int = DEFAULT_SEED) -> FTDecision:
    """Apply every CommitPackFT rule in the reference's order; the returned record holds the
    subject as both cleanings left it."""
    out = dict(record)
    reason = _first(F1_BEFORE_CLEANING, out)
    if reason is None:
        out["subject"] = clean_subject(out["subject"])
        reason = _first(F1_AFTER_CLEANING, out)
    if reason is None:
        tokens = count_tokens(out["old_contents"], out["new_contents"])
        if tokens < MIN_TOKENS:
            reason = "too_few_tokens"
        elif tokens > MAX_TOKENS:
            reason = "too_many_tokens"
    if reason is None:
        reason = _first(F1_MESSAGE_RULES, out) or _first(F2_BEFORE_CI_SKIP, out)
    if reason is None:
        out["subject"] = remove_ci_skip(out["subject"])
        if downsampled_bump(out, seed):
            reason = "downsampled_bump"
        else:
            reason = _first(F2_AFTER_CI_SKIP, out)
    return FTDecision(reason, out)


def ft_drop_reason(
    record: Record, count_tokens: TokenCount, seed: int = DEFAULT_SEED
) -> str | None:
    """The first CommitPackFT rule that drops ``record``, or ``None`` to keep it."""
    return ft_decide(record, count_tokens, seed).reason


def content_key(record: Record) -> tuple[str, str, str, str, str]:
    """Records with one key are the same change kept under several commit ids (PR refs,
    cherry-picks, rebased copies): same repositories, file, subject and contents. CommitPackFT
    keeps one of them (the smallest commit id) and counts the rest as ``duplicate_content``."""

    def digest(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    return (
        record["repos"],
        record["new_file"],
        record["subject"],
        digest(record["old_contents"]),
        digest(record["new_contents"]),
    )
