"""The `octojax` command: one subcommand per stage of the OctoPack loop.

Known errors (bad configs, missing or unreadable files, checkpoints that do not fit) print one line,
`octojax <command>: error: ...`, and exit 2; `--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import errno
import importlib.util
import json
import sys


def build_parser() -> argparse.ArgumentParser:
    from octojax import demo
    from octojax.convert import cli as convert_cli
    from octojax.generate import cli as generate_cli
    from octojax.pipeline import cli as pipeline_cli
    from octojax.plan import cli as plan_cli
    from octojax.train import cli as train_cli

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


def add_launch_flags(p: argparse.ArgumentParser) -> None:
    """--distributed and the jax.distributed arguments, for commands that run on several hosts."""
    g = p.add_argument_group("multi-host (one process per host; octojax/mesh.py)")
    g.add_argument(
        "--distributed",
        action="store_true",
        help="jax.distributed.initialize() first (implied by the flags below)",
    )
    g.add_argument("--coordinator", default=None, help="host:port of process 0 (else detected)")
    g.add_argument("--num-processes", type=int, default=None)
    g.add_argument("--process-id", type=int, default=None)


def start_distributed(args: argparse.Namespace) -> bool:
    """Initialise jax.distributed when asked for by the launch flags; whether it was."""
    explicit = (args.coordinator, args.num_processes, args.process_id)
    if not args.distributed and all(v is None for v in explicit):
        return False
    from octojax.mesh import initialize_distributed

    initialize_distributed(*explicit)
    return True


def _evaluate(args: argparse.Namespace) -> int:
    from eval.cli import main as eval_main

    return eval_main(args.eval_args)


# Errors that mean bad input, by module. Looked up in sys.modules, never imported: a class can only
# have been raised once its module is loaded, and reporting an error must not import anything.
_INPUT_ERRORS = (
    ("octojax.config", "ConfigError"),
    ("octojax.convert.hf_checkpoint", "CheckpointError"),
    ("octojax.convert.octojax_checkpoint", "UnreadableCheckpoint"),
    ("octojax.convert.safetensors_io", "SafetensorsError"),
    ("octojax.data.sources", "BadRecordError"),
    ("octojax.generate.generator", "PromptTooLong"),
    ("octojax.train.checkpointing", "CheckpointSaveError"),
    ("beam_pipelines.run_lock", "FolderLocked"),
)

# OSErrors a user meets and fixes (full disk or quota, read-only or unwritable folder): one line.
USER_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR}
)

# Packages the core install (`pip install octojax`) lacks, by top-level module: the extra with them.
# No core path imports them (tests/test_core_install.py); those that need one refuse naming it.
OPTIONAL_MODULES = {
    "apache_beam": "beam",
    "tensorflow_datasets": "beam",
    "torch": "torch",
    "datasets": "hub",
    "tensorflow": "tf",
}


def known_errors() -> tuple[type[BaseException], ...]:
    """Errors that mean bad input (reported in one line), not a bug in octojax."""
    loaded = [getattr(sys.modules.get(module), name, None) for module, name in _INPUT_ERRORS]
    return (
        *(cls for cls in loaded if cls is not None), FileNotFoundError,
        NotADirectoryError, IsADirectoryError, PermissionError, FileExistsError,
        UnicodeDecodeError, json.JSONDecodeError,
    )  # fmt: skip


def install_hint(module: str) -> str:
    """How to install an optional module: `pip install 'octojax[EXTRA]'`."""
    return f"pip install 'octojax[{OPTIONAL_MODULES[module.partition('.')[0]]}]'"


def _needs_beam(args: argparse.Namespace) -> bool:
    """`octojax commitpack`, and `octojax run` unless --only leaves out the commitpack stage."""
    if args.command == "commitpack":
        return True
    only = getattr(args, "only", None) or []
    return args.command == "run" and (not only or "commitpack" in only)


def _refuse_without_beam(args: argparse.Namespace) -> str | None:
    """The one-line refusal of a command that runs the Beam pipeline when Beam is not installed."""
    if not _needs_beam(args) or importlib.util.find_spec("apache_beam") is not None:
        return None
    what = "the commitpack stage" if args.command == "run" else "it"
    hint = " (or pick other stages with --only)" if args.command == "run" else ""
    return (
        f"{what} needs Apache Beam, which the core install lacks: "
        f"{install_hint('apache_beam')}{hint}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The parsed command line. `octojax commitpack ARGS` hands ARGS to the Beam pipeline as they
    are (argparse's REMAINDER refuses a subcommand's leading `--flag`, e.g. `--source`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    head = 0
    while head < len(argv) and argv[head] == "--debug":  # the only top-level flag with no value
        head += 1
    if argv[head : head + 1] == ["commitpack"]:
        args = parser.parse_args(argv[: head + 1])
        args.beam_args = argv[head + 1 :]
        return args
    return parser.parse_args(argv)


def quiet_library_noise() -> None:
    """Without --debug, what octojax reports itself in one line (a failed checkpoint save, a
    fallback to an older checkpoint) is not repeated by libraries as tracebacks: orbax/absl and
    asyncio errors from background threads are logged only at CRITICAL, and uncaught exceptions
    of those threads (and ignored ones at shutdown) print nothing."""
    import logging
    import threading

    for name in ("absl", "asyncio", "orbax"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    threading.excepthook = lambda args: None
    sys.unraisablehook = lambda unraisable: None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.debug:
        quiet_library_noise()
    refusal = _refuse_without_beam(args)
    if refusal:
        print(f"octojax {args.command}: error: {refusal}", file=sys.stderr)
        return 2
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
    except OSError as e:  # the machine's state, not a bug: disk full, read-only, no permission
        if args.debug or e.errno not in USER_ERRNOS:
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
