"""results.json (all scored task/language runs) and the Markdown table laid out like Table 2.

Scoring runs add to one results.json per output directory, replacing an earlier result for the
same model, task, language and template, so several runs (one language at a time, or several
models) build up one table.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

from beam_pipelines.atomic_publish import write_file
from eval.data import LANGUAGE_NAMES, LANGUAGES
from eval.tasks import EXPLAIN_SYNTHESIZE, FIX_DOCS, FIX_TESTS, SYNTHESIZE

RESULTS_FILE = "results.json"
TABLE_FILE = "results.md"

# Row labels and order of the paper's Table 2 (Fix = fix-tests; fix-docs is not in the paper).
TASK_LABELS: dict[str, str] = {
    FIX_TESTS: "Fix",
    FIX_DOCS: "Fix (docs)",
    EXPLAIN_SYNTHESIZE: "Explain",
    SYNTHESIZE: "Synthesize",
}


class ResultsFileError(ValueError):
    """results.json is unreadable or not in the expected shape."""


def _identity(result: dict) -> tuple:
    return (result.get("model", ""), result["task"], result["language"], result.get("template", ""))


def load_results(path: str | os.PathLike) -> list[dict]:
    """Result records from a results.json; an absent file is an empty list."""
    path = Path(path)
    if not path.exists():
        return []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsFileError(f"{path}: not valid JSON ({e})") from e
    results = data.get("results") if isinstance(data, dict) else None
    if not isinstance(results, list) or not all(
        isinstance(r, dict) and {"task", "language"} <= r.keys() for r in results
    ):
        raise ResultsFileError(f"{path}: expected {{'results': [ {{task, language, ...}}, ... ]}}")
    return results


def merge_results(old: Sequence[dict], new: Sequence[dict]) -> list[dict]:
    """Old records not superseded by a new one (same model/task/language/template), then the new."""
    replaced = {_identity(r) for r in new}
    return [r for r in old if _identity(r) not in replaced] + list(new)


def write_results(output_dir: str | os.PathLike, new: Sequence[dict]) -> tuple[Path, Path]:
    """Merge new records into output_dir/results.json and rewrite results.md; return both paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path = output_dir / RESULTS_FILE
    results = merge_results(load_results(json_path), new)
    # each file whole or not at all, even if the process is killed (a synced sibling, os.replace)
    write_file(json_path, json.dumps({"results": results}, indent=2, ensure_ascii=False))
    md_path = write_file(output_dir / TABLE_FILE, markdown_table(results))
    return json_path, md_path


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{100 * value:.1f}"


def markdown_table(results: Sequence[dict], metric: str = "pass@1") -> str:
    """Rows task/model, columns Python JS Java Go C++ Rust Avg, values in percent.

    Avg is the mean over the languages present; it is marked with * when some are missing.
    Several templates for the same task and model get their own rows.
    """
    rows: dict[tuple, dict[str, float]] = {}
    for r in results:
        if r["task"] not in TASK_LABELS or metric not in r:
            continue
        key = (r["task"], r.get("model", ""), r.get("template", ""))
        rows.setdefault(key, {})[r["language"]] = float(r[metric])
    templates = {k[2] for k in rows}
    task_order = list(TASK_LABELS)
    lines = [
        f"{metric} (%)",
        "",
        "| task | model | " + " | ".join(LANGUAGE_NAMES[lang] for lang in LANGUAGES) + " | Avg |",
        "| --- | --- |" + " --- |" * (len(LANGUAGES) + 1),
    ]
    incomplete = False
    for task, model, template in sorted(rows, key=lambda k: (task_order.index(k[0]), k[1], k[2])):
        scores = rows[(task, model, template)]
        name = model or "(unnamed)"
        if len(templates) > 1:
            name += f" [{template}]"
        cells = [_fmt(scores.get(lang)) for lang in LANGUAGES]
        avg = _fmt(sum(scores.values()) / len(scores))
        if len(scores) < len(LANGUAGES):
            avg += "*"
            incomplete = True
        lines.append(f"| {TASK_LABELS[task]} | {name} | " + " | ".join(cells) + f" | {avg} |")
    if incomplete:
        lines += ["", "\\* average over the languages scored so far, not all six."]
    return "\n".join(lines) + "\n"
