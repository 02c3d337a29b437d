"""Malformed input: errors name the file and the record; skip mode counts and goes on."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipelines.records import Example, frame, write_tfrecord
from octojax.data.pipeline import make_train_iterator
from octojax.data.sources import BadRecordError

REPO_ROOT = Path(__file__).resolve().parents[2]


def test_importing_octojax_data_keeps_beam_and_tensorflow_out():
    code = (
        "import sys, octojax.data, octojax.data.pipeline, octojax.data.sources; "
        "octojax.data.pipeline.make_train_iterator; "
        "bad = [m for m in ('apache_beam', 'tensorflow') if m in sys.modules]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr


def test_jsonl_bad_lines_error_or_skip(tmp_path, make_cfg, data_helpers):
    rows = data_helpers.synthetic_instructions(8)
    path = data_helpers.write_jsonl(
        tmp_path / "bad.jsonl",
        rows,
        raw_lines={
            2: '{"prompt": "cut',
            5: '{"prompt": "p", "answer": "x"}',
            6: '{"prompt": 1, "completion": "c"}',
        },
    )
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}])
    with pytest.raises(BadRecordError, match=r"bad\.jsonl: line 3: not valid JSON"):
        make_train_iterator(cfg, global_batch_size=1)
    # blank lines are not records; line numbers still count them
    text = path.read_text().splitlines()
    path.write_text("\n".join(text[:2] + ["", "   "] + text[3:]) + "\n")
    with pytest.raises(BadRecordError, match=r"line 7: missing fields: need"):
        make_train_iterator(cfg, global_batch_size=1)
    skip = make_cfg([{"kind": "jsonl", "path": str(path)}], on_bad_record="skip")
    it = make_train_iterator(skip, global_batch_size=1)
    stats = it.stats
    assert stats["bad_records_skipped"] == 2 and stats["examples"] == 5
    assert any("line 8: field 'prompt' must be a string" in m for m in it.bad_records)
    assert sum(1 for _ in it) >= 1


def test_missing_inputs_are_named(tmp_path, make_cfg):
    with pytest.raises(FileNotFoundError, match="no JSONL files match"):
        make_train_iterator(
            make_cfg([{"kind": "jsonl", "path": str(tmp_path / "none*.jsonl")}]),
            global_batch_size=1,
        )
    with pytest.raises(FileNotFoundError, match="no TFRecord shards match"):
        make_train_iterator(
            make_cfg([{"kind": "commitpackft", "path": str(tmp_path / "x*.tfrecord")}]),
            global_batch_size=1,
        )
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="has no records"):
        make_train_iterator(
            make_cfg([{"kind": "jsonl", "path": str(tmp_path / "empty.jsonl")}]),
            global_batch_size=1,
        )


def _records(data_helpers, n):
    return [data_helpers.commit_record(i) for i in range(n)]


def test_tfrecord_data_crc_mismatch(tmp_path, make_cfg, data_helpers):
    shard = tmp_path / "s.tfrecord"
    write_tfrecord(shard, _records(data_helpers, 4))
    data = bytearray(shard.read_bytes())
    first = 16 + int.from_bytes(data[:8], "little")
    data[first + 12 + 5] ^= 0xFF  # a payload byte of record 1
    shard.write_bytes(bytes(data))
    src = [{"kind": "commitpackft", "path": str(shard)}]
    with pytest.raises(
        BadRecordError,
        match=rf"s\.tfrecord: record 1 \(byte offset {first}\): corrupt TFRecord: data CRC",
    ):
        make_train_iterator(make_cfg(src), global_batch_size=1)
    it = make_train_iterator(make_cfg(src, on_bad_record="skip"), global_batch_size=1)
    assert it.stats["bad_records_skipped"] == 1 and it.stats["examples"] == 3


def test_tfrecord_truncated_shard(tmp_path, make_cfg, data_helpers):
    shard = tmp_path / "s.tfrecord"
    write_tfrecord(shard, _records(data_helpers, 3))
    shard.write_bytes(shard.read_bytes()[:-10])
    src = [{"kind": "commitpackft", "path": str(shard)}]
    with pytest.raises(BadRecordError, match=r"s\.tfrecord: record 2 .*truncated record"):
        make_train_iterator(make_cfg(src), global_batch_size=1)
    it = make_train_iterator(make_cfg(src, on_bad_record="skip"), global_batch_size=1)
    assert it.stats["bad_records_skipped"] == 1 and it.stats["examples"] == 2
    assert "truncated record" in it.bad_records[0]


def test_tfrecord_record_missing_a_field(tmp_path, make_cfg, data_helpers):
    good = _records(data_helpers, 2)
    ex = Example()
    for key, value in good[0].items():
        if key != "new_contents":
            ex.features.feature[key].bytes_list.value.append(value.encode())
    shard = tmp_path / "s.tfrecord"
    write_tfrecord(shard, good)
    with open(shard, "ab") as f:
        f.write(frame(ex.SerializeToString()))
    src = [{"kind": "commitpackft", "path": str(shard)}]
    with pytest.raises(BadRecordError, match=r"record 2 .*missing feature 'new_contents'"):
        make_train_iterator(make_cfg(src), global_batch_size=1)
    it = make_train_iterator(make_cfg(src, on_bad_record="skip"), global_batch_size=1)
    assert it.stats["bad_records_skipped"] == 1 and it.stats["examples"] == 2


def test_tokenizer_path_errors(tmp_path, data_helpers):
    from octojax.data.config import DataConfig

    path = data_helpers.write_jsonl(tmp_path / "x.jsonl", [{"prompt": "p", "completion": "c"}])
    cfg = DataConfig.from_dict(
        {"sources": [{"kind": "jsonl", "path": str(path)}], "tokenizer": str(tmp_path / "nope")}
    )
    with pytest.raises(FileNotFoundError, match="nope"):
        make_train_iterator(cfg, global_batch_size=1)
