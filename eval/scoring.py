"""Score post-processed generations: build each row's programs, execute them, compute pass@k.

Execution lives in `eval.programs` / `eval.execution`; they are imported when scoring starts,
so prompt building, post-processing and metrics work (and are tested) without them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from eval.metrics import DEFAULT_KS, mean_pass_at_k, pass_at_k
from eval.tasks import Entry, Task

DETAIL_CHARS = 2000  # keep per-sample error output readable in results.json


class ToolchainError(RuntimeError):
    """A compiler or runtime needed to execute the samples is missing (see eval/setup_toolchains.sh)."""


@dataclass(frozen=True)
class Verdict:
    """The outcome of one sample (the parts of an execution result the report keeps)."""

    passed: bool
    status: str
    detail: str = ""
    seconds: float = 0.0
    cached: bool = False


def sample_key(entry: Entry, sample_index: int) -> str:
    """Execution key of one sample, e.g. "Python/0#3" or "Python/0@d1#0"."""
    return f"{entry.label}#{sample_index}"


def build_programs(task: Task, entries: Sequence[Entry], generations: Sequence[Sequence[str]]):
    """One execution `Program` per sample, in row-major order."""
    from eval.execution import Program
    from eval.programs import assemble_program

    if len(entries) != len(generations):
        raise ValueError(f"{len(generations)} generation rows for {len(entries)} entries")
    programs = []
    for entry, samples in zip(entries, generations):
        for j, code in enumerate(samples):
            source = assemble_program(task.language, code, entry.problem)
            programs.append(
                Program(language=task.language, source=source, key=sample_key(entry, j))
            )
    return programs


def execute(
    task: Task,
    entries: Sequence[Entry],
    generations: Sequence[Sequence[str]],
    *,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
) -> list[list[Verdict]]:
    """Run every sample's program and return verdicts shaped like `generations`."""
    try:
        from eval.execution import check_toolchains, run_programs
    except ImportError as e:
        raise ToolchainError(f"the execution backend eval.execution is not available ({e})") from e

    if not task.executes:
        raise ValueError(
            f"{task.name} produces descriptions, not code: run humanevalexplain-synthesize on them"
        )
    try:
        check_toolchains([task.language])
    except Exception as e:  # the executor's own error type; re-raised with one known type
        raise ToolchainError(str(e)) from e
    programs = build_programs(task, entries, generations)
    results = run_programs(
        programs,
        workers=workers,
        cache_dir=None if cache_dir is None else str(cache_dir),
        progress=progress,
    )
    if len(results) != len(programs):
        raise RuntimeError(
            f"execution returned {len(results)} results for {len(programs)} programs"
        )
    flat = iter(results)
    verdicts: list[list[Verdict]] = []
    for samples in generations:
        row = []
        for _ in samples:
            r = next(flat)
            row.append(
                Verdict(bool(r.passed), r.status, r.detail, float(r.seconds), bool(r.cached))
            )
        verdicts.append(row)
    return verdicts


def summarize(
    task: Task,
    entries: Sequence[Entry],
    verdicts: Sequence[Sequence[Verdict]],
    *,
    ks: Iterable[int] = DEFAULT_KS,
    model: str = "",
) -> dict:
    """Result record for one task and language: mean pass@k and per-row results."""
    ks = tuple(ks)
    if len(entries) != len(verdicts):
        raise ValueError(f"{len(verdicts)} verdict rows for {len(entries)} entries")
    counts = [(len(row), sum(v.passed for v in row)) for row in verdicts]
    rows = []
    for entry, row, (n, c) in zip(entries, verdicts, counts):
        record: dict = {"task_id": entry.task_id}
        if entry.description_index is not None:
            record["description_index"] = entry.description_index
        record.update({"n": n, "correct": c})
        record.update({f"pass@{k}": pass_at_k(n, c, k) for k in ks if k <= n})
        record["samples"] = [
            {
                "passed": v.passed,
                "status": v.status,
                "detail": v.detail[:DETAIL_CHARS],
                "seconds": round(v.seconds, 3),
                "cached": v.cached,
            }
            for v in row
        ]
        rows.append(record)
    sizes = sorted({n for n, _ in counts})
    return {
        "model": model,
        "task": task.name,
        "harness_task": task.harness_name,
        "language": task.language,
        "template": task.template,
        "num_problems": len({e.task_id for e in entries}),
        "num_rows": len(entries),
        "n_samples": sizes[0] if len(sizes) == 1 else sizes,
        **mean_pass_at_k(counts, ks),
        "rows": rows,
    }


def score(
    task: Task,
    entries: Sequence[Entry],
    generations: Sequence[Sequence[str]],
    *,
    workers: int | None = None,
    cache_dir: str | os.PathLike | None = None,
    progress: bool = True,
    ks: Iterable[int] = DEFAULT_KS,
    model: str = "",
) -> dict:
    """Execute and summarize in one step."""
    verdicts = execute(
        task, entries, generations, workers=workers, cache_dir=cache_dir, progress=progress
    )
    return summarize(task, entries, verdicts, ks=ks, model=model)
