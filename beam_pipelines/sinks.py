"""Beam sinks: sharded TFRecord datasets with a manifest, dead letters, and the stats JSON.

Shards are written with :func:`beam_pipelines.records.write_tfrecord_to` through Beam's
``FileSystems`` (local disk or ``gs://``), so no TensorFlow is needed. The number of shards per
group (the whole stage, or each language with ``split_by_language``) is ``ceil(count /
records_per_shard)``, computed in the pipeline; a record's shard is a stable hash of its commit and
path, so reruns over the same input put every record in the same shard file.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import logging
import math
import re
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines.records import MANIFEST_NAME, SHARD_SUFFIX, write_tfrecord_to
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


def shard_index(record: dict[str, str], num_shards: int) -> int:
    digest = hashlib.md5(f"{record['commit']}\0{record['new_file']}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % num_shards


def shard_relpath(stage: str, group: str, index: int, num_shards: int) -> str:
    """Path of a shard relative to the stage directory."""
    name = f"{stage}-{index:05d}-of-{num_shards:05d}{SHARD_SUFFIX}"
    return name if group == ALL else f"{language_slug(group)}/{name}"


def _write_text(path: str, text: str) -> None:
    with FileSystems.create(path) as out:
        out.write(text.encode("utf-8"))


class WriteShardFn(beam.DoFn):
    """((group, index, num_shards), records-or-None) -> written shard info."""

    def __init__(self, stage_dir: str, stage: str):
        self.stage_dir = stage_dir
        self.stage = stage

    def process(self, item):
        (group, index, num_shards), values = item
        rel = shard_relpath(self.stage, group, index, num_shards)
        final = FileSystems.join(self.stage_dir, *rel.split("/"))
        tmp = final + ".tmp"
        with FileSystems.create(tmp) as out:
            count = write_tfrecord_to(out, (v for v in values if v is not None))
        if FileSystems.exists(final):
            FileSystems.delete([final])
        FileSystems.rename([tmp], [final])
        log.info("wrote %s (%d records)", final, count)
        yield {"path": rel, "num_records": count, "lang": None if group == ALL else group}


class WriteTFRecordDataset(beam.PTransform):
    """Records -> ``<output>/<stage>/...tfrecord`` shards; returns the shard infos."""

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

    def expand(self, records):
        split = self.split_by_language
        rps = self.records_per_shard
        keyed = records | "Group" >> beam.Map(lambda r: (r["lang"] if split else ALL, r))
        shard_counts = (
            keyed
            | "GroupKeys" >> beam.Keys()
            | "CountPerGroup" >> beam.combiners.Count.PerElement()
            | "NumShards" >> beam.MapTuple(lambda g, n: (g, max(1, math.ceil(n / rps))))
        )

        def assign(item, num_shards):
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

        def write(shards):
            manifest = build_manifest(stage, shards, split)
            _write_text(FileSystems.join(stage_dir, MANIFEST_NAME), json.dumps(manifest, indent=2))
            return manifest

        return (
            shard_infos
            | "OneKey" >> beam.Map(lambda info: (None, info))
            | "AllShards" >> beam.GroupByKey()
            | "WriteManifestJson" >> beam.MapTuple(lambda _, shards: write(list(shards)))
        )


class WriteStats(beam.PTransform):
    """(event, count) pairs -> ``<output>/stats.json``; fails the pipeline if the accounting identity breaks."""

    def __init__(self, output_dir: str, stages: Iterable[str], run_info: dict[str, Any]):
        super().__init__()
        self.output_dir = output_dir
        self.stages = list(stages)
        self.run_info = run_info

    def expand(self, events):
        output_dir, stages, run_info = self.output_dir, self.stages, self.run_info

        def write(counts):
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
