"""The `octojax` command: one subcommand per stage of the OctoPack loop.

Known errors (bad configs, missing or unreadable files, checkpoints that do not fit) print one line,
`octojax <command>: error: ...`, and exit 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    from octojax import demo
    from octojax.convert import cli as convert_cli
    from octojax.generate import cli as generate_cli
    from octojax.pipeline import cli as pipeline_cli
    from octojax.train import cli as train_cli
    from octojax.train import plan as plan_cli

    parser = argparse.ArgumentParser(
        prog="octojax", description="OctoPack in JAX: CommitPack, instruction tuning, HumanEvalPack"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    sub = parser.add_subparsers(dest="command", required=True)
    convert_cli.add_parser(sub)
    generate_cli.add_parser(sub)
    demo.add_parser(sub)
    ev = sub.add_parser("evaluate", help="HumanEvalPack: generate, score (see `python -m eval -h`)")
    ev.add_argument("eval_args", nargs=argparse.REMAINDER)
    ev.set_defaults(func=_evaluate)
    train_cli.add_parser(sub)
    plan_cli.add_parser(sub)
    pipeline_cli.add_parsers(sub)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from eval.cli import main as eval_main

    return eval_main(args.eval_args)


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input (reported in one line), not a bug in octojax."""
    from octojax.config import ConfigError
    from octojax.convert.hf_checkpoint import CheckpointError
    from octojax.convert.octojax_checkpoint import UnreadableCheckpoint
    from octojax.convert.safetensors_io import SafetensorsError
    from octojax.data.sources import BadRecordError
    from octojax.generate.generator import PromptTooLong

    return (
        ConfigError, CheckpointError, UnreadableCheckpoint, SafetensorsError, BadRecordError,
        PromptTooLong, FileNotFoundError,
        NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError,
        UnicodeDecodeError, json.JSONDecodeError,
    )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print(f"octojax {args.command}: interrupted", file=sys.stderr)
        return 130
    except known_errors() as e:
        if args.debug:
            raise
        print(f"octojax {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2


def _one_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    if isinstance(e, OSError) and e.filename and str(e.filename) not in text:
        text = f"{e.filename}: {text}"
    return text.splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
