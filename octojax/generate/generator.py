"""Text in, text out: tokenise, decode in slots (octojax/generate/engine.py), stop, detokenise.

Identical prompts (the eval harness repeats each prompt n times for n samples) share one prefill.
Row i of a call samples from fold_in(key(seed), i), so outputs depend only on the seed and the
row's index, not on the scheduler, the number of slots, the mesh or the number of hosts.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import jax
from jax.sharding import Mesh
from tqdm import tqdm

from octojax.generate import mesh as gmesh
from octojax.generate.engine import Engine, RowResult
from octojax.generate.sampling import SamplingParams
from octojax.mesh import MeshSection, initialize_distributed
from octojax.model.gptbigcode import GPTBigCode
from octojax.sampling_config import SamplingConfig
from octojax.sharding import Rules, use_rules
from octojax.tokenizer import load_tokenizer

_REASONS = ("eos", "length", "stop")


@dataclasses.dataclass
class GenerationOutput:
    """New text (cut before the first stop sequence) and the new token ids behind it."""

    text: str
    token_ids: list[int]
    finish_reason: str  # "eos", "stop_sequence" (a stop sequence or stop_when) or "length"


class PromptTooLong(ValueError):
    """A prompt that does not fit the model's positions next to the requested new tokens."""


def truncate_at_stop(text: str, stop_sequences: Sequence[str]) -> tuple[str, bool]:
    """Cut text before the earliest occurrence of any stop sequence."""
    cut = min((i for s in stop_sequences if s and (i := text.find(s)) >= 0), default=-1)
    return (text, False) if cut < 0 else (text[:cut], True)


class Generator:
    """A model plus its tokenizer (optionally on a mesh, optionally one of several hosts)."""

    def __init__(
        self,
        model: GPTBigCode,
        tokenizer,
        *,
        mesh: Mesh | None = None,
        distributed: bool = False,
        rules: Rules | None = None,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.mesh = mesh
        self.distributed = distributed
        self.rules = rules  # logical-axis rules in effect while tracing (None: the default table)
        self.eos_token: str = tokenizer.eos_token or "<|endoftext|>"
        self.eos_ids = tuple(
            sorted({i for i in (tokenizer.eos_token_id, model.cfg.eos_token_id) if i is not None})
        )
        self.pad_id = (
            tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_ids[0]
        )
        self.strict = False  # True: a prompt that does not fit raises PromptTooLong, never cut
        self.last_stats: dict[str, float] = {}
        self._engines: dict[tuple[int, int], Engine] = {}

    @classmethod
    def from_pretrained(
        cls,
        path: str | Path,
        *,
        dtype: str = "bfloat16",
        tokenizer: str | Path | None = None,
        mesh: str | MeshSection | Mesh | None = None,
        distributed: bool = False,
    ) -> Generator:
        """Load a Hugging Face GPTBigCode directory or an octojax checkpoint (params or run).

        mesh: a MeshSection (the training config's `mesh:` works as is, rules included), its
        spec form "data=2,fsdp=1,tensor=4", or a Mesh; parameters are placed on it tensor by
        tensor while they stream in. distributed (or the section's `distributed`): call
        jax.distributed.initialize() and split the prompts over processes (each on a mesh over
        its own devices). The tokenizer comes from `tokenizer`, else the model directory (HF),
        else `tokenizer/` beside the octojax checkpoint's model_config.json.
        """
        distributed = distributed or bool(getattr(mesh, "distributed", False))
        if distributed:
            initialize_distributed()
        mesh, section = gmesh.generation_mesh(mesh, distributed=distributed)
        rules = section.logical_rules() if section is not None else None
        with use_rules(rules):
            model, tok = cls._load(path, dtype, tokenizer, mesh)
        return cls(model, tok, mesh=mesh, distributed=distributed, rules=rules)

    @staticmethod
    def _load(
        path: str | Path, dtype: str, tokenizer: str | Path | None, mesh: Mesh | None
    ) -> tuple[GPTBigCode, object]:
        """(model, tokenizer) from a HF directory or octojax checkpoint, placed on `mesh`."""
        from octojax.convert.hf_checkpoint import load_hf_params
        from octojax.convert.octojax_checkpoint import (
            find_params_dir,
            is_octojax_checkpoint,
            load_config,
            load_params,
        )
        from octojax.model.config import ModelConfig
        from octojax.model.gptbigcode import model_from_params

        path = Path(path)
        if (path / "config.json").exists() and not is_octojax_checkpoint(path):
            cfg = ModelConfig.from_hf_json(path, dtype=dtype, param_dtype=dtype)
            place = gmesh.placer(gmesh.param_shardings(cfg, mesh)) if mesh is not None else None
            _, params = load_hf_params(path, cfg, place=place, progress=False)
            tok = load_tokenizer(tokenizer or path)
        else:
            _, cfg_file = find_params_dir(path)  # raises a clear error for anything else
            cfg = load_config(path).replace(dtype=dtype, param_dtype=dtype)
            shardings = gmesh.param_shardings(cfg, mesh) if mesh is not None else None
            _, params = load_params(path, shardings=shardings, dtype=dtype)
            tok_dir = tokenizer or cfg_file.parent / "tokenizer"
            if not Path(tok_dir).exists():
                raise FileNotFoundError(
                    f"{path}: octojax checkpoint has no tokenizer/ beside {cfg_file.name}; "
                    "pass tokenizer="
                )
            tok = load_tokenizer(tok_dir)
        return model_from_params(cfg, params), tok

    @property
    def is_main_process(self) -> bool:
        """True where outputs should be written: the only process, or process 0 of several."""
        return not self.distributed or jax.process_index() == 0

    def engine(self, slots: int, chunk: int = 32) -> Engine:
        """The slot engine for this slot count (kept, so its compiled programs are reused)."""
        key = (slots, chunk)
        if key not in self._engines:
            self._engines[key] = Engine(
                self.model, eos_ids=self.eos_ids, pad_id=self.pad_id, mesh=self.mesh,
                slots=slots, chunk=chunk,
            )  # fmt: skip
        return self._engines[key]

    def warmup(
        self,
        prompts: Sequence[str],
        sampling: SamplingConfig | None = None,
        *,
        max_new_tokens_per_prompt: Sequence[int] | None = None,
    ) -> None:
        """Compile ahead what `generate` with these arguments will run (benchmarks, servers)."""
        sampling = sampling or SamplingConfig()
        rows, limits = self._rows(prompts, sampling, max_new_tokens_per_prompt)
        with use_rules(self.rules):
            self.engine(sampling.slots).warmup(
                self.encode(rows, limits), limits, sampling=SamplingParams.of(sampling)
            )

    @staticmethod
    def _rows(
        prompts: Sequence[str], sampling: SamplingConfig, per_prompt: Sequence[int] | None
    ) -> tuple[list[str], list[int]]:
        """Each prompt n_samples times (prompt-major) and each row's new-token limit."""
        if per_prompt is None:
            per_prompt = [sampling.max_new_tokens] * len(prompts)
        per_prompt = [int(n) for n in per_prompt]
        if len(per_prompt) != len(prompts) or any(n <= 0 for n in per_prompt):
            raise ValueError("max_new_tokens_per_prompt must be positive, one value per prompt")
        n = sampling.n_samples
        return [p for p in prompts for _ in range(n)], [m for m in per_prompt for _ in range(n)]

    def encode(self, prompts: Sequence[str], max_new_tokens: Sequence[int]) -> list[list[int]]:
        """Token ids per prompt; empty prompts start from end-of-text. A prompt longer than
        n_positions - max_new_tokens keeps its end, with a warning (`strict`: PromptTooLong)."""
        out, cut = [], []
        for i, (p, n) in enumerate(zip(prompts, max_new_tokens)):
            ids = self.tokenizer(p, add_special_tokens=False)["input_ids"] or [self.eos_ids[0]]
            room = self.model.cfg.n_positions - n
            if room <= 0:
                raise PromptTooLong(
                    f"max_new_tokens={n} leaves no room for a prompt (n_positions "
                    f"{self.model.cfg.n_positions})"
                )
            if len(ids) > room:
                cut.append((i, len(ids), room))
            out.append(ids[-room:])
        if cut:
            self._report_truncation(cut)
        return out

    def _report_truncation(self, cut: list[tuple[int, int, int]]) -> None:
        i, length, room = cut[0]
        message = (
            f"{len(cut)} prompt(s) do not fit n_positions {self.model.cfg.n_positions} minus "
            f"max_new_tokens: e.g. prompt {i} has {length} tokens, room for {room}"
        )
        if self.strict:
            raise PromptTooLong(message + "; shorten them or lower max_new_tokens")
        warnings.warn(message + "; their first tokens were dropped", stacklevel=3)

    def generate(
        self,
        prompts: Sequence[str],
        sampling: SamplingConfig | None = None,
        *,
        max_new_tokens_per_prompt: Sequence[int] | None = None,
        stop_when: Callable[[str], bool] | None = None,
        progress: bool = False,
        scheduler: str = "continuous",
    ) -> list[GenerationOutput]:
        """Complete every prompt `sampling.n_samples` times; outputs prompt-major (sample j of
        prompt i at i * n_samples + j), reproducible for a given seed.

        max_new_tokens_per_prompt: one limit per prompt instead of sampling.max_new_tokens.
        stop_when(text) -> True ends a row early (e.g. the harness's "first function is
        complete" check); like stop sequences it is checked between decode chunks and the row is
        cut at the first token where it holds. scheduler: "continuous" (refill slots as rows
        end) or "static".
        """
        sampling = sampling or SamplingConfig()
        rows, limits = self._rows(prompts, sampling, max_new_tokens_per_prompt)
        encoded = self.encode(rows, limits)
        stops = [s for s in sampling.stop_sequences if s]
        stop_check = None
        if stops or stop_when is not None:

            def stop_check(row: int, ids: list[int]) -> bool:
                text = self.tokenizer.decode(ids, skip_special_tokens=False)
                return truncate_at_stop(text, stops)[1] or (
                    stop_when is not None and stop_when(text)
                )

        with use_rules(self.rules):
            results = self._run(encoded, limits, SamplingParams.of(sampling), sampling.seed,
                                sampling.slots, scheduler, stop_check, progress)  # fmt: skip
        return [self._output(r, stops) for r in results]

    def _run(self, encoded, limits, sampling, seed, slots, scheduler, stop_check, progress):
        """Run this process's rows through the engine; all-gather them when distributed."""
        eng = self.engine(slots)
        processes = jax.process_count() if self.distributed else 1
        groups: dict[tuple[int, ...], list[int]] = {}
        for i, ids in enumerate(encoded):
            groups.setdefault(tuple(ids), []).append(i)
        shares = [gmesh.share(list(groups.values()), p, processes) for p in range(processes)]
        mine = shares[jax.process_index() if self.distributed else 0]
        bar = tqdm(total=len(mine), desc="generate", disable=not progress)
        local = eng.run(
            [encoded[i] for i in mine], [limits[i] for i in mine], sampling=sampling, seed=seed,
            row_ids=mine, scheduler=scheduler,
            stop_check=None if stop_check is None else (lambda r, ids: stop_check(mine[r], ids)),
            on_row_done=lambda _: bar.update(1),
        )  # fmt: skip
        bar.close()
        self.last_stats = dict(eng.stats)
        if processes == 1:
            ordered: list[RowResult | None] = [None] * len(encoded)
            for i, r in zip(mine, local):
                ordered[i] = r
            return ordered
        got = gmesh.all_gather_rows(
            {i: (r.token_ids, _REASONS.index(r.finish_reason)) for i, r in zip(mine, local)},
            len(encoded),
            shares,
            max(limits),
        )
        return [RowResult(*got[i][:1], _REASONS[got[i][1]]) for i in range(len(encoded))]

    def _output(self, r: RowResult, stops: Sequence[str]) -> GenerationOutput:
        text = self.tokenizer.decode(r.token_ids, skip_special_tokens=False)
        text, stopped = truncate_at_stop(text, stops)
        # a row ended by the caller's check (stop sequence or stop_when) is "stop_sequence"
        reason = "stop_sequence" if stopped or r.finish_reason == "stop" else r.finish_reason
        return GenerationOutput(text=text, token_ids=r.token_ids, finish_reason=reason)
