"""A training step on packed rows equals the same step on every example alone (the model's
segment-id attention keeps packed examples apart; positions restart per example)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from octojax.data.pipeline import make_train_iterator
from octojax.model import get_preset, init_model


def summed_cross_entropy(
    graphdef, state, inputs, targets, weights, segment_ids=None, positions=None
):
    """sum over positions of weight * -log p(target | inputs) (the trainer divides by the weights)."""
    model = nnx.merge(graphdef, state)
    logits = model(inputs, segment_ids_BT=segment_ids, positions_BT=positions).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return jnp.sum(nll * weights)


@pytest.mark.parametrize("loss_on", ["all", "answer"])
def test_packed_step_equals_unpacked_steps(tmp_path, make_cfg, tokenizer, data_helpers, loss_on):
    rows = [{"prompt": f"Task {i}", "completion": c} for i, c in enumerate(data_helpers.CODE)]
    path = data_helpers.write_jsonl(tmp_path / "x.jsonl", rows)
    cfg = make_cfg([{"kind": "jsonl", "path": str(path)}], seq_len=128, loss_on=loss_on)
    batch = next(make_train_iterator(cfg, global_batch_size=2))
    assert batch["segment_ids"].max() >= 2, "rows must hold several examples"

    model = init_model(get_preset("test", vocab_size=len(tokenizer), n_positions=128), seed=1)
    graphdef, state = nnx.split(model)
    grad_fn = jax.jit(jax.value_and_grad(summed_cross_entropy, argnums=1), static_argnums=0)

    packed_loss, packed_grads = grad_fn(
        graphdef,
        state,
        jnp.asarray(batch["inputs"]),
        jnp.asarray(batch["targets"]),
        jnp.asarray(batch["loss_weights"]),
        jnp.asarray(batch["segment_ids"]),
        jnp.asarray(batch["positions"]),
    )

    # every example alone in its own row, right-padded with zero weights: plain causal attention
    # (no segment ids), positions from 0; causality keeps the padding out of the real tokens
    alone = {k: np.zeros((0, 128), batch[k].dtype) for k in ("inputs", "targets", "loss_weights")}
    for r in range(batch["inputs"].shape[0]):
        seg = batch["segment_ids"][r]
        for s in range(1, int(seg.max()) + 1):
            idx = np.flatnonzero(seg == s)
            for k in alone:
                row = np.zeros((1, 128), batch[k].dtype)
                row[0, : len(idx)] = batch[k][r, idx]
                alone[k] = np.concatenate([alone[k], row])
    assert len(alone["inputs"]) >= 3
    loss_sum, grads_sum = grad_fn(
        graphdef,
        state,
        jnp.asarray(alone["inputs"]),
        jnp.asarray(alone["targets"]),
        jnp.asarray(alone["loss_weights"]),
    )
    np.testing.assert_allclose(packed_loss, loss_sum, rtol=2e-5)

    lr = 0.05
    after_packed = jax.tree.map(lambda p, g: p - lr * g, state, packed_grads)
    after_unpacked = jax.tree.map(lambda p, g: p - lr * g, state, grads_sum)
    for a, b in zip(jax.tree.leaves(after_packed), jax.tree.leaves(after_unpacked)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads_sum)) > 1e-3
