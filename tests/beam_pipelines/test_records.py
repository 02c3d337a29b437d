"""TFRecord / tf.train.Example reading and writing without TensorFlow."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from beam_pipelines import records
from beam_pipelines.schema import FIELDS

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_record(i: int, lang: str = "Python") -> dict[str, str]:
    rec = {f: f"{f}-{i}" for f in FIELDS}
    rec["lang"] = lang
    rec["new_contents"] = f"print('héllo {i}')\n\u2603"
    return rec


def test_roundtrip_and_byte_compatibility_with_tfds_proto(tmp_path):
    from tensorflow_datasets.proto import tf_example_pb2

    recs = [make_record(i) for i in range(5)]
    path = tmp_path / "a.tfrecord"
    assert records.write_tfrecord(path, recs) == 5
    assert list(records.iter_tfrecord(path)) == recs
    payload = next(records.iter_tfrecord_bytes(path))
    example = tf_example_pb2.Example()
    example.ParseFromString(payload)
    assert (
        example.features.feature["new_contents"].bytes_list.value[0].decode()
        == recs[0]["new_contents"]
    )
    assert example.SerializeToString(deterministic=True) == payload


def test_masked_crc_known_value():
    crc = 0xE3069283  # the CRC-32C check value of b"123456789"
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    assert records.masked_crc32c(b"123456789") == masked
    assert records.masked_crc32c(b"") == 0xA282EAD8  # crc32c("") == 0, then masked


def write_two(tmp_path) -> Path:
    path = tmp_path / "x.tfrecord"
    records.write_tfrecord(path, [make_record(0), make_record(1)])
    return path


def test_truncated_file_names_file_and_record(tmp_path):
    path = write_two(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:-7])
    it = records.iter_tfrecord(path)
    assert next(it)["commit"] == "commit-0"
    with pytest.raises(records.TFRecordCorruptError, match=r"x\.tfrecord: record 1 .*truncated"):
        next(it)


def test_data_crc_mismatch(tmp_path):
    path = write_two(tmp_path)
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF  # inside record 0's payload
    path.write_bytes(bytes(data))
    with pytest.raises(records.TFRecordCorruptError, match="record 0 .*data CRC mismatch") as err:
        list(records.iter_tfrecord(path))
    assert err.value.path == str(path) and err.value.index == 0


def test_length_crc_mismatch(tmp_path):
    path = write_two(tmp_path)
    data = bytearray(path.read_bytes())
    data[9] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(records.TFRecordCorruptError, match="length CRC mismatch"):
        list(records.iter_tfrecord(path))


def test_not_an_example_is_reported(tmp_path):
    path = tmp_path / "bad.tfrecord"
    with open(path, "wb") as fileobj:
        fileobj.write(records.frame(b"\xff\xff\xff"))
    with pytest.raises(records.TFRecordCorruptError, match="bad.tfrecord: record 0"):
        list(records.iter_tfrecord(path))


def test_missing_feature_is_reported():
    rec = make_record(0)
    example = records.Example()
    example.features.feature["commit"].bytes_list.value.append(rec["commit"].encode())
    with pytest.raises(records.ExampleDecodeError, match="missing feature 'old_file'"):
        records.decode_example(example.SerializeToString())


def test_non_string_field_rejected():
    rec = make_record(0)
    rec["lang"] = 3
    with pytest.raises(TypeError, match="lang"):
        records.encode_example(rec)


def test_read_dataset_with_manifest_and_languages(tmp_path):
    ds = tmp_path / "commitpack"
    (ds / "python").mkdir(parents=True)
    (ds / "go").mkdir()
    records.write_tfrecord(ds / "python" / "s-0.tfrecord", [make_record(0), make_record(1)])
    records.write_tfrecord(ds / "go" / "s-0.tfrecord", [make_record(2, "Go")])
    manifest = {
        "shards": [
            {"path": "go/s-0.tfrecord", "num_records": 1, "lang": "Go"},
            {"path": "python/s-0.tfrecord", "num_records": 2, "lang": "Python"},
        ]
    }
    (ds / "manifest.json").write_text(json.dumps(manifest))
    assert [r["commit"] for r in records.read_dataset(ds)] == ["commit-2", "commit-0", "commit-1"]
    assert [r["commit"] for r in records.read_dataset(ds, languages=["go"])] == ["commit-2"]
    assert len(records.list_shards(ds, languages=["PYTHON"])) == 1
    pattern = str(ds / "*" / "*.tfrecord")
    assert len(list(records.read_dataset(pattern))) == 3
    with pytest.raises(FileNotFoundError, match="no TFRecord shards"):
        records.list_shards(str(tmp_path / "nothing-*.tfrecord"))


def test_records_module_imports_neither_beam_nor_tensorflow_nor_jax():
    code = (
        "import sys, beam_pipelines.records, beam_pipelines.schema;"
        "bad=[m for m in sys.modules if m.split('.')[0] in "
        "('apache_beam','tensorflow','tensorflow_datasets','jax')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_no_beam_pipelines_module_imports_jax():
    code = (
        "import sys, pkgutil, importlib, beam_pipelines;"
        "[importlib.import_module('beam_pipelines.'+m.name) for m in "
        "pkgutil.walk_packages(beam_pipelines.__path__) if m.name != 'setup'];"
        "bad=[m for m in sys.modules if m.split('.')[0] in ('jax','flax','tensorflow')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_tf_data_reads_the_shards(tmp_path):
    tf = pytest.importorskip("tensorflow", reason="tensorflow is an optional extra ([tf])")
    recs = [make_record(i) for i in range(3)]
    path = tmp_path / "tf.tfrecord"
    records.write_tfrecord(path, recs)
    spec = {f: tf.io.FixedLenFeature([], tf.string) for f in FIELDS}
    ds = tf.data.TFRecordDataset([str(path)]).map(lambda x: tf.io.parse_single_example(x, spec))
    got = [{k: v.numpy().decode("utf-8") for k, v in ex.items()} for ex in ds]
    assert got == recs
    # and TensorFlow's writer produces files our reader accepts
    tf_path = tmp_path / "by_tf.tfrecord"
    with tf.io.TFRecordWriter(str(tf_path)) as writer:
        for rec in recs:
            writer.write(records.encode_example(rec))
    assert list(records.iter_tfrecord(tf_path)) == recs
