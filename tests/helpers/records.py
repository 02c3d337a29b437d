"""Small CommitPackFT records for tests that write TFRecord shards (every schema field a str)."""

from __future__ import annotations

from beam_pipelines.schema import FIELDS


def commitpackft_records(n: int, start: int = 0) -> list[dict[str, str]]:
    """n Python commits, numbered from `start`: f{k} goes from adding k to multiplying by k + 1."""
    records = []
    for k in range(start, start + n):
        record = {field: f"{field} {k}" for field in FIELDS}
        record.update(
            old_contents=f"def f{k}(x):\n    return x + {k}\n",
            new_contents=f"def f{k}(x):\n    return x * {k + 1}\n",
            subject=f"Multiply by {k + 1} in f{k}",
            lang="Python",
        )
        records.append(record)
    return records
