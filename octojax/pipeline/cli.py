"""`octojax run` and `octojax commitpack`."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path


def add_parsers(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="the whole OctoPack loop from one config (default: CPU smoke run)"
    )
    p.add_argument("--config", type=Path, default=None, help="run YAML (default: embedded default)")
    p.add_argument(
        "overrides", nargs="*", help="key.sub=value overrides, e.g. train.train.steps=50"
    )
    p.add_argument("--only", action="append", default=[], help="run only this stage (repeatable)")
    p.add_argument("--force", action="append", default=[], help="redo this stage even if done")
    p.set_defaults(func=run)

    c = sub.add_parser(
        "commitpack",
        help="build CommitPack / CommitPackFT with Apache Beam (python -m beam_pipelines.commitpack)",
        add_help=False,
    )
    c.add_argument("beam_args", nargs=argparse.REMAINDER)
    c.set_defaults(func=commitpack)


def run(args: argparse.Namespace) -> int:
    from octojax.pipeline.config import load_run_config
    from octojax.pipeline.run import Run

    cfg = load_run_config(args.config, args.overrides)
    Run(cfg, force=tuple(args.force), only=tuple(args.only)).execute()
    return 0


def commitpack(args: argparse.Namespace) -> int:
    """A subprocess, so that octojax never imports Apache Beam."""
    return subprocess.call([sys.executable, "-m", "beam_pipelines.commitpack", *args.beam_args])
