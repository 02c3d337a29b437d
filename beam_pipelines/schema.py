"""The CommitPack record schema, shared by every stage, source and sink.

A record is a plain ``dict[str, str]`` with exactly the fields in :data:`FIELDS` (the Hugging Face
``bigcode/commitpack`` schema). Sources may attach extra keys starting with ``_`` (structural facts
from git mining); :func:`to_schema` strips them before a record is written.
"""

from __future__ import annotations

from collections.abc import Mapping

FIELDS: tuple[str, ...] = (
    "commit",
    "old_file",
    "new_file",
    "old_contents",
    "new_contents",
    "subject",
    "message",
    "lang",
    "license",
    "repos",
)
"""Field names, in the order they are documented and written."""


class SchemaError(ValueError):
    """A record does not have the CommitPack schema (missing field or wrong type)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def check_record(record: Mapping[str, object]) -> None:
    """Raise :class:`SchemaError` (reason ``missing_field`` or ``invalid_type``) unless every
    schema field is present and a ``str``."""
    missing = [f for f in FIELDS if f not in record]
    if missing:
        raise SchemaError("missing_field", f"missing field(s) {', '.join(missing)}")
    wrong = [f for f in FIELDS if not isinstance(record[f], str)]
    if wrong:
        types = ", ".join(f"{f}={type(record[f]).__name__}" for f in wrong)
        raise SchemaError("invalid_type", f"field(s) not a string: {types}")


def to_schema(record: Mapping[str, object]) -> dict[str, str]:
    """The record reduced to exactly the schema fields (extra ``_`` keys dropped)."""
    check_record(record)
    return {f: record[f] for f in FIELDS}  # type: ignore[misc]


def subject_of(message: str) -> str:
    """The subject of a commit message: its first line, without surrounding whitespace."""
    return message.strip().split("\n", 1)[0].strip()
