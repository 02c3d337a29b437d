"""Text in, text out: tokenise, batch by length, decode, stop at EOS or stop sequences."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from tqdm import tqdm

from octojax.generate.decode import generate_tokens
from octojax.generate.sampling import SamplingParams
from octojax.model.gptbigcode import GPTBigCode
from octojax.tokenizer import load_tokenizer


@dataclasses.dataclass
class GenerationOutput:
    """New text (cut before the first stop sequence) and the new token ids behind it."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "eos", "stop_sequence" or "length"


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> tuple[str, bool]:
    """Cut text before the earliest occurrence of any stop sequence."""
    cut = min((i for s in stop_sequences if s and (i := text.find(s)) >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


def _bucket(n: int, multiple: int = 32) -> int:
    """Round prompt lengths up so batches of similar length share one compiled program."""
    return -(-n // multiple) * multiple


class Generator:
    """A model plus its tokenizer, generating batches of completions for text prompts."""

    def __init__(self, model: GPTBigCode, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_token: str = tokenizer.eos_token or "<|endoftext|>"
        self.eos_ids = tuple(
            sorted({i for i in (tokenizer.eos_token_id, model.cfg.eos_token_id) if i is not None})
        )
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        )
        self.last_stats: dict[str, float] = {}

    @classmethod
    def from_pretrained(
        cls, path: str | Path, *, dtype: str = "bfloat16", tokenizer: str | Path | None = None
    ) -> Generator:
        """Load a Hugging Face GPTBigCode directory or an octojax checkpoint (params or training run).

        The tokenizer comes from `tokenizer`, else from the model directory (HF), else from a
        `tokenizer/` directory beside the octojax checkpoint's model_config.json.
        """
        from octojax.convert.hf_checkpoint import load_hf_model
        from octojax.convert.octojax_checkpoint import find_params_dir, load_params
        from octojax.model.config import ModelConfig
        from octojax.model.gptbigcode import model_from_params

        path = Path(path)
        if (path / "config.json").exists():
            cfg = ModelConfig.from_hf_json(path, dtype=dtype, param_dtype=dtype)
            return cls(load_hf_model(path, cfg, progress=False), load_tokenizer(tokenizer or path))
        _, cfg_file = find_params_dir(path)  # raises a clear error for anything else
        cfg, params = load_params(path, dtype=dtype)
        cfg = cfg.replace(dtype=dtype, param_dtype=dtype)
        tok = tokenizer or cfg_file.parent / "tokenizer"
        if not Path(tok).exists():
            raise FileNotFoundError(
                f"{path}: octojax checkpoint has no tokenizer/ beside {cfg_file.name}; pass tokenizer="
            )
        return cls(model_from_params(cfg, params), load_tokenizer(tok))

    def generate(
        self,
        prompts: Sequence[str],
        *,
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        stop_sequences: Sequence[str] = (),
        seed: int = 0,
        batch_size: int = 32,
        progress: bool = False,
        stop_when: Callable[[str], bool] | None = None,
    ) -> list[GenerationOutput]:
        """Complete every prompt; outputs are in prompt order and reproducible for a given seed.

        stop_when(text) -> True ends a row early (checked between 32-token chunks, like stop
        sequences), e.g. the evaluation harness's "first function is complete" check.
        """
        sampling = SamplingParams(temperature=temperature, top_p=top_p, top_k=top_k)
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for i, ids in enumerate(encoded):
            if not ids:
                encoded[i] = [self.eos_ids[0]]  # an empty prompt starts from end-of-text
        order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
        outputs: list[GenerationOutput | None] = [None] * len(prompts)
        stops = [s for s in stop_sequences if s]
        checks = bool(stops) or stop_when is not None
        new_tokens = 0
        start = time.perf_counter()
        bar = tqdm(total=len(prompts), desc="generate", disable=not progress)
        for b, first in enumerate(range(0, len(order), batch_size)):
            rows = order[first : first + batch_size]
            limit = self.model.cfg.n_positions - max_new_tokens
            if limit <= 0:
                raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt")
            seqs = [encoded[i][-limit:] for i in rows]  # keep the end of over-long prompts
            T = min(_bucket(max(len(s) for s in seqs)), limit)
            prompt_BT = np.full((len(rows), T), self.pad_id, np.int32)
            mask_BT = np.zeros((len(rows), T), np.int32)
            for r, s in enumerate(seqs):
                prompt_BT[r, T - len(s) :] = s
                mask_BT[r, T - len(s) :] = 1

            def on_chunk(tokens_BN, num_B, done_B):
                for r in np.flatnonzero(~done_B):
                    text = self.tokenizer.decode(
                        tokens_BN[r, : num_B[r]], skip_special_tokens=False
                    )
                    done_B[r] = truncate_at_stop(text, stops)[1] or (
                        stop_when is not None and stop_when(text)
                    )
                return done_B

            tokens_BN, num_B = generate_tokens(
                self.model,
                prompt_BT,
                mask_BT,
                max_new_tokens=max_new_tokens,
                sampling=sampling,
                eos_ids=self.eos_ids,
                pad_id=self.pad_id,
                seed=seed + b,
                chunk_size=32 if checks else None,
                on_chunk=on_chunk if checks else None,
            )
            for r, i in enumerate(rows):
                ids = tokens_BN[r, : num_B[r]].tolist()
                new_tokens += len(ids)
                text = self.tokenizer.decode(ids, skip_special_tokens=False)
                text, stopped = truncate_at_stop(text, stops)
                reason = "stop_sequence" if stopped else "length"
                if not stopped and num_B[r] < max_new_tokens:
                    reason = "eos"
                outputs[i] = GenerationOutput(text=text, token_ids=ids, finish_reason=reason)
            bar.update(len(rows))
        bar.close()
        seconds = time.perf_counter() - start
        self.last_stats = {"new_tokens": new_tokens, "seconds": seconds}
        return outputs  # type: ignore[return-value]
