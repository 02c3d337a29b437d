"""The training config tree: what `octojax train --config configs/X.yaml [key.sub=value ...]` reads.

Sections are `octojax.config.Section`s (pydantic, strict, unknown keys rejected); `load_config`
validates a whole file at once, cross-field constraints included, and names file + dotted key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal, get_type_hints

from pydantic import Field, create_model, field_validator, model_validator

from octojax.config import ConfigError, Section, build, load
from octojax.data.config import DataConfig
from octojax.mesh import MeshSection
from octojax.model.config import PRESET_NAMES, ModelConfig, get_preset
from octojax.model.lora import LORA_TARGETS

# Every ModelConfig field may be set in the model section (None: the preset's / checkpoint's value).
_ModelFields = create_model(
    "ModelFields",
    __base__=Section,
    **{name: (hint | None, None) for name, hint in get_type_hints(ModelConfig).items()},
)


class ModelSection(_ModelFields):
    """The model: a preset (or a Hugging Face config.json) plus any ModelConfig field to change.

    When training starts from a checkpoint (init.source hf/octojax) the checkpoint's shape wins
    and the fields set here apply on top (typically the numerics: dtype, remat, attention_impl).
    """

    preset: Literal[PRESET_NAMES] | None = "test"
    hf_config: str | None = None  # a HF config.json (or its directory) instead of a preset

    def changes(self) -> dict[str, Any]:
        """The ModelConfig fields this section sets."""
        return {
            k: getattr(self, k) for k in _ModelFields.model_fields if getattr(self, k) is not None
        }

    def build(self, vocab_size: int | None = None) -> ModelConfig:
        """The ModelConfig of a from-scratch model (vocab_size: the tokenizer's, unless set here)."""
        changes = self.changes()
        if vocab_size is not None:
            changes.setdefault("vocab_size", vocab_size)
        if self.hf_config:
            return ModelConfig.from_hf_json(self.hf_config, **changes)
        if not self.preset:
            raise ConfigError("model: give a preset or an hf_config")
        return get_preset(self.preset, **changes)


class InitSection(Section):
    source: Literal["scratch", "hf", "octojax"] = "scratch"
    path: str | None = None  # HF model dir or octojax checkpoint
    seed: int = 0


class OptimizerSection(Section):
    lr: float = Field(5e-4, gt=0)
    schedule: Literal["cosine", "linear", "constant"] = "cosine"  # all after a linear warm-up
    warmup_steps: int = Field(0, ge=0)
    final_lr_ratio: float = Field(0.0, ge=0, le=1)  # lr at the last step / peak lr
    weight_decay: float = Field(0.0, ge=0)  # masked off biases and LayerNorm parameters
    b1: float = Field(0.9, ge=0, lt=1)
    b2: float = Field(0.999, ge=0, lt=1)
    eps: float = Field(1e-8, gt=0)
    grad_clip: float = Field(1.0, ge=0)  # global norm; 0 disables


class LoraSection(Section):
    enabled: bool = False
    rank: int = Field(16, gt=0)
    alpha: float = Field(32.0, gt=0)
    targets: list[Literal[tuple(LORA_TARGETS)]] = ["q", "kv", "o"]
    # PEFT's lora_dropout on each adapter's input (training only; > 0 runs adapters unmerged)
    dropout: float = Field(0.0, ge=0, lt=1)


class TrainSection(Section):
    steps: int = Field(100, gt=0)
    global_batch_size: int = Field(8, gt=0)
    micro_batch_size: int | None = Field(None, gt=0)  # None: no accumulation
    seed: int = 0
    # cross-entropy over chunks of this many positions, never the whole [B, T, V] fp32 logits
    # (octojax/train/loss.py): None = auto (chunked for vocabularies >= 16k), 0 = plain
    loss_chunk: int | None = Field(None, ge=0)


class CheckpointSection(Section):
    every: int = Field(100, gt=0)  # save every N steps (and at the end, and on SIGTERM/SIGINT)
    keep: int = Field(3, gt=0)
    async_save: bool = True
    dir: str | None = None  # default <run_dir>/checkpoints; gs:// paths work with orbax


class LogSection(Section):
    every: int = Field(1, gt=0)
    tensorboard: bool = True
    progress: bool = True
    peak_tflops_per_device: float | None = Field(None, gt=0)  # default: from the device kind


class ExportSection(Section):
    hf: bool = True  # write <run_dir>/hf at the end (LoRA merged)
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    # shard the safetensors above this size, like transformers' save_pretrained ("5GB", "2GiB")
    max_shard_size: int | str = "5GB"

    @field_validator("max_shard_size")
    @classmethod
    def _size(cls, v: int | str) -> int | str:
        from octojax.convert.safetensors_io import parse_size

        parse_size(v)  # raises ValueError naming the problem
        return v


class TrainConfig(Section):
    """Everything one training run needs; see configs/*.yaml and docs/training.md."""

    run_dir: str = "runs/train"
    model: ModelSection = ModelSection()
    init: InitSection = InitSection()
    data: DataConfig | None = None  # None: the caller supplies batches
    mesh: MeshSection = MeshSection()
    optimizer: OptimizerSection = OptimizerSection()
    lora: LoraSection = LoraSection()
    train: TrainSection = TrainSection()
    checkpoint: CheckpointSection = CheckpointSection()
    log: LogSection = LogSection()
    export: ExportSection = ExportSection()

    @model_validator(mode="after")
    def _cross_field(self) -> TrainConfig:
        _check_batches(self)
        if self.optimizer.warmup_steps >= self.train.steps:
            raise ValueError(
                f"optimizer.warmup_steps {self.optimizer.warmup_steps} must be smaller than "
                f"train.steps {self.train.steps}"
            )
        if self.init.source != "scratch" and not self.init.path:
            raise ValueError(f"init.path is required when init.source is {self.init.source!r}")
        _check_model(self)
        return self

    @property
    def checkpoint_dir(self):
        """<run_dir>/checkpoints, or checkpoint.dir (local or gs://) as an etils epath.Path."""
        from etils import epath

        return epath.Path(self.checkpoint.dir or Path(self.run_dir).absolute() / "checkpoints")


def _check_batches(cfg: TrainConfig) -> None:
    t, m = cfg.train, cfg.mesh
    if t.micro_batch_size is not None and t.global_batch_size % t.micro_batch_size:
        raise ValueError(
            f"train.micro_batch_size {t.micro_batch_size} must divide "
            f"train.global_batch_size {t.global_batch_size}"
        )
    shards = max(m.data, 1) * max(m.fsdp, 1) * m.dcn_data * m.dcn_fsdp  # -1 axes: known later
    problem = batch_split_problem(t, shards)
    if problem:
        raise ValueError(problem)


def batch_split_problem(train: TrainSection, shards: int) -> str | None:
    """Why a (micro-)batch cannot be split evenly over `shards` data x fsdp devices, or None.
    Checked at load for explicit mesh sizes, and by the trainer once -1 axes are resolved."""
    rows = train.micro_batch_size or train.global_batch_size
    if rows % shards == 0:
        return None
    return (
        f"a (micro-)batch of {rows} rows cannot be split over mesh data x fsdp = {shards} "
        "devices; make train.global_batch_size / micro_batch_size a multiple of it"
    )


def _check_model(cfg: TrainConfig) -> None:
    """Build the model config at load time where no checkpoint is needed, and check positions."""
    source = "model section"
    if cfg.init.source == "scratch":
        model = cfg.model.build()
    else:
        config_json = _checkpoint_config_json(cfg.init.source, cfg.init.path)
        if config_json is None:
            return  # the trainer names the missing checkpoint file
        source = str(config_json)
        model = model_config_for(cfg)
    if cfg.data is not None:
        check_seq_len(cfg.data.seq_len, model.n_positions, source)


def check_seq_len(seq_len: int, n_positions: int, source: str) -> None:
    """Training rows longer than the position table would silently reuse its last embedding."""
    if seq_len > n_positions:
        raise ValueError(
            f"data.seq_len {seq_len} is larger than the model's n_positions {n_positions} "
            f"(from the {source}); positions past it have no embedding"
        )


def _checkpoint_config_json(source: str, path: str) -> Path | None:
    name = "config.json" if source == "hf" else "model_config.json"
    candidate = Path(path) / name
    return candidate if candidate.is_file() else None


def model_config_for(cfg: TrainConfig, vocab_size: int | None = None) -> ModelConfig:
    """The model's config: the checkpoint being tuned (HF or octojax) with the model section's
    fields applied, or the model section alone (vocab_size: the tokenizer's, from scratch)."""
    changes = cfg.model.changes()
    if cfg.init.source == "hf":
        return ModelConfig.from_hf_json(cfg.init.path, **changes)
    if cfg.init.source == "octojax":
        from octojax.convert.octojax_checkpoint import load_config as load_octojax_config

        return load_octojax_config(cfg.init.path).replace(**changes)
    return cfg.model.build(vocab_size=vocab_size)


def config_from_dict(d: dict, overrides: list[str] = (), where: str = "config") -> TrainConfig:
    """A TrainConfig from a plain mapping (+ overrides); ConfigError naming `where` and the key."""
    return (
        load(TrainConfig, None, overrides, defaults=d)
        if overrides
        else build(TrainConfig, d, where)
    )


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """Load a YAML training config and apply `key.sub=value` overrides."""
    return load(TrainConfig, path, overrides, what="training config")


def saved_config_diff(saved: dict, current: dict, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two config dicts (what a resume would change)."""
    out = []
    for key in sorted(set(saved) | set(current)):
        a, b = saved.get(key), current.get(key)
        dotted = f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += saved_config_diff(a, b, dotted + ".")
        elif json.dumps(a, sort_keys=True) != json.dumps(b, sort_keys=True):
            out.append(f"{dotted}: {a!r} -> {b!r}")
    return out
