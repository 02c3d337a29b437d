"""The compiler's figures for a training config: the real jitted train step compiled (nothing
runs) for the config's mesh over any devices -- local ones, or a TPU slice's compile-only devices
from libtpu (octojax/plan/tpu.py) -- and XLA's `memory_analysis()` / `cost_analysis()` of it.

Everything the step is given is abstract (`jax.ShapeDtypeStruct` with a `NamedSharding`): no
array is made and no op runs on the target devices, which may not exist on this host.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding, PartitionSpec

from octojax.plan.estimate import plan_model_config
from octojax.train.config import TrainConfig


def abstract(tree: Any, shardings: Any) -> Any:
    """ShapeDtypeStructs of a tree of shapes, each with its sharding."""
    return jax.tree.map(
        lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), tree, shardings
    )


def opt_state_shardings(tx, shapes: dict, shardings: dict, replicated: NamedSharding) -> Any:
    """The optimizer state's shardings: moments like their parameters, counters replicated.

    optax.tree_map_params calls tx.init on a placeholder, which makes arrays (the counters);
    it runs inside a trace here, so they are tracers and nothing executes on any device.
    """
    out: list = []

    def trace():
        out.append(
            optax.tree_map_params(
                tx,
                lambda _, s: s,
                jax.eval_shape(tx.init, shapes),
                shardings,
                transform_non_params=lambda _: replicated,
                is_leaf=lambda x: isinstance(x, NamedSharding),
            )  # fmt: skip
        )
        return jnp.zeros(())

    jax.eval_shape(trace)
    return out[0]


@dataclasses.dataclass
class TrainInputs:
    """The abstract arguments of the train step and their shardings."""

    state: dict
    state_shardings: dict
    frozen: dict | None
    frozen_shardings: dict | None
    batch: dict
    tx: optax.GradientTransformation


def train_inputs(cfg: TrainConfig, model, mesh, seq_len: int) -> TrainInputs:
    """State {step, params (or LoRA adapters), opt_state}, the frozen LoRA base and a global
    batch [B, seq_len], all abstract and sharded as the trainer shards them."""
    from octojax.model.gptbigcode import param_logical_axes, param_shapes
    from octojax.model.lora import init_lora, lora_logical_axes
    from octojax.sharding import BATCH_KEYS, batch_sharding, tree_shardings
    from octojax.train.optimizer import make_optimizer

    t, lora = cfg.train, cfg.lora
    shapes = param_shapes(model)
    shardings = tree_shardings(param_logical_axes(model), shapes, mesh)
    frozen = frozen_sh = None
    if lora.enabled:
        frozen, frozen_sh = abstract(shapes, shardings), shardings
        shapes = jax.eval_shape(
            lambda: init_lora(model, lora.targets, lora.rank, jax.random.key(0))
        )
        shardings = tree_shardings(lora_logical_axes(model, lora.targets), shapes, mesh)
    tx = make_optimizer(cfg.optimizer, t.steps)
    rep = NamedSharding(mesh, PartitionSpec())
    opt_sh = opt_state_shardings(tx, shapes, shardings, rep)
    state_sh = {"step": rep, "params": shardings, "opt_state": opt_sh}
    state = {
        "step": jax.ShapeDtypeStruct((), jnp.int32),
        "params": shapes,
        "opt_state": jax.eval_shape(tx.init, shapes),
    }
    B, rows = t.global_batch_size, batch_sharding(mesh)
    batch = {
        k: jax.ShapeDtypeStruct(
            (B, seq_len), np.float32 if k == "loss_weights" else np.int32, sharding=rows
        )
        for k in BATCH_KEYS
    }
    return TrainInputs(abstract(state, state_sh), state_sh, frozen, frozen_sh, batch, tx)


@dataclasses.dataclass
class CompiledProgram:
    """One compiled program and how long lowering and compiling took (seconds)."""

    compiled: Any  # jax.stages.Compiled
    lower_s: float
    compile_s: float


def lower_and_compile(jitted, *args, **kwargs) -> CompiledProgram:
    """jitted.lower(*args).compile(), timed."""
    t0 = time.perf_counter()
    lowered = jitted.lower(*args, **kwargs)
    t1 = time.perf_counter()
    compiled = lowered.compile()
    return CompiledProgram(compiled, t1 - t0, time.perf_counter() - t1)


def compile_train_step(cfg: TrainConfig, seq_len: int, devices: list | None = None):
    """The real train step (octojax/train/step.py, jitted with the trainer's shardings and
    donation) compiled for cfg's mesh over `devices` (default: all local). (program, mesh)."""
    from flax import nnx

    from octojax.mesh import build_mesh
    from octojax.model.gptbigcode import abstract_model
    from octojax.sharding import use_rules
    from octojax.train.step import make_train_step, step_spec

    model, _ = plan_model_config(cfg)
    mesh = build_mesh(cfg.mesh, devices)
    with use_rules(cfg.mesh.logical_rules()), jax.set_mesh(mesh):
        inputs = train_inputs(cfg, model, mesh, seq_len)
        spec = step_spec(cfg, model, nnx.graphdef(abstract_model(model)))
        step = jax.jit(
            make_train_step(spec, inputs.tx),
            in_shardings=(inputs.state_shardings, inputs.frozen_shardings, None),
            out_shardings=(inputs.state_shardings, inputs.state_shardings["step"]),
            donate_argnums=(0,),
        )
        program = lower_and_compile(step, inputs.state, inputs.frozen, inputs.batch)
    return program, mesh


def memory_figures(compiled) -> dict[str, int]:
    """memory_analysis() per device: arguments, outputs, aliased, temporaries, generated code,
    and total = arguments + outputs - aliased + temporaries + generated code."""
    m = compiled.memory_analysis()
    out = {
        "arguments": m.argument_size_in_bytes,
        "outputs": m.output_size_in_bytes,
        "aliased": m.alias_size_in_bytes,
        "temporaries": m.temp_size_in_bytes,
        "generated_code": m.generated_code_size_in_bytes,
    }
    out["total"] = sum(out.values()) - 2 * out["aliased"]
    return out


def measure_compiled(cfg: TrainConfig, seq_len: int, devices: list | None = None) -> dict:
    """XLA's memory_analysis() of the real train step compiled for cfg's mesh (nothing runs):
    bytes per device of arguments, outputs, aliased outputs, temporaries and generated code;
    `total` = arguments + outputs - aliased + temporaries (what the estimate predicts), and
    `total_with_code` adds the generated code."""
    program, _ = compile_train_step(cfg, seq_len, devices)
    out = memory_figures(program.compiled)
    out["total_with_code"] = out["total"]
    out["total"] -= out["generated_code"]
    return out


def bytes_of(tree: Any) -> int:
    """Per-device bytes of a tree of sharded ShapeDtypeStructs (each leaf's shard shape)."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        shape = leaf.sharding.shard_shape(leaf.shape) if leaf.sharding is not None else leaf.shape
        total += math.prod(shape) * jnp.dtype(leaf.dtype).itemsize
    return total
