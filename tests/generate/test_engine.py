"""The slot engine: meshes, continuous vs static batching, prefix sharing, per-row seeds.

Runs on the 8 fake CPU devices of tests/conftest.py. Models are random but with a large init
scale (initializer_range 0.3), so greedy choices are not near-ties and a layout or masking mistake
changes tokens.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from octojax.generate import Generator, SamplingParams
from octojax.generate.engine import first_true, length_bucket
from octojax.generate.sampling import filter_logits, sample_rows
from octojax.generate.testing import tiny_model_dir
from octojax.sampling_config import SamplingConfig

SAMPLING = dict(temperature=1.0, top_p=0.95)  # one sampling setup: tests share compilations
PROMPTS = [
    "def add(a, b):",
    "import os\nimport sys\n\n\nclass Foo:\n    def bar(self, x):\n        return",
    "x",
    "for i in range(10):\n    print(i)\n",
]


@pytest.fixture(scope="module", params=[True, False], ids=["mqa", "mha"])
def model_dir(request, tmp_path_factory):
    d = tmp_path_factory.mktemp("mq" if request.param else "mh")
    return tiny_model_dir(d, n_head=8, multi_query=request.param, initializer_range=0.3)


@pytest.fixture(scope="module")
def reference(model_dir):
    """Single-device greedy outputs, and a stop sequence that really ends one row early."""
    gen = Generator.from_pretrained(model_dir, dtype="float32")
    free = gen.generate(PROMPTS, SamplingConfig(max_new_tokens=24, slots=8))
    stop = free[1].text[4:7]
    assert stop and len({o.text for o in free}) == len(PROMPTS)
    stopped = gen.generate(
        PROMPTS, SamplingConfig(max_new_tokens=24, stop_sequences=[stop], slots=8)
    )
    assert stopped[1].finish_reason == "stop_sequence" and len(stopped[1].token_ids) < 24
    return gen, stop, stopped


@pytest.mark.parametrize("mesh", ["data=8", "fsdp=8", "tensor=8", "data=2,fsdp=2,tensor=2"])
def test_mesh_greedy_equals_single_device(model_dir, reference, mesh):
    _, stop, want = reference
    gen = Generator.from_pretrained(model_dir, dtype="float32", mesh=mesh)
    assert gen.mesh.devices.size == 8
    q_spec = gen.model.blocks.q_kernel[...].sharding.spec
    assert q_spec == jax.sharding.PartitionSpec(None, "fsdp", "tensor", None)
    got = gen.generate(PROMPTS, SamplingConfig(max_new_tokens=24, stop_sequences=[stop], slots=8))
    assert [o.token_ids for o in got] == [o.token_ids for o in want]
    assert [o.text for o in got] == [o.text for o in want]


def test_kv_cache_is_sharded_batch_and_heads(model_dir):
    gen = Generator.from_pretrained(model_dir, dtype="float32", mesh="data=2,fsdp=2,tensor=2")
    from octojax.generate.engine import _Run

    eng = gen.engine(8)
    with jax.set_mesh(gen.mesh):
        run = _Run(eng, [[1, 2]] * 8, [4] * 8, SamplingParams(), 0, list(range(8)), None, None)
    spec = run.slots.k_LBSKH.sharding.spec
    assert spec[1] == ("data", "fsdp")
    # heads over tensor when there are several K/V heads; one multi-query head stays whole
    want_heads = None if gen.model.cfg.multi_query else "tensor"
    assert (spec[3] if len(spec) > 3 else None) == want_heads


def test_continuous_equals_static_with_refills(model_dir):
    gen = Generator.from_pretrained(model_dir, dtype="float32")
    prompts = PROMPTS * 2
    limits = [5, 30, 9, 17, 22, 3, 12, 8]  # rows end at different times: slots get refilled
    for sampling in (SamplingConfig(slots=4, seed=4), SamplingConfig(slots=4, seed=4, **SAMPLING)):
        kw = dict(max_new_tokens_per_prompt=limits)
        static = gen.generate(prompts, sampling, scheduler="static", **kw)
        static_stats = gen.last_stats
        cont = gen.generate(prompts, sampling, scheduler="continuous", **kw)
        assert [o.token_ids for o in cont] == [o.token_ids for o in static]
        assert [len(o.token_ids) for o in cont] == limits  # eos is never sampled here
        assert gen.last_stats["decode_steps"] < static_stats["decode_steps"]


def test_prefix_sharing_equals_separate_prompts(model_dir):
    gen = Generator.from_pretrained(model_dir, dtype="float32")
    n = 5
    shared = [p for p in PROMPTS[:2] for _ in range(n)]
    greedy = gen.generate(shared, SamplingConfig(max_new_tokens=16, slots=4))
    assert gen.last_stats["prefills"] == 2  # one prefill per distinct prompt
    alone = [gen.generate([p], SamplingConfig(max_new_tokens=16, slots=4))[0] for p in PROMPTS[:2]]
    for i, o in enumerate(greedy):
        assert o.token_ids == alone[i // n].token_ids

    kw = SamplingConfig(max_new_tokens=16, seed=7, slots=4, **SAMPLING)
    a = gen.generate(shared, kw)
    b = gen.generate(shared, kw, scheduler="static")
    assert [o.token_ids for o in a] == [o.token_ids for o in b]  # same seed: same samples
    assert len({tuple(o.token_ids) for o in a[:n]}) > 1  # the n samples differ
    # row i of a call samples from fold_in(key(seed), i), whatever else is in the call
    one = gen.generate([PROMPTS[1]] * 7, kw)
    # n_samples repeats each prompt in the call: the same rows as repeating it by hand
    assert [o.token_ids for o in gen.generate(PROMPTS[:2], kw.replace(n_samples=n))] == [
        o.token_ids for o in a
    ]
    assert one[5].token_ids == a[5].token_ids


def test_stop_when_cuts_at_first_token_where_it_holds(model_dir):
    gen = Generator.from_pretrained(model_dir, dtype="float32")
    kw = SamplingConfig(max_new_tokens=40, slots=4)
    full = gen.generate(PROMPTS[:1], kw)[0]
    out = gen.generate(PROMPTS[:1], kw, stop_when=lambda t: len(t) >= 9)[0]
    assert out.finish_reason == "stop_sequence"
    assert full.token_ids[: len(out.token_ids)] == out.token_ids
    text = lambda ids: gen.tokenizer.decode(ids, skip_special_tokens=False)  # noqa: E731
    assert len(text(out.token_ids)) >= 9 > len(text(out.token_ids[:-1]))


def test_sample_rows_is_per_row_and_matches_filtered_distribution():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05] + [1e-9] * 100]))
    big = jnp.tile(logits, (20000, 1))
    keys = jax.random.split(jax.random.key(0), 20000)
    p = SamplingParams(1.0, top_p=0.79)
    draws = np.asarray(sample_rows(big, keys, p))
    assert set(np.unique(draws)) == {0, 1}
    assert abs((draws == 0).mean() - 0.5 / 0.8) < 0.02
    # a row whose nucleus is wider than the candidate set takes the full path, and only it
    flat = jnp.zeros((1, 104))
    mixed = jnp.concatenate([logits, flat])
    k2 = keys[:2]
    both = np.asarray(sample_rows(mixed, k2, SamplingParams(1.0, top_p=0.99)))
    assert both[0] == np.asarray(sample_rows(logits, k2[:1], SamplingParams(1.0, top_p=0.99)))[0]
    kept = np.asarray(filter_logits(flat, SamplingParams(1.0, top_p=0.99)) > -1e30).sum()
    assert kept > 64  # really wider than the 64 candidates


def test_helpers():
    got = [length_bucket(n, 1000) for n in (1, 16, 17, 33, 65, 129, 900)]
    assert got == [16, 16, 24, 48, 96, 192, 1000]
    ids = list(range(10))
    assert first_true(ids, 0, lambda t: len(t) >= 7) == 7
    assert first_true(ids, 6, lambda t: 4 in t) == 7  # lo is known to be false
