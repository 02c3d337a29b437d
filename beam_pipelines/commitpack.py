"""Build CommitPack (and CommitPackFT) with Apache Beam: ``python -m beam_pipelines.commitpack``.

Examples::

    # local, DirectRunner (the default here), mining git repositories
    python -m beam_pipelines.commitpack --source git --repos ../repo1 ../repo2 \\
        --output out/cp --stage ft --tokenizer /models/starcoder

    # CommitPack JSONL (Hugging Face schema) from a bucket, on Dataflow
    python -m beam_pipelines.commitpack --source jsonl --jsonl 'gs://b/commitpack/*.jsonl.gz' \\
        --output gs://b/out --stage ft --tokenizer gs://b/starcoder/tokenizer.json \\
        --runner DataflowRunner --project P --region europe-west4 \\
        --temp_location gs://b/tmp --setup_file ./beam_pipelines/setup.py

Any argument this parser does not know is passed to Beam's ``PipelineOptions``. Output layout::

    OUTPUT/commitpack/commitpack-00000-of-0000N.tfrecord (+ manifest.json)
    OUTPUT/commitpackft/...                              (with --stage ft)
    OUTPUT/deadletter/deadletter-*.jsonl
    OUTPUT/stats.json   (counts per drop reason, language, license; the accounting check)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
from collections.abc import Sequence
from typing import Any


class _DropBeamImportWarning(logging.Filter):
    """Beam's import logs "apitools not found ..." (its BigQuery client libraries) to stderr on
    every run; it concerns only ``--source bigquery`` and would push this command's own
    ``error:`` line off the first line. Dropped here, before Beam is imported."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("apitools not found")


logging.getLogger().addFilter(_DropBeamImportWarning())

import apache_beam as beam  # noqa: E402
from apache_beam.io.filesystems import FileSystems  # noqa: E402
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions  # noqa: E402

from beam_pipelines.bigquery_query import DEFAULT_DATASET, build_commits_query  # noqa: E402
from beam_pipelines.filters_ft import DEFAULT_SEED  # noqa: E402
from beam_pipelines.git_mining import DEFAULT_MAX_FILE_BYTES  # noqa: E402
from beam_pipelines.parsing import DEFAULT_MAX_RECORD_BYTES  # noqa: E402
from beam_pipelines.publish import (  # noqa: E402
    check_inputs,
    discard,
    existing_outputs,
    new_staging_dir,
    publish,
    recover_interrupted,
)
from beam_pipelines.run_lock import FolderLocked, RunLock  # noqa: E402
from beam_pipelines.sinks import (  # noqa: E402
    DEADLETTER_DIR,
    DEFAULT_RECORDS_PER_SHARD,
    SHARD_WRITERS,
    STATS_NAME,
    WriteDeadLetters,
    WriteManifest,
    WriteStats,
    WriteTFRecordDataset,
)
from beam_pipelines.stats import STAGES  # noqa: E402
from beam_pipelines.tokenization import TokenizerNotFoundError, check_tokenizer  # noqa: E402
from beam_pipelines.transforms import (  # noqa: E402
    DEAD,
    EVENTS,
    CommitPackFTStage,
    CommitPackStage,
    ReadBigQueryCommits,
    ReadCommitPackJsonl,
    ReadGitRepositories,
    ShardSpec,
)

log = logging.getLogger("beam_pipelines.commitpack")


def _skip_ipython_probe() -> None:
    """Beam asks "are we inside IPython?" while building a pipeline by importing IPython when it
    is installed (1.5 s at load 3, once per process: a third of a small run). A process that has
    not imported IPython is not an IPython session, so the probe is answered from ``sys.modules``
    and Beam's own check runs only when IPython is already loaded."""
    import apache_beam.pipeline as beam_pipeline
    from apache_beam.utils import interactive_utils

    original = interactive_utils.is_in_ipython

    def is_in_ipython() -> bool:
        return "IPython" in sys.modules and original()

    interactive_utils.is_in_ipython = is_in_ipython
    beam_pipeline.is_in_ipython = is_in_ipython


_skip_ipython_probe()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipelines.commitpack",
        description="Build CommitPack / CommitPackFT TFRecord datasets with Apache Beam. "
        "Unknown arguments are Beam pipeline options (--runner, --project, ...).",
    )
    parser.add_argument("--source", choices=("git", "jsonl", "bigquery"), required=True)
    parser.add_argument("--output", required=True, help="output directory (local or gs://)")
    parser.add_argument(
        "--stage",
        choices=("commitpack", "ft"),
        default="commitpack",
        help="commitpack: CommitPack only; ft: CommitPack and CommitPackFT",
    )
    parser.add_argument("--tokenizer", help="directory with tokenizer.json, or the file (for ft)")
    git = parser.add_argument_group("git source")
    git.add_argument("--repos", nargs="+", default=[], help="local paths or clone URLs")
    git.add_argument("--repos_file", help="file with one 'PATH_OR_URL [NAME]' per line")
    git.add_argument(
        "--revs",
        nargs="+",
        action="extend",
        help="revisions to mine, as git log takes them (default HEAD; --all, --branches ok)",
    )
    git.add_argument("--max_file_bytes", type=int, default=DEFAULT_MAX_FILE_BYTES)
    jsonl = parser.add_argument_group("jsonl source")
    jsonl.add_argument("--jsonl", nargs="+", default=[], help="file patterns (.jsonl, .jsonl.gz)")
    jsonl.add_argument("--max_record_bytes", type=int, default=DEFAULT_MAX_RECORD_BYTES)
    bq = parser.add_argument_group("bigquery source")
    bq.add_argument("--bq_dataset", default=DEFAULT_DATASET)
    bq.add_argument("--bq_limit", type=int)
    bq.add_argument("--bq_sample_percent", type=float)
    out = parser.add_argument_group("output")
    out.add_argument("--records_per_shard", type=int, default=DEFAULT_RECORDS_PER_SHARD)
    out.add_argument("--split_by_language", action="store_true")
    out.add_argument(
        "--shard_writer",
        choices=("auto", *SHARD_WRITERS),
        default="auto",
        help="per_group: one DoFn writes all shards of a group (fastest on one machine); "
        "per_shard: one worker per shard (large groups on Dataflow); auto: per_group on the "
        "DirectRunner, per_shard otherwise. The files are the same.",
    )
    out.add_argument("--seed", type=int, default=DEFAULT_SEED, help="bump down-sampling seed")
    out.add_argument("--overwrite", action="store_true", help="replace an existing output")
    return parser


def read_repo_lines(args: argparse.Namespace) -> list[str]:
    lines = list(args.repos)
    if args.repos_file:
        with FileSystems.open(args.repos_file) as fileobj:
            text = fileobj.read().decode("utf-8")
        lines += [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    return lines


def validate_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse bad combinations before any pipeline starts (clear messages, exit code 2)."""
    if args.source == "git" and not (args.repos or args.repos_file):
        parser.error("--source git needs --repos and/or --repos_file")
    if args.source == "jsonl" and not args.jsonl:
        parser.error("--source jsonl needs --jsonl PATTERN [...]")
    if args.stage == "ft":
        if not args.tokenizer:
            parser.error(
                "the FT stage needs --tokenizer: a local directory with StarCoder's "
                "tokenizer.json (or the file); nothing is downloaded"
            )
        try:
            check_tokenizer(args.tokenizer)
        except (TokenizerNotFoundError, ValueError) as err:
            parser.error(str(err))
    if args.records_per_shard <= 0:
        parser.error("--records_per_shard must be positive")


def refuse_existing_output(output: str, overwrite: bool) -> str | None:
    """A message when ``output`` holds a dataset and ``--overwrite`` was not given (nothing is
    deleted here: a successful run replaces the old outputs, see :mod:`beam_pipelines.publish`)."""
    existing = existing_outputs(output)
    if existing and not overwrite:
        return f"{output} already holds a dataset ({', '.join(existing)}); pass --overwrite"
    return None


_GIT_REV_OPTION = re.compile(r"^--(all|branches|tags|remotes|glob|exclude|not|reflog)(=.*)?$")


def expand_revs(argv: Sequence[str]) -> list[str]:
    """``--revs --all main`` -> ``--revs=--all --revs=main``: argparse would take git's own
    options (``--all``, ``--branches=x``) for options of this command."""
    out: list[str] = []
    i = 0
    while i < len(argv):
        if argv[i] != "--revs":
            out.append(argv[i])
            i += 1
            continue
        i += 1
        revs = []
        while i < len(argv) and (not argv[i].startswith("-") or _GIT_REV_OPTION.match(argv[i])):
            revs.append(argv[i])
            i += 1
        out.extend([f"--revs={r}" for r in revs] or ["--revs"])
    return out


def read_source(pipeline: beam.Pipeline, args: argparse.Namespace) -> dict[str, Any]:
    """The source transform chosen by ``--source``: records, dead letters and events."""
    if args.source == "git":
        return pipeline | "Git" >> ReadGitRepositories(
            read_repo_lines(args), args.revs or ["HEAD"], args.max_file_bytes
        )
    if args.source == "jsonl":
        return pipeline | "Jsonl" >> ReadCommitPackJsonl(args.jsonl, args.max_record_bytes)
    query = build_commits_query(
        dataset=args.bq_dataset, limit=args.bq_limit, sample_percent=args.bq_sample_percent
    )
    return pipeline | "BigQuery" >> ReadBigQueryCommits(query)


def resolve_shard_writer(choice: str, options: PipelineOptions) -> str:
    """``auto`` -> ``per_group`` on the local runner (one machine: the fewest shuffles),
    ``per_shard`` on any other (a shard per worker); an explicit choice is kept."""
    if choice != "auto":
        return choice
    local = options.view_as(StandardOptions).runner in (None, "DirectRunner", "FnApiRunner")
    return "per_group" if local else "per_shard"


def build_pipeline(pipeline: beam.Pipeline, args: argparse.Namespace, output: str) -> None:
    """Add every transform of a run to ``pipeline``, writing under ``output``."""
    stages = ["commitpack"] + (["commitpackft"] if args.stage == "ft" else [])
    shard_writer = resolve_shard_writer(args.shard_writer, pipeline.options)
    source = read_source(pipeline, args)
    specs = {stage: ShardSpec(FileSystems.join(output, stage), args.records_per_shard,
                              args.split_by_language) for stage in stages}  # fmt: skip
    # One machine: each stage's deduplication writes its shards and manifest in the same step
    # (one shuffle of the file contents); elsewhere writing is its own per-shard stage.
    fused = shard_writer == "per_group"
    commitpack = source["records"] | "CommitPack" >> CommitPackStage(
        specs["commitpack"] if fused else None
    )
    dead = [source[DEAD]]
    events = [source[EVENTS], commitpack[EVENTS]]
    datasets = {"commitpack": commitpack}
    if args.stage == "ft":
        commitpackft = commitpack["records"] | "CommitPackFT" >> CommitPackFTStage(
            args.tokenizer, args.seed, specs["commitpackft"] if fused else None
        )
        dead.append(commitpackft[DEAD])
        events.append(commitpackft[EVENTS])
        datasets["commitpackft"] = commitpackft
    if not fused:
        for stage, outputs in datasets.items():
            spec = specs[stage]
            shards = outputs["records"] | f"Write_{stage}" >> WriteTFRecordDataset(
                spec.stage_dir, stage, spec.records_per_shard, spec.split_by_language
            )
            shards | f"Manifest_{stage}" >> WriteManifest(
                spec.stage_dir, stage, spec.split_by_language
            )
    dead | "AllDead" >> beam.Flatten() | "DeadLetters" >> WriteDeadLetters(output)
    run_info = {
        "source": args.source,
        "stage": args.stage,
        "seed": args.seed,
        "tokenizer": args.tokenizer,
        "records_per_shard": args.records_per_shard,
        "split_by_language": args.split_by_language,
    }
    events | "AllEvents" >> beam.Flatten() | "Stats" >> WriteStats(output, stages, run_info)


def pipeline_options(beam_args: Sequence[str]) -> PipelineOptions:
    """Beam options from the leftover arguments; the runner defaults to the local one."""
    options = PipelineOptions(list(beam_args))
    standard = options.view_as(StandardOptions)
    if standard.runner is None:
        standard.runner = "DirectRunner"
    return options


def make_runner(options: PipelineOptions) -> Any:
    """The runner to build the pipeline with. For ``DirectRunner`` (the default) that is Beam's
    FnApiRunner itself: Beam's ``DirectRunner`` first tries the Prism runner, which downloads a
    binary (and fails offline) before falling back to the same FnApiRunner. Other runners
    (``DataflowRunner``, ...) are left to Beam (None)."""
    if options.view_as(StandardOptions).runner not in ("DirectRunner", "FnApiRunner"):
        return None
    from apache_beam.portability.api import beam_provision_api_pb2
    from apache_beam.runners.portability.fn_api_runner import fn_runner
    from apache_beam.runners.portability.portable_runner import JobServiceHandle

    encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
    info = beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded)
    return fn_runner.FnApiRunner(provision_info=fn_runner.ExtendedProvisionInfo(info))


def read_dead_letter_examples(output: str, limit: int = 1) -> dict[tuple[str, str], list[str]]:
    """(stage, reason) -> up to ``limit`` example details from the dead-letter files."""
    examples: dict[tuple[str, str], list[str]] = {}
    pattern = FileSystems.join(output, DEADLETTER_DIR, "*.jsonl")
    for meta in FileSystems.match([pattern])[0].metadata_list:
        with FileSystems.open(meta.path) as fileobj:
            for line in fileobj.read().decode("utf-8").splitlines():
                dead = json.loads(line)
                got = examples.setdefault((dead.get("stage", ""), dead["reason"]), [])
                if len(got) < limit:
                    where = dead.get("source", "")
                    got.append(f"{where}: {dead.get('detail', '')}"[:300].replace("\n", " "))
    return examples


def summarise(stats: dict, examples: dict[tuple[str, str], list[str]] | None = None) -> str:
    """The end-of-run summary: inputs, dead letters per reason (with an example), drops."""
    lines = [f"input: {stats['input']['total']} ({stats['input']['by_source']})"]
    lines.append(f"dead letters: {stats['dead_letter']['total']}")
    for stage, block in stats["dead_letter"]["by_stage"].items():
        for reason, n in block["by_reason"].items():
            example = (examples or {}).get((stage, reason))
            lines.append(f"  {stage}/{reason}: {n}" + (f" (e.g. {example[0]})" if example else ""))
    for stage in STAGES:
        if stage in stats:
            s = stats[stage]
            lines.append(
                f"{stage}: kept {s['kept']} of {s['input']}; dropped {s['dropped']['total']} "
                f"{s['dropped']['by_reason']}"
            )
    lines.append(f"accounting ok: {stats['accounting']['ok']}")
    return "\n".join(lines)


def _error(message: str) -> int:
    """Print one ``error:`` line (what a script or a person reads first) and return 2."""
    print(f"error: {message}", file=sys.stderr)
    return 2


def _all_inputs_unreadable(stats: dict) -> bool:
    """Every input item is an unreadable repository (nothing else was read)."""
    dead = stats["dead_letter"]["by_stage"]["source"]["by_reason"]
    unreadable = dead.get("repo_unreadable", 0)
    return unreadable > 0 and stats["input"]["total"] == unreadable


def run(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    """Run the pipeline into a staging directory; publish it only if the run succeeded."""
    options = pipeline_options(beam_args)
    log.info("running with %s", options.view_as(StandardOptions).runner)
    staging = new_staging_dir(args.output)
    try:
        with beam.Pipeline(runner=make_runner(options), options=options) as pipeline:
            build_pipeline(pipeline, args, staging)
        # `with` waits for the run; on Dataflow with a non-blocking launcher the stats appear later.
        stats_path = FileSystems.join(staging, STATS_NAME)
        if not FileSystems.exists(stats_path):
            return _error(f"the run wrote no {STATS_NAME}; {args.output} left as it was")
        with FileSystems.open(stats_path) as fileobj:
            stats = json.loads(fileobj.read().decode("utf-8"))
        log.info("done:\n%s", summarise(stats, read_dead_letter_examples(staging)))
        if _all_inputs_unreadable(stats):
            return _error(
                f"no input could be read (see the dead letters above); {args.output} left as it was"
            )
        publish(staging, args.output)
        return 0 if stats["accounting"]["ok"] else 1
    finally:
        discard(staging)


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True
    )
    parser = build_parser()
    argv = expand_revs(sys.argv[1:] if argv is None else list(argv))
    args, beam_args = parser.parse_known_args(argv)
    validate_args(parser, args)
    if "://" in args.output:  # remote outputs: no file lock (publish is per file there)
        return _checked_run(args, beam_args)
    held = _HeldRunnerErrors()  # Beam logs a worker's exception before it reaches us
    try:
        with RunLock(args.output, f"CommitPack pipeline ({args.output})", beside=True), held:
            return _checked_run(args, beam_args)
    except FolderLocked as e:
        return _error(str(e))
    except Exception as e:  # Beam wraps a worker's OSError in its own types
        reason = _storage_reason(e)
        if reason is None:
            held.replay()
            raise
        return _error(f"{args.output}: {reason}; the output is left as it was")


class _HeldRunnerErrors(logging.Handler):
    """Holds the runner's error logs (with their tracebacks) during a run: replayed when the run
    fails for a reason of its own, dropped when the one-line storage error says it all."""

    LOGGER = "apache_beam.runners"

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def __enter__(self) -> _HeldRunnerErrors:
        logger = logging.getLogger(self.LOGGER)
        self._propagate, logger.propagate = logger.propagate, False
        logger.addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logger = logging.getLogger(self.LOGGER)
        logger.removeHandler(self)
        logger.propagate = self._propagate

    def replay(self) -> None:
        for record in self.records:
            logging.getLogger(record.name).handle(record)


# Errors of the machine (full disk, read-only or unwritable storage), not of the pipeline.
_STORAGE_REASONS = ("No space left on device", "Read-only file system", "Permission denied",
                    "Disk quota exceeded")  # fmt: skip


def _storage_reason(error: BaseException) -> str | None:
    """The storage problem inside an error raised by a run, or None for any other error."""
    text = f"{error}"
    return next((reason for reason in _STORAGE_REASONS if reason in text), None)


def _checked_run(args: argparse.Namespace, beam_args: list[str]) -> int:
    """Recover a killed publish, check the output and inputs, run (under the output's lock)."""
    recover_interrupted(args.output)  # a killed publish: the old or new dataset again
    refusal = refuse_existing_output(args.output, args.overwrite)
    if refusal:
        return _error(refusal)
    inputs = read_repo_lines(args) if args.source == "git" else args.jsonl
    problem = check_inputs(args.source, inputs)
    if problem:
        return _error(problem)
    return run(args, beam_args)


if __name__ == "__main__":
    sys.exit(main())
