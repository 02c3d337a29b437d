"""Streaming safetensors reading and writing with bfloat16 support, and HF-style sharding.

Reading and writing are done here rather than by the `safetensors` package for two reasons:
- bounded memory: its writers (`save_file`, `serialize_file`) take every tensor of a file at once
  (a dict, or pointers that must all stay alive), so writing a 5 GB shard holds 5 GB of host
  memory; `write_tensors` below declares the header up front and then streams one tensor at a
  time, so an export pulls one tensor from the devices, writes it, and drops it.
- bfloat16 and zero-copy reads: the NumPy backend of safetensors releases before 0.8 cannot
  represent bfloat16 (the dtype StarCoder checkpoints are usually stored in; octojax supports
  safetensors >= 0.5), and `safe_open(...).get_tensor` copies; we memory-map the data, so reading
  a 15.5B checkpoint touches one tensor at a time.
The format is a little-endian u64 header length, a JSON header of {name: {dtype, shape,
data_offsets}}, then raw bytes. Files written here load with `safetensors` (tested with
`safe_open`) and transformers.
"""

from __future__ import annotations

import itertools
import json
import re
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import ml_dtypes
import numpy as np

_DTYPES = {
    "F64": np.dtype(np.float64),
    "F32": np.dtype(np.float32),
    "F16": np.dtype(np.float16),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "I64": np.dtype(np.int64),
    "I32": np.dtype(np.int32),
    "I16": np.dtype(np.int16),
    "I8": np.dtype(np.int8),
    "U8": np.dtype(np.uint8),
    "BOOL": np.dtype(np.bool_),
}
_NAMES = {v: k for k, v in _DTYPES.items()}


class SafetensorsError(ValueError):
    """A safetensors file that cannot be read."""


def read_header(path: str | Path) -> tuple[dict, int]:
    """The JSON header (without __metadata__) and the byte offset where tensor data starts."""
    path = Path(path)
    size = path.stat().st_size
    with path.open("rb") as f:
        raw = f.read(8)
        if len(raw) < 8:
            raise SafetensorsError(f"{path}: truncated (no header length)")
        (n,) = struct.unpack("<Q", raw)
        if n > size - 8:
            raise SafetensorsError(f"{path}: header length {n} exceeds file size {size}")
        try:
            header = json.loads(f.read(n))
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SafetensorsError(f"{path}: corrupt header ({e})") from None
    header.pop("__metadata__", None)
    data_start = 8 + n
    for name, info in header.items():
        start, end = info["data_offsets"]
        if info["dtype"] not in _DTYPES:
            raise SafetensorsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        expected = int(np.prod(info["shape"], dtype=np.int64)) * _DTYPES[info["dtype"]].itemsize
        if end - start != expected or data_start + end > size:
            raise SafetensorsError(f"{path}: tensor {name} is truncated or its offsets are corrupt")
    return header, data_start


def iter_tensors(path: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """Yield (name, array) one tensor at a time; arrays are read-only views of a memory map."""
    header, data_start = read_header(path)
    mm = np.memmap(path, dtype=np.uint8, mode="r")
    for name, info in header.items():
        start, end = info["data_offsets"]
        dtype = _DTYPES[info["dtype"]]
        yield name, mm[data_start + start : data_start + end].view(dtype).reshape(info["shape"])


def write_tensors(
    path: str | Path,
    specs: dict[str, tuple[tuple[int, ...], np.dtype]],
    tensors: Iterable[tuple[str, np.ndarray]],
    metadata: dict[str, str] | None = None,
) -> None:
    """Write tensors streamed one at a time; `specs` gives every name's shape and dtype up front."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    for name, (shape, dtype) in specs.items():
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        header[name] = {
            "dtype": _NAMES[np.dtype(dtype)],
            "shape": list(shape),
            "data_offsets": [offset, offset + nbytes],
        }
        offset += nbytes
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)  # align tensor data to 8 bytes
    written = set()
    tmp = Path(str(path) + ".partial")
    with tmp.open("wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for name, array in tensors:
            shape, dtype = specs[name]
            array = np.ascontiguousarray(array, dtype=dtype)
            if tuple(array.shape) != tuple(shape):
                raise ValueError(f"{name}: shape {array.shape} != declared {shape}")
            if name in written or list(specs).index(name) != len(written):
                raise ValueError(f"{name}: tensors must be written once each, in spec order")
            f.write(array.tobytes())
            written.add(name)
    if len(written) != len(specs):
        raise ValueError(f"{path}: {len(specs) - len(written)} declared tensors were never written")
    tmp.replace(path)


# ---- Hugging Face-style sharding ----------------------------------------------------------------

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(I?B)?\s*$", re.IGNORECASE)


def parse_size(size: int | str) -> int:
    """Bytes in a size given as transformers' max_shard_size: an int, or "5GB" (10^9) / "5GiB"
    (2^30) / "200MB" / "50KB"."""
    if isinstance(size, int):
        if size <= 0:
            raise ValueError(f"size must be positive, got {size}")
        return size
    m = _SIZE.match(size)
    if not m:
        raise ValueError(f"cannot parse size {size!r} (expected e.g. 5GB, 500MiB or bytes)")
    number, unit, suffix = float(m.group(1)), m.group(2).upper(), (m.group(3) or "B").upper()
    base = 1024 if suffix == "IB" else 1000
    return int(number * base ** " KMGT".index(unit or " "))


def plan_shards(
    specs: dict[str, tuple[tuple[int, ...], np.dtype]], max_bytes: int
) -> list[list[str]]:
    """Names grouped in order into shards of at most max_bytes (a bigger tensor gets its own)."""
    shards: list[list[str]] = [[]]
    size = 0
    for name, (shape, dtype) in specs.items():
        nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
        if shards[-1] and size + nbytes > max_bytes:
            shards.append([])
            size = 0
        shards[-1].append(name)
        size += nbytes
    return shards


def write_sharded(
    out_dir: str | Path,
    specs: dict[str, tuple[tuple[int, ...], np.dtype]],
    tensors: Iterable[tuple[str, np.ndarray]],
    max_shard_size: int | str = "5GB",
    metadata: dict[str, str] | None = None,
) -> list[Path]:
    """Write model.safetensors, or model-0000i-of-0000n.safetensors + model.safetensors.index.json
    when the tensors exceed max_shard_size (the layout transformers' save_pretrained writes).

    `tensors` is streamed in specs order, one tensor at a time; returns the files written.
    """
    out_dir = Path(out_dir)
    shards = plan_shards(specs, parse_size(max_shard_size))
    stream = iter(tensors)
    if len(shards) == 1:
        write_tensors(out_dir / SINGLE_FILE, specs, stream, metadata)
        return [out_dir / SINGLE_FILE]
    files, weight_map = [], {}
    for i, names in enumerate(shards):
        path = out_dir / f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        shard_specs = {n: specs[n] for n in names}
        write_tensors(path, shard_specs, itertools.islice(stream, len(names)), metadata)
        weight_map.update(dict.fromkeys(names, path.name))
        files.append(path)
    total = sum(int(np.prod(s, dtype=np.int64)) * np.dtype(d).itemsize for s, d in specs.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return [*files, out_dir / INDEX_FILE]
