"""CommitPack filters, each a small pure predicate with a reason name, after the OctoPack reference.

The reference builds CommitPack in BigQuery SQL (``dataset/commitpack/sql/sql_1`` .. ``sql_5``),
then filters while scraping contents (``scrape_github.py``) and applies The Stack's opt-out list
(``licenses_optout_langs.py``). Each predicate names the file it reproduces.
:func:`commitpack_drop_reason` runs them in order and returns the first reason that applies (or
``None`` to keep). Structural rules read the ``_parents``/``_changes`` facts that git mining
attaches (``_repo_languages`` for the language join); records from JSONL have no such keys and
only the path-based rename rule applies to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beam_pipelines.languages import language_of, repo_language_selected, sql_like
from beam_pipelines.licenses import ALLOWED_LICENSES
from beam_pipelines.optout import OPT_OUT_LOGINS

Record = Mapping[str, Any]

BORING_MESSAGE_PATTERNS: tuple[str, ...] = (
    "update readme.md",
    "initial commit",
    "update",
    "mirroring from micro.blog.",
    "update data.json",
    "update data.js",
    "add files via upload",
    "update readme",
    "can't you see i'm updating the time?",
    "pi push",
    "dummy",
    "update index.html",
    "first commit",
    "create readme.md",
    "heartbeat update",
    "updated readme",
    "update log",
    "test",
    "no message",
    "readme",
    "wip",
    "updates",
    "commit",
    "update _config.yaml",
)
"""sql_1_commits_table_base.sql: ``LOWER(message) NOT LIKE '<pattern>'`` for each (duplicates of
the SQL dropped). The whole message is compared, lower-cased but not stripped, so "Update\n"
(git keeps the final newline) is not boring; ``_`` is LIKE's one-character wildcard."""

MERGE_MESSAGE_PATTERN = "merge%"
"""sql_1: ``LOWER(message) NOT LIKE 'merge%'`` (no strip: " Merge" passes)."""

MISC_MESSAGES: frozenset[str] = frozenset({"initial commit", "please\n", "please", "lalala"})
"""scrape_github.py ``filter_msg``: whole messages dropped, compared exactly."""

MIN_MESSAGE_CHARS = 5  # exclusive, sql_1: LENGTH(message) > 5
MAX_MESSAGE_CHARS = 10_000  # exclusive, sql_1: LENGTH(message) < 10000

REGULAR_FILE_MODES = frozenset({"100644", "100755"})
IN_PLACE_STATUSES = frozenset({"M", "T"})  # same path before and after: modified, type changed

_BORING_RES = tuple(sql_like(p) for p in BORING_MESSAGE_PATTERNS)
_MERGE_RE = sql_like(MERGE_MESSAGE_PATTERN)


def _changes(record: Record) -> list[Mapping[str, str]] | None:
    return record.get("_changes")


def in_place_changes(changes: list[Mapping[str, str]]) -> list[Mapping[str, str]]:
    """The entries sql_4_commits_table_dedup_files.sql keeps: ``old_path = new_path``, both
    non-NULL (not added, not deleted, not renamed or copied)."""
    return [c for c in changes if c["status"] in IN_PLACE_STATUSES]


def is_merge_commit(record: Record) -> bool:
    """More than one parent. git lists no change for a merge (there is no single "before"), so
    the reference's one-modified-file rule could not hold either."""
    return record.get("_parents", 1) > 1


def has_no_file_change(record: Record) -> bool:
    changes = _changes(record)
    return changes is not None and len(changes) == 0


def _no_in_place(record: Record, status: str | None) -> bool:
    """No in-place modification, and (with ``status``) the commit's only change has that status;
    with ``status=None``, several changes and none in place."""
    changes = _changes(record)
    if not changes or in_place_changes(changes):
        return False
    if status is None:
        return len(changes) > 1
    return len(changes) == 1 and changes[0]["status"] in status


def is_file_added(record: Record) -> bool:
    return _no_in_place(record, "A")


def is_file_deleted(record: Record) -> bool:
    return _no_in_place(record, "D")


def is_file_renamed(record: Record) -> bool:
    """The only change renames or copies a file; without git facts (JSONL), paths differ."""
    if _changes(record) is None:
        return record["old_file"] != record["new_file"]
    return _no_in_place(record, "RC")


def has_no_in_place_change(record: Record) -> bool:
    """Several changes (added, deleted, renamed files), none of them in place."""
    return _no_in_place(record, None)


def is_multi_file(record: Record) -> bool:
    """sql_5.sql: ``HAVING COUNT(*) = 1`` over the in-place entries. Added, deleted or renamed
    files beside the one in-place modification do not count (that commit is kept)."""
    changes = _changes(record)
    return changes is not None and len(in_place_changes(changes)) > 1


def is_not_regular_file(record: Record) -> bool:
    """The in-place entry is a symlink, submodule or type change: no source text to keep."""
    in_place = in_place_changes(_changes(record) or [])
    if len(in_place) != 1:
        return False
    change = in_place[0]
    return change["status"] == "T" or not (
        change["old_mode"] in REGULAR_FILE_MODES and change["new_mode"] in REGULAR_FILE_MODES
    )


def license_not_allowed(record: Record) -> bool:
    return record["license"].lower() not in ALLOWED_LICENSES


def repo_language_not_selected(record: Record) -> bool:
    """sql_1's join on the repository's languages; applies when the source knows them."""
    languages = record.get("_repo_languages")
    return languages is not None and not repo_language_selected(languages)


def message_length_out_of_range(record: Record) -> bool:
    return not MIN_MESSAGE_CHARS < len(record["message"]) < MAX_MESSAGE_CHARS


def is_boring_message(record: Record) -> bool:
    lowered = record["message"].lower()
    return any(r.match(lowered) for r in _BORING_RES)


def is_merge_message(record: Record) -> bool:
    return _MERGE_RE.match(record["message"].lower()) is not None


def is_unknown_language(record: Record) -> bool:
    """scrape_github.py ``filter_extension``: the new path ends with no known ending."""
    return not record.get("lang") and language_of(record["new_file"]) is None


def is_update_filename_message(record: Record) -> bool:
    """scrape_github.py ``filter_update``: the message is exactly "Update " + old path."""
    return record["message"] == "Update " + record["old_file"]


def is_nonsense_message(record: Record) -> bool:
    return record["message"] in MISC_MESSAGES


def is_opted_out(record: Record) -> bool:
    """licenses_optout_langs.py ``opt_out``: exactly one repository, owned by an opted-out login.
    Applied after deduplication, to the merged ``repos``."""
    repos = record["repos"].split(",")
    return len(repos) == 1 and repos[0].split("/")[0] in OPT_OUT_LOGINS


COMMITPACK_RULES: tuple[tuple[str, Callable[[Record], bool]], ...] = (
    ("merge_commit", is_merge_commit),
    ("no_file_changed", has_no_file_change),
    ("file_added", is_file_added),
    ("file_deleted", is_file_deleted),
    ("file_renamed", is_file_renamed),
    ("no_in_place_change", has_no_in_place_change),
    ("multi_file", is_multi_file),
    ("not_regular_file", is_not_regular_file),
    ("license_not_allowed", license_not_allowed),
    ("repo_language_not_selected", repo_language_not_selected),
    ("message_length", message_length_out_of_range),
    ("boring_message", is_boring_message),
    ("merge_message", is_merge_message),
    ("unknown_language", is_unknown_language),
    ("update_filename_message", is_update_filename_message),
    ("nonsense_message", is_nonsense_message),
)
"""(reason, predicate) in the order they are checked; a predicate returning True drops."""

COMMITPACK_REASONS: tuple[str, ...] = (
    *(r for r, _ in COMMITPACK_RULES),
    "duplicate",
    "opted_out",
)
"""Every drop reason of the CommitPack stage (``duplicate`` and ``opted_out`` are decided after
deduplication)."""


def commitpack_drop_reason(record: Record) -> str | None:
    """The first CommitPack rule that drops ``record``, or ``None`` to keep it."""
    for reason, drops in COMMITPACK_RULES:
        if drops(record):
            return reason
    return None


def with_language(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record with ``lang`` filled from the new file's extension when it is empty."""
    out = dict(record)
    if not out.get("lang"):
        out["lang"] = language_of(out["new_file"]) or ""
    return out


def dedup_key(record: Record) -> tuple[str, str, str, str]:
    """CommitPack's deduplication key: one record per (commit, subject, message, license)."""
    return (record["commit"], record["subject"], record["message"], record["license"])


def merge_duplicates(records: list[Mapping[str, str]]) -> dict[str, str]:
    """One record for a group of duplicates: ``repos`` is the sorted union of all their repos;
    the other fields come from the record whose repos sort first (deterministic)."""
    repos: set[str] = set()
    for record in records:
        repos.update(r for r in record["repos"].split(",") if r)
    first = min(records, key=lambda r: (r["repos"], r["old_file"], r["new_file"]))
    merged = dict(first)
    merged["repos"] = ",".join(sorted(repos))
    return merged
