"""Load and validate HumanEvalPack: one JSONL file per language from a local directory, or the hub.

Records are kept as plain dicts (the harness indexes them by position and field name); validation
checks what every task relies on, so a broken file fails here with its name and line instead of
deep inside prompt construction or execution.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

LANGUAGES: tuple[str, ...] = ("python", "js", "java", "go", "cpp", "rust")

# Display names used in prompts ("Write functional code in {name} ...") and in report tables.
LANGUAGE_NAMES: dict[str, str] = {
    "python": "Python",
    "js": "JavaScript",
    "java": "Java",
    "go": "Go",
    "cpp": "C++",
    "rust": "Rust",
}

# task_id prefix per language, e.g. "CPP/12".
TASK_ID_PREFIXES: dict[str, str] = {
    "python": "Python",
    "js": "JavaScript",
    "java": "Java",
    "go": "Go",
    "cpp": "CPP",
    "rust": "Rust",
}

_LANGUAGE_ALIASES: dict[str, str] = {
    "javascript": "js",
    "c++": "cpp",
    "py": "python",
    "rs": "rust",
    "golang": "go",
}

# Fields every record carries (PROVENANCE.md); Go adds `import` and `test_setup`.
COMMON_FIELDS: tuple[str, ...] = (
    "task_id",
    "prompt",
    "declaration",
    "canonical_solution",
    "buggy_solution",
    "bug_type",
    "failure_symptoms",
    "entry_point",
    "signature",
    "docstring",
    "instruction",
    "test",
    "example_test",
)
EXTRA_FIELDS: dict[str, tuple[str, ...]] = {"go": ("import", "test_setup")}
# Fields that may not be empty strings: prompts and programs are built from them.
NON_EMPTY_FIELDS: tuple[str, ...] = (
    "task_id",
    "prompt",
    "declaration",
    "canonical_solution",
    "buggy_solution",
    "entry_point",
    "instruction",
    "test",
)

HUB_DATASET = "bigcode/humanevalpack"


class DataError(ValueError):
    """A HumanEvalPack file or record is malformed; the message names the file, line and problem."""


def normalize_language(language: str) -> str:
    """Map a language name or alias ("javascript", "C++") to the canonical id ("js", "cpp")."""
    key = language.strip().lower()
    key = _LANGUAGE_ALIASES.get(key, key)
    if key not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; expected one of {', '.join(LANGUAGES)}")
    return key


def parse_languages(spec: str | Iterable[str]) -> list[str]:
    """Parse "all", "python,js" or a list of names into canonical ids, keeping order, no repeats."""
    items = spec.split(",") if isinstance(spec, str) else list(spec)
    out: list[str] = []
    for item in items:
        if not item.strip():
            continue
        names = LANGUAGES if item.strip().lower() == "all" else (normalize_language(item),)
        out.extend(n for n in names if n not in out)
    if not out:
        raise ValueError("no language given")
    return out


def language_file(data_dir: str | os.PathLike, language: str) -> Path:
    """Path of one language's JSONL file inside a local HumanEvalPack directory."""
    return Path(data_dir) / f"{normalize_language(language)}.jsonl"


def validate_record(record: object, language: str, index: int, where: str) -> dict:
    """Check one record (the index-th of the language) and return it; raise DataError otherwise."""
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected a JSON object, got {type(record).__name__}")
    required = COMMON_FIELDS + EXTRA_FIELDS.get(language, ())
    missing = [f for f in required if f not in record]
    if missing:
        raise DataError(f"{where}: missing field(s) {', '.join(missing)}")
    for field in required:
        if not isinstance(record[field], str):
            raise DataError(
                f"{where}: field {field!r} must be a string, got {type(record[field]).__name__}"
            )
    empty = [f for f in NON_EMPTY_FIELDS if not record[f].strip()]
    if empty:
        raise DataError(f"{where}: field(s) {', '.join(empty)} are empty")
    expected_id = f"{TASK_ID_PREFIXES[language]}/{index}"
    if record["task_id"] != expected_id:
        raise DataError(
            f"{where}: task_id {record['task_id']!r} where {expected_id!r} was expected "
            "(records must be in task order: generations files are indexed by position)"
        )
    return record


def load_jsonl(path: str | os.PathLike, language: str) -> list[dict]:
    """Read and validate one language's JSONL file."""
    language = normalize_language(language)
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: HumanEvalPack file not found")
    records: list[dict] = []
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not valid UTF-8 ({e})") from e
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"{path}:{line_no}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{where}: invalid JSON ({e.msg} at column {e.colno})") from e
        records.append(validate_record(record, language, len(records), where))
    if not records:
        raise DataError(f"{path}: no records")
    return records


def load_from_hub(language: str) -> list[dict]:
    """Load one language from the Hugging Face hub (needs network and the `datasets` package)."""
    language = normalize_language(language)
    try:
        import datasets  # lazy: optional dependency, only for online use
    except ImportError as e:
        raise DataError(
            "loading HumanEvalPack from the hub needs the `datasets` package "
            "(pip install datasets); or pass --data-dir with the six JSONL files"
        ) from e
    try:
        split = datasets.load_dataset(HUB_DATASET, language, split="test")
    except Exception as e:  # network / auth / missing config: report as a data problem
        raise DataError(f"could not load {HUB_DATASET} ({language}) from the hub: {e}") from e
    return [
        validate_record(dict(r), language, i, f"{HUB_DATASET}[{language}] row {i}")
        for i, r in enumerate(split)
    ]


def load_problems(
    language: str, data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> list[dict]:
    """Problems of one language, from `data_dir` if given, else from the hub; first `limit` only."""
    language = normalize_language(language)
    if data_dir is not None:
        problems = load_jsonl(language_file(data_dir, language), language)
    else:
        problems = load_from_hub(language)
    return problems[:limit] if limit is not None else problems


def load_all(
    languages: Sequence[str], data_dir: str | os.PathLike | None = None, *, limit: int | None = None
) -> dict[str, list[dict]]:
    """Problems for several languages, keyed by canonical language id."""
    return {lang: load_problems(lang, data_dir, limit=limit) for lang in parse_languages(languages)}
