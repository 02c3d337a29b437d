"""How to sample: the one typed settings section of every generation entry point, and its flags.

`octojax generate`, `python -m eval generate` / `octojax evaluate`, `octojax run`'s evaluate
stage, `Generator.generate` and the benches all take a `SamplingConfig`; the command-line flags
are generated from its fields here, so each default exists once. An entry point may change a
default only where a source says so (HumanEvalPack's generation length, eval/tasks.py).
Imports no jax (eval and the config loader use it).
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import Field

from octojax.config import ConfigError, Section, build


class SamplingConfig(Section):
    """Decoding settings; temperature 0 is greedy, top_k 0 and top_p 1 turn those filters off."""

    n_samples: int = Field(
        1, ge=1, description="completions per prompt (the prompt is prefilled once)"
    )
    temperature: float = Field(0.0, ge=0, description="0 = greedy")
    top_p: float = Field(1.0, gt=0, le=1, description="nucleus mass kept (1 = off)")
    top_k: int = Field(0, ge=0, description="keep the k most likely tokens (0 = off)")
    max_new_tokens: int = Field(256, ge=1, description="new tokens per completion at most")
    stop_sequences: list[str] = Field([], description="stop sequence (repeatable)")
    seed: int = Field(0, description="row i of a call samples from fold_in(key(seed), i)")
    slots: int = Field(32, ge=1, description="rows decoded at once (continuous-batching slots)")

    def replace(self, **changes: Any) -> SamplingConfig:
        """A validated copy with `changes` applied (ConfigError for a bad value)."""
        return build(type(self), {**self.model_dump(), **changes}, "sampling")


# Field -> extra option strings besides its flag (kept for scripts written before the section).
FLAG_ALIASES: dict[str, tuple[str, ...]] = {"slots": ("--batch-size",)}


def _option(name: str) -> str:
    """The flag of a field: --field-name, except --stop (repeated once per stop sequence)."""
    return "--stop" if name == "stop_sequences" else "--" + name.replace("_", "-")


def add_sampling_flags(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    defaults: SamplingConfig | None = None,
    aliases: dict[str, tuple[str, ...]] | None = None,
) -> None:
    """One flag per SamplingConfig field (--max-new-tokens, --top-p, ...), defaults from `defaults`."""
    defaults = defaults or SamplingConfig()
    aliases = {**FLAG_ALIASES, **(aliases or {})}
    for name, field in SamplingConfig.model_fields.items():
        flags = [_option(name), *aliases.get(name, ())]
        default = getattr(defaults, name)
        help_text = f"{field.description} (default: {default})"
        if name == "stop_sequences":
            parser.add_argument(
                *flags,
                dest=name,
                action="append",
                default=None,
                metavar="TEXT",
                help=field.description,
            )
            continue
        parser.add_argument(
            *flags,
            dest=name,
            type=field.annotation,
            default=default,
            metavar=field.annotation.__name__.upper(),
            help=help_text,
        )


def sampling_from_args(
    args: argparse.Namespace, defaults: SamplingConfig | None = None
) -> SamplingConfig:
    """The SamplingConfig the flags of `add_sampling_flags` describe (ConfigError naming the flag)."""
    values = {name: getattr(args, name) for name in SamplingConfig.model_fields}
    if values["stop_sequences"] is None:
        values["stop_sequences"] = list((defaults or SamplingConfig()).stop_sequences)
    try:
        return build(SamplingConfig, values, "sampling flags")
    except ConfigError as e:
        for name in SamplingConfig.model_fields:  # name the flag, not the field
            e = ConfigError(str(e).replace(f": {name}: ", f": {_option(name)}: "))
        raise e from None
