"""A roofline from the compiler's cost: a step takes at least its flops at the chip's peak bf16
rate and at least its bytes at the chip's HBM bandwidth; the larger bound is the step time.
Tokens/s follow from the step's tokens, MFU from the model's flops per token (PaLM's convention,
octojax/model/config.py `flops_per_token`, as the trainer reports it) against the peak."""

from __future__ import annotations

import dataclasses

from octojax.plan.devices import Chip


@dataclasses.dataclass(frozen=True)
class Roofline:
    """Per-device flops and bytes of one step, its lower-bound time and what it implies."""

    flops: float  # per device per step (every loop iteration counted)
    bytes: float  # per device per step
    compute_s: float  # flops / peak
    memory_s: float  # bytes / bandwidth
    tokens: int  # tokens the whole slice processes per step
    chips: int
    model_flops: float | None  # per token (None: not a training step)
    peak_flops: float  # per chip, FLOP/s

    @property
    def step_s(self) -> float:
        return max(self.compute_s, self.memory_s)

    @property
    def bound(self) -> str:
        return "compute" if self.compute_s >= self.memory_s else "memory"

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.step_s if self.step_s else 0.0

    @property
    def mfu(self) -> float | None:
        """Model flops per second over the slice's peak (None without model flops)."""
        if self.model_flops is None or not self.step_s:
            return None
        return self.model_flops * self.tokens_per_s / (self.peak_flops * self.chips)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self) | {
            "step_s": self.step_s, "bound": self.bound, "tokens_per_s": self.tokens_per_s,
            "mfu": self.mfu,
        }  # fmt: skip


def roofline(
    chip: Chip,
    flops: float,
    bytes_accessed: float,
    *,
    tokens: int,
    chips: int,
    model_flops_per_token: float | None = None,
) -> Roofline:
    """The roofline of a step of `tokens` tokens on `chips` chips of this kind."""
    peak = chip.peak_bf16_tflops * 1e12
    return Roofline(
        flops=flops, bytes=bytes_accessed, compute_s=flops / peak,
        memory_s=bytes_accessed / (chip.hbm_gbytes_per_s * 1e9), tokens=tokens, chips=chips,
        model_flops=model_flops_per_token, peak_flops=peak,
    )  # fmt: skip
