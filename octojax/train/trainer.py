"""The training loop: build mesh, model, optimizer and data; restore; step; log; checkpoint; export.

One code path for one CPU, 8 fake devices, one GPU or a TPU pod slice: only the mesh section of
the config changes. Parameters, optimizer state and batches are placed with NamedShardings derived
from logical axis names; the step is one jax.jit with explicit shardings and donated state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import time
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from octojax.model.config import ModelConfig
from octojax.model.gptbigcode import GPTBigCode, param_dict, param_logical_axes
from octojax.model.lora import init_lora, lora_logical_axes, merge_into_params
from octojax.sharding import batch_sharding, named_sharding
from octojax.train.checkpointing import Checkpointer
from octojax.train.config import ConfigError, TrainConfig, config_to_dict
from octojax.train.mesh import build_mesh, maybe_initialize_distributed
from octojax.train.metrics import MetricsLogger, peak_tflops_per_device
from octojax.train.optimizer import learning_rate_schedule, make_optimizer
from octojax.train.step import StepSpec, make_train_step

log = logging.getLogger(__name__)


class BatchIterator(Protocol):
    """What the trainer consumes (octojax.data.TrainIterator implements it)."""

    def __next__(self) -> dict[str, Any]: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...


def tree_shardings(axes: dict, shapes: dict, mesh: Mesh) -> dict:
    """NamedShardings for a tree of arrays from a same-shaped tree of logical-axis tuples."""
    return jax.tree.map(
        lambda names, s: named_sharding(names, s.shape, mesh),
        axes,
        shapes,
        is_leaf=lambda x: isinstance(x, tuple),
    )


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    final_step: int
    losses: list[float]
    hf_dir: Path | None
    preempted: bool = False


def tokenizer_path(cfg: TrainConfig) -> str | None:
    return getattr(cfg.data, "tokenizer", None) if cfg.data is not None else None


def model_config_for(cfg: TrainConfig) -> ModelConfig:
    """The model's config: from the HF / octojax checkpoint being tuned, or the model section
    (vocabulary sized to the data's tokenizer when training from scratch)."""
    from octojax.convert.octojax_checkpoint import load_config as load_octojax_config

    m, init = cfg.model, cfg.init
    numerics = dict(
        dtype=m.dtype, param_dtype=m.param_dtype, remat=m.remat,
        scan_layers=m.scan_layers, attention_impl=m.attention_impl,
    )  # fmt: skip
    if init.source == "hf":
        return ModelConfig.from_hf_json(init.path, **numerics, **m.overrides)
    if init.source == "octojax":
        return load_octojax_config(init.path).replace(**numerics, **m.overrides)
    vocab = None
    if tokenizer_path(cfg) and "vocab_size" not in m.overrides and not m.hf_config:
        from octojax.tokenizer import vocab_size_of

        vocab = vocab_size_of(tokenizer_path(cfg))
    return m.build(vocab_size=vocab)


class Trainer:
    """Builds everything from a TrainConfig; `run()` trains to cfg.train.steps (resuming if it can)."""

    def __init__(
        self, cfg: TrainConfig, data: BatchIterator | None = None, mesh: Mesh | None = None
    ):
        cfg.validate()
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir).absolute()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        maybe_initialize_distributed(cfg.mesh)
        self.mesh = mesh or build_mesh(cfg.mesh)
        self.model_cfg = model_config_for(cfg)
        self._data = data
        self._stop_requested = False

    # ---- construction ---------------------------------------------------------------------------

    def _tokenizer_path(self) -> str | None:
        return tokenizer_path(self.cfg)

    def _param_shardings(self) -> tuple[dict, dict]:
        axes = param_logical_axes(self.model_cfg)
        shapes = nnx.to_pure_dict(
            nnx.state(
                nnx.eval_shape(lambda: GPTBigCode(self.model_cfg, rngs=nnx.Rngs(0))), nnx.Param
            )
        )
        return tree_shardings(axes, shapes, self.mesh), shapes

    def _initial_params(self, shardings: dict) -> dict:
        init = self.cfg.init
        if init.source == "hf":
            from octojax.convert.hf_checkpoint import load_hf_params

            def place(path, array):
                s = shardings
                for p in path:
                    s = s[p]
                return jax.device_put(array, s)

            _, params = load_hf_params(init.path, self.model_cfg, place=place, progress=self._main)
            return params
        if init.source == "octojax":
            from octojax.convert.octojax_checkpoint import load_params

            _, params = load_params(
                init.path, shardings=shardings, dtype=self.model_cfg.param_dtype
            )
            return params
        cfg = self.model_cfg

        def make():
            return param_dict(GPTBigCode(cfg, rngs=nnx.Rngs(params=init.seed)))

        return jax.jit(make, out_shardings=shardings)()

    @property
    def _main(self) -> bool:
        return jax.process_index() == 0

    def _data_iterator(self) -> BatchIterator:
        if self._data is not None:
            return self._data
        if self.cfg.data is None:
            raise ConfigError("config has no data section and no batches were given to Trainer")
        from octojax.data.pipeline import make_train_iterator

        return make_train_iterator(
            self.cfg.data, global_batch_size=self.cfg.train.global_batch_size, mesh=self.mesh
        )

    # ---- the loop ---------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        cfg, mesh = self.cfg, self.mesh
        total = cfg.train.steps
        (self.run_dir / "config.json").write_text(
            json.dumps(config_to_dict(cfg), indent=2, default=str)
        )
        replicated = NamedSharding(mesh, PartitionSpec())
        param_shardings, _ = self._param_shardings()
        params = self._initial_params(param_shardings)

        lora_cfg = cfg.lora
        if lora_cfg.enabled:
            frozen, frozen_shardings = params, param_shardings
            lora_axes = lora_logical_axes(self.model_cfg, lora_cfg.targets)
            lora_shapes = jax.eval_shape(
                lambda: init_lora(
                    self.model_cfg, lora_cfg.targets, lora_cfg.rank, jax.random.key(0)
                )
            )
            trainable_shardings = tree_shardings(lora_axes, lora_shapes, mesh)
            trainable = jax.jit(
                lambda: init_lora(
                    self.model_cfg, lora_cfg.targets, lora_cfg.rank, jax.random.key(cfg.train.seed)
                ),
                out_shardings=trainable_shardings,
            )()
            lora_scale = lora_cfg.alpha / lora_cfg.rank
        else:
            frozen, frozen_shardings = None, None
            trainable, trainable_shardings = params, param_shardings
            lora_scale = None
        del params

        tx = make_optimizer(cfg.optimizer, total)
        abstract_opt = jax.eval_shape(tx.init, trainable)
        opt_shardings = optax.tree_map_params(
            tx,
            lambda _, s: s,
            abstract_opt,
            trainable_shardings,
            transform_non_params=lambda _: replicated,
            is_leaf=lambda x: isinstance(x, NamedSharding),
        )
        state_shardings = {
            "step": replicated,
            "params": trainable_shardings,
            "opt_state": opt_shardings,
        }
        opt_state = jax.jit(tx.init, out_shardings=opt_shardings)(trainable)
        state = {
            "step": jax.device_put(jnp.zeros((), jnp.int32), replicated),
            "params": trainable,
            "opt_state": opt_state,
        }
        rng = jax.random.key(cfg.train.seed)

        ckpt = Checkpointer(
            cfg.checkpoint_dir,
            keep=cfg.checkpoint.keep,
            async_save=cfg.checkpoint.async_save,
            param_item="lora" if lora_cfg.enabled else "params",
        )
        ckpt.write_model_config(self.model_cfg)
        self._save_tokenizer(cfg.checkpoint_dir)
        data = self._data_iterator()

        abstract_state = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, state_shardings
        )
        restored = ckpt.restore_latest(
            {"params": abstract_state["params"], "opt_state": abstract_state["opt_state"]}
        )
        start = 0
        if restored is not None:
            rstate, meta = restored
            start = int(meta["step"])
            state = {
                "step": jax.device_put(jnp.asarray(start, jnp.int32), replicated),
                "params": rstate["params"],
                "opt_state": rstate["opt_state"],
            }
            rng = jax.random.wrap_key_data(jnp.asarray(meta["rng"], jnp.uint32))
            if meta.get("data_state") is not None:
                data.set_state(meta["data_state"])
            if self._main:
                log.info("resumed from %s at step %d", cfg.checkpoint_dir / str(start), start)
                print(
                    f"[train] resumed from {cfg.checkpoint_dir / str(start)} at step {start}",
                    flush=True,
                )

        spec = StepSpec(
            graphdef=nnx.graphdef(
                nnx.eval_shape(lambda: GPTBigCode(self.model_cfg, rngs=nnx.Rngs(0)))
            ),
            lora_scale=lora_scale,
            num_micro_batches=cfg.train.global_batch_size
            // (cfg.train.micro_batch_size or cfg.train.global_batch_size),
        )
        bs = batch_sharding(mesh)
        step_fn = jax.jit(
            make_train_step(spec, tx),
            in_shardings=(state_shardings, frozen_shardings, None),
            out_shardings=(state_shardings, replicated),
            donate_argnums=(0,),
        )
        schedule_lr = learning_rate_schedule(cfg.optimizer, total)
        peak = peak_tflops_per_device(cfg.log.peak_tflops_per_device)
        logger = MetricsLogger(
            self.run_dir, total_steps=total, start_step=start,
            tensorboard=cfg.log.tensorboard, progress=cfg.log.progress,
        )  # fmt: skip
        old_handler = signal.signal(signal.SIGTERM, self._on_sigterm) if _in_main_thread() else None

        def meta_for(step: int) -> dict:
            return {
                "step": step,
                "rng": np.asarray(jax.random.key_data(rng)).tolist(),
                "data_state": data.get_state(),
                "time": time.time(),
            }

        losses: list[float] = []
        step = start
        preempted = False
        t_last, steps_since = time.perf_counter(), 0
        try:
            with jax.set_mesh(mesh):
                while step < total:
                    try:
                        batch = next(data)
                    except StopIteration:
                        print(f"[train] data exhausted after step {step}; stopping", flush=True)
                        break
                    batch = {k: _as_global(v, bs) for k, v in batch.items()}
                    state, metrics = step_fn(state, frozen, batch)
                    step += 1
                    steps_since += 1
                    logger.advance()
                    if step % cfg.log.every == 0 or step == total:
                        m = jax.device_get(metrics)
                        dt = time.perf_counter() - t_last
                        B, T = batch["inputs"].shape
                        tps = B * T * steps_since / dt
                        mfu = None
                        if peak:
                            mfu = (
                                self.model_cfg.flops_per_token(T) * tps / (peak * 1e12 * mesh.size)
                            )
                        record = {
                            "step": step, "loss": float(m["loss"]), "grad_norm": float(m["grad_norm"]),
                            "lr": float(schedule_lr(step - 1)), "tokens_per_s": tps, "mfu": mfu,
                            "loss_tokens": float(m["tokens"]), "step_time_s": dt / steps_since,
                        }  # fmt: skip
                        losses.append(record["loss"])
                        logger.log(record)
                        t_last, steps_since = time.perf_counter(), 0
                    if step % cfg.checkpoint.every == 0 and step < total:
                        ckpt.save(step, state, meta_for(step))
                    if self._stop_requested:
                        print(f"[train] SIGTERM: saving step {step} and stopping", flush=True)
                        ckpt.save(step, state, meta_for(step), force=True)
                        preempted = True
                        break
            if not preempted and step not in ckpt.steps():
                ckpt.save(step, state, meta_for(step), force=True)
            ckpt.wait()
        finally:
            logger.close()
            ckpt.close()
            if old_handler is not None:
                signal.signal(signal.SIGTERM, old_handler)

        hf_dir = None
        if cfg.export.hf and not preempted and step >= total:
            hf_dir = self.export_hf(state["params"], frozen, lora_scale)
        return TrainResult(self.run_dir, step, losses, hf_dir, preempted)

    def export_hf(self, trainable: dict, frozen: dict | None, lora_scale: float | None) -> Path:
        """Write <run_dir>/hf (LoRA merged into the base weights) with the tokenizer."""
        from octojax.convert.hf_checkpoint import save_hf_checkpoint

        params = (
            trainable if lora_scale is None else merge_into_params(frozen, trainable, lora_scale)
        )
        out = self.run_dir / "hf"
        if self._main:
            save_hf_checkpoint(
                out, self.model_cfg, params, dtype=self.cfg.export.dtype,
                tokenizer_dir=self._tokenizer_path(),
            )  # fmt: skip
            print(f"[train] exported Hugging Face model to {out}", flush=True)
        return out

    def _save_tokenizer(self, checkpoint_dir) -> None:
        """A copy of the tokenizer beside the checkpoints (local or gs://), for generation."""
        tok = self._tokenizer_path()
        if tok and self._main:
            src = Path(tok)
            files = [src] if src.is_file() else [p for p in src.iterdir() if p.is_file()]
            dst = checkpoint_dir / "tokenizer"
            dst.mkdir(parents=True, exist_ok=True)
            for f in files:
                name = "tokenizer.json" if src.is_file() else f.name
                (dst / name).write_bytes(f.read_bytes())

    def _on_sigterm(self, signum, frame) -> None:
        self._stop_requested = True


def _in_main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _as_global(x: Any, sharding: NamedSharding) -> jax.Array:
    """Numpy host batches (single process) become arrays with the batch sharding."""
    if isinstance(x, jax.Array):
        return x
    if jax.process_count() > 1:
        return jax.make_array_from_process_local_data(sharding, np.asarray(x))
    return jax.device_put(np.asarray(x), sharding)
