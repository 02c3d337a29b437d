"""TFRecord files of ``tf.train.Example`` with the CommitPack schema, without TensorFlow or Beam.

This is the module the training input pipeline (``octojax.data``) imports, so it imports neither
``apache_beam`` nor ``tensorflow`` (nor ``jax``); it needs only ``protobuf`` and ``google-crc32c``.

Public API (stable; the trainer depends on it):

- ``encode_example(record: Mapping[str, str]) -> bytes``: a serialized ``tf.train.Example`` whose
  features are the schema fields (:data:`beam_pipelines.schema.FIELDS`), each a ``bytes_list`` with
  one UTF-8 value. Byte-identical to what TensorFlow writes for the same features.
- ``decode_example(data: bytes) -> dict[str, str]``: the inverse; raises :class:`ExampleDecodeError`
  when a schema field is missing, not a single ``bytes_list`` value, or not UTF-8.
- ``write_tfrecord(path, records: Iterable[Mapping[str, str]]) -> int``: write a TFRecord file
  (uncompressed, masked CRC-32C framing as TensorFlow's ``TFRecordWriter``); returns the count.
- ``write_tfrecord_to(fileobj, records) -> int``: the same into an open binary file object (used by
  the Beam sink with ``FileSystems.create`` so ``gs://`` works).
- ``iter_tfrecord(path) -> Iterator[dict[str, str]]``: decoded records of one file. A truncated
  record, a length or data CRC mismatch, or an undecodable Example raises
  :class:`TFRecordCorruptError` naming the file, the record index and the byte offset.
- ``iter_tfrecord_bytes(path) -> Iterator[bytes]``: the raw, CRC-checked record payloads.
- ``list_shards(pattern_or_dir, languages=None) -> list[str]``: the shard files of a dataset: a
  directory written by the pipeline (uses its ``manifest.json``), any directory (every ``*.tfrecord``
  below it, sorted), or a glob pattern.
- ``read_dataset(pattern_or_dir, languages=None) -> Iterator[dict[str, str]]``: every record of
  every shard, in shard order; ``languages`` keeps only records whose ``lang`` is in it (compared
  case-insensitively, e.g. ``["Python", "rust"]``).
- ``read_manifest(dir) -> dict``: the dataset's ``manifest.json`` (schema, counts, shards).

Why hand-written: the TFRecord framing is 16 bytes of header/footer per record and is easy to get
exactly right with ``google-crc32c``; the only Python libraries that read it either need TensorFlow
or (the PyPI ``tfrecord`` package) clash with TensorFlow in one process. The Example proto is built
in a private descriptor pool from its public definition, so it never conflicts with TensorFlow's own
``tensorflow.Example`` when both are loaded, and the trainer does not import tensorflow_datasets.
"""

from __future__ import annotations

import glob
import json
import os
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import BinaryIO

import google_crc32c
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

from beam_pipelines.schema import FIELDS

__all__ = [
    "ExampleDecodeError",
    "TFRecordCorruptError",
    "decode_example",
    "encode_example",
    "iter_tfrecord",
    "iter_tfrecord_bytes",
    "list_shards",
    "masked_crc32c",
    "read_dataset",
    "read_manifest",
    "write_tfrecord",
    "write_tfrecord_to",
]

MANIFEST_NAME = "manifest.json"
SHARD_SUFFIX = ".tfrecord"


class ExampleDecodeError(ValueError):
    """Serialized bytes are not a CommitPack ``tf.train.Example``."""


class TFRecordCorruptError(ValueError):
    """A TFRecord file is truncated, fails a CRC check, or holds an undecodable record."""

    def __init__(self, path: str, index: int, offset: int, problem: str):
        super().__init__(f"{path}: record {index} (byte offset {offset}): {problem}")
        self.path = path
        self.index = index
        self.offset = offset
        self.problem = problem


# --- the tf.train.Example proto, from tensorflow/core/example/{feature,example}.proto ------------


def _build_example_class():
    """Build ``tensorflow.Example`` in a private pool (wire-compatible with TensorFlow's)."""
    fdp = descriptor_pb2.FileDescriptorProto(
        name="beam_pipelines/tf_example.proto", package="tensorflow", syntax="proto3"
    )
    label_rep = descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED
    label_opt = descriptor_pb2.FieldDescriptorProto.LABEL_OPTIONAL
    t = descriptor_pb2.FieldDescriptorProto

    def add_list(name: str, ftype: int) -> None:
        msg = fdp.message_type.add(name=name)
        field = msg.field.add(name="value", number=1, label=label_rep, type=ftype)
        if ftype != t.TYPE_BYTES:
            field.options.packed = True

    add_list("BytesList", t.TYPE_BYTES)
    add_list("FloatList", t.TYPE_FLOAT)
    add_list("Int64List", t.TYPE_INT64)

    feature = fdp.message_type.add(name="Feature")
    feature.oneof_decl.add(name="kind")
    for number, (fname, tname) in enumerate(
        [("bytes_list", "BytesList"), ("float_list", "FloatList"), ("int64_list", "Int64List")],
        start=1,
    ):
        feature.field.add(
            name=fname,
            number=number,
            label=label_opt,
            type=t.TYPE_MESSAGE,
            type_name=f".tensorflow.{tname}",
            oneof_index=0,
        )

    features = fdp.message_type.add(name="Features")
    entry = features.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, label=label_opt, type=t.TYPE_STRING)
    entry.field.add(
        name="value",
        number=2,
        label=label_opt,
        type=t.TYPE_MESSAGE,
        type_name=".tensorflow.Feature",
    )
    features.field.add(
        name="feature",
        number=1,
        label=label_rep,
        type=t.TYPE_MESSAGE,
        type_name=".tensorflow.Features.FeatureEntry",
    )

    example = fdp.message_type.add(name="Example")
    example.field.add(
        name="features",
        number=1,
        label=label_opt,
        type=t.TYPE_MESSAGE,
        type_name=".tensorflow.Features",
    )

    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.Example"))


Example = _build_example_class()
"""The ``tf.train.Example`` message class (private descriptor pool)."""


def encode_example(record: Mapping[str, str]) -> bytes:
    """Serialize the schema fields of ``record`` as a ``tf.train.Example``."""
    example = Example()
    feature_map = example.features.feature
    for field in FIELDS:
        value = record[field]
        if not isinstance(value, str):
            raise TypeError(f"field {field!r} must be str, got {type(value).__name__}")
        feature_map[field].bytes_list.value.append(value.encode("utf-8"))
    return example.SerializeToString(deterministic=True)


def decode_example(data: bytes) -> dict[str, str]:
    """Parse a serialized ``tf.train.Example`` back into a CommitPack record."""
    example = Example()
    try:
        example.ParseFromString(data)
    except Exception as err:  # protobuf raises its own DecodeError type
        raise ExampleDecodeError(f"not a tf.train.Example: {err}") from err
    feature_map = example.features.feature
    record: dict[str, str] = {}
    for field in FIELDS:
        if field not in feature_map:
            raise ExampleDecodeError(f"missing feature {field!r}")
        values = feature_map[field].bytes_list.value
        if len(values) != 1:
            raise ExampleDecodeError(
                f"feature {field!r} must hold exactly one bytes value, has {len(values)}"
            )
        try:
            record[field] = values[0].decode("utf-8")
        except UnicodeDecodeError as err:
            raise ExampleDecodeError(f"feature {field!r} is not UTF-8: {err}") from err
    return record


# --- TFRecord framing -----------------------------------------------------------------------------

_MASK_DELTA = 0xA282EAD8
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of ``data``."""
    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def frame(payload: bytes) -> bytes:
    """One TFRecord frame: length, its masked CRC, ``payload``, the payload's masked CRC."""
    header = _U64.pack(len(payload))
    return b"".join(
        (header, _U32.pack(masked_crc32c(header)), payload, _U32.pack(masked_crc32c(payload)))
    )


def write_tfrecord_to(fileobj: BinaryIO, records: Iterable[Mapping[str, str]]) -> int:
    """Write ``records`` as TFRecord-framed Examples into ``fileobj``; return how many."""
    count = 0
    for record in records:
        fileobj.write(frame(encode_example(record)))
        count += 1
    return count


def write_tfrecord(path: str | os.PathLike, records: Iterable[Mapping[str, str]]) -> int:
    """Write ``records`` to a new TFRecord file at ``path`` (atomically: temp file + rename)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as fileobj:
            count = write_tfrecord_to(fileobj, records)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return count


def iter_tfrecord_bytes(path: str | os.PathLike) -> Iterator[bytes]:
    """Yield the payloads of a TFRecord file, checking both CRCs of every record."""
    path = os.fspath(path)
    with open(path, "rb") as fileobj:
        index = 0
        offset = 0
        while True:
            header = fileobj.read(8)
            if not header:
                return
            if len(header) < 8:
                raise TFRecordCorruptError(path, index, offset, "truncated length header")
            length_crc = fileobj.read(4)
            if len(length_crc) < 4:
                raise TFRecordCorruptError(path, index, offset, "truncated length CRC")
            if _U32.unpack(length_crc)[0] != masked_crc32c(header):
                raise TFRecordCorruptError(path, index, offset, "length CRC mismatch")
            (length,) = _U64.unpack(header)
            payload = fileobj.read(length)
            if len(payload) < length:
                raise TFRecordCorruptError(
                    path, index, offset, f"truncated data ({len(payload)} of {length} bytes)"
                )
            data_crc = fileobj.read(4)
            if len(data_crc) < 4:
                raise TFRecordCorruptError(path, index, offset, "truncated data CRC")
            if _U32.unpack(data_crc)[0] != masked_crc32c(payload):
                raise TFRecordCorruptError(path, index, offset, "data CRC mismatch")
            yield payload
            index += 1
            offset += 16 + length


def iter_tfrecord(path: str | os.PathLike) -> Iterator[dict[str, str]]:
    """Yield the CommitPack records of one TFRecord file."""
    path = os.fspath(path)
    offset = 0
    for index, payload in enumerate(iter_tfrecord_bytes(path)):
        try:
            yield decode_example(payload)
        except ExampleDecodeError as err:
            raise TFRecordCorruptError(path, index, offset, str(err)) from err
        offset += 16 + len(payload)


# --- datasets (directories of shards) -------------------------------------------------------------


def read_manifest(directory: str | os.PathLike) -> dict:
    """The ``manifest.json`` the pipeline writes beside a dataset's shards."""
    path = os.path.join(os.fspath(directory), MANIFEST_NAME)
    try:
        with open(path, encoding="utf-8") as fileobj:
            return json.load(fileobj)
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err


def _wanted(languages: Sequence[str] | None) -> set[str] | None:
    return None if languages is None else {lang.lower() for lang in languages}


def list_shards(
    pattern_or_dir: str | os.PathLike, languages: Sequence[str] | None = None
) -> list[str]:
    """Shard paths of a dataset directory (manifest order) or of a glob pattern (sorted)."""
    target = os.fspath(pattern_or_dir)
    wanted = _wanted(languages)
    if os.path.isdir(target):
        if os.path.exists(os.path.join(target, MANIFEST_NAME)):
            manifest = read_manifest(target)
            shards = []
            for shard in manifest["shards"]:
                lang = shard.get("lang")
                if wanted is not None and lang is not None and lang.lower() not in wanted:
                    continue
                shards.append(os.path.join(target, shard["path"]))
            return shards
        found = glob.glob(os.path.join(target, "**", f"*{SHARD_SUFFIX}"), recursive=True)
    else:
        found = glob.glob(target, recursive=True)
    if not found:
        raise FileNotFoundError(f"no TFRecord shards match {target!r}")
    return sorted(found)


def read_dataset(
    pattern_or_dir: str | os.PathLike, languages: Sequence[str] | None = None
) -> Iterator[dict[str, str]]:
    """Every record of a dataset, shard by shard; optionally only some languages."""
    wanted = _wanted(languages)
    for shard in list_shards(pattern_or_dir, languages):
        for record in iter_tfrecord(shard):
            if wanted is None or record["lang"].lower() in wanted:
                yield record
