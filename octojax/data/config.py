"""Configuration of the instruction-tuning input pipeline (what to read and how to pack it)."""

from __future__ import annotations

import string
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from beam_pipelines.schema import FIELDS as SCHEMA_FIELDS
from octojax.config import Section, build

# OctoCoder's training format, as the public scripts build it (a space after "Answer:"):
# bigcode-project/octopack dataset/oasst/add_commitpackft.py and finetuning/finetune.py
# (prepare_sample_text). The evaluation prompt uses "Answer:\n" instead (eval/prompts.py).
DEFAULT_COMMIT_TEMPLATE = "Question: {subject}\n{old_contents}\n\nAnswer: {new_contents}"
DEFAULT_INSTRUCTION_TEMPLATE = "Question: {prompt}\n\nAnswer: {completion}"

# Fields a template may use, and the field whose value is the answer (the loss-mask boundary).
COMMIT_FIELDS = SCHEMA_FIELDS  # the CommitPack record schema, owned by beam_pipelines
COMMIT_ANSWER_FIELD = "new_contents"
INSTRUCTION_FIELDS = ("prompt", "completion")
INSTRUCTION_ANSWER_FIELD = "completion"


def template_fields(template: str) -> list[str]:
    """Names of the ``{field}`` placeholders of a str.format template, in order."""
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def check_template(template: str, allowed: tuple[str, ...], answer: str, where: str) -> None:
    """Raise ValueError unless ``template`` uses only ``allowed`` fields and ``{answer}`` once."""
    try:
        fields = template_fields(template)
    except ValueError as err:
        raise ValueError(f"{where}: not a valid format template: {err}") from err
    for name in fields:
        if name not in allowed:
            raise ValueError(
                f"{where}: unknown field {{{name}}} in template; allowed: {', '.join(allowed)}"
            )
    if fields.count(answer) != 1:
        raise ValueError(
            f"{where}: template must contain {{{answer}}} exactly once (it marks the answer)"
        )


class SourceConfig(Section):
    """One input: JSONL instruction files or CommitPackFT TFRecord shards.

    ``path``: a file, a directory (every ``*.jsonl`` / ``*.tfrecord`` below it; a pipeline output
    directory with ``manifest.json`` is read in manifest order) or a glob pattern.
    ``weight``: how many times the source's examples are seen per epoch (1.0 once, 2.0 twice,
    0.5 a different seeded half every epoch). ``languages``: CommitPackFT ``lang`` values to keep
    (case-insensitive), e.g. the paper's six; None keeps all.
    """

    kind: Literal["jsonl", "commitpackft"]
    path: str = Field(min_length=1)
    weight: float = Field(1.0, gt=0)
    languages: list[str] | None = None

    @model_validator(mode="after")
    def _languages_only_for_commits(self) -> SourceConfig:
        if self.languages is not None:
            if self.kind != "commitpackft":
                raise ValueError("languages: only a commitpackft source has languages")
            if not all(self.languages):
                raise ValueError(f"languages: empty language name in {self.languages!r}")
        return self


class DataOptions(Section):
    """How examples are formatted, tokenised and packed (everything but what to read)."""

    seq_len: int = Field(2048, ge=2)
    commit_template: str = DEFAULT_COMMIT_TEMPLATE
    instruction_template: str = DEFAULT_INSTRUCTION_TEMPLATE
    append_eos: bool = True
    overlong: Literal["split", "truncate"] = "split"
    loss_on: Literal["all", "answer"] = "all"
    seed: int = Field(0, ge=0)
    num_epochs: int | None = Field(1, ge=1)  # None: repeat forever
    on_bad_record: Literal["error", "skip"] = "error"
    num_workers: int = Field(0, ge=0)
    pack_lookahead: int = Field(64, ge=1)

    @field_validator("commit_template")
    @classmethod
    def _commit_template(cls, v: str) -> str:
        check_template(v, COMMIT_FIELDS, COMMIT_ANSWER_FIELD, "template")
        return v

    @field_validator("instruction_template")
    @classmethod
    def _instruction_template(cls, v: str) -> str:
        check_template(v, INSTRUCTION_FIELDS, INSTRUCTION_ANSWER_FIELD, "template")
        return v


class DataConfig(DataOptions):
    """What the trainer's ``data:`` section holds: sources, tokenizer, formatting and packing.

    See docs/data.md for the meaning of every field.
    """

    sources: list[SourceConfig] = Field(min_length=1)
    tokenizer: str = Field(min_length=1)  # a tokenizer directory or tokenizer.json

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "data") -> DataConfig:
        """Build from a plain mapping (a YAML section); ConfigError names ``where`` and the key."""
        return build(cls, d, where)
