"""Typed training configuration, loaded from YAML with `key.sub=value` overrides.

Every section is a dataclass; unknown keys and bad values raise ConfigError naming the file and
the dotted key. The data section is octojax.data.DataConfig.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any

import yaml

from octojax.model.config import REMAT_POLICIES, ModelConfig, get_preset
from octojax.model.lora import LORA_TARGETS


class ConfigError(ValueError):
    """A training configuration that cannot be used."""


@dataclasses.dataclass
class ModelSection:
    preset: str | None = "test"  # a preset name, or None with hf_config
    hf_config: str | None = None  # a HF config.json (or its directory) instead of a preset
    dtype: str = "bfloat16"  # compute dtype
    param_dtype: str = "float32"  # master weights
    remat: str = "none"
    scan_layers: bool = True
    attention_impl: str = "auto"
    overrides: dict = dataclasses.field(default_factory=dict)  # any ModelConfig field

    def build(self, vocab_size: int | None = None) -> ModelConfig:
        numerics = dict(
            dtype=self.dtype,
            param_dtype=self.param_dtype,
            remat=self.remat,
            scan_layers=self.scan_layers,
            attention_impl=self.attention_impl,
        )
        extra = dict(self.overrides)
        if vocab_size is not None and "vocab_size" not in extra:
            extra["vocab_size"] = vocab_size
        if self.hf_config:
            return ModelConfig.from_hf_json(self.hf_config, **numerics, **extra)
        if not self.preset:
            raise ConfigError("model: give a preset or an hf_config")
        return get_preset(self.preset, **numerics, **extra)


@dataclasses.dataclass
class InitSection:
    source: str = "scratch"  # scratch | hf | octojax
    path: str | None = None  # HF model dir or octojax checkpoint
    seed: int = 0


@dataclasses.dataclass
class MeshSection:
    """Device mesh sizes; -1 fills with the remaining devices. `dcn_*` split an axis across hosts
    / slices (multi-slice TPU, multi-node GPU) and the rest within a host."""

    data: int = 1
    fsdp: int = -1
    tensor: int = 1
    dcn_data: int = 1
    dcn_fsdp: int = 1
    dcn_tensor: int = 1
    distributed: bool = False  # call jax.distributed.initialize() first (multi-host)


@dataclasses.dataclass
class OptimizerSection:
    lr: float = 5e-4
    schedule: str = "cosine"  # cosine | linear | constant (all after a linear warm-up)
    warmup_steps: int = 0
    final_lr_ratio: float = 0.0  # lr at the last step / peak lr
    weight_decay: float = 0.0  # masked off biases and LayerNorm parameters
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    grad_clip: float = 1.0  # global norm; 0 disables


@dataclasses.dataclass
class LoraSection:
    enabled: bool = False
    rank: int = 16
    alpha: float = 32.0
    targets: list = dataclasses.field(default_factory=lambda: ["q", "kv", "o"])


@dataclasses.dataclass
class TrainSection:
    steps: int = 100
    global_batch_size: int = 8
    micro_batch_size: int | None = None  # None: no accumulation; else global / micro scan steps
    seed: int = 0


@dataclasses.dataclass
class CheckpointSection:
    every: int = 100  # save every N steps (and at the end, and on SIGTERM)
    keep: int = 3
    async_save: bool = True
    dir: str | None = None  # default <run_dir>/checkpoints; gs:// paths work with orbax


@dataclasses.dataclass
class LogSection:
    every: int = 1
    tensorboard: bool = True
    progress: bool = True
    peak_tflops_per_device: float | None = None  # default: from the device kind (MFU)


@dataclasses.dataclass
class ExportSection:
    hf: bool = True  # write <run_dir>/hf at the end (LoRA merged)
    dtype: str = "bfloat16"


@dataclasses.dataclass
class TrainConfig:
    run_dir: str = "runs/train"
    model: ModelSection = dataclasses.field(default_factory=ModelSection)
    init: InitSection = dataclasses.field(default_factory=InitSection)
    data: Any = None  # octojax.data.DataConfig (None: the caller supplies batches)
    mesh: MeshSection = dataclasses.field(default_factory=MeshSection)
    optimizer: OptimizerSection = dataclasses.field(default_factory=OptimizerSection)
    lora: LoraSection = dataclasses.field(default_factory=LoraSection)
    train: TrainSection = dataclasses.field(default_factory=TrainSection)
    checkpoint: CheckpointSection = dataclasses.field(default_factory=CheckpointSection)
    log: LogSection = dataclasses.field(default_factory=LogSection)
    export: ExportSection = dataclasses.field(default_factory=ExportSection)

    def validate(self, where: str = "config") -> None:
        t, o, m = self.train, self.optimizer, self.model
        _require(t.steps > 0, f"{where}: train.steps must be positive, got {t.steps}")
        _require(t.global_batch_size > 0, f"{where}: train.global_batch_size must be positive")
        if t.micro_batch_size is not None:
            _require(
                t.micro_batch_size > 0 and t.global_batch_size % t.micro_batch_size == 0,
                f"{where}: train.micro_batch_size {t.micro_batch_size} must divide "
                f"global_batch_size {t.global_batch_size}",
            )
        _require(o.lr > 0, f"{where}: optimizer.lr must be positive, got {o.lr}")
        _require(
            o.schedule in ("cosine", "linear", "constant"),
            f"{where}: optimizer.schedule {o.schedule!r} not one of cosine, linear, constant",
        )
        _require(
            0 <= o.warmup_steps < t.steps,
            f"{where}: optimizer.warmup_steps {o.warmup_steps} must be in [0, train.steps)",
        )
        _require(
            m.remat in REMAT_POLICIES, f"{where}: model.remat {m.remat!r} not in {REMAT_POLICIES}"
        )
        _require(
            self.init.source in ("scratch", "hf", "octojax"),
            f"{where}: init.source {self.init.source!r} not one of scratch, hf, octojax",
        )
        _require(
            self.init.source == "scratch" or self.init.path,
            f"{where}: init.path is required when init.source is {self.init.source!r}",
        )
        if self.lora.enabled:
            bad = sorted(set(self.lora.targets) - set(LORA_TARGETS))
            _require(not bad, f"{where}: lora.targets {bad} not in {sorted(LORA_TARGETS)}")
            _require(self.lora.rank > 0, f"{where}: lora.rank must be positive")
        for axis in ("data", "fsdp", "tensor"):
            size = getattr(self.mesh, axis)
            _require(size == -1 or size > 0, f"{where}: mesh.{axis} must be -1 or positive")
        _require(self.checkpoint.every > 0, f"{where}: checkpoint.every must be positive")
        _require(self.checkpoint.keep > 0, f"{where}: checkpoint.keep must be positive")

    @property
    def checkpoint_dir(self):
        """<run_dir>/checkpoints, or checkpoint.dir (local or gs://) as an etils epath.Path."""
        from etils import epath

        return epath.Path(self.checkpoint.dir or Path(self.run_dir).absolute() / "checkpoints")


def _require(ok: bool, message: str) -> None:
    if not ok:
        raise ConfigError(message)


# ---- loading ------------------------------------------------------------------------------------


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Check/convert a YAML value against a dataclass field annotation."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        errors = []
        for opt in options:
            if opt is type(None):
                continue
            try:
                return _coerce(value, opt, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected true/false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if annotation is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    if annotation in (list, dict) or origin in (list, dict):
        expected = origin or annotation
        if isinstance(value, expected):
            return value
        raise ConfigError(f"{where}: expected a {expected.__name__}, got {value!r}")
    if dataclasses.is_dataclass(annotation):
        return _build(annotation, value, where)
    return value


def _build(cls, d: Any, where: str):
    if isinstance(d, cls):
        return d
    if d is None:
        d = {}
    if not isinstance(d, dict):
        raise ConfigError(f"{where}: expected a mapping, got {d!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(d) - fields)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {unknown}; known: {sorted(fields)}")
    kwargs = {}
    for name, value in d.items():
        key = f"{where}.{name}"
        if cls is TrainConfig and name == "data":
            kwargs[name] = _build_data(value, key)
        else:
            kwargs[name] = _coerce(value, hints[name], key)
    return cls(**kwargs)


def _build_data(value: Any, where: str):
    if value is None:
        return None
    from octojax.data.config import DataConfig

    try:
        return DataConfig.from_dict(value, where=where)
    except ValueError as e:
        raise ConfigError(str(e)) from None


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = tree
    for k in keys[:-1]:
        node = node.setdefault(k, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {k} is not a section")
    node[keys[-1]] = value


def parse_overrides(overrides: list[str]) -> list[tuple[str, Any]]:
    """`a.b=value` strings -> (key, YAML-parsed value)."""
    out = []
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r}: expected key=value (e.g. train.steps=10)")
        key, raw = item.split("=", 1)
        out.append((key.strip(), yaml.safe_load(raw) if raw.strip() else None))
    return out


def config_from_dict(d: dict, overrides: list[str] = (), where: str = "config") -> TrainConfig:
    d = dict(d or {})
    for key, value in parse_overrides(list(overrides)):
        _set_dotted(d, key, value)
    cfg = _build(TrainConfig, d, where)
    cfg.validate(where)
    return cfg


def read_yaml(path: str | Path, what: str = "config file") -> dict:
    """A YAML mapping from a file; ConfigError naming the file if it is absent or not YAML."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: {what} does not exist")
    try:
        return yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: invalid YAML ({e})") from None


def load_config(path: str | Path, overrides: list[str] = ()) -> TrainConfig:
    """Load a YAML config file and apply `key=value` overrides."""
    return config_from_dict(read_yaml(path), overrides, where=str(path))


def config_to_dict(cfg: TrainConfig) -> dict:
    return dataclasses.asdict(cfg)
