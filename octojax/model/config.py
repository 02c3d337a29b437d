"""GPTBigCode (StarCoder) model configuration: a dataclass, presets, and Hugging Face config.json I/O."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Literal, get_args

from octojax.config import ConfigError

# Activation names used in Hugging Face config.json files, mapped to "is the tanh approximation".
_ACTIVATIONS = {
    "gelu": False,  # exact erf GELU
    "gelu_new": True,
    "gelu_fast": True,
    "gelu_pytorch_tanh": True,
}

Activation = Literal["gelu", "gelu_new", "gelu_fast", "gelu_pytorch_tanh"]
DType = Literal["float32", "bfloat16", "float16"]
Remat = Literal["none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable"]
# auto: splash on TPU, cuDNN on GPU where dtype/shape allow, XLA elsewhere (octojax/model/attention.py)
AttentionImpl = Literal["auto", "xla", "cudnn", "splash"]
REMAT_POLICIES = get_args(Remat)
ATTENTION_IMPLS = get_args(AttentionImpl)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Shape and numerics of a GPTBigCode model.

    Shapes follow Hugging Face naming (n_embd, n_layer, ...) so presets read like config.json;
    the numerics fields (dtype, param_dtype, remat, scan_layers, attention_impl) are octojax's own.
    """

    vocab_size: int = 49152
    n_positions: int = 8192
    n_embd: int = 2048
    n_layer: int = 24
    n_head: int = 16
    n_inner: int | None = None  # None means 4 * n_embd, as in Hugging Face
    multi_query: bool = True
    activation_function: Activation = "gelu_pytorch_tanh"
    layer_norm_epsilon: float = 1e-5
    initializer_range: float = 0.02
    bos_token_id: int = 0
    eos_token_id: int = 0
    # octojax numerics
    dtype: DType = "float32"  # compute dtype of matmuls and activations
    param_dtype: DType = "float32"  # storage dtype of parameters
    remat: Remat = "none"  # rematerialisation policy of each block
    scan_layers: bool = True  # lax.scan over the stacked blocks: compile time independent of depth
    attention_impl: AttentionImpl = "auto"

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ConfigError(f"n_embd={self.n_embd} is not divisible by n_head={self.n_head}")
        if self.activation_function not in _ACTIVATIONS:
            raise ConfigError(
                f"activation_function={self.activation_function!r} not supported; "
                f"expected one of {sorted(_ACTIVATIONS)}"
            )
        if self.remat not in REMAT_POLICIES:
            raise ConfigError(f"remat={self.remat!r}; expected one of {REMAT_POLICIES}")
        if self.attention_impl not in ATTENTION_IMPLS:
            raise ConfigError(
                f"attention_impl={self.attention_impl!r}; expected one of {ATTENTION_IMPLS}"
            )
        for name in ("dtype", "param_dtype"):
            if getattr(self, name) not in get_args(DType):
                raise ConfigError(
                    f"{name}={getattr(self, name)!r}; expected float32/bfloat16/float16"
                )
        for name in ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return 1 if self.multi_query else self.n_head

    @property
    def mlp_dim(self) -> int:
        return self.n_inner if self.n_inner is not None else 4 * self.n_embd

    @property
    def gelu_approximate(self) -> bool:
        return _ACTIVATIONS[self.activation_function]

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def num_params(self, include_embeddings: bool = True) -> int:
        """Exact parameter count (tied output embedding counted once)."""
        d, m, h = self.n_embd, self.mlp_dim, self.head_dim
        kv = 2 * self.kv_heads * h
        per_layer = (
            2 * 2 * d  # two LayerNorms
            + d * d
            + d  # q
            + d * kv
            + kv  # k, v
            + d * d
            + d  # attention output
            + d * m
            + m
            + m * d
            + d  # mlp
        )
        total = self.n_layer * per_layer + 2 * d
        if include_embeddings:
            total += self.vocab_size * d + self.n_positions * d
        return total

    def flops_per_token(self, seq_len: int, *, frozen_base: bool = False) -> float:
        """Training FLOPs per token (forward + backward = 3x forward), with the attention term.

        6 * (matmul parameters, output projection included) + 12 * n_layer * seq_len * n_embd for
        attention scores and values (PaLM's convention, no causal halving; it reproduces the 45% MFU
        design.md quotes for Hugging Face on the 1b shape). With a frozen base (LoRA) the backward
        pass computes no weight gradients, so 4 * matmul parameters (the adapters' own flops,
        rank / width of the base's, are left out); counting 6 would put MFU above 100%.
        """
        d, m = self.n_embd, self.mlp_dim
        kv = 2 * self.kv_heads * self.head_dim
        matmul_params = self.n_layer * (d * d + d * kv + d * d + 2 * d * m) + d * self.vocab_size
        per_param = 4.0 if frozen_base else 6.0
        return per_param * matmul_params + 12.0 * self.n_layer * seq_len * d

    # ---- Hugging Face config.json ------------------------------------------------------------

    @classmethod
    def from_hf_dict(cls, hf: dict[str, Any], source: str = "config.json", **overrides: Any):
        """Build from a Hugging Face GPTBigCode config dict; raise ConfigError if it is not one."""
        model_type = hf.get("model_type")
        if model_type != "gpt_bigcode":
            raise ConfigError(
                f"{source}: model_type is {model_type!r}, not 'gpt_bigcode' (StarCoder); "
                "octojax only converts GPTBigCode checkpoints"
            )
        missing = [k for k in ("vocab_size", "n_embd", "n_layer", "n_head") if k not in hf]
        if missing:
            raise ConfigError(f"{source}: missing keys {missing}")
        fields = {
            "vocab_size": hf["vocab_size"],
            "n_positions": hf.get("n_positions", 8192),
            "n_embd": hf["n_embd"],
            "n_layer": hf["n_layer"],
            "n_head": hf["n_head"],
            "n_inner": hf.get("n_inner"),
            "multi_query": hf.get("multi_query", True),
            "activation_function": hf.get("activation_function", "gelu_pytorch_tanh"),
            "layer_norm_epsilon": hf.get("layer_norm_epsilon", 1e-5),
            "initializer_range": hf.get("initializer_range", 0.02),
            "bos_token_id": hf.get("bos_token_id", 0),
            "eos_token_id": hf.get("eos_token_id", 0),
        }
        if hf.get("scale_attn_weights", True) is False:
            raise ConfigError(f"{source}: scale_attn_weights=false is not supported")
        _check_hf_types(fields, source)
        fields.update(overrides)
        try:
            return cls(**fields)
        except ConfigError as e:
            raise ConfigError(f"{source}: {e}") from None

    @classmethod
    def from_hf_json(cls, path: str | Path, **overrides: Any) -> ModelConfig:
        path = Path(path)
        if path.is_dir():
            path = path / "config.json"
        if not path.exists():
            raise FileNotFoundError(
                f"{path}: no config.json (is this a Hugging Face model directory?)"
            )
        try:
            hf = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{path}: not valid JSON ({e})") from None
        return cls.from_hf_dict(hf, source=str(path), **overrides)

    def to_hf_dict(self) -> dict[str, Any]:
        """The config.json that transformers' GPTBigCodeForCausalLM reads."""
        return {
            "architectures": ["GPTBigCodeForCausalLM"],
            "model_type": "gpt_bigcode",
            "vocab_size": self.vocab_size,
            "n_positions": self.n_positions,
            "n_embd": self.n_embd,
            "n_layer": self.n_layer,
            "n_head": self.n_head,
            "n_inner": self.n_inner,
            "multi_query": self.multi_query,
            "activation_function": self.activation_function,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "initializer_range": self.initializer_range,
            "bos_token_id": self.bos_token_id,
            "eos_token_id": self.eos_token_id,
            "scale_attn_weights": True,
            "attention_softmax_in_fp32": True,
            "scale_attention_softmax_in_fp32": True,
            "resid_pdrop": 0.0,
            "embd_pdrop": 0.0,
            "attn_pdrop": 0.0,
            "use_cache": True,
            "tie_word_embeddings": True,
            "torch_dtype": self.param_dtype,
        }


# The JSON types of the config.json keys octojax reads: (accepted types, how to say it).
_INT, _NUM = ((int,), "an integer"), ((int, float), "a number")
_HF_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    **dict.fromkeys(("vocab_size", "n_positions", "n_embd", "n_layer", "n_head"), _INT),
    **dict.fromkeys(
        ("n_inner", "bos_token_id", "eos_token_id"), ((int, type(None)), "an integer or null")
    ),
    **dict.fromkeys(("layer_norm_epsilon", "initializer_range"), _NUM),
    "multi_query": ((bool,), "true or false"),
    "activation_function": ((str,), "a string"),
}


def _check_hf_types(fields: dict[str, Any], source: str) -> None:
    """A value of the wrong JSON type (e.g. "n_layer": "24") is one ConfigError naming the key."""
    for key, (types, want) in _HF_TYPES.items():
        value = fields[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ConfigError(f"{source}: {key} must be {want}, got {value!r}")


# Presets: the published StarCoder family (design.md) plus small sizes for tests and smoke runs.
PRESETS: dict[str, ModelConfig] = {
    "starcoder": ModelConfig(n_embd=6144, n_layer=40, n_head=48, n_inner=24576),
    "starcoderbase-7b": ModelConfig(n_embd=4096, n_layer=42, n_head=32, n_inner=16384),
    "starcoderbase-3b": ModelConfig(n_embd=2816, n_layer=36, n_head=22, n_inner=11264),
    "starcoderbase-1b": ModelConfig(n_embd=2048, n_layer=24, n_head=16, n_inner=8192),
    "tiny_starcoder": ModelConfig(n_embd=768, n_layer=20, n_head=12, n_inner=3072),
    # A few-layer model for CPU smoke runs (about 3M parameters with a 4k vocabulary).
    "smoke": ModelConfig(vocab_size=4096, n_positions=1024, n_embd=128, n_layer=4, n_head=4),
    # The smallest useful shape for unit tests.
    "test": ModelConfig(
        vocab_size=512, n_positions=128, n_embd=64, n_layer=2, n_head=4, n_inner=96
    ),
}
PRESETS["starcoderbase"] = PRESETS["starcoder"]


PRESET_NAMES = tuple(sorted(PRESETS))


def get_preset(name: str, **overrides: Any) -> ModelConfig:
    """A preset by name, with field overrides."""
    if name not in PRESETS:
        raise ConfigError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    return PRESETS[name].replace(**overrides)
