"""Sharded instruction tuning: config, mesh, optimizer, step, checkpoints, the training loop."""

from octojax.train.config import ConfigError, TrainConfig, config_from_dict, load_config
from octojax.train.trainer import Trainer, TrainResult

__all__ = [
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "Trainer",
    "config_from_dict",
    "load_config",
]
