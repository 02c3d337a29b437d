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

from eval import api
from eval.api import (
    DATA_DIR_ENV,
    EVAL_ERRORS,
    DataOptions,
    ExecutionOptions,
    ModelOptions,
    OutputOptions,
    parse_ks,
)
from eval.generation import DEFAULT_SAMPLING, SamplingConfig, add_sampling_flags, sampling_from_args
from eval.metrics import DEFAULT_KS
from eval.prompts import DEFAULT_TEMPLATE, TEMPLATES

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
    p.add_argument(
        "--mesh",
        help='device mesh for the model, e.g. "data=2,fsdp=1,tensor=4" (default: the generator\'s)',
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: initialise jax.distributed before loading (one process per host)",
    )
    p.add_argument("--template", default=DEFAULT_TEMPLATE, choices=TEMPLATES)
    g = p.add_argument_group("sampling (paper: --n-samples 20 --temperature 0.2 --top-p 0.95)")
    add_sampling_flags(
        g, DEFAULT_SAMPLING, aliases={"max_new_tokens": ("--max-length-generation",)}
    )
    if n_descriptions:
        g.add_argument(
            "--n-descriptions",
            type=int,
            default=1,
            help="descriptions per problem; each gets --n-samples programs (default: 1)",
        )
    g.add_argument("--resume", action="store_true", help="continue from intermediate files")


def _add_generate_parser(sub) -> None:
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


def _add_score_parser(sub) -> None:
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


def _add_describe_then_synthesize_parser(sub) -> None:
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


def build_parser() -> argparse.ArgumentParser:
    """The `python -m eval` parser: generate, score, describe-then-synthesize, table."""
    parser = argparse.ArgumentParser(
        prog="python -m eval",
        description="HumanEvalPack evaluation (fix / explain / synthesize in six languages).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _add_generate_parser(sub)
    _add_score_parser(sub)
    _add_describe_then_synthesize_parser(sub)
    tab = sub.add_parser("table", help="print the Table-2 layout from results.json files")
    tab.add_argument("results", nargs="+", help="results.json files (merged in order)")
    tab.add_argument("--metric", default="pass@1")
    return parser


# ---- argparse -> API ---------------------------------------------------------------------


def _data(args: argparse.Namespace) -> DataOptions:
    return DataOptions(data_dir=args.data_dir, from_hub=args.from_hub, limit=args.limit)


def _execution(args: argparse.Namespace) -> ExecutionOptions:
    return ExecutionOptions(workers=args.workers, cache_dir=args.cache_dir, ks=parse_ks(args.k))


def _output(args: argparse.Namespace) -> OutputOptions:
    return OutputOptions(
        output_dir=args.output_dir, model_name=args.model_name, progress=not args.no_progress
    )


def _model(args: argparse.Namespace) -> ModelOptions:
    return ModelOptions(args.model, dtype=args.dtype, mesh=args.mesh, distributed=args.distributed)


def _sampling(args: argparse.Namespace) -> SamplingConfig:
    return sampling_from_args(args, DEFAULT_SAMPLING)


# ---- commands -----------------------------------------------------------------------------


def cmd_score(args: argparse.Namespace) -> int:
    """`score`: see `eval.api.score`."""
    api.score(args.task, args.language, args.generations, data=_data(args),
              template=args.template, raw=args.raw, descriptions=args.descriptions,
              n_samples=args.n_samples, execution=_execution(args), output=_output(args))  # fmt: skip
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    """`generate`: see `eval.api.generate`."""
    api.generate(_model(args), data=_data(args), tasks=args.tasks, languages=args.languages,
                 sampling=_sampling(args), template=args.template, execution=_execution(args),
                 output=_output(args), descriptions_dir=args.descriptions_dir,
                 generation_only=args.generation_only, resume=args.resume)  # fmt: skip
    return 0


def cmd_describe_then_synthesize(args: argparse.Namespace) -> int:
    """`describe-then-synthesize`: see `eval.api.describe_then_synthesize`."""
    api.describe_then_synthesize(_model(args), data=_data(args), languages=args.languages,
                                 sampling=_sampling(args), n_descriptions=args.n_descriptions,
                                 template=args.template, execution=_execution(args),
                                 output=_output(args), generation_only=args.generation_only,
                                 resume=args.resume)  # fmt: skip
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    """`table`: print `eval.api.table`."""
    print(api.table(args.results, args.metric), end="")
    return 0


COMMANDS = {
    "generate": cmd_generate,
    "score": cmd_score,
    "describe-then-synthesize": cmd_describe_then_synthesize,
    "table": cmd_table,
}


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for `python -m eval` and `octojax evaluate`; returns the exit status."""
    args = build_parser().parse_args(None if argv is None else list(argv))
    try:
        return COMMANDS[args.command](args)
    except EVAL_ERRORS as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
