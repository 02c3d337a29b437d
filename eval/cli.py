"""`python -m eval` (and `octojax evaluate`): generate, score, describe-then-synthesize, table.

    python -m eval score --task humanevalsynthesize --language python \\
        --generations generations_humanevalsynthesize-python.json --data-dir ../shared/humanevalpack
    python -m eval generate --model ckpt/ --tasks humanevalfix-tests --languages all \\
        --data-dir ../shared/humanevalpack --n-samples 20 --temperature 0.2 --top-p 0.95
    python -m eval describe-then-synthesize --model ckpt/ --languages python --data-dir ...
    python -m eval table out/results.json

See docs/evaluation.md for the file formats and what is matched with bigcode-evaluation-harness.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from eval.data import DataError, load_problems, parse_languages
from eval.harness_format import (
    GenerationsFileError,
    fit_to_rows,
    harness_filename,
    load_generations,
    save_generations,
)
from eval.metrics import DEFAULT_KS
from eval.prompts import DEFAULT_TEMPLATE, TEMPLATES, TemplateError
from eval.report import ResultsFileError, load_results, markdown_table, write_results
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
_KNOWN_ERRORS: tuple[type[Exception], ...] = (
    DataError,
    GenerationsFileError,
    DescriptionsError,
    TemplateError,
    ResultsFileError,
)


class UsageError(ValueError):
    """Options that do not fit together."""


# ---- argument parsing ---------------------------------------------------------------------


def _add_data_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("data")
    g.add_argument(
        "--data-dir",
        default=os.environ.get(DATA_DIR_ENV),
        help=f"directory with python.jsonl ... rust.jsonl (default: ${DATA_DIR_ENV})",
    )
    g.add_argument(
        "--from-hub",
        action="store_true",
        help="load bigcode/humanevalpack from the Hugging Face hub (needs `datasets` and network)",
    )
    g.add_argument("--limit", type=int, help="only the first N problems of each language")


def _add_execution_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("execution")
    g.add_argument("--workers", type=int, help="parallel programs (default: the executor's choice)")
    g.add_argument("--cache-dir", help="execution result cache (keyed by program content)")
    g.add_argument(
        "--k",
        default=",".join(map(str, DEFAULT_KS)),
        help="pass@k values, reported where every row has >= k samples (default: 1,10,100)",
    )


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--output-dir", default="eval_out", help="where files are written (default: eval_out)"
    )
    p.add_argument(
        "--model-name", help="model name in results and tables (default: model dir name)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_generation_options(p: argparse.ArgumentParser, *, n_descriptions: bool = False) -> None:
    p.add_argument(
        "--model", required=True, help="Hugging Face model dir or octojax checkpoint dir"
    )
    p.add_argument("--dtype", default="bfloat16", help="parameter dtype (default: bfloat16)")
    p.add_argument("--template", default=DEFAULT_TEMPLATE, choices=TEMPLATES)
    g = p.add_argument_group("sampling (paper: --n-samples 20 --temperature 0.2 --top-p 0.95)")
    g.add_argument("--n-samples", type=int, default=1, help="samples per problem (default: 1)")
    if n_descriptions:
        g.add_argument(
            "--n-descriptions",
            type=int,
            default=1,
            help="descriptions per problem; each gets --n-samples programs (default: 1)",
        )
    g.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (default)")
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=int, default=0, help="0 = off")
    g.add_argument(
        "--max-length-generation",
        type=int,
        default=2048,
        help="maximum new tokens per sample (default: 2048)",
    )
    g.add_argument("--batch-size", type=int, default=32, help="sequences per forward batch")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--resume", action="store_true", help="continue from intermediate files")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m eval",
        description="HumanEvalPack evaluation (fix / explain / synthesize in six languages).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    gen = sub.add_parser("generate", help="generate with an octojax model, then score")
    gen.add_argument("--tasks", default="humanevalsynthesize", help='comma list or "all"')
    gen.add_argument("--languages", default="python", help='comma list or "all"')
    gen.add_argument(
        "--descriptions-dir",
        help="for humanevalexplain-synthesize: directory with "
        "generations_humanevalexplaindescribe-<lang>.json (default: --output-dir)",
    )
    gen.add_argument(
        "--generation-only", action="store_true", help="save generations, do not score"
    )
    _add_generation_options(gen)
    _add_data_options(gen)
    _add_execution_options(gen)
    _add_output_options(gen)

    sc = sub.add_parser("score", help="score a harness-format generations file (no model, no jax)")
    sc.add_argument("--task", required=True, help="task name (ours or the harness's)")
    sc.add_argument("--language", required=True)
    sc.add_argument("--generations", required=True, help="generations JSON (a list per problem)")
    sc.add_argument(
        "--template",
        default=DEFAULT_TEMPLATE,
        choices=TEMPLATES,
        help="template the generations were made with (recorded; needed with --raw)",
    )
    sc.add_argument(
        "--raw",
        action="store_true",
        help="the file holds raw prompt+generation texts (harness --postprocess False): post-process them",
    )
    sc.add_argument(
        "--descriptions",
        help="explain-synthesize: the describe generations file (needed with --raw, or when "
        "problems have different numbers of descriptions)",
    )
    sc.add_argument("--n-samples", type=int, help="score only the first N samples of each row")
    _add_data_options(sc)
    _add_execution_options(sc)
    _add_output_options(sc)

    dts = sub.add_parser(
        "describe-then-synthesize",
        help="HumanEvalExplain: describe the code, then synthesize from the description, then score",
    )
    dts.add_argument("--languages", default="python", help='comma list or "all"')
    dts.add_argument(
        "--generation-only", action="store_true", help="save generations, do not score"
    )
    _add_generation_options(dts, n_descriptions=True)
    _add_data_options(dts)
    _add_execution_options(dts)
    _add_output_options(dts)

    tab = sub.add_parser("table", help="print the Table-2 layout from results.json files")
    tab.add_argument("results", nargs="+", help="results.json files (merged in order)")
    tab.add_argument("--metric", default="pass@1")
    return parser


# ---- helpers ------------------------------------------------------------------------------


def _parse_ks(spec: str) -> tuple[int, ...]:
    try:
        ks = tuple(int(k) for k in spec.split(",") if k.strip())
    except ValueError as e:
        raise UsageError(f"--k must be a comma list of integers, got {spec!r}") from e
    if not ks or min(ks) < 1:
        raise UsageError(f"--k values must be >= 1, got {spec!r}")
    return ks


def _data_source(args: argparse.Namespace) -> str | None:
    if args.from_hub:
        return None
    if not args.data_dir:
        raise UsageError(f"give --data-dir (or set ${DATA_DIR_ENV}), or --from-hub")
    return args.data_dir


def _problems(args: argparse.Namespace, language: str) -> list[dict]:
    if args.limit is not None and args.limit < 1:
        raise UsageError("--limit must be at least 1")
    return load_problems(language, _data_source(args), limit=args.limit)


def _say(args: argparse.Namespace, message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _score_and_record(
    args: argparse.Namespace,
    task: Task,
    entries: list[Entry],
    rows: list[list[str]],
    model_name: str,
    config: dict,
) -> dict:
    from eval.scoring import score

    result = score(
        task,
        entries,
        rows,
        workers=args.workers,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
        ks=_parse_ks(args.k),
        model=model_name,
    )
    result["config"] = config
    json_path, md_path = write_results(args.output_dir, [result])
    summary = ", ".join(f"{k} {100 * v:.1f}" for k, v in result.items() if k.startswith("pass@"))
    _say(args, f"{task.harness_name}: {summary} ({json_path}, {md_path})")
    return result


def _descriptions_for(path: Path, n_problems: int) -> list[list[str]]:
    descriptions = load_generations(path)
    if len(descriptions) < n_problems:
        raise DescriptionsError(
            f"{path}: descriptions for {len(descriptions)} problems, need {n_problems}"
        )
    return descriptions


def _sampling_config(args: argparse.Namespace, n_samples: int):
    from eval.generation import SamplingConfig

    return SamplingConfig(
        n_samples=n_samples,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        max_new_tokens=args.max_length_generation,
        batch_size=args.batch_size,
        seed=args.seed,
    )


def _generate_task(
    args: argparse.Namespace, generator, task: Task, entries: list[Entry], n_samples: int
) -> tuple[list[list[str]], dict]:
    """Generate one task/language, save harness-format (and raw) files, return rows + config."""
    from eval.generation import generate_rows

    out = Path(args.output_dir)
    final = out / harness_filename(task.harness_name)
    checkpoint = out / harness_filename(task.harness_name + "_intermediate")
    if checkpoint.exists() and not args.resume:
        checkpoint.unlink()
    config = _sampling_config(args, n_samples)
    raw: list[list[str]] = []
    resumed = checkpoint.exists()
    rows = generate_rows(
        generator,
        task,
        entries,
        config,
        progress=not args.no_progress,
        checkpoint_path=checkpoint,
        raw_rows=raw,
    )
    save_generations(final, rows)
    if not resumed:
        save_generations(out / harness_filename(task.harness_name, stem="generations_raw"), raw)
    checkpoint.unlink(missing_ok=True)
    _say(args, f"{task.harness_name}: {len(rows)} rows x {n_samples} samples -> {final}")
    run_config = {
        "model_path": str(args.model),
        "dtype": args.dtype,
        "data": "hub" if args.from_hub else str(args.data_dir),
        "limit": args.limit,
        "generations": str(final),
        **{k: getattr(config, k) for k in config.__dataclass_fields__},
    }
    return rows, run_config


def _model_name(args: argparse.Namespace) -> str:
    return args.model_name or Path(str(args.model)).resolve().name


# ---- commands -----------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> int:
    task = Task(normalize_task(args.task), args.language, args.template)
    if not task.executes:
        raise UsageError(
            f"{task.name} outputs descriptions; score humanevalexplain-synthesize instead"
        )
    problems = _problems(args, task.language)
    generations = load_generations(args.generations)
    where = str(args.generations)
    if task.needs_descriptions:
        if args.descriptions:
            descriptions = _descriptions_for(Path(args.descriptions), len(problems))
        else:
            descriptions = _uniform_descriptions(generations, len(problems), where, args)
        entries = task.entries(problems, descriptions)
    else:
        entries = task.entries(problems)
    rows = fit_to_rows(
        generations,
        len(entries),
        where,
        n_samples=args.n_samples,
        allow_extra_rows=args.limit is not None,
    )
    if args.raw:
        rows = [[task.postprocess_full_text(e, g) for g in row] for e, row in zip(entries, rows)]
    config = {
        "generations": where,
        "raw": args.raw,
        "descriptions": args.descriptions,
        "data": "hub" if args.from_hub else str(args.data_dir),
        "limit": args.limit,
        "n_samples_cap": args.n_samples,
    }
    _score_and_record(args, task, entries, rows, args.model_name or "", config)
    return 0


def _uniform_descriptions(
    generations: list[list[str]], n_problems: int, where: str, args: argparse.Namespace
) -> list[list[str]]:
    """Placeholder descriptions when scoring explain-synthesize without the describe file.

    The harness writes one row per (problem, description), problem-major; with the same number
    m of descriptions per problem, row i belongs to problem i // m. Prompts are not needed to
    score post-processed code, so the descriptions' text is not.
    """
    if args.raw:
        raise UsageError(
            "--raw explain-synthesize generations need --descriptions to rebuild prompts"
        )
    total = len(generations) if args.limit is None else None
    if total is None or total % n_problems:
        raise UsageError(
            f"{where}: cannot tell which rows belong to which problem "
            f"({len(generations)} rows, {n_problems} problems); pass --descriptions"
        )
    m = total // n_problems
    return [[""] * m for _ in range(n_problems)]


def cmd_generate(args: argparse.Namespace) -> int:
    from eval.generation import load_generator

    tasks = parse_tasks(args.tasks)
    languages = parse_languages(args.languages)
    for name in tasks:
        Task(name, "python", args.template)  # fail on a bad task/template before loading a model
    all_problems = {language: _problems(args, language) for language in languages}
    generator = load_generator(args.model, dtype=args.dtype)
    model_name = _model_name(args)
    for name in tasks:
        for language in languages:
            task = Task(name, language, args.template, eos_token=generator.eos_token)
            problems = all_problems[language]
            descriptions = None
            if task.needs_descriptions:
                d_dir = Path(args.descriptions_dir or args.output_dir)
                d_task = Task(EXPLAIN_DESCRIBE, language, args.template)
                descriptions = _descriptions_for(
                    d_dir / harness_filename(d_task.harness_name), len(problems)
                )
            entries = task.entries(problems, descriptions)
            rows, config = _generate_task(args, generator, task, entries, args.n_samples)
            if task.executes and not args.generation_only:
                _score_and_record(args, task, entries, rows, model_name, config)
    return 0


def cmd_describe_then_synthesize(args: argparse.Namespace) -> int:
    from eval.generation import load_generator

    languages = parse_languages(args.languages)
    Task(EXPLAIN_DESCRIBE, "python", args.template)
    all_problems = {language: _problems(args, language) for language in languages}
    generator = load_generator(args.model, dtype=args.dtype)
    model_name = _model_name(args)
    for language in languages:
        problems = all_problems[language]
        describe = Task(EXPLAIN_DESCRIBE, language, args.template, eos_token=generator.eos_token)
        descriptions, _ = _generate_task(
            args, generator, describe, describe.entries(problems), args.n_descriptions
        )
        synth = Task(EXPLAIN_SYNTHESIZE, language, args.template, eos_token=generator.eos_token)
        entries = synth.entries(problems, descriptions)
        rows, config = _generate_task(args, generator, synth, entries, args.n_samples)
        config["n_descriptions"] = args.n_descriptions
        if not args.generation_only:
            _score_and_record(args, synth, entries, rows, model_name, config)
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from eval.report import merge_results

    results: list[dict] = []
    for path in args.results:
        if not Path(path).exists():
            raise ResultsFileError(f"{path}: file not found")
        results = merge_results(results, load_results(path))
    print(markdown_table(results, args.metric), end="")
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "score": cmd_score,
    "describe-then-synthesize": cmd_describe_then_synthesize,
    "table": cmd_table,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python -m eval` and `octojax evaluate`; returns the exit status."""
    from eval.generation import GeneratorUnavailable
    from eval.scoring import ToolchainError

    args = build_parser().parse_args(None if argv is None else list(argv))
    try:
        if hasattr(args, "k"):
            _parse_ks(args.k)  # fail on bad options before any work
        return COMMANDS[args.command](args)
    except (*_KNOWN_ERRORS, ValueError, OSError, GeneratorUnavailable, ToolchainError) as e:
        # ValueError: bad names and settings (task, language, sampling values);
        # OSError: missing or unreadable model, data or output paths.
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
