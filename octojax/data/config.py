"""Configuration of the instruction-tuning input pipeline (what to read and how to pack it)."""

from __future__ import annotations

import dataclasses
import string
from typing import Any

from beam_pipelines.schema import FIELDS as SCHEMA_FIELDS

SOURCE_KINDS = ("jsonl", "commitpackft")
OVERLONG_MODES = ("split", "truncate")
LOSS_ON = ("all", "answer")
ON_BAD_RECORD = ("error", "skip")

DEFAULT_COMMIT_TEMPLATE = "Question: {subject}\n{old_contents}\n\nAnswer:\n{new_contents}"
DEFAULT_INSTRUCTION_TEMPLATE = "Question: {prompt}\n\nAnswer:\n{completion}"

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


def _dataclass_from_dict(cls, d: Any, where: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise ValueError(f"{where}: expected a mapping, got {type(d).__name__}")
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - names)
    if unknown:
        raise ValueError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; known: {', '.join(sorted(names))}"
        )
    return dict(d)


def _check_type(value: Any, types: type | tuple[type, ...], where: str, what: str) -> None:
    if isinstance(value, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
        raise ValueError(f"{where}: {what} must be {_names(types)}, got {value!r}")
    if not isinstance(value, types):
        raise ValueError(f"{where}: {what} must be {_names(types)}, got {value!r}")


def _names(types) -> str:
    types = types if isinstance(types, tuple) else (types,)
    return " or ".join(t.__name__ for t in types)


@dataclasses.dataclass
class SourceConfig:
    """One input: JSONL instruction files or CommitPackFT TFRecord shards.

    ``path``: a file, a directory (every ``*.jsonl`` / ``*.tfrecord`` below it; a pipeline output
    directory with ``manifest.json`` is read in manifest order) or a glob pattern.
    ``weight``: how many times the source's examples are seen per epoch (1.0 once, 2.0 twice,
    0.5 a different seeded half every epoch). ``languages``: CommitPackFT ``lang`` values to keep
    (case-insensitive), e.g. the paper's six; None keeps all.
    """

    kind: str
    path: str
    weight: float = 1.0
    languages: list[str] | None = None

    def __post_init__(self) -> None:
        self.validate("source")

    def validate(self, where: str) -> None:
        if self.kind not in SOURCE_KINDS:
            raise ValueError(f"{where}.kind: {self.kind!r} is not one of {', '.join(SOURCE_KINDS)}")
        _check_type(self.path, str, where, "path")
        if not self.path:
            raise ValueError(f"{where}.path: must not be empty")
        _check_type(self.weight, (int, float), where, "weight")
        if not self.weight > 0:
            raise ValueError(f"{where}.weight: must be > 0, got {self.weight!r}")
        if self.languages is not None:
            if self.kind != "commitpackft":
                raise ValueError(f"{where}.languages: only a commitpackft source has languages")
            if not isinstance(self.languages, (list, tuple)) or not all(
                isinstance(x, str) and x for x in self.languages
            ):
                raise ValueError(
                    f"{where}.languages: must be a list of language names, got {self.languages!r}"
                )
            self.languages = list(self.languages)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "source") -> SourceConfig:
        kwargs = _dataclass_from_dict(cls, d, where)
        for key in ("kind", "path"):
            if key not in kwargs:
                raise ValueError(f"{where}: missing required key {key!r}")
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            setattr(obj, f.name, kwargs.get(f.name, default))
        obj.validate(where)
        return obj


@dataclasses.dataclass
class DataConfig:
    """What the trainer's ``data:`` section holds: sources, tokenizer, formatting and packing.

    See docs/data.md for the meaning of every field.
    """

    sources: list[SourceConfig]
    tokenizer: str
    seq_len: int = 2048
    commit_template: str = DEFAULT_COMMIT_TEMPLATE
    instruction_template: str = DEFAULT_INSTRUCTION_TEMPLATE
    append_eos: bool = True
    overlong: str = "split"
    loss_on: str = "all"
    seed: int = 0
    num_epochs: int | None = 1
    on_bad_record: str = "error"
    num_workers: int = 0
    pack_lookahead: int = 64

    def __post_init__(self) -> None:
        self.sources = [
            s if isinstance(s, SourceConfig) else SourceConfig.from_dict(s, f"data.sources[{i}]")
            for i, s in enumerate(self.sources)
        ]
        self.validate("data")

    def validate(self, where: str) -> None:
        if not isinstance(self.sources, list) or not self.sources:
            raise ValueError(f"{where}.sources: must be a non-empty list of sources")
        for i, src in enumerate(self.sources):
            src.validate(f"{where}.sources[{i}]")
        _check_type(self.tokenizer, str, where, "tokenizer")
        if not self.tokenizer:
            raise ValueError(f"{where}.tokenizer: must name a tokenizer directory or file")
        _check_type(self.seq_len, int, where, "seq_len")
        if self.seq_len < 2:
            raise ValueError(f"{where}.seq_len: must be >= 2, got {self.seq_len}")
        _check_type(self.commit_template, str, where, "commit_template")
        _check_type(self.instruction_template, str, where, "instruction_template")
        check_template(
            self.commit_template, COMMIT_FIELDS, COMMIT_ANSWER_FIELD, f"{where}.commit_template"
        )
        check_template(
            self.instruction_template,
            INSTRUCTION_FIELDS,
            INSTRUCTION_ANSWER_FIELD,
            f"{where}.instruction_template",
        )
        _check_type(self.append_eos, bool, where, "append_eos")
        for name, allowed in (
            ("overlong", OVERLONG_MODES),
            ("loss_on", LOSS_ON),
            ("on_bad_record", ON_BAD_RECORD),
        ):
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{where}.{name}: {value!r} is not one of {', '.join(allowed)}")
        _check_type(self.seed, int, where, "seed")
        if self.seed < 0:
            raise ValueError(f"{where}.seed: must be >= 0, got {self.seed}")
        if self.num_epochs is not None:
            _check_type(self.num_epochs, int, where, "num_epochs")
            if self.num_epochs < 1:
                raise ValueError(
                    f"{where}.num_epochs: must be >= 1 or null (repeat forever), got {self.num_epochs}"
                )
        _check_type(self.num_workers, int, where, "num_workers")
        if self.num_workers < 0:
            raise ValueError(f"{where}.num_workers: must be >= 0, got {self.num_workers}")
        _check_type(self.pack_lookahead, int, where, "pack_lookahead")
        if self.pack_lookahead < 1:
            raise ValueError(f"{where}.pack_lookahead: must be >= 1, got {self.pack_lookahead}")

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "data") -> DataConfig:
        """Build from a plain mapping (a YAML section); errors name ``where`` and the bad key."""
        kwargs = _dataclass_from_dict(cls, d, where)
        for key in ("sources", "tokenizer"):
            if key not in kwargs:
                raise ValueError(f"{where}: missing required key {key!r}")
        sources = kwargs["sources"]
        if not isinstance(sources, list) or not sources:
            raise ValueError(f"{where}.sources: must be a non-empty list of sources")
        kwargs["sources"] = [
            SourceConfig.from_dict(s, f"{where}.sources[{i}]") for i, s in enumerate(sources)
        ]
        obj = cls.__new__(cls)
        for f in dataclasses.fields(cls):
            default = f.default if f.default is not dataclasses.MISSING else None
            setattr(obj, f.name, kwargs.get(f.name, default))
        obj.validate(where)
        return obj

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-serialisable mapping (round-trips through from_dict)."""
        return dataclasses.asdict(self)
