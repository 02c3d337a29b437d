"""The training step: next-token loss with gradient accumulation, AdamW update, one jax.jit.

Batches hold {"inputs", "targets", "segment_ids", "positions", "loss_weights"} of [B, T]. The loss
is the weighted mean of token cross-entropies over the whole global batch (padding has weight 0),
so accumulating micro-batches gives the same gradient as one big batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import jax
import jax.numpy as jnp
import optax
from flax import nnx

from octojax.model.gptbigcode import GPTBigCode
from octojax.sharding import constrain
from octojax.train.loss import cross_entropy


@dataclasses.dataclass(frozen=True)
class StepSpec:
    """Static facts the step needs: how to rebuild the model, and LoRA settings."""

    graphdef: nnx.GraphDef
    lora_scale: float | None  # None: full fine-tuning (trainable = all params)
    num_micro_batches: int = 1
    # cross-entropy over chunks of this many positions (octojax/train/loss.py): None = auto
    # (chunked for vocabularies >= 16k), 0 = plain full-logits loss
    loss_chunk: int | None = None
    lora_dropout: float = 0.0  # PEFT's lora_dropout; > 0 runs the adapters unmerged
    seed: int = 0  # dropout masks: a key from (seed, step, micro-batch)


def step_spec(cfg, model_cfg, graphdef: nnx.GraphDef) -> StepSpec:
    """The StepSpec of a TrainConfig's step (as the trainer builds it): micro-batch count, loss
    chunking, LoRA scale and dropout, seed. cfg: octojax.train.config.TrainConfig."""
    t, lora = cfg.train, cfg.lora
    return StepSpec(
        graphdef=graphdef,
        lora_scale=lora.alpha / lora.rank if lora.enabled else None,
        num_micro_batches=t.global_batch_size // (t.micro_batch_size or t.global_batch_size),
        loss_chunk=t.loss_chunk,
        lora_dropout=lora.dropout if lora.enabled else 0.0,
        seed=t.seed,
    )


def token_losses(
    graphdef: nnx.GraphDef,
    params: dict,
    batch: dict[str, jax.Array],
    lora: dict | None = None,
    lora_scale: float = 1.0,
    *,
    loss_chunk: int | None = None,
    lora_dropout: float = 0.0,
    dropout_key: jax.Array | None = None,
) -> tuple[jax.Array, jax.Array]:
    """(sum of weighted token cross-entropies, sum of weights) for one (micro-)batch.

    The logits are never materialised whole when the loss is chunked (see octojax/train/loss.py).
    """
    model: GPTBigCode = nnx.merge(graphdef, params)
    h_BTD, _ = model.hidden_states(
        batch["inputs"],
        segment_ids_BT=batch["segment_ids"],
        positions_BT=batch["positions"],
        lora=lora,
        lora_scale=lora_scale,
        lora_dropout=lora_dropout,
        dropout_key=dropout_key,
    )
    return cross_entropy(
        h_BTD,
        batch["targets"],
        batch["loss_weights"],
        model.logits,
        loss_chunk=loss_chunk,
        vocab_size=model.cfg.vocab_size,
    )


def _split_micro(x_BT: jax.Array, n: int) -> jax.Array:
    """[B, ...] -> [n, B/n, ...] with micro-batch j = rows j, j+n, ...: every data shard holds
    rows of every micro-batch, so each micro-step stays evenly sharded."""
    B = x_BT.shape[0]
    x = x_BT.reshape(B // n, n, *x_BT.shape[1:]).swapaxes(0, 1)
    return constrain(x, (None, "batch", "length"))


def make_train_step(
    spec: StepSpec, tx: optax.GradientTransformation
) -> Callable[[dict, dict | None, dict], tuple[dict, dict]]:
    """step(state, frozen, batch) -> (state, metrics); state = {step, params, opt_state}."""

    def loss_and_grad(trainable, frozen, batch, step_key):
        def f(trainable, micro, key):
            chunk = spec.loss_chunk
            if spec.lora_scale is None:
                return token_losses(spec.graphdef, trainable, micro, loss_chunk=chunk)
            return token_losses(spec.graphdef, frozen, micro, trainable, spec.lora_scale,
                                loss_chunk=chunk, lora_dropout=spec.lora_dropout, dropout_key=key)  # fmt: skip

        grad_fn = jax.value_and_grad(f, has_aux=True)
        if spec.num_micro_batches == 1:
            (loss_sum, weight), grads = grad_fn(trainable, batch, step_key)
            return loss_sum, weight, grads

        micro = {k: _split_micro(v, spec.num_micro_batches) for k, v in batch.items()}

        def accumulate(carry, m_j):
            loss_sum, weight, grads = carry
            m, j = m_j
            (l_sum, w), g = grad_fn(trainable, m, jax.random.fold_in(step_key, j))
            return (loss_sum + l_sum, weight + w, jax.tree.map(jnp.add, grads, g)), None

        zeros = jax.tree.map(lambda p: jnp.zeros(p.shape, jnp.float32), trainable)
        init = (jnp.zeros((), jnp.float32), jnp.zeros((), jnp.float32), zeros)
        xs = (micro, jnp.arange(spec.num_micro_batches))
        (loss_sum, weight, grads), _ = jax.lax.scan(accumulate, init, xs)
        return loss_sum, weight, grads

    def step(state: dict, frozen: dict | None, batch: dict) -> tuple[dict, dict]:
        step_key = jax.random.fold_in(jax.random.key(spec.seed), state["step"])
        loss_sum, weight, grads = loss_and_grad(state["params"], frozen, batch, step_key)
        denom = jnp.maximum(weight, 1.0)
        grads = jax.tree.map(lambda g: (g / denom).astype(jnp.float32), grads)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        new_state = {"step": state["step"] + 1, "params": params, "opt_state": opt_state}
        metrics = {
            "loss": loss_sum / denom,
            "grad_norm": optax.tree.norm(grads),
            "tokens": weight,
        }
        return new_state, metrics

    return step
