"""Beam sinks: sharded TFRecord datasets with a manifest, dead letters, and the stats JSON.

Shards are written with :mod:`beam_pipelines.records` through Beam's ``FileSystems`` (local disk
or ``gs://``), so no TensorFlow is needed. The number of shards per group (the whole stage, or each
language with ``split_by_language``) is ``ceil(count / records_per_shard)``, computed in the
pipeline; a record's shard is a stable hash of its commit and path, so reruns over the same input
put every record in the same shard file.

Two ways to get there, same files: ``per_shard`` (:class:`WriteTFRecordDataset`) counts each
group, assigns shards through a side input and groups by shard, so every shard is written by its
own worker (Dataflow); ``per_group`` (:func:`write_group_shards`, called by the stage's
deduplication step in beam_pipelines.transforms) writes all of a group's shards in one DoFn
right after the stage's one shuffle: no count, side-input barrier, flatten or second shuffle,
which is what a single-machine runner pays for per byte.
"""

import datetime
import hashlib
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, BinaryIO

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines.records import (
    MANIFEST_NAME,
    SHARD_SUFFIX,
    encode_example,
    frame,
    write_tfrecord_to,
)
from beam_pipelines.schema import FIELDS
from beam_pipelines.stats import build_stats, check_accounting

log = logging.getLogger(__name__)

ALL = "all"
DEFAULT_RECORDS_PER_SHARD = 10_000
STATS_NAME = "stats.json"
DEADLETTER_DIR = "deadletter"


def language_slug(lang: str) -> str:
    """Directory name for a language: ``C++`` -> ``cpp``, ``C#`` -> ``csharp``."""
    slug = lang.lower().replace("+", "p").replace("#", "sharp")
    slug = re.sub(r"[^a-z0-9]+", "_", slug).strip("_")
    return slug or "unknown"


SHARD_WRITERS = ("per_shard", "per_group")


def shard_hash(record: Mapping[str, str]) -> int:
    """Stable 64-bit hash of a record's commit and path (its shard is this modulo the count)."""
    digest = hashlib.md5(f"{record['commit']}\0{record['new_file']}".encode()).digest()
    return int.from_bytes(digest[:8], "big")


def shard_index(record: Mapping[str, str], num_shards: int) -> int:
    """The shard (0 .. num_shards - 1) a record goes to."""
    return shard_hash(record) % num_shards


def num_shards_for(count: int, records_per_shard: int) -> int:
    """``ceil(count / records_per_shard)``, at least one."""
    return max(1, math.ceil(count / records_per_shard))


def shard_relpath(stage: str, group: str, index: int, num_shards: int) -> str:
    """Path of a shard relative to the stage directory."""
    name = f"{stage}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"
    return name if group == ALL else f"{language_slug(group)}/{name}"


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as out:
        out.write(text.encode("utf-8"))


def _write_shard(stage_dir: str, rel: str, write: Callable[[BinaryIO], int]) -> int:
    """Write one shard through a ``.tmp`` file renamed into place; return its record count."""
    final = FileSystems.join(stage_dir, *rel.split("/"))
    tmp = final + ".tmp"
    with FileSystems.create(tmp) as out:
        count = write(out)
    if FileSystems.exists(final):
        FileSystems.delete([final])
    FileSystems.rename([tmp], [final])
    log.info("wrote %s (%d records)", final, count)
    return count


def _shard_info(rel: str, count: int, group: str) -> dict[str, Any]:
    return {"path": rel, "num_records": count, "lang": None if group == ALL else group}


class WriteShardFn(beam.DoFn):
    """``per_shard``: ((group, index, num_shards), records-or-None) -> written shard info."""

    def __init__(self, stage_dir: str, stage: str):
        self.stage_dir = stage_dir
        self.stage = stage

    def process(self, item: tuple[tuple[str, int, int], Iterable[Any]]) -> Iterator[dict]:
        (group, index, num_shards), values = item
        rel = shard_relpath(self.stage, group, index, num_shards)
        records = (v for v in values if v is not None)
        count = _write_shard(self.stage_dir, rel, lambda out: write_tfrecord_to(out, records))
        yield _shard_info(rel, count, group)


def encode_for_shard(record: Mapping[str, str]) -> tuple[int, bytes]:
    """``per_group``: (shard hash, the record as a framed TFRecord Example), so the shuffle moves
    one bytes object per record and the writer only concatenates."""
    return shard_hash(record), frame(encode_example(record))


def write_group_shards(
    stage_dir: str,
    stage: str,
    group: str,
    values: Iterable[tuple[int, bytes]],
    records_per_shard: int,
) -> Iterator[dict[str, Any]]:
    """Write one group's ``encode_for_shard`` values as ``num_shards_for`` its size shards
    (empty ones included), records in hash order; yield each shard's info."""
    values = sorted(values, key=lambda v: v[0])
    num_shards = num_shards_for(len(values), records_per_shard)
    shards: list[list[bytes]] = [[] for _ in range(num_shards)]
    for digest, framed in values:
        shards[digest % num_shards].append(framed)
    for index, framed_records in enumerate(shards):
        rel = shard_relpath(stage, group, index, num_shards)
        count = _write_shard(stage_dir, rel, _concatenated(framed_records))
        yield _shard_info(rel, count, group)


def _concatenated(framed_records: list[bytes]) -> Callable[[BinaryIO], int]:
    """A shard writer that writes already framed records in one call."""

    def write(out: BinaryIO) -> int:
        out.writelines(framed_records)  # no joined copy of the whole shard
        return len(framed_records)

    return write


class WriteTFRecordDataset(beam.PTransform):
    """Records -> ``<output>/<stage>/...tfrecord`` shards, ``per_shard``: the writing of one
    group is spread over as many workers as it has shards (large groups on Dataflow); returns
    the shard infos. (One machine: see :func:`write_group_shards`.)"""

    def __init__(
        self,
        stage_dir: str,
        stage: str,
        records_per_shard: int = DEFAULT_RECORDS_PER_SHARD,
        split_by_language: bool = False,
    ):
        super().__init__()
        if records_per_shard <= 0:
            raise ValueError("records_per_shard must be positive")
        self.stage_dir = stage_dir
        self.stage = stage
        self.records_per_shard = records_per_shard
        self.split_by_language = split_by_language

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        """Count per group, shard count as a side input, group by shard, write each shard."""
        split = self.split_by_language
        rps = self.records_per_shard
        keyed = records | "Group" >> beam.Map(lambda r: (r["lang"] if split else ALL, r))
        shard_counts = (
            keyed
            | "GroupKeys" >> beam.Keys()
            | "CountPerGroup" >> beam.combiners.Count.PerElement()
            | "NumShards" >> beam.MapTuple(lambda g, n: (g, num_shards_for(n, rps)))
        )

        def assign(
            item: tuple[str, dict[str, str]], num_shards: dict[str, int]
        ) -> tuple[tuple[str, int, int], dict[str, str]]:
            group, record = item
            n = num_shards[group]
            return (group, shard_index(record, n), n), record

        assigned = keyed | "AssignShard" >> beam.Map(
            assign, num_shards=beam.pvalue.AsDict(shard_counts)
        )
        every_shard = shard_counts | "EveryShard" >> beam.FlatMapTuple(
            lambda g, n: [((g, i, n), None) for i in range(n)]
        )
        return (
            (assigned, every_shard)
            | "WithEmptyShards" >> beam.Flatten()
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShards" >> beam.ParDo(WriteShardFn(self.stage_dir, self.stage))
        )


def build_manifest(stage: str, shards: Iterable[dict[str, Any]], split_by_language: bool) -> dict:
    shards = sorted(shards, key=lambda s: s["path"])
    by_lang: dict[str, int] = {}
    for shard in shards:
        if shard["lang"] is not None:
            by_lang[shard["lang"]] = by_lang.get(shard["lang"], 0) + shard["num_records"]
    return {
        "dataset": stage,
        "format": "tfrecord",
        "record": "tf.train.Example",
        "compression": None,
        "schema": [{"name": f, "dtype": "string", "feature": "bytes_list"} for f in FIELDS],
        "split_by_language": split_by_language,
        "num_records": sum(s["num_records"] for s in shards),
        "num_records_by_language": dict(sorted(by_lang.items())) if split_by_language else None,
        "num_shards": len(shards),
        "shards": shards,
        "reader": "beam_pipelines.records.read_dataset(<this directory>)",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


class WriteManifest(beam.PTransform):
    """Shard infos -> ``<stage_dir>/manifest.json``."""

    def __init__(self, stage_dir: str, stage: str, split_by_language: bool):
        super().__init__()
        self.stage_dir = stage_dir
        self.stage = stage
        self.split_by_language = split_by_language

    def expand(self, shard_infos):
        stage_dir, stage, split = self.stage_dir, self.stage, self.split_by_language

        return (
            shard_infos
            | "OneKey" >> beam.Map(lambda info: (None, info))
            | "AllShards" >> beam.GroupByKey()
            | "WriteManifestJson"
            >> beam.MapTuple(lambda _, shards: write_manifest(stage_dir, stage, shards, split))
        )


def write_manifest(
    stage_dir: str, stage: str, shards: Iterable[dict[str, Any]], split_by_language: bool
) -> dict[str, Any]:
    """Write ``<stage_dir>/manifest.json`` for the stage's shard infos; return the manifest."""
    manifest = build_manifest(stage, list(shards), split_by_language)
    _write_text(FileSystems.join(stage_dir, MANIFEST_NAME), json.dumps(manifest, indent=2))
    return manifest


class WriteStats(beam.PTransform):
    """(event, count) pairs -> ``<output>/stats.json``; fails the pipeline if the accounting identity breaks."""

    def __init__(self, output_dir: str, stages: Iterable[str], run_info: dict[str, Any]):
        super().__init__()
        self.output_dir = output_dir
        self.stages = list(stages)
        self.run_info = run_info

    def expand(self, events):
        output_dir, stages, run_info = self.output_dir, self.stages, self.run_info

        def write(counts: Iterable[tuple[tuple[str, ...], int]]) -> dict[str, Any]:
            stats = build_stats(counts, stages)
            stats["run"] = run_info
            _write_text(FileSystems.join(output_dir, STATS_NAME), json.dumps(stats, indent=2))
            check_accounting(stats)
            return stats

        return (
            events
            | "OneKey" >> beam.Map(lambda event_count: (None, event_count))
            | "AllCounts" >> beam.GroupByKey()
            | "WriteStatsJson" >> beam.MapTuple(lambda _, counts: write(counts))
        )


DEADLETTER_SHARDS = 4
"""Dead letters are spread over at most this many files (by a hash of their content)."""


def _write_dead_shard(item: tuple[int, Iterable[str]], directory: str) -> str:
    index, lines = item
    path = FileSystems.join(directory, f"deadletter-{index:05d}-of-{DEADLETTER_SHARDS:05d}.jsonl")
    with FileSystems.create(path) as out:
        for line in lines:
            out.write(line.encode("utf-8") + b"\n")
    return path


class WriteDeadLetters(beam.PTransform):
    """Dead-letter dicts -> ``<output>/deadletter/deadletter-*.jsonl`` (one JSON per line).

    A GroupByKey over a few hash shards and one write per shard: three transforms, where Beam's
    ``WriteToText`` adds a dozen (each costs start-up time on the DirectRunner). Shards without
    dead letters are not written.
    """

    def __init__(self, output_dir: str):
        super().__init__()
        self.output_dir = output_dir

    def expand(self, dead):
        directory = FileSystems.join(self.output_dir, DEADLETTER_DIR)

        def keyed(d: dict[str, Any]) -> tuple[int, str]:
            line = json.dumps(d, ensure_ascii=False, sort_keys=True)
            return int(hashlib.md5(line.encode("utf-8")).hexdigest(), 16) % DEADLETTER_SHARDS, line

        return (
            dead
            | "DeadToJson" >> beam.Map(keyed)
            | "DeadShards" >> beam.GroupByKey()
            | "WriteDeadJsonl" >> beam.Map(_write_dead_shard, directory=directory)
        )
