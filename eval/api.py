"""The typed Python API of HumanEvalPack evaluation; `python -m eval` is a thin wrapper over it.

    from eval.api import DataOptions, ModelOptions, OutputOptions, generate
    from octojax.sampling_config import SamplingConfig

    run = generate(ModelOptions("runs/octopack/train/hf", dtype="float32"),
                   tasks=["humanevalsynthesize"], languages=["python", "js"],
                   data=DataOptions(data_dir="../shared/humanevalpack", limit=20),
                   sampling=SamplingConfig(n_samples=1, max_new_tokens=256),
                   output=OutputOptions(output_dir="runs/eval", model_name="octojax"))
    run.results          # the result records written to run.results_json

Every function raises one of `EVAL_ERRORS` (bad options, missing files or toolchains) rather
than exiting; the CLI turns those into exit status 2. Nothing here imports jax: a caller that holds
a generator passes it (`generator=`, as `octojax run` does); otherwise eval.generation loads
`octojax.generate` when the model is loaded.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from eval.data import DataError, load_problems, parse_languages
from eval.generation import (
    DEFAULT_SAMPLING,
    GeneratorUnavailable,
    SamplingConfig,
    TextGenerator,
)
from eval.harness_format import (
    GenerationsFileError,
    fit_to_rows,
    harness_filename,
    load_generations,
    save_generations,
)
from eval.language_check import mismatch_warning
from eval.metrics import DEFAULT_KS
from eval.prompts import DEFAULT_TEMPLATE, TemplateError
from eval.report import ResultsFileError, load_results, markdown_table, merge_results, write_results
from eval.scoring import ToolchainError
from eval.tasks import (
    EXPLAIN_DESCRIBE,
    EXPLAIN_SYNTHESIZE,
    DescriptionsError,
    Entry,
    Task,
    normalize_task,
    parse_tasks,
)

DATA_DIR_ENV = "HUMANEVALPACK_DIR"


class UsageError(ValueError):
    """Options that do not fit together."""


#: What the API raises for bad input (ValueError: bad names and settings; OSError: missing or
#: unreadable model, data or output paths); anything else is a bug.
EVAL_ERRORS: tuple[type[Exception], ...] = (
    DataError,
    GenerationsFileError,
    DescriptionsError,
    TemplateError,
    ResultsFileError,
    UsageError,
    ValueError,
    OSError,
    GeneratorUnavailable,
    ToolchainError,
)


# ---- options and results ------------------------------------------------------------------


@dataclass(frozen=True)
class DataOptions:
    """Where HumanEvalPack comes from: a local directory of <language>.jsonl, or the hub."""

    data_dir: str | os.PathLike | None = None
    from_hub: bool = False
    limit: int | None = None  # only the first N problems of each language

    def source(self) -> str | None:
        """The data directory for `load_problems` (None = the hub)."""
        if self.from_hub:
            return None
        if not self.data_dir:
            raise UsageError(f"give --data-dir (or set ${DATA_DIR_ENV}), or --from-hub")
        return str(self.data_dir)

    def describe(self) -> str:
        """How results.json records the data source."""
        return "hub" if self.from_hub else str(self.data_dir)

    def problems(self, language: str) -> list[dict]:
        if self.limit is not None and self.limit < 1:
            raise UsageError("--limit must be at least 1")
        return load_problems(language, self.source(), limit=self.limit)


@dataclass(frozen=True)
class ExecutionOptions:
    """How generated programs are executed and which pass@k are reported."""

    workers: int | None = None  # parallel programs (None: one per core)
    cache_dir: str | os.PathLike | None = None  # result cache keyed by program content
    ks: tuple[int, ...] = DEFAULT_KS  # reported where every row has >= k samples

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise UsageError(f"--k values must be >= 1, got {','.join(map(str, self.ks))!r}")


@dataclass(frozen=True)
class OutputOptions:
    """Where files go and how the run reports itself."""

    output_dir: str | os.PathLike = "eval_out"
    model_name: str | None = None  # default: the model directory's name ("" when scoring)
    progress: bool = True  # tqdm bars
    messages: bool = True  # one line per written file / score on stderr


@dataclass(frozen=True)
class ModelOptions:
    """The model to generate with (Hugging Face or octojax checkpoint dir) and how to place it:
    `mesh` in the spec form "data=2,fsdp=1,tensor=4" (octojax/mesh.py), `distributed` for
    one process per host. Recorded in results.json even when the caller passes the generator."""

    path: str | os.PathLike
    dtype: str = "bfloat16"
    mesh: str | None = None
    distributed: bool = False

    def name(self) -> str:
        return Path(str(self.path)).resolve().name


@dataclass
class TaskRun:
    """One task x language: its generations file and, when scored, its result record."""

    task: str  # harness name, e.g. "humanevalsynthesize-python"
    language: str
    generations: Path | None
    result: dict | None = None


@dataclass
class EvalRun:
    """Everything one API call did, in order; results.json/.md when anything was scored."""

    runs: list[TaskRun] = field(default_factory=list)
    results_json: Path | None = None
    results_md: Path | None = None

    @property
    def results(self) -> list[dict]:
        """The result records of this call (those with a score)."""
        return [r.result for r in self.runs if r.result is not None]


def parse_ks(spec: str) -> tuple[int, ...]:
    """ "1,10,100" -> (1, 10, 100); UsageError for anything else."""
    try:
        ks = tuple(int(k) for k in spec.split(",") if k.strip())
    except ValueError as e:
        raise UsageError(f"--k must be a comma list of integers, got {spec!r}") from e
    if not ks or min(ks) < 1:
        raise UsageError(f"--k values must be >= 1, got {spec!r}")
    return ks


# ---- shared steps -------------------------------------------------------------------------


def _say(output: OutputOptions, message: str) -> None:
    if output.messages:
        print(message, file=sys.stderr, flush=True)


def _generator(model: ModelOptions, generator: TextGenerator | None) -> TextGenerator:
    """The caller's generator, else one loaded from `model`."""
    if generator is not None:
        return generator
    from eval import generation  # looked up at call time, so tests can replace the loader

    return generation.load_generator(
        model.path, model.dtype, mesh=model.mesh, distributed=model.distributed
    )


def _score_and_record(
    task: Task,
    entries: list[Entry],
    rows: list[list[str]],
    model_name: str,
    config: dict,
    execution: ExecutionOptions,
    output: OutputOptions,
    run: EvalRun,
) -> dict:
    """Execute `rows`, add the result to results.json/.md in the output dir, record it in `run`."""
    from eval.scoring import score as score_rows

    result = score_rows(
        task,
        entries,
        rows,
        workers=execution.workers,
        cache_dir=execution.cache_dir,
        progress=output.progress,
        ks=execution.ks,
        model=model_name,
    )
    result["config"] = config
    run.results_json, run.results_md = write_results(output.output_dir, [result])
    summary = ", ".join(f"{k} {100 * v:.1f}" for k, v in result.items() if k.startswith("pass@"))
    _say(output, f"{task.harness_name}: {summary} ({run.results_json}, {run.results_md})")
    return result


def _descriptions_for(path: Path, n_problems: int) -> list[list[str]]:
    descriptions = load_generations(path)
    if len(descriptions) < n_problems:
        raise DescriptionsError(
            f"{path}: descriptions for {len(descriptions)} problems, need {n_problems}"
        )
    return descriptions


@dataclass
class _Generation:
    """What `_generate_task` needs besides the task: one object so signatures stay short."""

    generator: TextGenerator
    model: ModelOptions
    data: DataOptions
    sampling: SamplingConfig
    output: OutputOptions
    resume: bool


def _generate_task(
    g: _Generation, task: Task, entries: list[Entry], n_samples: int
) -> tuple[list[list[str]], dict, Path]:
    """Generate one task/language, save harness-format (and raw) files; rows, config, path."""
    from eval.generation import generate_rows

    out = Path(g.output.output_dir)
    final = out / harness_filename(task.harness_name)
    checkpoint = out / harness_filename(task.harness_name + "_intermediate")
    writer = _is_writer(g.generator)  # multi-host: every process generates, process 0 writes
    if checkpoint.exists() and not g.resume and writer:
        checkpoint.unlink()
    config = g.sampling.replace(n_samples=n_samples)
    raw: list[list[str]] = []
    resumed = checkpoint.exists()
    rows = generate_rows(g.generator, task, entries, config, progress=g.output.progress,
                         checkpoint_path=checkpoint if writer else None, raw_rows=raw)  # fmt: skip
    if writer:
        save_generations(final, rows)
        if not resumed:
            save_generations(out / harness_filename(task.harness_name, stem="generations_raw"), raw)
        checkpoint.unlink(missing_ok=True)
        _say(g.output, f"{task.harness_name}: {len(rows)} rows x {n_samples} samples -> {final}")
    run_config = {
        "model_path": str(g.model.path),
        "dtype": g.model.dtype,
        "data": g.data.describe(),
        "limit": g.data.limit,
        "generations": str(final),
        **config.model_dump(),
    }
    return rows, run_config, final


def _is_writer(generator: object) -> bool:
    """Whether this process writes files and scores: always, except on the non-zero processes
    of a multi-host generator (they hold the same outputs; process 0 writes them once)."""
    return bool(getattr(generator, "is_main_process", True))


def _as_model(model: ModelOptions | str | os.PathLike) -> ModelOptions:
    return model if isinstance(model, ModelOptions) else ModelOptions(model)


# ---- the four operations ------------------------------------------------------------------


def generate(
    model: ModelOptions | str | os.PathLike,
    *,
    data: DataOptions,
    tasks: str | Sequence[str] = "humanevalsynthesize",
    languages: str | Sequence[str] = "python",
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    template: str = DEFAULT_TEMPLATE,
    execution: ExecutionOptions = ExecutionOptions(),
    output: OutputOptions = OutputOptions(),
    descriptions_dir: str | os.PathLike | None = None,
    generation_only: bool = False,
    resume: bool = False,
    generator: TextGenerator | None = None,
) -> EvalRun:
    """Generate every task x language with an octojax model, save the files, score code tasks.

    Explain-synthesize reads its descriptions from `descriptions_dir` (default: the output dir).
    `resume` continues from intermediate files of an interrupted run. `generator`: one already
    loaded (else `model` is loaded).
    """
    model = _as_model(model)
    task_names = parse_tasks(tasks)
    language_ids = parse_languages(languages)
    for name in task_names:
        Task(name, "python", template)  # fail on a bad task/template before loading a model
    all_problems = {language: data.problems(language) for language in language_ids}
    g = _Generation(_generator(model, generator), model, data, sampling, output, resume)
    model_name = output.model_name or model.name()
    run = EvalRun()
    for name in task_names:
        for language in language_ids:
            task = Task(name, language, template, eos_token=g.generator.eos_token)
            problems = all_problems[language]
            descriptions = None
            if task.needs_descriptions:
                d_dir = Path(descriptions_dir or output.output_dir)
                d_task = Task(EXPLAIN_DESCRIBE, language, template)
                descriptions = _descriptions_for(
                    d_dir / harness_filename(d_task.harness_name), len(problems)
                )
            entries = task.entries(problems, descriptions)
            rows, config, path = _generate_task(g, task, entries, sampling.n_samples)
            task_run = TaskRun(task.harness_name, language, path)
            run.runs.append(task_run)
            if task.executes and not generation_only and _is_writer(g.generator):
                task_run.result = _score_and_record(
                    task, entries, rows, model_name, config, execution, output, run
                )
    return run


def describe_then_synthesize(
    model: ModelOptions | str | os.PathLike,
    *,
    data: DataOptions,
    languages: str | Sequence[str] = "python",
    sampling: SamplingConfig = DEFAULT_SAMPLING,
    n_descriptions: int = 1,
    template: str = DEFAULT_TEMPLATE,
    execution: ExecutionOptions = ExecutionOptions(),
    output: OutputOptions = OutputOptions(),
    generation_only: bool = False,
    resume: bool = False,
    generator: TextGenerator | None = None,
) -> EvalRun:
    """HumanEvalExplain: describe each program (n_descriptions per problem), synthesize
    `sampling.n_samples` programs from every description, then score them."""
    model = _as_model(model)
    language_ids = parse_languages(languages)
    Task(EXPLAIN_DESCRIBE, "python", template)
    all_problems = {language: data.problems(language) for language in language_ids}
    g = _Generation(_generator(model, generator), model, data, sampling, output, resume)
    model_name = output.model_name or model.name()
    eos = g.generator.eos_token
    run = EvalRun()
    for language in language_ids:
        problems = all_problems[language]
        describe = Task(EXPLAIN_DESCRIBE, language, template, eos_token=eos)
        descriptions, _, d_path = _generate_task(
            g, describe, describe.entries(problems), n_descriptions
        )
        run.runs.append(TaskRun(describe.harness_name, language, d_path))
        synth = Task(EXPLAIN_SYNTHESIZE, language, template, eos_token=eos)
        entries = synth.entries(problems, descriptions)
        rows, config, path = _generate_task(g, synth, entries, sampling.n_samples)
        config["n_descriptions"] = n_descriptions
        task_run = TaskRun(synth.harness_name, language, path)
        run.runs.append(task_run)
        if not generation_only:
            task_run.result = _score_and_record(
                synth, entries, rows, model_name, config, execution, output, run
            )
    return run


def score(
    task: str,
    language: str,
    generations: str | os.PathLike,
    *,
    data: DataOptions,
    template: str = DEFAULT_TEMPLATE,
    raw: bool = False,
    descriptions: str | os.PathLike | None = None,
    n_samples: int | None = None,
    execution: ExecutionOptions = ExecutionOptions(),
    output: OutputOptions = OutputOptions(model_name=""),
) -> EvalRun:
    """Score a harness-format generations file (no model, no jax) and add it to results.json.

    `raw`: the file holds prompt + generation texts (harness --postprocess False). `descriptions`:
    for explain-synthesize, the describe generations file (needed with `raw`, or when problems
    have different numbers of descriptions). `n_samples`: only the first N samples of each row.
    """
    t = Task(normalize_task(task), language, template)
    if not t.executes:
        raise UsageError(
            f"{t.name} outputs descriptions; score humanevalexplain-synthesize instead"
        )
    problems = data.problems(t.language)
    rows_in = load_generations(generations)
    where = str(generations)
    if t.needs_descriptions:
        if descriptions:
            described = _descriptions_for(Path(descriptions), len(problems))
        else:
            described = _uniform_descriptions(rows_in, len(problems), where, raw, data.limit)
        entries = t.entries(problems, described)
    else:
        entries = t.entries(problems)
    rows = fit_to_rows(rows_in, len(entries), where, n_samples=n_samples,
                       allow_extra_rows=data.limit is not None)  # fmt: skip
    if raw:
        rows = [[t.postprocess_full_text(e, g) for g in row] for e, row in zip(entries, rows)]
    warning = mismatch_warning(where, t.language, rows)
    if warning:
        print(warning, file=sys.stderr, flush=True)
    config = {"generations": where, "raw": raw, "descriptions": None if descriptions is None else str(descriptions),
              "data": data.describe(), "limit": data.limit, "n_samples_cap": n_samples}  # fmt: skip
    run = EvalRun([TaskRun(t.harness_name, t.language, Path(generations))])
    run.runs[0].result = _score_and_record(
        t, entries, rows, output.model_name or "", config, execution, output, run
    )
    return run


def _uniform_descriptions(
    generations: list[list[str]], n_problems: int, where: str, raw: bool, limit: int | None
) -> list[list[str]]:
    """Placeholder descriptions when scoring explain-synthesize without the describe file.

    The harness writes one row per (problem, description), problem-major; with the same number
    m of descriptions per problem, row i belongs to problem i // m. Prompts are not needed to
    score post-processed code, so the descriptions' text is not.
    """
    if raw:
        raise UsageError(
            "--raw explain-synthesize generations need --descriptions to rebuild prompts"
        )
    total = len(generations) if limit is None else None
    if total is None or total % n_problems:
        raise UsageError(
            f"{where}: cannot tell which rows belong to which problem "
            f"({len(generations)} rows, {n_problems} problems); pass --descriptions"
        )
    m = total // n_problems
    return [[""] * m for _ in range(n_problems)]


def table(results: Sequence[str | os.PathLike], metric: str = "pass@1") -> str:
    """The Table-2 layout (Markdown) of results.json files, merged in order."""
    merged: list[dict] = []
    for path in results:
        if not Path(path).exists():
            raise ResultsFileError(f"{path}: file not found")
        merged = merge_results(merged, load_results(path))
    return markdown_table(merged, metric)
