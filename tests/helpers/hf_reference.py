"""Random tiny PyTorch GPTBigCode models (transformers) as the parity reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip(
    "torch", reason="parity tests need torch (pip install 'octojax[torch]')"
)
transformers = pytest.importorskip("transformers")


def make_hf_model(
    *,
    multi_query: bool = True,
    activation: str = "gelu_pytorch_tanh",
    n_inner: int | None = 72,
    vocab_size: int = 301,
    n_positions: int = 128,
    n_embd: int = 48,
    n_layer: int = 3,
    n_head: int = 4,
    seed: int = 0,
    weight_scale: float = 4.0,
):
    """A GPTBigCodeForCausalLM with random weights large enough that errors would show.

    HF initialises with std 0.02, which makes logits tiny; scaling the weights and randomising the
    LayerNorm parameters makes the parity tests sensitive to layout mistakes.
    """
    cfg = transformers.GPTBigCodeConfig(
        vocab_size=vocab_size, n_positions=n_positions, n_embd=n_embd, n_layer=n_layer,
        n_head=n_head, n_inner=n_inner, multi_query=multi_query, activation_function=activation,
        bos_token_id=0, eos_token_id=0, pad_token_id=0,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = transformers.GPTBigCodeForCausalLM(cfg).eval()
    gen = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "ln" in name:
                p.copy_(
                    torch.randn(p.shape, generator=gen) * 0.3 + (1.0 if "weight" in name else 0.0)
                )
            else:
                p.mul_(weight_scale).add_(torch.randn(p.shape, generator=gen) * 0.01)
    return model


def save_hf(model, path: Path) -> Path:
    model.save_pretrained(str(path), safe_serialization=True)
    return path


def hf_logits(model, ids: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Float32 logits; with a left-padding mask, positions start at the first real token."""
    with torch.no_grad():
        kwargs = {}
        if mask is not None:
            m = torch.tensor(mask)
            kwargs = {
                "attention_mask": m,
                "position_ids": (m.cumsum(-1) - 1).clamp(min=0),
            }
        return model(torch.tensor(ids), **kwargs).logits.float().numpy()
