"""The `octojax` command: one subcommand per stage of the OctoPack loop."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    from octojax import demo
    from octojax.convert import cli as convert_cli
    from octojax.generate import cli as generate_cli
    from octojax.pipeline import cli as pipeline_cli
    from octojax.train import cli as train_cli

    parser = argparse.ArgumentParser(
        prog="octojax", description="OctoPack in JAX: CommitPack, instruction tuning, HumanEvalPack"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    convert_cli.add_parser(sub)
    generate_cli.add_parser(sub)
    demo.add_parser(sub)
    ev = sub.add_parser("evaluate", help="HumanEvalPack: generate, score (see `python -m eval -h`)")
    ev.add_argument("eval_args", nargs=argparse.REMAINDER)
    ev.set_defaults(func=_evaluate)
    train_cli.add_parser(sub)
    pipeline_cli.add_parsers(sub)
    return parser


def _evaluate(args: argparse.Namespace) -> int:
    from eval.cli import main as eval_main

    return eval_main(args.eval_args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
