"""Apache Beam transforms: sources, the CommitPack and CommitPackFT stages, deduplication.

Every transform returns a dict of PCollections: ``records`` (what goes on), ``dead`` (dead-letter
dicts) and ``events`` (``(event, count)`` pairs, see :mod:`beam_pipelines.stats`).

Few elements, few stages: each source DoFn also applies CommitPack's per-commit rules, so a
dropped commit never becomes an element (one repository is one element; mining, parsing and
filtering run in one DoFn), and every DoFn counts its events per bundle and emits one
``(event, count)`` pair each at the end of the bundle. The same counts become Beam metrics
counters in namespace ``commitpack`` (``<stage>.dropped.<reason>``, ``<stage>.dead.<reason>``,
``<stage>.kept``, ``source.input``), incremented once per bundle, visible in the Dataflow UI.
"""

import logging
import time
import traceback
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindow
from apache_beam.utils.timestamp import MIN_TIMESTAMP
from apache_beam.utils.windowed_value import WindowedValue

from beam_pipelines import filters_commitpack as cp
from beam_pipelines import filters_ft as ft
from beam_pipelines.git_mining import DEFAULT_MAX_FILE_BYTES, RepoSpec, mine_repository
from beam_pipelines.parsing import (
    DEFAULT_MAX_RECORD_BYTES,
    bigquery_row_to_outcome,
    dead_letter,
    parse_jsonl_line,
)
from beam_pipelines.schema import FIELDS
from beam_pipelines.sinks import ALL, encode_for_shard, write_group_shards, write_manifest

log = logging.getLogger(__name__)

NAMESPACE = "commitpack"
DEAD = "dead"
EVENTS = "events"
SHARDS = "shards"
PROGRESS_EVERY = 10_000


class _Progress:
    """Logs a DoFn's element count and rate every ``PROGRESS_EVERY`` elements."""

    def __init__(self, what: str):
        self.what = what
        self.count = 0
        self.start = time.monotonic()

    def tick(self) -> None:
        self.count += 1
        if self.count % PROGRESS_EVERY == 0:
            rate = self.count / max(time.monotonic() - self.start, 1e-9)
            log.info("%s: %d processed (%.0f/s)", self.what, self.count, rate)


class _CountingDoFn(beam.DoFn):
    """A DoFn that counts its events per bundle and emits ``(event, count)`` pairs at the end
    of the bundle (far fewer elements than one per event, which the DirectRunner pays for)."""

    def start_bundle(self) -> None:
        self._events: Counter = Counter()

    def _event(self, event: tuple[str, ...]) -> None:
        self._events[event] += 1

    def finish_bundle(self) -> Iterator[beam.pvalue.TaggedOutput]:
        for event, n in self._events.items():
            name = _metric_name(event)
            if name is not None:
                Metrics.counter(NAMESPACE, name).inc(n)
            yield beam.pvalue.TaggedOutput(
                EVENTS, WindowedValue((event, n), MIN_TIMESTAMP, [GlobalWindow()])
            )
        self._events = Counter()


def _metric_name(event: tuple[str, ...]) -> str | None:
    """The Beam counter of an event (``commitpack.dropped.multi_file``, ``source.input``), or
    None for the per-language/license events (stats.json only)."""
    kind = event[0]
    if kind == "input":
        return "source.input"
    if kind in ("dead", "dropped"):
        return f"{event[1]}.{kind}.{event[2]}"
    if kind == "kept":
        return f"{event[1]}.kept"
    return None


def _emit_dead(fn: _CountingDoFn, stage: str, dead: dict[str, Any]) -> Iterable:
    dead = {"stage": stage, **dead}
    fn._event(("dead", stage, dead["reason"]))
    yield beam.pvalue.TaggedOutput(DEAD, dead)


# --- sources (each fused with CommitPack's per-commit rules) -------------------------------------


def _commitpack_filter(fn: _CountingDoFn, record: dict[str, Any]) -> Iterable:
    """CommitPack's per-commit rules inside a source DoFn: yields the schema record when it is
    kept; a drop is only counted (most mined commits are dropped: no element is made for them)."""
    try:
        record = cp.with_language(record)
        reason = cp.commitpack_drop_reason(record)
    except Exception as err:  # a bug must not lose the record: dead-letter it
        yield from _emit_dead(fn, "commitpack", _internal_error("commitpack", record, err))
        return
    if reason is not None:
        fn._event(("dropped", "commitpack", reason))
        return
    yield {f: record[f] for f in FIELDS}


def _internal_error(stage: str, record: dict[str, Any], err: Exception) -> dict[str, Any]:
    return dead_letter(
        "internal_error",
        f"{stage}:{record.get('commit', '')}",
        f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}",
        record={k: record.get(k) for k in ("commit", "repos", "new_file")},
    )


class MineRepoFn(_CountingDoFn):
    """Repository spec line -> CommitPack candidates (+ dead letters): mining and CommitPack's
    per-commit rules in one DoFn, one repository per element."""

    def __init__(self, revs: Sequence[str], max_file_bytes: int):
        self.revs = tuple(revs)
        self.max_file_bytes = max_file_bytes

    def process(self, spec_line: str) -> Iterator[Any]:
        spec = RepoSpec.parse(spec_line)
        progress = _Progress(f"git {spec.name}")
        for kind, payload in mine_repository(spec, self.revs, self.max_file_bytes):
            self._event(("input", "git"))
            progress.tick()
            if kind == "commit":
                yield from _commitpack_filter(self, payload)
            else:
                yield from _emit_dead(self, "source", payload)


class ParseJsonlFn(_CountingDoFn):
    """(file name, raw line bytes) -> CommitPack candidate (+ dead letters)."""

    def __init__(self, max_record_bytes: int):
        self.max_record_bytes = max_record_bytes

    def setup(self) -> None:
        self.progress = _Progress("jsonl")

    def process(self, item: tuple[str, bytes]) -> Iterator[Any]:
        filename, line = item
        self._event(("input", "jsonl"))
        self.progress.tick()
        kind, payload = parse_jsonl_line(line, filename, self.max_record_bytes)
        if kind == "record":
            yield from _commitpack_filter(self, payload)
        else:
            yield from _emit_dead(self, "source", payload)


class ParseBigQueryRowFn(_CountingDoFn):
    """BigQuery row dict -> CommitPack candidate (+ dead letters)."""

    def setup(self) -> None:
        self.progress = _Progress("bigquery")

    def process(self, row: dict[str, Any]) -> Iterator[Any]:
        self._event(("input", "bigquery"))
        self.progress.tick()
        kind, payload = bigquery_row_to_outcome(row)
        if kind == "record":
            yield from _commitpack_filter(self, payload)
        else:
            yield from _emit_dead(self, "source", payload)


def _split(pcoll_tuple: beam.pvalue.DoOutputsTuple) -> dict[str, beam.PCollection]:
    """A ParDo's tagged outputs as the ``records``/``dead``/``events`` dict of every source."""
    return {"records": pcoll_tuple[None], DEAD: pcoll_tuple[DEAD], EVENTS: pcoll_tuple[EVENTS]}


class ReadGitRepositories(beam.PTransform):
    """Mine every repository in ``repo_lines`` (``"PATH_OR_URL [NAME]"``), in parallel."""

    def __init__(
        self,
        repo_lines: Sequence[str],
        revs: Sequence[str] = ("HEAD",),
        max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    ):
        super().__init__()
        self.repo_lines = list(repo_lines)
        self.revs = revs
        self.max_file_bytes = max_file_bytes

    def expand(self, pbegin):
        mined = (
            pbegin
            | "RepoList" >> beam.Create([(line, None) for line in self.repo_lines])
            | "SpreadRepos" >> beam.GroupByKey()  # one repository per key: spread over workers
            | "RepoLine" >> beam.Keys()
            | "Mine"
            >> beam.ParDo(MineRepoFn(self.revs, self.max_file_bytes)).with_outputs(
                DEAD, EVENTS, main=None
            )
        )
        return _split(mined)


class ReadCommitPackJsonl(beam.PTransform):
    """CommitPack JSONL files (plain or .gz, any Beam filesystem) -> records."""

    def __init__(self, patterns: Sequence[str], max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES):
        super().__init__()
        self.patterns = list(patterns)
        self.max_record_bytes = max_record_bytes

    def expand(self, pbegin):
        lines = [
            pbegin
            | f"ReadJsonl{i}"
            >> beam.io.ReadFromTextWithFilename(pattern, coder=beam.coders.BytesCoder())
            for i, pattern in enumerate(self.patterns)
        ]
        parsed = (
            lines
            | "FlattenJsonl" >> beam.Flatten()
            | "ParseJsonl"
            >> beam.ParDo(ParseJsonlFn(self.max_record_bytes)).with_outputs(DEAD, EVENTS, main=None)
        )
        return _split(parsed)


class ReadBigQueryCommits(beam.PTransform):
    """Rows of the github_repos query (needs a GCP project and ``--temp_location``)."""

    def __init__(self, query: str):
        super().__init__()
        self.query = query

    def expand(self, pbegin):
        rows = pbegin | "ReadBigQuery" >> beam.io.ReadFromBigQuery(
            query=self.query, use_standard_sql=True
        )
        parsed = rows | "ParseRows" >> beam.ParDo(ParseBigQueryRowFn()).with_outputs(
            DEAD, EVENTS, main=None
        )
        return _split(parsed)


# --- CommitPack: deduplication and the opt-out list ------------------------------------------


class CountKeptFn(_CountingDoFn):
    """(key, records with that key) -> one merged record; counts duplicates, applies the opt-out
    list to the merged ``repos`` (as the reference does, after deduplication), counts kept."""

    STAGE = "commitpack"

    def process(self, item: tuple[Any, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _key, group = item
        group = list(group)
        record, n = cp.merge_duplicates(group), len(group)
        if n > 1:
            self._events[("dropped", self.STAGE, "duplicate")] += n - 1
        if cp.is_opted_out(record):
            self._event(("dropped", self.STAGE, "opted_out"))
            return
        self._event(("kept", self.STAGE))
        self._event(("kept_lang", self.STAGE, record["lang"]))
        self._event(("kept_license", self.STAGE, record["license"]))
        yield record


@dataclass(frozen=True)
class ShardSpec:
    """Where and how a stage writes its shards when it writes them itself (one machine)."""

    stage_dir: str
    records_per_shard: int
    split_by_language: bool


class _DedupAndWrite:
    """One machine (``per_group``): a stage's every (dedup key, record) pair in one group ->
    one record per key (the stage's Count*KeptFn rule, which this mixes into), yielded for the
    next stage, and written as the stage's shards and manifest in the same step: one shuffle of
    the file contents instead of two, no manifest shuffle. The files are those
    WriteTFRecordDataset (per_shard) + WriteManifest write (tested); shard infos go to SHARDS."""

    def __init__(self, spec: ShardSpec):
        self.spec = spec

    def process(self, item: tuple[Any, Iterable[tuple[Any, dict[str, Any]]]]) -> Iterator[Any]:
        _, pairs = item
        by_key: dict[Any, list[dict[str, Any]]] = defaultdict(list)
        for key, record in pairs:
            by_key[key].append(record)
        split = self.spec.split_by_language
        groups: dict[str, list[tuple[int, bytes]]] = defaultdict(list)
        for key_and_records in by_key.items():
            for record in super().process(key_and_records):
                groups[record["lang"] if split else ALL].append(encode_for_shard(record))
                yield record
        shards = [
            info
            for group, values in groups.items()
            for info in write_group_shards(
                self.spec.stage_dir, self.STAGE, group, values, self.spec.records_per_shard
            )
        ]
        if shards:
            write_manifest(self.spec.stage_dir, self.STAGE, shards, split)
        for info in shards:
            yield beam.pvalue.TaggedOutput(SHARDS, info)


class DedupAndWriteFn(_DedupAndWrite, CountKeptFn):
    """CommitPack's deduplication and opt-out list (CountKeptFn) fused with its shard writing."""


def _dedup_and_write(
    elements, fn: _DedupAndWrite, key_of: Callable[[dict[str, Any]], Any] | None = None
) -> dict[str, beam.PCollection]:
    """Records keyed by ``key_of`` (or ready (dedup key, record) pairs when None) -> ``fn``
    over all of them in one group: records, events and shard infos."""
    if key_of is None:
        to_group = beam.Map(lambda pair: (None, pair))
    else:
        to_group = beam.Map(lambda record: (None, (key_of(record), record)))
    done = (
        elements
        | "OneGroup" >> to_group
        | "GroupAll" >> beam.GroupByKey()
        | "DedupAndWrite" >> beam.ParDo(fn).with_outputs(EVENTS, SHARDS, main=None)
    )
    return {"records": done[None], EVENTS: done[EVENTS], SHARDS: done[SHARDS]}


class CommitPackStage(beam.PTransform):
    """CommitPack candidates (from a source) -> CommitPack records: deduplication by (commit,
    subject, message, license) with ``repos`` merged, then the opt-out list.

    With ``write_to`` (one machine), the same step also writes the CommitPack shards and
    returns their infos as ``shards`` (see DedupAndWriteFn)."""

    def __init__(self, write_to: ShardSpec | None = None):
        super().__init__()
        self.write_to = write_to

    def expand(self, records):
        if self.write_to is not None:
            return _dedup_and_write(records, DedupAndWriteFn(self.write_to), cp.dedup_key)
        deduped = (
            records
            | "KeyForDedup" >> beam.Map(lambda r: (cp.dedup_key(r), r))
            | "GroupDuplicates" >> beam.GroupByKey()
            | "CountKept" >> beam.ParDo(CountKeptFn()).with_outputs(EVENTS, main=None)
        )
        return {"records": deduped[None], EVENTS: deduped[EVENTS]}


# --- CommitPackFT ---------------------------------------------------------------------------------


class FTFilterFn(_CountingDoFn):
    """CommitPack record -> (content key, CommitPackFT record with the cleaned subject), or a
    counted drop."""

    STAGE = "commitpackft"

    def __init__(self, tokenizer_path: str, seed: int):
        self.tokenizer_path = tokenizer_path
        self.seed = seed

    def setup(self) -> None:
        from beam_pipelines.tokenization import TokenCounter

        counter = TokenCounter(self.tokenizer_path)
        self.count = lambda old, new: counter.count_pair(old, new, ft.MAX_TOKENS)
        self.progress = _Progress("commitpackft filters")

    def process(self, record: dict[str, str]) -> Iterator[Any]:
        self.progress.tick()
        try:
            decision = ft.ft_decide(record, self.count, self.seed)
        except Exception as err:
            yield from _emit_dead(self, self.STAGE, _internal_error(self.STAGE, record, err))
            return
        if decision.reason is not None:
            self._event(("dropped", self.STAGE, decision.reason))
            return
        out = {f: decision.record[f] for f in FIELDS}
        yield ft.content_key(out), out


class CountFTKeptFn(CountKeptFn):
    """(content key, records with that key) -> the one with the smallest commit id; counts the
    others as ``duplicate_content``."""

    STAGE = "commitpackft"

    def process(self, item: tuple[Any, Iterable[dict[str, Any]]]) -> Iterator[Any]:
        _key, group = item
        group = list(group)
        record, n = min(group, key=lambda r: r["commit"]), len(group)
        if n > 1:
            self._events[("dropped", self.STAGE, "duplicate_content")] += n - 1
        self._event(("kept", self.STAGE))
        self._event(("kept_lang", self.STAGE, record["lang"]))
        self._event(("kept_license", self.STAGE, record["license"]))
        yield record


class FTDedupAndWriteFn(_DedupAndWrite, CountFTKeptFn):
    """CommitPackFT's content deduplication (CountFTKeptFn) fused with its shard writing."""


class CommitPackFTStage(beam.PTransform):
    """CommitPack records -> CommitPackFT records (the rules, then content deduplication).

    With ``write_to`` (one machine), the deduplication also writes the CommitPackFT shards and
    manifest and returns the shard infos as ``shards`` (see _DedupAndWrite)."""

    def __init__(
        self, tokenizer_path: str, seed: int = ft.DEFAULT_SEED, write_to: ShardSpec | None = None
    ):
        super().__init__()
        self.tokenizer_path = tokenizer_path
        self.seed = seed
        self.write_to = write_to

    def expand(self, records):
        filtered = records | "FTFilter" >> beam.ParDo(
            FTFilterFn(self.tokenizer_path, self.seed)
        ).with_outputs(DEAD, EVENTS, main=None)
        if self.write_to is not None:
            kept = _dedup_and_write(filtered[None], FTDedupAndWriteFn(self.write_to))
            events = (filtered[EVENTS], kept[EVENTS]) | "FTEvents" >> beam.Flatten()
            return {**kept, DEAD: filtered[DEAD], EVENTS: events}
        kept = (
            filtered[None]
            | "ContentDedup" >> beam.GroupByKey()
            | "CountFTKept" >> beam.ParDo(CountFTKeptFn()).with_outputs(EVENTS, main=None)
        )
        events = (filtered[EVENTS], kept[EVENTS]) | "FTEvents" >> beam.Flatten()
        return {"records": kept[None], DEAD: filtered[DEAD], EVENTS: events}
