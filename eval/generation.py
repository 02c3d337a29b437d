"""Generation glue: prompts in, harness-format generations out, through a `TextGenerator`.

This is the one module of eval that touches octojax: it takes the sampling settings type from
`octojax.sampling_config` (no jax) and, for `python -m eval generate` only, loads an
`octojax.generate.Generator` inside `load_generator` (jax). Callers that already hold a
generator (`octojax run`) hand it in; scoring never imports jax.

n samples per row come from the generator, which repeats the row's prompt n times in one call
with the same seed: each row samples with its own key (the generator folds the row index into the
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
from pathlib import Path
from typing import Protocol

from eval.harness_format import check_generations, save_generations
from eval.postprocess import is_complete
from eval.tasks import EXPLAIN_DESCRIBE, Entry, Task
from octojax.sampling_config import SamplingConfig, add_sampling_flags, sampling_from_args

__all__ = [
    "DEFAULT_SAMPLING", "GeneratorUnavailable", "SamplingConfig", "TextGenerator",
    "add_sampling_flags", "generate_rows", "load_generator", "sampling_from_args",
]  # fmt: skip

# HumanEvalPack's generation length: the paper's "max length 2048" (octopack.md, evaluation), the
# bigcode-evaluation-harness's --max_length_generation 2048 in the OctoPack commands.
HUMANEVALPACK_MAX_NEW_TOKENS = 2048
DEFAULT_SAMPLING = SamplingConfig(max_new_tokens=HUMANEVALPACK_MAX_NEW_TOKENS)  # greedy, 1 sample


class GeneratorUnavailable(RuntimeError):
    """octojax.generate (and with it jax) is not importable here."""


class TextGenerator(Protocol):
    """What eval needs from a generator (`octojax.generate.Generator` is one): n_samples
    completions per prompt, prompt-major, each with a `.text`."""

    eos_token: str

    def generate(self, prompts: list[str], sampling: SamplingConfig, **kwargs) -> list: ...


def load_generator(
    model_path: str | os.PathLike,
    dtype: str = "bfloat16",
    *,
    mesh: str | None = None,
    distributed: bool = False,
) -> TextGenerator:
    """An `octojax.generate.Generator` for a Hugging Face or octojax checkpoint directory, on
    `mesh` (e.g. "data=2,fsdp=1,tensor=4"; octojax/mesh.py), multi-host when `distributed`."""
    try:
        from octojax.generate import Generator  # lazy: pulls in jax
    except ImportError as e:
        raise GeneratorUnavailable(
            f"generation needs octojax.generate and jax ({e}); score-only works without them"
        ) from e
    return Generator.from_pretrained(
        str(model_path), dtype=dtype, mesh=mesh, distributed=distributed
    )


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
    stops = [*task.stop_sequences(), *config.stop_sequences]
    prompts = [task.prompt(e) for e in entries]
    # The harness's early-stop check (code tasks only): a row whose first function is complete
    # stops generating; post-processing would throw the rest away anyway.
    stop_when = None
    if task.name != EXPLAIN_DESCRIBE:
        stop_when = lambda text: is_complete(task.language, text, stops)  # noqa: E731
    # Large calls keep the generator's decode slots full (continuous batching drains only at a
    # call's end); between calls the finished rows are saved for --resume.
    rows_per_call = max(1, math.ceil(16 * config.slots / config.n_samples))
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
            # Seed offset by the index of the call's first row: the generator seeds each row with
            # (seed, row index within the call), so no two rows of a run share a key.
            call = config.replace(seed=config.seed + start * config.n_samples, stop_sequences=stops)
            outputs = generator.generate(prompts[start:stop], call, stop_when=stop_when)
            expected = (stop - start) * config.n_samples
            if len(outputs) != expected:
                raise RuntimeError(f"generator returned {len(outputs)} outputs for {expected} rows")
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
