"""The formula memory model of one training step on one device: nothing is compiled and no
device is needed. The mesh is resolved for N devices as `octojax/mesh.py` does; parameters,
optimizer state and gradients are split with the trainer's own rules (`octojax/sharding.py`
logical axes and `spec_for_shape` on a `jax.sharding.AbstractMesh`, so replicated dimensions such
as multi-query's single K/V head are counted whole on every device). Activations follow what JAX
saves for the backward pass under each remat policy (read off
`jax.ad_checkpoint.print_saved_residuals` for this model; see `saved_layer_bytes`), the loss its
chunked or plain logits, and the KV cache of generation is a separate line.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import optax
from jax.sharding import AbstractMesh

from octojax.config import ConfigError
from octojax.mesh import resolve_axis_sizes
from octojax.model.config import ModelConfig
from octojax.sharding import CACHE_AXES, MESH_AXES, logical_to_spec, spec_for_shape
from octojax.train.config import TrainConfig
from octojax.train.loss import resolve_loss_chunk

# Part of device memory the plan lets a step use: the rest is left for the runtime, XLA's own
# reservations and fragmentation (and the estimate's error). --usable changes it.
DEFAULT_USABLE = 0.9


def mesh_sizes(cfg: TrainConfig, n_devices: int) -> dict[str, int]:
    """Mesh axis sizes for n devices, -1 filled as build_mesh does (ICI part x DCN part)."""
    m = cfg.mesh
    dcn = {a: getattr(m, f"dcn_{a}") for a in MESH_AXES}
    n_dcn = math.prod(dcn.values())
    if n_devices % n_dcn:
        raise ConfigError(f"mesh: {n_devices} devices not divisible by the DCN sizes {dcn}")
    ici = resolve_axis_sizes({a: getattr(m, a) for a in MESH_AXES}, n_devices // n_dcn, "per-host")
    return {a: i * dcn[a] for a, i in zip(MESH_AXES, ici)}


def per_device(names: tuple, shape: tuple[int, ...], mesh: AbstractMesh, rules) -> int:
    """Elements of one device's shard of an array with logical axis `names` (dims the mesh axis
    does not divide stay whole, as in octojax.sharding.spec_for_shape)."""
    spec = spec_for_shape(logical_to_spec(names, rules), shape, mesh)
    n = 1
    for dim, axes in zip(shape, tuple(spec) + (None,) * (len(shape) - len(spec))):
        axes = () if axes is None else (axes,) if isinstance(axes, str) else tuple(axes)
        n *= dim // math.prod(mesh.shape[a] for a in axes)
    return n


def _divisors(axes: dict, shapes: dict, mesh: AbstractMesh, rules) -> dict:
    """Tree of (array elements / per-device elements) from logical axes and shapes."""
    return jax.tree.map(
        lambda names, s: math.prod(s.shape) // per_device(names, s.shape, mesh, rules),
        axes,
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )


def _tree_bytes(shapes: dict, divisors: dict) -> int:
    """Per-device bytes of a tree of ShapeDtypeStructs split by a same-shaped tree of divisors."""
    leaves = jax.tree.leaves(
        jax.tree.map(lambda s, d: math.prod(s.shape) // d * s.dtype.itemsize, shapes, divisors)
    )
    return int(sum(leaves))


@dataclasses.dataclass(frozen=True)
class StateBytes:
    """Per-device bytes of what lives across steps, and of one layer's gathered weights."""

    params: int  # trainable parameters (all of them, or LoRA's adapters)
    frozen: int  # LoRA's frozen base weights (0 for full fine-tuning)
    opt_state: int  # AdamW moments (+ counters), sharded like their parameters
    trainable_elements: int  # per device: what the gradients hold
    layer_weights_elements: int  # one block's weights after the fsdp all-gather, per device
    embed_elements: int  # wte + wpe after the all-gather over fsdp, per device
    wte_elements: int  # the tied embedding's shard, per device
    base_elements: int  # every model parameter's shard, per device (trainable or frozen)


def state_bytes(cfg: TrainConfig, model: ModelConfig, mesh: AbstractMesh) -> StateBytes:
    """Parameters, frozen base, optimizer state (the trainer's optax chain, mapped onto the
    parameter shardings with optax.tree_map_params; counters replicated) on one device."""
    from octojax.model.gptbigcode import param_logical_axes, param_shapes
    from octojax.model.lora import init_lora, lora_logical_axes
    from octojax.train.optimizer import make_optimizer

    rules = cfg.mesh.logical_rules()
    shapes, axes = param_shapes(model), param_logical_axes(model)
    divisors = _divisors(axes, shapes, mesh, rules)
    base = _tree_bytes(shapes, divisors)
    trainable, t_div, frozen = shapes, divisors, 0
    if cfg.lora.enabled:
        lora = cfg.lora
        trainable = jax.eval_shape(
            lambda: init_lora(model, lora.targets, lora.rank, jax.random.key(0))
        )
        t_axes = lora_logical_axes(model, lora.targets)
        t_div, frozen = _divisors(t_axes, trainable, mesh, rules), base
    tx = make_optimizer(cfg.optimizer, cfg.train.steps)
    opt = optax.tree_map_params(
        tx,
        lambda s, d: math.prod(s.shape) // d * s.dtype.itemsize,
        jax.eval_shape(tx.init, trainable),
        t_div,
        transform_non_params=lambda s: math.prod(s.shape) * s.dtype.itemsize,
    )
    elements = jax.tree.map(lambda s, d: math.prod(s.shape) // d, trainable, t_div)
    gathered = _gathered_mesh(mesh, rules)
    g_div = _divisors(axes, shapes, gathered, rules)
    per_layer = jax.tree.map(
        lambda s, d: math.prod(s.shape) // d, shapes["blocks"], g_div["blocks"]
    )
    embed = {k: math.prod(shapes[k].shape) // g_div[k] for k in ("wte", "wpe")}
    return StateBytes(
        params=_tree_bytes(trainable, t_div),
        frozen=frozen,
        opt_state=int(sum(jax.tree.leaves(opt))),
        trainable_elements=int(sum(jax.tree.leaves(elements))),
        layer_weights_elements=int(sum(jax.tree.leaves(per_layer))) // model.n_layer,
        embed_elements=sum(embed.values()),
        wte_elements=math.prod(shapes["wte"].shape) // divisors["wte"],
        base_elements=int(
            sum(
                jax.tree.leaves(
                    jax.tree.map(lambda s, d: math.prod(s.shape) // d, shapes, divisors)
                )
            )
        ),
    )


def _gathered_mesh(mesh: AbstractMesh, rules) -> AbstractMesh:
    """The mesh with the axes the `embed` rule shards over set to 1: weights as the step uses
    them after the ZeRO-3 all-gather (still split over tensor)."""
    target = rules.get("embed")
    gathered = {target} if isinstance(target, str) else set(target or ())
    sizes = tuple(1 if a in gathered else s for a, s in mesh.shape.items())
    return AbstractMesh(sizes, tuple(mesh.shape))


@dataclasses.dataclass(frozen=True)
class Dims:
    """Per-device element counts of one micro-batch's activations of one layer."""

    rows: int  # b x T: token positions on this device
    x: int  # [b, T, D]: residual stream (act_embed is not sharded)
    q: int  # [b, T, N, H] over act_heads (also the attention output)
    kv: int  # [b, T, K, H]: one of K, V (multi-query: one head, replicated over tensor)
    mlp: int  # [b, T, M] over act_mlp
    scores: int  # [b, N, T, T]: attention logits / probabilities (XLA attention only)
    stats: int  # [b, N, T]: softmax statistics
    vocab: int  # V / tensor (act_vocab): logits per position on this device


def activation_dims(model: ModelConfig, micro: int, seq: int, mesh: AbstractMesh, rules) -> Dims:
    """Dims of a micro-batch of `micro` rows x `seq` positions, split by the activation rules."""
    D, N, K, H, M, V = (
        model.n_embd, model.n_head, model.kv_heads, model.head_dim, model.mlp_dim,
        model.vocab_size,
    )  # fmt: skip

    def n(names: tuple, shape: tuple[int, ...]) -> int:
        return per_device(names, shape, mesh, rules)

    rows = n(("batch", "length"), (micro, seq))
    return Dims(
        rows=rows,
        x=n(("batch", "length", "act_embed"), (micro, seq, D)),
        q=n(("batch", "length", "act_heads", "kv"), (micro, seq, N, H)),
        kv=n(("batch", "length", "kv_heads", "kv"), (micro, seq, K, H)),
        mlp=n(("batch", "length", "act_mlp"), (micro, seq, M)),
        scores=n(("batch", "act_heads", "length", None), (micro, N, seq, seq)),
        stats=n(("batch", "act_heads", "length"), (micro, N, seq)),
        vocab=n(("act_vocab",), (V,)),
    )


def attention_kind(model: ModelConfig, platform: str) -> str:
    """'flash' when the step's attention never materialises [T, T] scores (splash on TPU, cuDNN
    on GPU for bf16/fp16), else 'xla' -- attention_impl resolved as octojax/model/attention.py."""
    impl = model.attention_impl
    if impl == "auto":
        if platform == "tpu":
            impl = "splash"
        elif platform == "gpu" and model.dtype != "float32" and model.head_dim % 8 == 0:
            impl = "cudnn" if model.head_dim <= 256 else "xla"
        else:
            impl = "xla"
    return "xla" if impl == "xla" else "flash"


def none_layer_bytes(d: Dims, e: int, attention: str) -> int:
    """Residuals JAX saves for one block without remat (compute dtype e bytes, fp32 = 4):
    e x (x, LN out, q, its head-broadcast copy, K, V, attention output, 6 GELU-tanh terms of the
    [b, T, M] MLP) + 4 x (6 fp32 LayerNorm intermediates of [b, T, D], LN statistics) + for XLA
    attention the probabilities (e) and fp32 scores + softmax statistics; for flash attention the
    kernel's output and log-sum-exp instead."""
    out = e * (2 * d.x + 2 * d.q + 2 * d.kv + 6 * d.mlp) + 4 * (6 * d.x + 4 * d.rows)
    if attention == "xla":
        return out + (e + 4) * d.scores + 4 * 2 * d.stats
    return out + e * d.q + 4 * d.stats


def saved_layer_bytes(d: Dims, e: int, remat: str, attention: str) -> int:
    """Residuals one block keeps from its forward to its backward pass, per remat policy:

    - full: the block's input x (the scan carry), e x b T D.
    - dots_with_no_batch_dims_saveable: x, the projections' outputs q, K/V (2 x kv), the
      attention output projection (b T D) and the MLP's first matmul (b T M); the second MLP
      matmul is not kept (the next block's input is).
    - dots_saveable: also the attention matmuls: fp32 scores [b, N, T, T] and the attention
      output (b T N H); with a flash kernel (not a dot) nothing more.
    - none: everything, see none_layer_bytes.
    """
    if remat == "none":
        return none_layer_bytes(d, e, attention)
    if remat == "full":
        return e * d.x
    out = e * (2 * d.x + d.q + 2 * d.kv + d.mlp)
    if remat == "dots_saveable" and attention == "xla":
        out += 4 * d.scores + e * d.q
    return out


@dataclasses.dataclass
class MemoryPlan:
    """One device's memory for one training step; every field in bytes unless named otherwise."""

    mesh: dict[str, int]
    micro_batch: int
    rows_per_device: int  # micro-batch rows on one device
    seq_len: int
    remat: str
    attention: str  # "xla" (materialised [T, T] scores) or "flash"
    loss_chunk: int  # 0 = plain full-logits loss
    lines: dict[str, int]  # name -> bytes; their sum is `total`
    device_memory: int | None = None
    usable: float = DEFAULT_USABLE
    notes: list[str] = dataclasses.field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(self.lines.values())

    @property
    def fits(self) -> bool | None:
        if self.device_memory is None:
            return None
        splits = self.micro_batch % (self.mesh["data"] * self.mesh["fsdp"]) == 0
        return splits and self.total <= self.usable * self.device_memory


def step_lines(
    cfg: TrainConfig, model: ModelConfig, st: StateBytes, d: Dims, *, seq: int, attention: str
) -> dict[str, int]:
    """The per-device lines of one step (bytes): persistent state, gradients, activations and
    the larger of the two transient peaks of the backward pass -- the loss (the logits of the
    whole micro-batch, or of one chunk) and one block's backward (recomputed activations,
    cotangents, the block's all-gathered weights and their unreduced gradients)."""
    e, p = jnp.dtype(model.dtype).itemsize, jnp.dtype(model.param_dtype).itemsize
    t = cfg.train
    accumulating = (t.micro_batch_size or t.global_batch_size) < t.global_batch_size
    grads = 4 * st.trainable_elements
    if accumulating:  # the scan's fp32 carry in and out + one micro-batch's gradients
        grads += 4 * st.trainable_elements + st.params
    saved_one = saved_layer_bytes(d, e, model.remat, attention)
    acts = model.n_layer * saved_one + 4 * 3 * d.x + e * d.x  # + the final LayerNorm's
    if model.remat == "none":
        if attention == "xla":
            acts += 5 * d.scores  # the segment mask, bool and fp32, broadcast over heads
        if e != p:
            acts += e * st.base_elements  # every block's weights cast to the compute dtype
    if e != p:
        acts += e * st.wte_elements  # the tied output projection in the compute dtype
    chunk = resolve_loss_chunk(t.loss_chunk, model.vocab_size, seq)
    logit_bytes = 8  # the fp32 exp residual of the log-softmax + the fp32 logits' gradient
    if chunk:
        loss = d.x * (e + 4) + d.rows * chunk // seq * d.vocab * logit_bytes
    else:
        loss = d.rows * d.vocab * logit_bytes
    loss += 4 * st.embed_elements  # unreduced embedding gradients
    recompute = 0  # a remat'ed block's residuals, recomputed (half its fp32 LayerNorm terms
    if model.remat != "none":  # are dead by the time the last ones are made: measured)
        recompute = none_layer_bytes(d, e, attention) - saved_one - 4 * 3 * d.x
    cotangents = 4 * 2 * d.x  # the residual stream's cotangent, in and out
    weight_grad = 4  # the block's unreduced fp32 weight gradients
    if cfg.lora.enabled:  # no base gradients; merged kernels, unless dropout runs them unmerged
        weight_grad = p if cfg.lora.dropout == 0 else 0
    layer = recompute + cotangents + st.layer_weights_elements * (e + weight_grad)
    return {
        "params": st.params,
        "frozen params": st.frozen,
        "optimizer state": st.opt_state,
        "gradients": grads,
        "batch": 5
        * 4
        * d.rows
        * t.global_batch_size
        // (t.micro_batch_size or t.global_batch_size),
        "activations": acts,
        "loss peak" if loss >= layer else "layer backward peak": max(loss, layer),
    }


def plan_model_config(cfg: TrainConfig) -> tuple[ModelConfig, list[str]]:
    """The model to plan for: model_config_for(cfg), or the model section alone (with a note)
    when the checkpoint named by init.path is not on this machine."""
    from octojax.train.config import model_config_for

    try:
        return model_config_for(cfg), []
    except FileNotFoundError:
        note = f"init.path {cfg.init.path} not found here: planned for the model section's shape"
        return cfg.model.build(), [note]


def _splittable_micro_batch(cfg: TrainConfig, sizes: dict[str, int], notes: list[str]) -> int:
    """The config's micro-batch, or (with a note) the smallest one that divides the global
    batch and splits over the data x fsdp shards when the config's does not."""
    t = cfg.train
    micro = t.micro_batch_size or t.global_batch_size
    shards = sizes["data"] * sizes["fsdp"]
    if micro % shards == 0:
        return micro
    for candidate in range(shards, t.global_batch_size + 1, shards):
        if t.global_batch_size % candidate == 0:
            notes.append(
                f"train.micro_batch_size {micro} cannot be split over data x fsdp = {shards} "
                f"devices: planned with {candidate}"
            )
            return candidate
    return micro  # make_plan notes that nothing splits


def make_plan(
    cfg: TrainConfig,
    n_devices: int,
    *,
    seq_len: int | None = None,
    micro_batch: int | None = None,
    device_memory: int | None = None,
    platform: str = "cpu",
    usable: float = DEFAULT_USABLE,
    model: ModelConfig | None = None,
) -> MemoryPlan:
    """The memory plan of cfg's step on n devices (micro_batch: instead of the config's)."""
    notes: list[str] = []
    if model is None:
        model, notes = plan_model_config(cfg)
    seq = seq_len or (cfg.data.seq_len if cfg.data is not None else 2048)
    t = cfg.train
    sizes = mesh_sizes(cfg, n_devices)
    micro = micro_batch or _splittable_micro_batch(cfg, sizes, notes)
    if t.global_batch_size % micro:
        raise ConfigError(f"micro-batch {micro} does not divide the batch {t.global_batch_size}")
    if micro != (t.micro_batch_size or t.global_batch_size):
        cfg = cfg.model_copy(update={"train": t.model_copy(update={"micro_batch_size": micro})})
    mesh = AbstractMesh(tuple(sizes.values()), tuple(sizes))
    rules = cfg.mesh.logical_rules()
    shards = sizes["data"] * sizes["fsdp"]
    if micro % shards:
        notes.append(f"micro-batch {micro} cannot be split over data x fsdp = {shards} devices")
    d = activation_dims(model, micro, seq, mesh, rules)
    attention = attention_kind(model, platform)
    lines = step_lines(cfg, model, state_bytes(cfg, model, mesh), d, seq=seq, attention=attention)
    return MemoryPlan(
        mesh=sizes, micro_batch=micro, rows_per_device=d.rows // seq, seq_len=seq,
        remat=model.remat, attention=attention,
        loss_chunk=resolve_loss_chunk(t.loss_chunk, model.vocab_size, seq), lines=lines,
        device_memory=device_memory, usable=usable, notes=notes,
    )  # fmt: skip


def kv_cache_bytes(model: ModelConfig, batch: int, length: int, mesh: AbstractMesh, rules) -> int:
    """Per-device bytes of generation's KV cache (K and V of every layer, compute dtype), split
    like octojax/sharding.py's CACHE_AXES: rows over data x fsdp, K/V heads over tensor
    where they divide (a multi-query cache is split over rows only)."""

    shape = (model.n_layer, batch, length, model.kv_heads, model.head_dim)
    elements = per_device(CACHE_AXES, shape, mesh, rules)
    return 2 * elements * jnp.dtype(model.dtype).itemsize + 4 * batch * length


def largest_micro_batch(cfg: TrainConfig, n_devices: int, **kwargs: Any) -> MemoryPlan | None:
    """The plan of the largest micro-batch that fits: candidates divide the global batch and
    are multiples of the data x fsdp shards; None when even the smallest does not fit."""
    sizes = mesh_sizes(cfg, n_devices)
    shards, total = sizes["data"] * sizes["fsdp"], cfg.train.global_batch_size
    best = None
    for micro in range(shards, total + 1, shards):
        if total % micro:
            continue
        candidate = make_plan(cfg, n_devices, micro_batch=micro, **kwargs)
        if candidate.fits:  # no early stop: micro = global batch drops the accumulation buffers
            best = candidate
    return best


def generation_bytes(model: ModelConfig, mesh: AbstractMesh, rules, shape) -> dict[str, int]:
    """Per-device bytes of generation (octojax/generate/decode.py) with `shape.slots` rows of
    `shape.length` cache columns and prefills of `shape.prompt` tokens, on a one-host mesh:
    parameters (split by the rules table), the slots' KV cache, and the larger working set of
    a decode chunk or a prefill. Decode: every slot's fp32 logits, sorted for top-p (the cache
    is updated in place); prefill: one prompt's K/V and one layer's activations."""
    from octojax.model.gptbigcode import param_logical_axes, param_shapes

    shapes, axes = param_shapes(model), param_logical_axes(model)
    params = _tree_bytes(shapes, _divisors(axes, shapes, mesh, rules))
    e = jnp.dtype(model.dtype).itemsize
    B, T = shape.slots, shape.prompt
    cache = kv_cache_bytes(model, B, shape.length, mesh, rules)
    rows = per_device(("batch",), (B,), mesh, rules)
    decode = 4 * 4 * rows * model.vocab_size
    mlp = per_device(("act_mlp",), (model.mlp_dim,), mesh, rules)
    prefill = 2 * model.n_layer * T * model.kv_heads * model.head_dim * e
    prefill += e * T * (model.n_embd + mlp)
    return {
        "params": params,
        "KV cache": cache,
        "decode peak" if decode >= prefill else "prefill peak": max(decode, prefill),
    }
