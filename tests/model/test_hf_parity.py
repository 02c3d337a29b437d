"""Logits of octojax's GPTBigCode match transformers' PyTorch implementation (float32)."""

import jax.numpy as jnp
import numpy as np
import pytest
from helpers.hf_reference import hf_logits, make_hf_model, save_hf

from octojax.convert import load_hf_model

# Measured here (2026-11-25, CPU, jax 0.10.2, torch 2.13.0): max |diff| 1.0e-6 to 1.2e-6 for all
# four cases, with and without left padding, at max |logit| 2.3-2.6; the issue asks for 1e-4.
ATOL = 1e-4

CASES = [
    pytest.param(True, "gelu_pytorch_tanh", 72, id="mqa-tanh-inner72"),
    pytest.param(True, "gelu", None, id="mqa-erf-inner4d"),
    pytest.param(False, "gelu_pytorch_tanh", None, id="mha-tanh-inner4d"),
    pytest.param(False, "gelu", 100, id="mha-erf-inner100"),
]


@pytest.mark.parametrize("multi_query,activation,n_inner", CASES)
def test_logits_match_transformers(tmp_path, multi_query, activation, n_inner):
    hf = make_hf_model(multi_query=multi_query, activation=activation, n_inner=n_inner)
    model = load_hf_model(save_hf(hf, tmp_path), progress=False)
    assert model.cfg.multi_query == multi_query
    assert model.cfg.gelu_approximate == (activation != "gelu")
    ids = np.random.RandomState(0).randint(0, 301, (3, 17))

    ref = hf_logits(hf, ids)
    out = np.asarray(model(jnp.asarray(ids)))
    assert np.abs(ref).max() > 1.0  # the weights are large enough for errors to show
    np.testing.assert_allclose(out, ref, atol=ATOL, rtol=0)


@pytest.mark.parametrize("multi_query,activation,n_inner", CASES[:1] + CASES[2:3])
def test_left_padded_logits_match_transformers(tmp_path, multi_query, activation, n_inner):
    hf = make_hf_model(multi_query=multi_query, activation=activation, n_inner=n_inner)
    model = load_hf_model(save_hf(hf, tmp_path), progress=False)
    rs = np.random.RandomState(1)
    ids = rs.randint(1, 301, (3, 12))
    mask = np.ones_like(ids)
    mask[1, :5] = 0
    mask[2, :11] = 0  # a one-token prompt
    ids = ids * mask

    ref = hf_logits(hf, ids, mask)
    out = np.asarray(model(jnp.asarray(ids), segment_ids_BT=jnp.asarray(mask)))
    real = mask.astype(bool)
    np.testing.assert_allclose(out[real], ref[real], atol=ATOL, rtol=0)
    assert np.isfinite(out).all()  # padding rows attend to padding, never to nothing


def test_right_padded_logits_match_transformers(tmp_path):
    hf = make_hf_model()
    model = load_hf_model(save_hf(hf, tmp_path), progress=False)
    ids = np.random.RandomState(2).randint(1, 301, (2, 10))
    mask = np.ones_like(ids)
    mask[0, 6:] = 0
    ref = hf_logits(hf, ids, mask)
    out = np.asarray(model(jnp.asarray(ids), segment_ids_BT=jnp.asarray(mask)))
    np.testing.assert_allclose(out[mask == 1], ref[mask == 1], atol=ATOL, rtol=0)
