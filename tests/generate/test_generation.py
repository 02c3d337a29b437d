"""Generation: greedy parity with transformers, sampling filters, stop sequences, tokenizers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers.hf_reference import make_hf_model, save_hf, torch

from octojax.convert import load_hf_model
from octojax.generate import Generator, SamplingParams, generate_tokens
from octojax.generate.sampling import filter_logits, sample
from octojax.generate.testing import tiny_model_dir
from octojax.sampling_config import SamplingConfig
from octojax.tokenizer import STARCODER_SPECIAL_TOKENS, load_tokenizer, train_bpe_tokenizer


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_model_dir(tmp_path_factory.mktemp("tiny"))


@pytest.mark.parametrize("multi_query", [True, False])
def test_greedy_matches_transformers_generate_with_left_padding(tmp_path, multi_query):
    hf = make_hf_model(multi_query=multi_query, weight_scale=2.0)
    model = load_hf_model(save_hf(hf, tmp_path), progress=False)
    rs = np.random.RandomState(0)
    T, new = 11, 40
    ids = rs.randint(1, 301, (3, T))
    mask = np.ones_like(ids)
    mask[1, :4] = 0
    mask[2, :9] = 0
    ids = ids * mask
    eos = 300  # never the argmax here: all 40 tokens are compared
    toks, n = generate_tokens(model, ids, mask, max_new_tokens=new, eos_ids=(eos,))
    with torch.no_grad():
        ref = hf.generate(
            torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=new,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=0,
        )[:, T:].numpy()
    assert ref.shape == (3, new) and (n == new).all()
    np.testing.assert_array_equal(toks, ref)
    assert len({tuple(r) for r in toks}) == 3  # rows really differ


def test_eos_stops_rows_and_pads_after(tmp_path):
    hf = make_hf_model(weight_scale=8.0)
    model = load_hf_model(save_hf(hf, tmp_path), progress=False)
    ids = np.random.RandomState(1).randint(1, 301, (2, 8))
    mask = np.ones_like(ids)
    free, _ = generate_tokens(model, ids, mask, max_new_tokens=12, eos_ids=(300,))
    eos = int(free[0, 3])  # make row 0's 4th token the end-of-text token
    toks, n = generate_tokens(model, ids, mask, max_new_tokens=12, eos_ids=(eos,), pad_id=299)
    assert n[0] == 3 and (toks[0, 3:] == 299).all()
    np.testing.assert_array_equal(toks[0, :3], free[0, :3])


def test_top_k_and_top_p_filters():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    keep = lambda p: (
        np.isfinite(np.asarray(filter_logits(logits, p)))
        & (np.asarray(filter_logits(logits, p)) > -1e30)
    )
    np.testing.assert_array_equal(keep(SamplingParams(1.0, top_k=2)), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(keep(SamplingParams(1.0, top_p=0.5)), [[1, 0, 0, 0]])
    np.testing.assert_array_equal(keep(SamplingParams(1.0, top_p=0.79)), [[1, 1, 0, 0]])
    np.testing.assert_array_equal(keep(SamplingParams(1.0, top_p=0.81)), [[1, 1, 1, 0]])
    # sampled frequencies follow the renormalised distribution
    big = jnp.tile(logits, (20000, 1))
    draws = np.asarray(sample(big, jax.random.key(0), SamplingParams(1.0, top_k=2)))
    assert set(np.unique(draws)) == {0, 1}
    assert abs((draws == 0).mean() - 0.5 / 0.8) < 0.02
    with pytest.raises(ValueError):
        SamplingParams(top_p=0.0)


def test_sampling_is_seeded_and_reproducible(tiny_dir):
    gen = Generator.from_pretrained(tiny_dir, dtype="float32")
    prompts = ["def add(a, b):", "import os\n"]
    kw = dict(max_new_tokens=16, temperature=1.0, top_p=0.95, top_k=50)
    a = gen.generate(prompts, SamplingConfig(seed=1, **kw))
    b = gen.generate(prompts, SamplingConfig(seed=1, **kw))
    c = gen.generate(prompts, SamplingConfig(seed=2, **kw))
    assert [o.token_ids for o in a] == [o.token_ids for o in b]
    assert [o.token_ids for o in a] != [o.token_ids for o in c]


def test_stop_sequences_cut_text_and_end_rows(tiny_dir):
    gen = Generator.from_pretrained(tiny_dir, dtype="float32")
    prompt = ["def f(x):\n    return"]
    full = gen.generate(prompt, SamplingConfig(max_new_tokens=64))[0]
    assert full.finish_reason in ("length", "eos")
    stop = full.text[5:8]  # a piece of text the model will produce
    out = gen.generate(prompt, SamplingConfig(max_new_tokens=64, stop_sequences=[stop]))[0]
    assert out.finish_reason == "stop_sequence"
    assert out.text == full.text[: full.text.find(stop)]
    assert len(out.token_ids) < 64  # the row stopped early (checked between 32-token chunks)


def test_generator_batches_keep_prompt_order(tiny_dir):
    gen = Generator.from_pretrained(tiny_dir, dtype="float32")
    prompts = ["x = 1\n" * k for k in (5, 1, 3, 2)]
    together = gen.generate(prompts, SamplingConfig(max_new_tokens=8, slots=4))
    alone = [gen.generate([p], SamplingConfig(max_new_tokens=8))[0] for p in prompts]
    assert [o.token_ids for o in together] == [o.token_ids for o in alone]


def test_tiny_tokenizer_has_starcoder_specials(tmp_path):
    d = train_bpe_tokenizer(["def f():\n    return 1\n"] * 50, tmp_path, vocab_size=300)
    tok = load_tokenizer(d)
    assert tok.eos_token == "<|endoftext|>" and tok.eos_token_id == 0
    for i, t in enumerate(STARCODER_SPECIAL_TOKENS):
        assert tok.convert_tokens_to_ids(t) == i
    text = "def f():\n    return 1\n<|endoftext|>"
    assert tok.decode(tok(text)["input_ids"]) == text
    assert load_tokenizer(d / "tokenizer.json").encode("return 1") == tok.encode("return 1")
    with pytest.raises(FileNotFoundError):
        load_tokenizer(tmp_path / "missing")


def test_stop_when_callback_ends_rows_early(tiny_dir):
    gen = Generator.from_pretrained(tiny_dir, dtype="float32")
    sampling = SamplingConfig(max_new_tokens=96)
    full = gen.generate(["class A:"], sampling)[0]
    out = gen.generate(["class A:"], sampling, stop_when=lambda text: len(text) > 3)[0]
    assert len(out.token_ids) <= 32 < len(full.token_ids)
    assert full.token_ids[: len(out.token_ids)] == out.token_ids
