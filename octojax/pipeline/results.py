"""What each stage of `octojax run` reports: one typed record per stage, kept in its `.done.json`.

A stage returns its record; the driver writes it into the stage's marker beside the bookkeeping
keys, and the report reads it back with `Run.result(stage)`. A stage that has not run reads back
as the record with every field None, so the report can say "n/a" without guessing keys.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StageResult:
    """Base: build from a marker (bookkeeping keys and unknown keys ignored), dump to one."""

    @classmethod
    def from_marker(cls, marker: dict[str, Any]):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in marker.items() if k in names})

    def to_marker(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TokenizerResult(StageResult):
    texts: int | None = None
    instruction_mix: str | None = None  # the mix file its texts came from, if any


@dataclass
class CommitpackResult(StageResult):
    output: str | None = None  # the dataset folder (commitpack/, commitpackft/, stats.json)
    commits_in: int | None = None
    commitpack_kept: int | None = None
    commitpackft_kept: int | None = None
    commits_per_s: float | None = None  # whole pipeline, start-up included


@dataclass
class TrainResult(StageResult):
    steps: int | None = None
    first_loss: float | None = None
    last_loss: float | None = None
    tokens_per_s_median: float | None = None  # over the logged intervals after the first
    hf_dir: str | None = None
    sources: list[str] = field(default_factory=list)


@dataclass
class EvaluateResult(StageResult):
    skipped: bool = False  # no HumanEvalPack data, or evaluate.enabled false
    tasks: list[str] = field(default_factory=list)  # harness task names generated
    results: str | None = None  # results.json


@dataclass
class ReportResult(StageResult):
    report: str | None = None  # report.md
    tables: bool = False  # whether it has a HumanEvalPack table


RESULT_TYPES: dict[str, type[StageResult]] = {
    "tokenizer": TokenizerResult,
    "commitpack": CommitpackResult,
    "train": TrainResult,
    "evaluate": EvaluateResult,
    "report": ReportResult,
}
