"""Generation glue: prompts in, harness-format generations out, through `octojax.generate`.

`octojax.generate` needs jax, so it is imported only inside `load_generator`; the rest of eval
(and scoring in particular) never imports jax.

n samples per row are made by repeating the row's prompt n times in one `generate` call with
the same seed: each row samples with its own key (the generator folds the row index into the
seed, and prefills the shared prompt once), so copies differ whenever temperature > 0 (with
temperature 0 they are identical, as in the harness without --do_sample). Rows are sent in calls
of about sixteen decode batches, so continuous batching keeps its slots full; a call's seed is
seed + the index of its first prompt, so results are reproducible for a given seed, batch size
and n. After every call the finished rows are saved, so an interrupted run can resume where it
stopped.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from eval.harness_format import check_generations, save_generations
from eval.postprocess import is_complete
from eval.tasks import EXPLAIN_DESCRIBE, Entry, Task


class GeneratorUnavailable(RuntimeError):
    """octojax.generate (and with it jax) is not importable here."""


class TextGenerator(Protocol):
    """What eval needs from `octojax.generate.Generator`."""

    eos_token: str

    def generate(self, prompts: list[str], **kwargs) -> list: ...


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings (paper: n=20, temperature 0.2, top-p 0.95, max length 2048)."""

    n_samples: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 2048
    batch_size: int = 32
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_samples < 1:
            raise ValueError("n_samples must be at least 1")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0:
            raise ValueError("need temperature >= 0, 0 < top_p <= 1, top_k >= 0")


def load_generator(
    model_path: str | os.PathLike,
    dtype: str = "bfloat16",
    *,
    mesh: str | None = None,
    distributed: bool = False,
) -> TextGenerator:
    """An `octojax.generate.Generator` for a Hugging Face or octojax checkpoint directory.

    `mesh` (e.g. "data=2,fsdp=1,tensor=4") and `distributed` reach `Generator.from_pretrained`
    only when set, so generators that predate those arguments keep working without them.
    """
    try:
        from octojax.generate import Generator  # lazy: pulls in jax
    except ImportError as e:
        raise GeneratorUnavailable(
            f"generation needs octojax.generate and jax ({e}); score-only works without them"
        ) from e
    placement: dict = {}
    if mesh is not None:
        placement["mesh"] = mesh
    if distributed:
        placement["distributed"] = True
    return Generator.from_pretrained(str(model_path), dtype=dtype, **placement)


def _load_checkpoint(path: Path, n_rows: int) -> list[list[str]]:
    if not path.exists():
        return []
    try:
        rows = check_generations(json.loads(path.read_text(encoding="utf-8")), str(path))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as e:
        raise ValueError(
            f"{path}: unreadable intermediate generations ({e}); delete it to restart"
        ) from e
    if len(rows) > n_rows:
        raise ValueError(
            f"{path}: {len(rows)} rows but the task has {n_rows}; delete it to restart"
        )
    return rows


def generate_rows(
    generator: TextGenerator,
    task: Task,
    entries: Sequence[Entry],
    config: SamplingConfig,
    *,
    progress: bool = True,
    checkpoint_path: str | os.PathLike | None = None,
    raw_rows: list[list[str]] | None = None,
) -> list[list[str]]:
    """Post-processed generations (one list of n strings per entry), in the harness format.

    If `raw_rows` is a list, the raw texts (prompt + new text, as the harness saves with
    `--postprocess False`) are appended to it, one list per generated row.
    """
    from tqdm.auto import tqdm

    if config.temperature == 0 and config.n_samples > 1:
        warnings.warn(
            f"n_samples={config.n_samples} with temperature 0 gives identical samples",
            stacklevel=2,
        )
    checkpoint = Path(checkpoint_path) if checkpoint_path is not None else None
    done = _load_checkpoint(checkpoint, len(entries)) if checkpoint else []
    rows: list[list[str]] = list(done)
    stops = task.stop_sequences()
    prompts = [task.prompt(e) for e in entries]
    # The harness's early-stop check (code tasks only): a row whose first function is complete
    # stops generating; post-processing would throw the rest away anyway.
    stop_when = None
    if task.name != EXPLAIN_DESCRIBE:
        stop_when = lambda text: is_complete(task.language, text, stops)  # noqa: E731
    # Large calls keep the generator's decode slots full (continuous batching drains only at a
    # call's end); between calls the finished rows are saved for --resume.
    rows_per_call = max(1, math.ceil(16 * config.batch_size / config.n_samples))
    bar = tqdm(
        total=len(entries),
        initial=len(rows),
        disable=not progress,
        desc=f"generate {task.harness_name}",
        unit="problem",
    )
    try:
        for start in range(len(rows), len(entries), rows_per_call):
            stop = min(start + rows_per_call, len(entries))
            batch_prompts = [p for p in prompts[start:stop] for _ in range(config.n_samples)]
            outputs = generator.generate(
                batch_prompts,
                max_new_tokens=config.max_new_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                top_k=config.top_k,
                stop_sequences=stops,
                stop_when=stop_when,
                # Offset by the index of the call's first prompt: the generator seeds each row
                # with (seed, row index within the call), so no two rows of a run share a key.
                seed=config.seed + start * config.n_samples,
                batch_size=config.batch_size,
            )
            if len(outputs) != len(batch_prompts):
                raise RuntimeError(
                    f"generator returned {len(outputs)} outputs for {len(batch_prompts)} prompts"
                )
            for i, entry in enumerate(entries[start:stop]):
                texts = [o.text for o in outputs[i * config.n_samples : (i + 1) * config.n_samples]]
                rows.append([task.postprocess(entry, t) for t in texts])
                if raw_rows is not None:
                    raw_rows.append([prompts[start + i] + t for t in texts])
            if checkpoint is not None:
                save_generations(checkpoint, rows)
            bar.update(stop - start)
    finally:
        bar.close()
    return rows
