"""Apache Beam transforms: sources, the CommitPack and CommitPackFT stages, deduplication.

Every transform returns a dict of PCollections: ``records`` (what goes on), ``dead`` (dead-letter
dicts) and ``events`` (``(event, count)`` pairs, see :mod:`beam_pipelines.stats`). Drops and dead letters
are also Beam metrics counters in namespace ``commitpack`` (``<stage>.dropped.<reason>``,
``<stage>.dead.<reason>``, ``<stage>.kept``, ``source.input``), visible in the Dataflow UI.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Sequence
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

log = logging.getLogger(__name__)

NAMESPACE = "commitpack"
DEAD = "dead"
EVENTS = "events"
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

    def start_bundle(self):
        self._events: Counter = Counter()

    def _event(self, event: tuple[str, ...]) -> None:
        self._events[event] += 1

    def finish_bundle(self):
        for event, n in self._events.items():
            yield beam.pvalue.TaggedOutput(
                EVENTS, WindowedValue((event, n), MIN_TIMESTAMP, [GlobalWindow()])
            )
        self._events = Counter()


def _counter(name: str):
    return Metrics.counter(NAMESPACE, name)


def _emit_dead(fn: _CountingDoFn, stage: str, dead: dict[str, Any]) -> Iterable:
    dead = {"stage": stage, **dead}
    _counter(f"{stage}.dead.{dead['reason']}").inc()
    fn._event(("dead", stage, dead["reason"]))
    yield beam.pvalue.TaggedOutput(DEAD, dead)


# --- sources --------------------------------------------------------------------------------------


class MineRepoFn(_CountingDoFn):
    """Repository spec line -> raw commit records (+ dead letters)."""

    def __init__(self, revs: Sequence[str], max_file_bytes: int):
        self.revs = tuple(revs)
        self.max_file_bytes = max_file_bytes

    def process(self, spec_line: str):
        spec = RepoSpec.parse(spec_line)
        progress = _Progress(f"git {spec.name}")
        for kind, payload in mine_repository(spec, self.revs, self.max_file_bytes):
            _counter("source.input").inc()
            self._event(("input", "git"))
            progress.tick()
            if kind == "commit":
                yield payload
            else:
                yield from _emit_dead(self, "source", payload)


class ParseJsonlFn(_CountingDoFn):
    """(file name, raw line bytes) -> record (+ dead letters)."""

    def __init__(self, max_record_bytes: int):
        self.max_record_bytes = max_record_bytes

    def setup(self):
        self.progress = _Progress("jsonl")

    def process(self, item: tuple[str, bytes]):
        filename, line = item
        _counter("source.input").inc()
        self._event(("input", "jsonl"))
        self.progress.tick()
        kind, payload = parse_jsonl_line(line, filename, self.max_record_bytes)
        if kind == "record":
            yield payload
        else:
            yield from _emit_dead(self, "source", payload)


class ParseBigQueryRowFn(_CountingDoFn):
    """BigQuery row dict -> record (+ dead letters)."""

    def setup(self):
        self.progress = _Progress("bigquery")

    def process(self, row: dict[str, Any]):
        _counter("source.input").inc()
        self._event(("input", "bigquery"))
        self.progress.tick()
        kind, payload = bigquery_row_to_outcome(row)
        if kind == "record":
            yield payload
        else:
            yield from _emit_dead(self, "source", payload)


def _split(pcoll_tuple) -> dict[str, beam.PCollection]:
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
            | "RepoList" >> beam.Create(self.repo_lines)
            | "SpreadRepos" >> beam.Reshuffle()
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


# --- CommitPack -------------------------------------------------------------------------------------


class CommitPackFilterFn(_CountingDoFn):
    """Raw record -> schema record with ``lang`` (kept) or a drop event."""

    STAGE = "commitpack"

    def setup(self):
        self.progress = _Progress("commitpack filters")

    def process(self, record: dict[str, Any]):
        self.progress.tick()
        try:
            record = cp.with_language(record)
            reason = cp.commitpack_drop_reason(record)
        except Exception as err:  # a bug must not lose the record: dead-letter it
            yield from _emit_dead(
                self,
                self.STAGE,
                dead_letter(
                    "internal_error",
                    f"commitpack:{record.get('commit', '')}",
                    f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}",
                    record={k: record.get(k) for k in ("commit", "repos", "new_file")},
                ),
            )
            return
        if reason is not None:
            _counter(f"{self.STAGE}.dropped.{reason}").inc()
            self._event(("dropped", self.STAGE, reason))
            return
        yield {f: record[f] for f in FIELDS}


class MergeDuplicatesFn(beam.CombineFn):
    """Combine records with one dedup key: the merged record and how many were merged."""

    def create_accumulator(self):
        return (None, set(), 0)

    def add_input(self, acc, record):
        best, repos, n = acc
        repos = set(repos)
        repos.update(r for r in record["repos"].split(",") if r)
        if best is None or _rank(record) < _rank(best):
            best = record
        return (best, repos, n + 1)

    def merge_accumulators(self, accs):
        best, repos, n = None, set(), 0
        for b, r, k in accs:
            repos |= r
            n += k
            if b is not None and (best is None or _rank(b) < _rank(best)):
                best = b
        return (best, repos, n)

    def extract_output(self, acc):
        best, repos, n = acc
        merged = dict(best)
        merged["repos"] = ",".join(sorted(repos))
        return merged, n


def _rank(record: dict[str, str]) -> tuple[str, str, str]:
    return (record["repos"], record["old_file"], record["new_file"])


class CountKeptFn(_CountingDoFn):
    """(key, (merged record, group size)) -> the record; counts kept and duplicates."""

    STAGE = "commitpack"

    def process(self, item):
        _key, (record, n) = item
        if n > 1:
            _counter(f"{self.STAGE}.dropped.duplicate").inc(n - 1)
            self._events[("dropped", self.STAGE, "duplicate")] += n - 1
        _counter(f"{self.STAGE}.kept").inc()
        self._event(("kept", self.STAGE))
        self._event(("kept_lang", self.STAGE, record["lang"]))
        self._event(("kept_license", self.STAGE, record["license"]))
        yield record


class CommitPackStage(beam.PTransform):
    """Raw records -> CommitPack records (filters, language, deduplication)."""

    def expand(self, records):
        filtered = records | "Filter" >> beam.ParDo(CommitPackFilterFn()).with_outputs(
            DEAD, EVENTS, main=None
        )
        deduped = (
            filtered[None]
            | "KeyForDedup" >> beam.Map(lambda r: (cp.dedup_key(r), r))
            | "MergeDuplicates" >> beam.CombinePerKey(MergeDuplicatesFn())
            | "CountKept" >> beam.ParDo(CountKeptFn()).with_outputs(EVENTS, main=None)
        )
        events = (filtered[EVENTS], deduped[EVENTS]) | "FlattenEvents" >> beam.Flatten()
        return {"records": deduped[None], DEAD: filtered[DEAD], EVENTS: events}


# --- CommitPackFT ---------------------------------------------------------------------------------


class FTFilterFn(_CountingDoFn):
    """CommitPack record -> CommitPackFT record (cleaned subject) or a drop event."""

    STAGE = "commitpackft"

    def __init__(self, tokenizer_path: str, seed: int):
        self.tokenizer_path = tokenizer_path
        self.seed = seed

    def setup(self):
        from beam_pipelines.tokenization import TokenCounter

        self.counter = TokenCounter(self.tokenizer_path)
        self.progress = _Progress("commitpackft filters")

    def process(self, record: dict[str, str]):
        self.progress.tick()
        try:
            decision = ft.ft_decide(record, self.counter.count_pair, self.seed)
        except Exception as err:
            yield from _emit_dead(
                self,
                self.STAGE,
                dead_letter(
                    "internal_error",
                    f"commitpackft:{record.get('commit', '')}",
                    f"{type(err).__name__}: {err}\n{traceback.format_exc(limit=3)}",
                    record={k: record.get(k) for k in ("commit", "repos", "new_file")},
                ),
            )
            return
        if decision.reason is not None:
            _counter(f"{self.STAGE}.dropped.{decision.reason}").inc()
            self._event(("dropped", self.STAGE, decision.reason))
            return
        out = decision.record
        _counter(f"{self.STAGE}.kept").inc()
        self._event(("kept", self.STAGE))
        self._event(("kept_lang", self.STAGE, out["lang"]))
        self._event(("kept_license", self.STAGE, out["license"]))
        yield {f: out[f] for f in FIELDS}


class CommitPackFTStage(beam.PTransform):
    """CommitPack records -> CommitPackFT records."""

    def __init__(self, tokenizer_path: str, seed: int = ft.DEFAULT_SEED):
        super().__init__()
        self.tokenizer_path = tokenizer_path
        self.seed = seed

    def expand(self, records):
        out = records | "FTFilter" >> beam.ParDo(
            FTFilterFn(self.tokenizer_path, self.seed)
        ).with_outputs(DEAD, EVENTS, main=None)
        return {"records": out[None], DEAD: out[DEAD], EVENTS: out[EVENTS]}
