"""The compiler's figures for generation: the engine's own jitted programs (octojax/generate/
decode.py) -- `prefill` of one prompt bucket and `decode_chunk` over the slots' sharded KV cache --
compiled for one host's devices (each host of a slice generates its share of the prompts on its
own devices, octojax/generate/mesh.py). Inputs are abstract, as for the train step.

Per device, generation holds the parameters and the slots (cache + bookkeeping) throughout; the
peak is the larger of a decode chunk (its temporaries and token outputs; the slots are donated)
and a prefill while the slots wait (its temporaries and the prefix it returns).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding, PartitionSpec

from octojax.generate.sampling import SamplingParams
from octojax.mesh import MeshSection, build_mesh
from octojax.model.config import ModelConfig
from octojax.plan.measure import CompiledProgram, abstract, bytes_of, lower_and_compile

# HumanEvalPack's sampling (the paper: temperature 0.2, top-p 0.95): top-p sorts each row's
# logits, the most memory a sampling setting needs. The decode chunk length is the engine's.
SAMPLING = SamplingParams(temperature=0.2, top_p=0.95)
CHUNK = 32


@dataclasses.dataclass(frozen=True)
class GenerationShape:
    """Slots (rows decoded at once), cache columns (prompt + new tokens), prefill bucket."""

    slots: int
    length: int
    prompt: int


def cache_columns(model: ModelConfig, prompt: int, new_tokens: int) -> int:
    """The engine's cache size: prompt + new tokens rounded up to 128, at most n_positions."""
    return min(-(-(prompt + new_tokens) // 128) * 128, model.n_positions)


def host_devices(devices: list) -> list:
    """The first host's devices (one host generates on its own devices only)."""
    first = devices[0].process_index
    return [d for d in devices if d.process_index == first]


def generation_model(model: ModelConfig) -> ModelConfig:
    """The model as `octojax generate` loads it: bf16 parameters and compute."""
    return model.replace(dtype="bfloat16", param_dtype="bfloat16")


def _abstract_state(model: ModelConfig, mesh):
    """(graphdef, nnx.State of sharded ShapeDtypeStructs): the engine's nnx.split(model)."""
    from flax import nnx

    from octojax.generate.mesh import param_shardings
    from octojax.model.gptbigcode import abstract_model, param_shapes

    graphdef, state = nnx.split(abstract_model(model))
    nnx.replace_by_pure_dict(state, abstract(param_shapes(model), param_shardings(model, mesh)))
    return graphdef, state


def _abstract_slots(model: ModelConfig, mesh, slots: int, length: int):
    """The SlotState of `slots` rows x `length` columns, cache sharded by CACHE_AXES."""
    from octojax.generate.decode import SlotState
    from octojax.sharding import CACHE_AXES, named_sharding

    shape = (model.n_layer, slots, length, model.kv_heads, model.head_dim)
    cache = jax.ShapeDtypeStruct(
        shape, jnp.dtype(model.dtype), sharding=named_sharding(CACHE_AXES, shape, mesh)
    )
    rep = NamedSharding(mesh, PartitionSpec())

    def row(dtype, *extra):
        return jax.ShapeDtypeStruct((slots, *extra), dtype, sharding=rep)

    key_shape = jax.eval_shape(lambda: jax.random.key_data(jax.random.key(0))).shape
    return SlotState(
        k_LBSKH=cache, v_LBSKH=cache, length_B=row(jnp.int32), next_token_B=row(jnp.int32),
        num_tokens_B=row(jnp.int32), limit_B=row(jnp.int32), done_B=row(jnp.bool_),
        key_BP=row(jnp.uint32, *key_shape),
    )  # fmt: skip


@dataclasses.dataclass
class GenerationPrograms:
    """The compiled prefill and decode chunk, the mesh, slots (rounded to the batch shards) and
    the per-device bytes of the slot state (live across both)."""

    prefill: CompiledProgram
    decode: CompiledProgram
    mesh: jax.sharding.Mesh
    shape: GenerationShape
    slot_bytes: int


def compile_generation(
    model: ModelConfig, devices: list, mesh_spec: str | MeshSection, shape: GenerationShape
) -> GenerationPrograms:
    """Compile prefill (1 prompt x shape.prompt) and decode_chunk (slots x length cache) for the
    first host's devices of `devices` with the generation mesh `mesh_spec`."""
    from octojax.generate.decode import decode_chunk, prefill

    section = MeshSection.parse(mesh_spec) if isinstance(mesh_spec, str) else mesh_spec
    mesh = build_mesh(section, host_devices(devices), subset_ok=True)
    ways = mesh.shape["data"] * mesh.shape["fsdp"]
    slots = -(-shape.slots // ways) * ways  # as Engine: whole rows on every batch shard
    shape = dataclasses.replace(shape, slots=slots)
    rep = NamedSharding(mesh, PartitionSpec())
    from octojax.sharding import use_rules

    with use_rules(section.logical_rules()), jax.set_mesh(mesh):
        graphdef, state = _abstract_state(model, mesh)
        tokens = jax.ShapeDtypeStruct((1, shape.prompt), jnp.int32, sharding=rep)
        lengths = jax.ShapeDtypeStruct((1,), jnp.int32, sharding=rep)
        pre = lower_and_compile(prefill, graphdef, state, tokens, lengths)
        slots_in = _abstract_slots(model, mesh, slots, shape.length)
        stop = jax.ShapeDtypeStruct((slots,), jnp.bool_, sharding=rep)
        eos = jax.ShapeDtypeStruct((1,), jnp.int32, sharding=rep)
        free = jax.ShapeDtypeStruct((), jnp.int32, sharding=rep)
        dec = lower_and_compile(
            decode_chunk, graphdef, state, slots_in, stop, eos, free,
            steps=CHUNK, sampling=SAMPLING, pad_id=0,
        )  # fmt: skip
    return GenerationPrograms(pre, dec, mesh, shape, bytes_of(slots_in))
