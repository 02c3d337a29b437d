"""Streaming safetensors reading and writing with bfloat16 support.

Written by hand because the `safetensors` package's NumPy backend cannot represent bfloat16 (the
dtype StarCoder checkpoints are often stored in), and its Flax backend places every tensor on the
default device. The format is a little-endian u64 header length, a JSON header of
{name: {dtype, shape, data_offsets}}, then raw bytes; we memory-map the data so reading a 15.5B
checkpoint touches one tensor at a time. Files written here load with `safetensors` and transformers.
"""

from __future__ import annotations

import json
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
