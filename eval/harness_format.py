"""Generations files in bigcode-evaluation-harness's format, readable and writable by both tools.

The harness's `--save_generations` writes `json.dump(generations)`: a JSON list with one list per
problem (explain-synthesize: per problem and description), holding that row's samples as strings,
already post-processed (prompt base + cleaned completion; descriptions for explain-describe). Its
`--load_generations_path` reads the same list back and scores it without post-processing again.
The file name is `{stem}_{task}.json`, e.g. `generations_humanevalfixtests-python.json`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from beam_pipelines.atomic_publish import write_file

DEFAULT_STEM = "generations"


class GenerationsFileError(ValueError):
    """A generations file is unreadable or not a list of lists of strings."""


def harness_filename(harness_task: str, stem: str = DEFAULT_STEM) -> str:
    """File name the harness gives the generations of one task, e.g. harness_task="humanevalsynthesize-go"."""
    return f"{stem}_{harness_task}.json"


def save_generations(path: str | os.PathLike, generations: list[list[str]]) -> Path:
    """Write generations as the harness does (compact JSON, ASCII escapes); atomic replace."""
    check_generations(generations, str(path))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_file(path, json.dumps(generations))  # whole or nothing, even on a kill


def check_generations(generations: object, where: str) -> list[list[str]]:
    """Validate the structure, naming the first bad row and sample."""
    if not isinstance(generations, list):
        raise GenerationsFileError(
            f"{where}: expected a JSON list with one list of samples per problem, "
            f"got {type(generations).__name__}"
        )
    for i, row in enumerate(generations):
        if not isinstance(row, list):
            raise GenerationsFileError(
                f"{where}: row {i} is {type(row).__name__}, expected a list of strings"
            )
        if not row:
            raise GenerationsFileError(f"{where}: row {i} has no samples")
        for j, sample in enumerate(row):
            if not isinstance(sample, str):
                raise GenerationsFileError(
                    f"{where}: row {i} sample {j} is {type(sample).__name__}, expected a string"
                )
    return generations


def load_generations(path: str | os.PathLike) -> list[list[str]]:
    """Read a generations file written by the harness or by this package."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError as e:
        raise GenerationsFileError(f"{path}: file not found") from e
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise GenerationsFileError(f"{path}: not valid JSON ({e})") from e
    return check_generations(data, str(path))


def fit_to_rows(
    generations: list[list[str]],
    n_rows: int,
    where: str,
    *,
    n_samples: int | None = None,
    allow_extra_rows: bool = False,
) -> list[list[str]]:
    """Check the row count against the task's rows; optionally keep the first n_samples each.

    The harness silently scores only `generations[:n_tasks]` and truncates rows to
    `--n_samples`; here fewer rows than expected is an error, and extra rows are one unless
    the caller limited the problems (`allow_extra_rows`).
    """
    if len(generations) < n_rows:
        raise GenerationsFileError(
            f"{where}: {len(generations)} rows, but the task has {n_rows} "
            "(wrong task or language? use --limit to score only the first problems)"
        )
    if len(generations) > n_rows and not allow_extra_rows:
        raise GenerationsFileError(
            f"{where}: {len(generations)} rows, but the task has only {n_rows} (wrong task or language?)"
        )
    rows = generations[:n_rows]
    if n_samples is not None:
        rows = [row[:n_samples] for row in rows]
    return rows
