"""Random-access indexes over the input files: JSONL lines and TFRecord records.

Every host builds the same cheap index of every source (byte offsets only: JSONL line starts, and
TFRecord framing headers read with seeks, no payload), so all hosts agree on the global example
numbering without parsing anything. Each host then parses, validates and tokenises only the records
its batch rows own (``read_records``). Malformed input fails with the file and record number, or is
skipped and counted when ``on_bad_record == "skip"``.

Hand-written on top of ``beam_pipelines.records`` (which checks CRCs and decodes the Example proto)
because that module reads files sequentially only, and random access is what lets a host read only
its share.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import struct
from collections.abc import Iterator, Sequence

import numpy as np

from beam_pipelines.records import (
    ExampleDecodeError,
    decode_example,
    list_shards,
    masked_crc32c,
)

_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


class BadRecordError(ValueError):
    """A record that cannot be read: names the file, the record (or line) number and the problem."""

    def __init__(self, path: str, where: str, problem: str):
        super().__init__(f"{path}: {where}: {problem}")
        self.path = path
        self.where = where
        self.problem = problem


@dataclasses.dataclass
class FileIndex:
    """Where the records of one file start. ``numbers`` are 1-based JSONL line numbers or 0-based
    TFRecord record indexes (what error messages name)."""

    path: str
    offsets: np.ndarray  # int64
    numbers: np.ndarray  # int64
    sizes: np.ndarray  # int64 bytes per record (balances the rows' work before anything is parsed)
    # A TFRecord file whose framing breaks after the indexed records (skip mode only).
    truncated_at: str | None = None


@dataclasses.dataclass
class SourceIndex:
    """The files of one source and a global record numbering over them (file order)."""

    kind: str
    files: list[FileIndex]
    bad_records: int = 0  # framing problems found while indexing (skip mode)

    @property
    def sizes(self) -> np.ndarray:
        return (
            np.concatenate([f.sizes for f in self.files]) if self.files else np.zeros(0, np.int64)
        )

    @property
    def num_records(self) -> int:
        return int(sum(len(f.offsets) for f in self.files))

    def locate(self, ids: np.ndarray) -> Iterator[tuple[int, int, int]]:
        """(record id, file number, position in file) for sorted record ids."""
        starts = np.cumsum([0] + [len(f.offsets) for f in self.files])
        file_of = np.searchsorted(starts, ids, side="right") - 1
        for rid, fno in zip(ids.tolist(), file_of.tolist()):
            yield rid, fno, rid - int(starts[fno])


def list_jsonl_files(path: str) -> list[str]:
    """A file, every ``*.jsonl`` below a directory (sorted), or a glob pattern (sorted)."""
    if os.path.isfile(path):
        return [path]
    if os.path.isdir(path):
        found = glob.glob(os.path.join(path, "**", "*.jsonl"), recursive=True)
    else:
        found = glob.glob(path, recursive=True)
    found = sorted(f for f in found if os.path.isfile(f))
    if not found:
        raise FileNotFoundError(f"no JSONL files match {path!r}")
    return found


def index_jsonl(path: str) -> FileIndex:
    """Byte offsets and line numbers of the non-blank lines of a JSONL file (no JSON parsing)."""
    offsets: list[int] = []
    numbers: list[int] = []
    sizes: list[int] = []
    pos = 0
    with open(path, "rb") as fileobj:
        for number, line in enumerate(fileobj, start=1):
            if line.strip():
                offsets.append(pos)
                numbers.append(number)
                sizes.append(len(line))
            pos += len(line)
    return FileIndex(
        path,
        np.asarray(offsets, np.int64),
        np.asarray(numbers, np.int64),
        np.asarray(sizes, np.int64),
    )


def index_tfrecord(path: str, skip_bad: bool) -> FileIndex:
    """Offsets of the records of a TFRecord file from their length headers (payloads are skipped
    with seeks; their CRC is checked when read). A broken header or a truncated file raises
    BadRecordError, or in skip mode ends the index there (the rest cannot be framed)."""
    offsets: list[int] = []
    sizes: list[int] = []
    size = os.path.getsize(path)
    truncated_at = None
    with open(path, "rb") as fileobj:
        pos = 0
        index = 0
        while pos < size:
            header = fileobj.read(12)
            problem = None
            if len(header) < 12:
                problem = "truncated length header"
            elif _U32.unpack(header[8:])[0] != masked_crc32c(header[:8]):
                problem = "length CRC mismatch"
            else:
                (length,) = _U64.unpack(header[:8])
                if pos + 16 + length > size:
                    problem = f"truncated record ({size - pos - 16} of {length} data bytes)"
            if problem is not None:
                where = f"record {index} (byte offset {pos})"
                if not skip_bad:
                    raise BadRecordError(path, where, f"corrupt TFRecord: {problem}")
                truncated_at = f"{where}: {problem}"
                break
            offsets.append(pos)
            sizes.append(length)
            pos += 16 + length
            fileobj.seek(pos)
            index += 1
    return FileIndex(
        path,
        np.asarray(offsets, np.int64),
        np.arange(len(offsets), dtype=np.int64),
        np.asarray(sizes, np.int64),
        truncated_at=truncated_at,
    )


def index_source(
    kind: str, path: str, languages: Sequence[str] | None, skip_bad: bool
) -> SourceIndex:
    """Index every file of a source, in a fixed order (the same on every host)."""
    if kind == "jsonl":
        files = [index_jsonl(p) for p in list_jsonl_files(path)]
        return SourceIndex(kind, files)
    if kind == "commitpackft":
        try:
            shards = list_shards(path, languages)
        except (FileNotFoundError, ValueError, KeyError) as err:
            raise FileNotFoundError(f"commitpackft source {path!r}: {err}") from err
        if not shards:
            raise FileNotFoundError(
                f"commitpackft source {path!r}: no shards"
                + (f" for languages {list(languages)}" if languages else "")
            )
        files = [index_tfrecord(p, skip_bad) for p in shards]
        return SourceIndex(kind, files, bad_records=sum(f.truncated_at is not None for f in files))
    raise ValueError(f"unknown source kind {kind!r}")


# --- reading records ----------------------------------------------------------------------------


def _instruction_fields(obj: object) -> dict[str, str]:
    """{"prompt", "completion"} from {"prompt","completion"}, {"instruction","output"} or
    {"input","output"} (OASST); raises ValueError naming what is missing."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    for prompt_key, answer_key in (
        ("prompt", "completion"),
        ("instruction", "output"),
        ("input", "output"),
    ):
        if prompt_key in obj and answer_key in obj:
            prompt, answer = obj[prompt_key], obj[answer_key]
            for key, value in ((prompt_key, prompt), (answer_key, answer)):
                if not isinstance(value, str):
                    raise ValueError(f"field {key!r} must be a string, got {type(value).__name__}")
            return {"prompt": prompt, "completion": answer}
    raise ValueError(
        'missing fields: need {"prompt", "completion"} or {"instruction", "output"}; '
        f"has {sorted(obj)}"
    )


def read_jsonl_record(fileobj, index: FileIndex, pos: int) -> dict[str, str]:
    fileobj.seek(int(index.offsets[pos]))
    line = fileobj.readline()
    where = f"line {int(index.numbers[pos])}"
    try:
        obj = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise BadRecordError(index.path, where, f"not valid JSON: {err}") from err
    try:
        return _instruction_fields(obj)
    except ValueError as err:
        raise BadRecordError(index.path, where, str(err)) from err


def read_tfrecord_record(fileobj, index: FileIndex, pos: int) -> dict[str, str]:
    offset = int(index.offsets[pos])
    fileobj.seek(offset)
    header = fileobj.read(12)
    (length,) = _U64.unpack(header[:8])
    payload = fileobj.read(length)
    crc = fileobj.read(4)
    where = f"record {int(index.numbers[pos])} (byte offset {offset})"
    if len(payload) < length or len(crc) < 4:
        raise BadRecordError(index.path, where, "corrupt TFRecord: truncated data")
    if _U32.unpack(crc)[0] != masked_crc32c(payload):
        raise BadRecordError(index.path, where, "corrupt TFRecord: data CRC mismatch")
    try:
        return decode_example(payload)
    except ExampleDecodeError as err:
        raise BadRecordError(index.path, where, f"bad CommitPack record: {err}") from err


def read_records(
    source: SourceIndex, ids: np.ndarray, skip_bad: bool
) -> Iterator[tuple[int, dict[str, str] | BadRecordError]]:
    """(record id, record) for sorted ``ids``; a bad record raises, or in skip mode is yielded as
    its BadRecordError (the caller counts it)."""
    reader = read_jsonl_record if source.kind == "jsonl" else read_tfrecord_record
    current_file = -1
    fileobj = None
    try:
        for rid, fno, pos in source.locate(ids):
            if fno != current_file:
                if fileobj is not None:
                    fileobj.close()
                fileobj = open(source.files[fno].path, "rb")  # noqa: SIM115 (closed below)
                current_file = fno
            try:
                yield rid, reader(fileobj, source.files[fno], pos)
            except BadRecordError as err:
                if not skip_bad:
                    raise
                yield rid, err
    finally:
        if fileobj is not None:
            fileobj.close()
