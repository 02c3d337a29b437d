"""Turn raw input items (JSONL lines, BigQuery rows) into records or dead letters (no Beam).

Each function returns ``("record", dict)`` or ``("dead", dead_letter)``; it never raises on bad
input. A dead letter is a JSON-serialisable dict with ``reason``, ``source``, ``detail`` and enough
of the raw input to find or recover it (the raw line, base64 when it is not UTF-8).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from typing import Any

from beam_pipelines.schema import FIELDS, SchemaError, check_record, subject_of

DEFAULT_MAX_RECORD_BYTES = 8_000_000
RAW_PREVIEW_CHARS = 2000

DEAD_LETTER_REASONS: tuple[str, ...] = (
    "malformed_json",
    "invalid_utf8",
    "missing_field",
    "invalid_type",
    "oversize",
    "binary",
    "repo_unreadable",
    "internal_error",
)
"""Every reason a dead letter can carry."""


def dead_letter(reason: str, source: str, detail: str, **extra: Any) -> dict[str, Any]:
    """A dead-letter dict; ``reason`` must be one of :data:`DEAD_LETTER_REASONS`."""
    if reason not in DEAD_LETTER_REASONS:
        raise ValueError(f"unknown dead-letter reason {reason!r}")
    return {"reason": reason, "source": source, "detail": detail, **extra}


def _raw_fields(line: bytes, keep_all: bool) -> dict[str, Any]:
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        data = line if keep_all else line[:RAW_PREVIEW_CHARS]
        return {"raw_base64": base64.b64encode(data).decode("ascii"), "raw_bytes": len(line)}
    return {"raw": text if keep_all else text[:RAW_PREVIEW_CHARS], "raw_bytes": len(line)}


def parse_jsonl_line(
    line: bytes, source: str, max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES
) -> tuple[str, dict[str, Any]]:
    """One line of a CommitPack JSONL file (Hugging Face schema) -> record or dead letter."""
    if len(line) > max_record_bytes:
        return "dead", dead_letter(
            "oversize",
            source,
            f"line is {len(line)} bytes (limit {max_record_bytes})",
            **_raw_fields(line, keep_all=False),
        )
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as err:
        return "dead", dead_letter(
            "invalid_utf8", source, f"line is not UTF-8: {err}", **_raw_fields(line, True)
        )
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return "dead", dead_letter("malformed_json", source, str(err), raw=text)
    if not isinstance(obj, dict):
        return "dead", dead_letter(
            "malformed_json",
            source,
            f"line is a JSON {type(obj).__name__}, not an object",
            raw=text,
        )
    repos = obj.get("repos")
    if isinstance(repos, list) and all(isinstance(r, str) for r in repos):
        obj["repos"] = ",".join(repos)  # some exports keep repos as a list
    if "subject" not in obj and isinstance(obj.get("message"), str):
        obj["subject"] = subject_of(obj["message"])
    obj.setdefault("lang", "")
    try:
        check_record(obj)
    except SchemaError as err:
        return "dead", dead_letter(err.reason, source, err.detail, raw=text)
    return "record", {f: obj[f] for f in FIELDS}


def _mode(mode: Any) -> str:
    """BigQuery stores git modes as integers (33188); records use git's octal text (100644)."""
    return "000000" if mode is None else format(int(mode), "06o")


def bigquery_row_to_outcome(row: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """One row of :func:`beam_pipelines.bigquery_query.build_commits_query` -> record or dead."""
    commit = row.get("commit") or ""
    source = f"bigquery:{commit}"
    for side in ("old", "new"):
        if row.get(f"{side}_binary"):
            return "dead", dead_letter(
                "binary", source, f"{side} contents are binary", path=row.get("new_path") or ""
            )
    missing = [k for k in ("commit", "message", "new_path", "license", "repos") if not row.get(k)]
    missing += [k for k in ("old_contents", "new_contents") if row.get(k) is None]
    if missing:
        return "dead", dead_letter(
            "missing_field",
            source,
            f"NULL column(s) {', '.join(missing)} (contents absent from the contents table?)",
            path=row.get("new_path") or "",
        )
    record = {
        "commit": row["commit"],
        "old_file": row.get("old_path") or "",
        "new_file": row["new_path"],
        "old_contents": row["old_contents"],
        "new_contents": row["new_contents"],
        "subject": row.get("subject") or subject_of(row["message"]),
        "message": row["message"],
        "lang": "",
        "license": row["license"].lower(),
        "repos": row["repos"],
    }
    try:
        check_record(record)
    except SchemaError as err:
        return "dead", dead_letter(err.reason, source, err.detail)
    old_path, new_path = record["old_file"], record["new_file"]
    record["_parents"] = int(row.get("n_parents") or 1)
    record["_changes"] = [
        {
            "status": "M" if old_path == new_path else "R",
            "old_mode": _mode(row.get("old_mode")),
            "new_mode": _mode(row.get("new_mode")),
            "old_path": old_path,
            "new_path": new_path,
        }
    ]
    return "record", record
