"""Packing, epochs, mixture weights, resumption, host sharding and the mesh: TrainIterator."""

from __future__ import annotations

import json
from collections import Counter

import jax
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from octojax.data.pipeline import make_train_iterator
from octojax.sharding import BATCH_KEYS


def check_row_invariants(batch, seq_len):
    """Segments contiguous and numbered 1..k, padding only at the end, positions restarting,
    targets shifted inputs within a segment, nothing but zeros on padding."""
    B = batch["inputs"].shape[0]
    assert all(batch[k].shape == (B, seq_len) for k in BATCH_KEYS)
    assert batch["loss_weights"].dtype == np.float32
    assert all(batch[k].dtype == np.int32 for k in BATCH_KEYS if k != "loss_weights")
    for r in range(B):
        seg = batch["segment_ids"][r]
        used = int((seg > 0).sum())
        assert (seg[:used] > 0).all() and (seg[used:] == 0).all()
        assert (np.diff(seg[:used]) >= 0).all() and (np.diff(seg[:used]) <= 1).all()
        if used:
            assert seg[0] == 1
        for k in ("inputs", "targets", "positions", "loss_weights"):
            assert (batch[k][r, used:] == 0).all()
        for s in range(1, int(seg.max(initial=0)) + 1):
            idx = np.flatnonzero(seg == s)
            assert (batch["positions"][r, idx] == np.arange(len(idx))).all()
            assert (batch["targets"][r, idx[:-1]] == batch["inputs"][r, idx[1:]]).all()


def example_sequences(batches):
    """Every segment as its full token sequence (inputs + the last target)."""
    out = []
    for b in batches:
        for r in range(b["inputs"].shape[0]):
            seg = b["segment_ids"][r]
            for s in range(1, int(seg.max(initial=0)) + 1):
                idx = np.flatnonzero(seg == s)
                out.append(tuple(b["inputs"][r, idx].tolist()) + (int(b["targets"][r, idx[-1]]),))
    return out


def pairs_counter(batches):
    c = Counter()
    for b in batches:
        m = b["segment_ids"] > 0
        c.update(zip(b["inputs"][m].tolist(), b["targets"][m].tolist()))
    return c


def expected_sequences(rows, tokenizer):
    return [
        tuple(
            tokenizer(
                f"Question: {r['prompt']}\n\nAnswer: {r['completion']}", add_special_tokens=False
            )["input_ids"]
        )
        + (0,)
        for r in rows
    ]


@pytest.fixture
def mix(tmp_path, data_helpers, tokenizer):
    rows = data_helpers.synthetic_instructions(60)
    path = data_helpers.write_jsonl(tmp_path / "mix.jsonl", rows)
    return path, rows, expected_sequences(rows, tokenizer)


def test_one_epoch_has_every_example_once(mix, make_cfg):
    path, rows, expected = mix
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=256)
    it = make_train_iterator(cfg, global_batch_size=4)
    batches = list(it)
    assert len(batches) == it.num_steps
    for b in batches:
        check_row_invariants(b, 256)
    assert sorted(example_sequences(batches)) == sorted(expected)
    stats = it.stats
    assert stats["examples"] == stats["examples_started"] == stats["segments"] == 60
    assert stats["tokens"] == sum(len(e) - 1 for e in expected)
    assert stats["padding"] == len(batches) * 4 * 256 - stats["tokens"]
    assert 0 <= stats["padding_fraction"] < 0.35
    with pytest.raises(StopIteration):
        next(it)


def test_two_epochs_reshuffle_and_repeat(mix, make_cfg):
    path, _, expected = mix
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=256, num_epochs=2)
    batches = list(make_train_iterator(cfg, global_batch_size=4))
    assert Counter(example_sequences(batches)) == Counter(expected * 2)
    one = list(
        make_train_iterator(
            make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=256), global_batch_size=4
        )
    )
    assert len(batches) > len(one)
    # same seed, same stream; another seed, another order
    again = list(make_train_iterator(cfg, global_batch_size=4))
    assert all((a["inputs"] == b["inputs"]).all() for a, b in zip(batches, again))
    other = list(
        make_train_iterator(
            make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=256, num_epochs=2, seed=1),
            global_batch_size=4,
        )
    )
    assert any(not (a["inputs"] == b["inputs"]).all() for a, b in zip(batches, other))


def test_forever_never_stops(mix, make_cfg):
    path, _, _ = mix
    it = make_train_iterator(
        make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=128, num_epochs=None),
        global_batch_size=2,
    )
    assert it.num_steps is None
    n = sum(1 for _, _ in zip(range(200), it))
    assert n == 200 and it.stats["examples_started"] > 3 * 60


@pytest.mark.parametrize("overlong", ["split", "truncate"])
def test_overlong_examples_split_or_truncate(mix, make_cfg, overlong):
    path, _, expected = mix
    seq_len = 24
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=seq_len, overlong=overlong)
    it = make_train_iterator(cfg, global_batch_size=2)
    batches = list(it)
    for b in batches:
        check_row_invariants(b, seq_len)
    want = Counter()
    over = [e for e in expected if len(e) - 1 > seq_len]
    assert over, "test data must have overlong examples"
    for e in expected:
        pairs = list(zip(e[:-1], e[1:]))
        want.update(pairs if overlong == "split" else pairs[:seq_len])
    assert pairs_counter(batches) == want
    stats = it.stats
    assert stats["overlong_examples"] == len(over)
    if overlong == "split":
        assert stats["split_examples"] == len(over)
        assert stats["segments"] == sum(-(-(len(e) - 1) // seq_len) for e in expected)
    else:
        assert stats["truncated_examples"] == len(over)
        assert stats["truncated_tokens"] == sum(len(e) - 1 - seq_len for e in over)


def test_weights_and_languages(tmp_path, make_cfg, data_helpers, commit_shards):
    a = [{"prompt": f"Alpha {i}", "completion": f"a{i}"} for i in range(10)]
    b = [{"prompt": f"Beta {i}", "completion": f"b{i}"} for i in range(10)]
    data_helpers.write_jsonl(tmp_path / "a.jsonl", a)
    (tmp_path / "more").mkdir()
    data_helpers.write_jsonl(tmp_path / "more" / "b.jsonl", b)
    sources = [
        {"kind": "jsonl", "path": str(tmp_path / "a.jsonl"), "weight": 2.0},
        {"kind": "jsonl", "path": str(tmp_path / "more"), "weight": 0.5},
        {"kind": "commitpackft", "path": str(commit_shards), "languages": ["python", "Rust"]},
    ]
    cfg = make_cfg(sources, seq_len=512, num_epochs=2)
    it = make_train_iterator(cfg, global_batch_size=4)
    from octojax.tokenizer import load_tokenizer

    tok = load_tokenizer(cfg.tokenizer)
    texts = [tok.decode(list(s)) for s in example_sequences(list(it))]
    alpha = Counter(t.split("\n")[0] for t in texts if t.startswith("Question: Alpha"))
    beta = Counter(t.split("\n")[0] for t in texts if t.startswith("Question: Beta"))
    commits = [t for t in texts if t.startswith("Question: Update module")]
    assert alpha == {f"Question: Alpha {i}": 4 for i in range(10)}  # 2 per epoch x 2 epochs
    assert sum(beta.values()) == 10 and max(beta.values()) <= 2  # 5 per epoch
    assert len(beta) > 5  # another half in the second epoch
    assert len(commits) == 2 * 20  # Go dropped
    assert it.stats["filtered_by_language"] == 10


def test_resume_yields_the_same_batches(mix, make_cfg):
    path, _, _ = mix
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=128, num_epochs=2)
    full = list(make_train_iterator(cfg, global_batch_size=4))
    assert len(full) > 8
    it = make_train_iterator(cfg, global_batch_size=4)
    for _ in range(7):
        next(it)
    state = json.loads(json.dumps(it.get_state()))
    stats_at_7 = it.stats
    assert len(json.dumps(state)) < 200
    restored = make_train_iterator(cfg, global_batch_size=4)
    restored.set_state(state)
    assert restored.stats == stats_at_7
    rest = list(restored)
    assert len(rest) == len(full) - 7
    for a, b in zip(full[7:], rest):
        for k in BATCH_KEYS:
            np.testing.assert_array_equal(a[k], b[k])
    # the same iterator can be rewound, too
    it.set_state({**state, "step": 2})
    np.testing.assert_array_equal(next(it)["inputs"], full[2]["inputs"])


def test_state_from_other_settings_is_refused(mix, make_cfg):
    path, _, _ = mix
    it = make_train_iterator(make_cfg([{"kind": "jsonl", "path": str(path)}]), global_batch_size=2)
    state = it.get_state()
    other = make_train_iterator(
        make_cfg([{"kind": "jsonl", "path": str(path)}], seed=3), global_batch_size=2
    )
    with pytest.raises(ValueError, match="fingerprint"):
        other.set_state(state)
    with pytest.raises(ValueError, match="past the end"):
        it.set_state({**state, "step": 10_000})
    with pytest.raises(ValueError, match="not a data iterator state"):
        it.set_state({"epoch": 1})


def test_two_hosts_make_the_single_host_batch(mix, make_cfg):
    path, _, _ = mix
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=128, num_epochs=2)
    single = make_train_iterator(cfg, global_batch_size=4, process_index=0, process_count=1)
    hosts = [
        make_train_iterator(cfg, global_batch_size=4, process_index=p, process_count=2)
        for p in range(2)
    ]
    # each host read and tokenised only its rows' records: disjoint shares of the file
    assert hosts[0].stats["records"] + hosts[1].stats["records"] == 60
    assert 0 < hosts[0].stats["records"] < 60
    assert hosts[0].rows == [0, 1] and hosts[1].rows == [2, 3]
    # a state saved on one layout restores on another
    for h in hosts:
        h.set_state({**single.get_state(), "step": 3})
    single.set_state({**single.get_state(), "step": 3})
    steps = 0
    for b in single:
        halves = []
        for h in hosts:
            if h.num_steps is not None and h.step >= h.num_steps:
                halves.append(None)  # this host's rows ran out earlier: the single host pads them
            else:
                halves.append(next(h))
        for p, half in enumerate(halves):
            rows = slice(2 * p, 2 * p + 2)
            for k in BATCH_KEYS:
                if half is None:
                    assert (b[k][rows] == 0).all()
                else:
                    assert half[k].shape == (2, 128)
                    np.testing.assert_array_equal(b[k][rows], half[k])
        steps += 1
    assert steps > 5
    assert max(h.num_steps for h in hosts) == single.num_steps


def test_mesh_batches_are_sharded_global_arrays(mix, make_cfg):
    path, _, _ = mix
    assert jax.device_count() == 8, "tests/conftest.py sets 8 fake CPU devices"
    mesh = jax.make_mesh(
        (2, 2, 2), ("data", "fsdp", "tensor"), axis_types=(jax.sharding.AxisType.Auto,) * 3
    )
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=64)
    plain = list(make_train_iterator(cfg, global_batch_size=8))
    it = make_train_iterator(cfg, global_batch_size=8, mesh=mesh)
    want = NamedSharding(mesh, P(("data", "fsdp"), None))
    n = 0
    for a, b in zip(plain, it):
        for k in BATCH_KEYS:
            assert isinstance(b[k], jax.Array)
            assert b[k].sharding.is_equivalent_to(want, 2)
            assert b[k].dtype == a[k].dtype and b[k].shape == (8, 64)
            np.testing.assert_array_equal(np.asarray(b[k]), a[k])
        n += 1
    assert n == len(plain) == it.num_steps
    with pytest.raises(ValueError, match="not divisible by the mesh's data x fsdp size 4"):
        make_train_iterator(cfg, global_batch_size=6, mesh=mesh)
    with pytest.raises(ValueError, match="simulate hosts without a mesh"):
        make_train_iterator(cfg, global_batch_size=8, mesh=mesh, process_count=2)


def test_bad_layouts_are_refused(mix, make_cfg):
    path, _, _ = mix
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}])
    with pytest.raises(ValueError, match="not divisible by process_count 2"):
        make_train_iterator(cfg, global_batch_size=3, process_index=0, process_count=2)
    with pytest.raises(ValueError, match=r"process_index 2 is not in \[0, process_count=2\)"):
        make_train_iterator(cfg, global_batch_size=4, process_index=2, process_count=2)


def test_worker_pool_gives_identical_batches(mix, make_cfg):
    path, _, _ = mix
    cfg0 = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=128)
    cfg2 = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=128, num_workers=2)
    a = list(make_train_iterator(cfg0, global_batch_size=2))
    b = list(make_train_iterator(cfg2, global_batch_size=2))
    assert len(a) == len(b)
    for x, y in zip(a, b):
        for k in BATCH_KEYS:
            np.testing.assert_array_equal(x[k], y[k])
