"""CommitPack filters (paper Table 5), each a small pure predicate with a reason name.

:func:`commitpack_drop_reason` runs them in order and returns the first reason that applies (or
``None`` to keep). Structural rules (merge commits, multi-file commits, added/deleted/renamed files,
non-regular files) read the ``_parents``/``_changes`` facts that git mining attaches; records from
JSONL or BigQuery have no such keys and only the path-based rename rule applies to them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from beam_pipelines.languages import language_of
from beam_pipelines.licenses import ALLOWED_LICENSES

Record = Mapping[str, Any]

BORING_MESSAGES: frozenset[str] = frozenset(
    {
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
    }
)
"""Lower-cased messages that say nothing (dropped as ``boring_message``)."""

NONSENSE_MESSAGES: frozenset[str] = frozenset({"please", "lalala"})

MIN_MESSAGE_CHARS = 5  # exclusive
MAX_MESSAGE_CHARS = 10_000  # exclusive

REGULAR_FILE_MODES = frozenset({"100644", "100755"})


def _changes(record: Record) -> list[Mapping[str, str]] | None:
    return record.get("_changes")


def is_merge_commit(record: Record) -> bool:
    return record.get("_parents", 1) > 1


def has_no_file_change(record: Record) -> bool:
    changes = _changes(record)
    return changes is not None and len(changes) == 0


def is_multi_file(record: Record) -> bool:
    changes = _changes(record)
    return changes is not None and len(changes) > 1


def _single_status(record: Record) -> str | None:
    changes = _changes(record)
    return changes[0]["status"] if changes else None


def is_file_added(record: Record) -> bool:
    return _single_status(record) == "A"


def is_file_deleted(record: Record) -> bool:
    return _single_status(record) == "D"


def is_file_renamed(record: Record) -> bool:
    status = _single_status(record)
    if status is not None:
        return status in ("R", "C")
    return record["old_file"] != record["new_file"]


def is_not_regular_file(record: Record) -> bool:
    """Symlinks, submodules and type changes carry no source text."""
    changes = _changes(record)
    if not changes:
        return False
    change = changes[0]
    return change["status"] == "T" or not (
        change["old_mode"] in REGULAR_FILE_MODES and change["new_mode"] in REGULAR_FILE_MODES
    )


def license_not_allowed(record: Record) -> bool:
    return record["license"].lower() not in ALLOWED_LICENSES


def message_length_out_of_range(record: Record) -> bool:
    return not MIN_MESSAGE_CHARS < len(record["message"]) < MAX_MESSAGE_CHARS


def is_boring_message(record: Record) -> bool:
    return record["message"].strip().lower() in BORING_MESSAGES


def is_merge_message(record: Record) -> bool:
    return record["message"].lstrip().lower().startswith("merge")


def is_unknown_language(record: Record) -> bool:
    return not record.get("lang") and language_of(record["new_file"]) is None


def is_update_filename_message(record: Record) -> bool:
    return record["message"].strip() == "Update " + record["old_file"]


def is_nonsense_message(record: Record) -> bool:
    return record["message"].strip().lower() in NONSENSE_MESSAGES


COMMITPACK_RULES: tuple[tuple[str, Callable[[Record], bool]], ...] = (
    ("merge_commit", is_merge_commit),
    ("no_file_changed", has_no_file_change),
    ("multi_file", is_multi_file),
    ("file_added", is_file_added),
    ("file_deleted", is_file_deleted),
    ("file_renamed", is_file_renamed),
    ("not_regular_file", is_not_regular_file),
    ("license_not_allowed", license_not_allowed),
    ("message_length", message_length_out_of_range),
    ("boring_message", is_boring_message),
    ("merge_message", is_merge_message),
    ("unknown_language", is_unknown_language),
    ("update_filename_message", is_update_filename_message),
    ("nonsense_message", is_nonsense_message),
)
"""(reason, predicate) in the order they are checked; a predicate returning True drops."""

COMMITPACK_REASONS: tuple[str, ...] = (*(r for r, _ in COMMITPACK_RULES), "duplicate")
"""Every drop reason of the CommitPack stage (``duplicate`` is counted by deduplication)."""


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
