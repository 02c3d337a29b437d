"""The StarCoder (GPTBigCode) model: configuration, Flax NNX module, attention."""

from octojax.model.config import PRESETS, ConfigError, ModelConfig, get_preset
from octojax.model.gptbigcode import (
    GPTBigCode,
    KVCache,
    init_model,
    model_from_params,
    param_dict,
    positions_from_segments,
)

__all__ = [
    "PRESETS",
    "ConfigError",
    "GPTBigCode",
    "KVCache",
    "ModelConfig",
    "get_preset",
    "init_model",
    "model_from_params",
    "param_dict",
    "positions_from_segments",
]
