"""LoRA dropout (PEFT's lora_dropout): adapters run beside the kernels on dropped-out inputs.

The unmerged path must equal the merged one when nothing is dropped, differ when something is,
be reproducible from its key, and train through the real step (micro-batches included).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from helpers.train_helpers import data

from octojax.model import get_preset, init_model, param_dict
from octojax.model.lora import LORA_TARGETS, LayerAdapters, init_lora, merge_layer
from octojax.train.step import StepSpec, make_train_step, token_losses

ALL_TARGETS = list(LORA_TARGETS)
SPECS = {
    "q_kernel": "btd,dnh->btnh",
    "kv_kernel": "btd,dckh->btckh",
    "o_kernel": "btnh,nhd->btd",
    "fc_kernel": "btd,dm->btm",
    "proj_kernel": "btm,md->btd",
}


def _trained_adapters(cfg, seed=0):
    """Adapters with a non-zero B, so that the adapter path changes the output."""
    lora = init_lora(cfg, ALL_TARGETS, 4, jax.random.key(seed))
    return jax.tree.map(lambda x: x + 0.05 * jnp.ones_like(x), lora)


def test_unmerged_delta_equals_merged_kernel_without_dropout():
    cfg = get_preset("test")
    base = param_dict(init_model(cfg))["blocks"]
    lora = _trained_adapters(cfg)
    layer = jax.tree.map(lambda a: a[0], base)
    layer_lora = jax.tree.map(lambda a: a[0], lora)
    merged = merge_layer(layer, layer_lora, 2.0)
    adapters = LayerAdapters(layer_lora, 2.0, 0.0, jax.random.key(0))
    rng = np.random.RandomState(0)
    for name, spec in SPECS.items():
        x_shape = (2, 3, *layer[name].shape[: LORA_TARGETS[name.removesuffix("_kernel")][1]])
        x = jnp.asarray(rng.randn(*x_shape), jnp.float32)
        want = jnp.einsum(spec, x, merged[name])
        got = jnp.einsum(spec, x, layer[name]) + adapters.delta(name, x)
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-5, err_msg=name)


def _loss(graphdef, base, lora, batch, dropout, key):
    loss_sum, weight = token_losses(graphdef, base, batch, lora, 2.0, loss_chunk=0,
                                    lora_dropout=dropout, dropout_key=key)  # fmt: skip
    return float(loss_sum / weight)


def test_dropout_changes_the_loss_reproducibly_and_only_with_a_key():
    cfg = get_preset("test")
    model = init_model(cfg)
    graphdef, base = nnx.graphdef(model), param_dict(model)
    lora = _trained_adapters(cfg)
    batch = {k: jnp.asarray(v) for k, v in next(data()).items()}
    merged = _loss(graphdef, base, lora, batch, 0.0, None)
    assert _loss(graphdef, base, lora, batch, 0.5, None) == merged  # no key: evaluation
    a = _loss(graphdef, base, lora, batch, 0.5, jax.random.key(1))
    assert a != merged
    assert a == _loss(graphdef, base, lora, batch, 0.5, jax.random.key(1))
    assert a != _loss(graphdef, base, lora, batch, 0.5, jax.random.key(2))


def test_train_step_with_lora_dropout_and_micro_batches():
    cfg = get_preset("test")
    model = init_model(cfg)
    graphdef, base = nnx.graphdef(model), param_dict(model)
    lora = init_lora(cfg, ["q", "kv", "o", "proj"], 4, jax.random.key(0))
    tx = optax.adam(1e-2)
    batch = {k: jnp.asarray(v) for k, v in next(data()).items()}

    def run(dropout):
        spec = StepSpec(graphdef, 2.0, num_micro_batches=2, lora_dropout=dropout, seed=3)
        step = jax.jit(make_train_step(spec, tx))
        state = {"step": jnp.zeros((), jnp.int32), "params": lora, "opt_state": tx.init(lora)}
        losses = []
        for _ in range(3):
            state, metrics = step(state, base, batch)
            losses.append(float(metrics["loss"]))
        return state, losses

    with_dropout, losses = run(0.3)
    again, losses_again = run(0.3)
    _, plain = run(0.0)
    assert all(np.isfinite(losses)) and losses == losses_again  # (seed, step, micro) -> masks
    assert losses[1:] != plain[1:]  # B starts at zero: step 1's loss is the base model's
    assert float(jnp.abs(with_dropout["params"]["proj_kernel"]["b"]).max()) > 0
