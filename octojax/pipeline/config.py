"""Configuration of `octojax run`: one YAML for every stage, the embedded default in default.yaml."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import yaml

from octojax.train.config import ConfigError, parse_overrides, read_yaml

DEFAULT_CONFIG = Path(__file__).with_name("default.yaml")
SECTIONS = {"run_dir", "shared_dir", "tokenizer", "commitpack", "train", "data", "evaluate"}
_SECTION_KEYS = {
    "tokenizer": {"vocab_size"},
    "commitpack": {"repos", "extra_args"},
    "data": {"seq_len", "loss_on", "num_epochs", "instruction_mix"},
    "evaluate": {"tasks", "languages", "limit", "max_new_tokens", "n_samples", "temperature",
                 "batch_size", "enabled"},
}  # fmt: skip


def load_run_config(path: str | Path | None = None, overrides: list[str] = ()) -> dict[str, Any]:
    """The default config, updated by a YAML file and `a.b=value` overrides; validated."""
    cfg = yaml.safe_load(DEFAULT_CONFIG.read_text())
    where = "default run config"
    if path is not None:
        cfg = _merge(cfg, read_yaml(path, "run config"), str(path))
        where = str(path)
    for key, value in parse_overrides(list(overrides)):
        node = cfg
        parts = key.split(".")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = value
    _validate(cfg, where)
    return cfg


def _merge(base: dict, update: dict, where: str) -> dict:
    out = copy.deepcopy(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v, where)
        else:
            out[k] = v
    return out


def _validate(cfg: dict, where: str) -> None:
    unknown = sorted(set(cfg) - SECTIONS)
    if unknown:
        raise ConfigError(f"{where}: unknown section(s) {unknown}; known: {sorted(SECTIONS)}")
    for section, keys in _SECTION_KEYS.items():
        bad = sorted(set(cfg.get(section) or {}) - keys)
        if bad:
            raise ConfigError(f"{where}: {section}: unknown key(s) {bad}; known: {sorted(keys)}")
    repos = cfg["commitpack"].get("repos") or []
    if not isinstance(repos, list) or not repos:
        raise ConfigError(f"{where}: commitpack.repos must be a non-empty list")
