"""The compiler's figures for a training config: the real train step compiled (nothing runs)
for the config's mesh, and XLA's `memory_analysis()` of it -- what the estimate is checked against.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from octojax.plan.estimate import plan_model_config
from octojax.train.config import TrainConfig


def measure_compiled(cfg: TrainConfig, seq_len: int, devices: list | None = None) -> dict:
    """XLA's memory_analysis() of the real train step compiled for cfg's mesh on local devices
    (nothing runs): bytes per device of arguments, outputs, aliased outputs and temporaries,
    and `total` = arguments + outputs - aliased + temporaries (what the estimate predicts)."""
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from octojax.mesh import build_mesh
    from octojax.model.gptbigcode import abstract_model, param_logical_axes, param_shapes
    from octojax.model.lora import init_lora, lora_logical_axes
    from octojax.sharding import BATCH_KEYS, batch_sharding, tree_shardings, use_rules
    from octojax.train.optimizer import make_optimizer
    from octojax.train.step import StepSpec, make_train_step

    model, _ = plan_model_config(cfg)
    mesh = build_mesh(cfg.mesh, devices)
    t, lora = cfg.train, cfg.lora
    with use_rules(cfg.mesh.logical_rules()), jax.set_mesh(mesh):
        shapes = param_shapes(model)
        shardings = tree_shardings(param_logical_axes(model), shapes, mesh)
        frozen = frozen_sh = scale = None
        if lora.enabled:
            frozen, frozen_sh, scale = shapes, shardings, lora.alpha / lora.rank
            shapes = jax.eval_shape(
                lambda: init_lora(model, lora.targets, lora.rank, jax.random.key(0))
            )
            shardings = tree_shardings(lora_logical_axes(model, lora.targets), shapes, mesh)
        tx = make_optimizer(cfg.optimizer, t.steps)
        rep = NamedSharding(mesh, PartitionSpec())
        opt = jax.eval_shape(tx.init, shapes)
        opt_sh = optax.tree_map_params(
            tx, lambda _, s: s, opt, shardings, transform_non_params=lambda _: rep,
            is_leaf=lambda x: isinstance(x, NamedSharding),
        )  # fmt: skip
        state_sh = {"step": rep, "params": shardings, "opt_state": opt_sh}
        state = {"step": jax.ShapeDtypeStruct((), jnp.int32), "params": shapes, "opt_state": opt}

        def abstract(tree, sh):
            return jax.tree.map(
                lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, sh
            )

        B = t.global_batch_size
        batch = {
            k: jax.ShapeDtypeStruct((B, seq_len), np.float32 if k == "loss_weights" else np.int32,
                                    sharding=batch_sharding(mesh))
            for k in BATCH_KEYS
        }  # fmt: skip
        spec = StepSpec(
            nnx.graphdef(abstract_model(model)), scale, B // (t.micro_batch_size or B), t.loss_chunk
        )
        step = jax.jit(
            make_train_step(spec, tx), in_shardings=(state_sh, frozen_sh, None),
            out_shardings=(state_sh, rep), donate_argnums=(0,),
        )  # fmt: skip
        frozen_arg = None if frozen is None else abstract(frozen, frozen_sh)
        m = step.lower(abstract(state, state_sh), frozen_arg, batch).compile().memory_analysis()
    out = {
        "arguments": m.argument_size_in_bytes, "outputs": m.output_size_in_bytes,
        "aliased": m.alias_size_in_bytes, "temporaries": m.temp_size_in_bytes,
    }  # fmt: skip
    out["total"] = out["arguments"] + out["outputs"] - out["aliased"] + out["temporaries"]
    return out
