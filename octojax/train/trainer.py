"""The training loop: build mesh, model, optimizer and data; restore; step; log; checkpoint; export.

One code path for one CPU, 8 fake devices, one GPU or a TPU pod slice: only the mesh section of
the config changes. Parameters, optimizer state and batches are placed with NamedShardings derived
from logical axis names; the step is one jax.jit with explicit shardings and donated state.

`Trainer.run` reads as its steps: check a resume is compatible, build the state, restore (nothing
in the run dir changes before these pass), write the run files, compile, loop, export.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from octojax.config import ConfigError
from octojax.convert.octojax_checkpoint import CONFIG_FILE
from octojax.mesh import build_mesh, initialize_distributed
from octojax.model.gptbigcode import abstract_model, param_dict, param_logical_axes, param_shapes
from octojax.model.lora import init_lora, lora_logical_axes, merge_into_params
from octojax.sharding import batch_sharding, tree_shardings, use_rules
from octojax.train.checkpointing import Checkpointer
from octojax.train.config import (
    TrainConfig,
    batch_split_problem,
    model_config_for,
    saved_config_diff,
)
from octojax.train.metrics import DelayedMetrics, MetricsLogger, peak_tflops_per_device
from octojax.train.optimizer import learning_rate_schedule, make_optimizer
from octojax.train.step import StepSpec, make_train_step

log = logging.getLogger(__name__)

# Config keys a resume may change (prefixes); any other difference to the saved config is refused.
RESUMABLE_CHANGES = (
    "run_dir", "train.steps", "train.micro_batch_size", "mesh.", "checkpoint.", "log.", "export.",
    "data.num_workers", "model.remat", "model.attention_impl", "model.scan_layers", "init.",
    "lora.dropout",
)  # fmt: skip
# ModelConfig fields that change the parameters' shapes (a saved model_config.json must match them)
SHAPE_KEYS = ("vocab_size", "n_positions", "n_embd", "n_layer", "n_head", "n_inner", "multi_query")
EXIT_PREEMPTED = 143  # SIGTERM
EXIT_INTERRUPTED = 130  # SIGINT (Ctrl-C)
EXIT_PEER_LOST = 75  # another process of a multi-host job died (EX_TEMPFAIL: rerun to resume)


class BatchIterator(Protocol):
    """What the trainer consumes (octojax.data.pipeline.TrainIterator implements it): global
    batches, as jax.Arrays on the mesh or as numpy arrays of the global shape that every process
    computes alike (synthetic data); each process then places only its own rows."""

    def __next__(self) -> dict[str, Any]: ...
    def get_state(self) -> dict: ...
    def set_state(self, state: dict) -> None: ...


@dataclasses.dataclass
class TrainResult:
    run_dir: Path
    final_step: int
    losses: list[float]
    hf_dir: Path | None
    preempted: bool = False
    exit_code: int = 0  # 0 finished, 143 SIGTERM, 130 SIGINT


@dataclasses.dataclass
class TrainState:
    """Device state of a run: the jitted step's input/output and what stays outside it."""

    state: dict  # {"step", "params" (trainable), "opt_state"}
    shardings: dict  # same tree of NamedShardings
    frozen: dict | None  # LoRA's frozen base weights (None for full fine-tuning)
    frozen_shardings: dict | None
    lora_scale: float | None
    tx: optax.GradientTransformation


def tokenizer_path(cfg: TrainConfig) -> str | None:
    return cfg.data.tokenizer if cfg.data is not None else None


class Trainer:
    """Builds everything from a TrainConfig; `run()` trains to cfg.train.steps (resuming if it can)."""

    def __init__(
        self, cfg: TrainConfig, data: BatchIterator | None = None, mesh: Mesh | None = None
    ):
        self.cfg = cfg
        self.run_dir = Path(cfg.run_dir).absolute()
        self.rules = cfg.mesh.logical_rules()
        if cfg.mesh.distributed:
            initialize_distributed()
        self.mesh = mesh or build_mesh(cfg.mesh)
        _check_batch_fits_mesh(cfg, self.mesh)
        vocab = None
        if tokenizer_path(cfg) and cfg.init.source == "scratch" and cfg.model.vocab_size is None:
            from octojax.tokenizer import vocab_size_of

            vocab = vocab_size_of(tokenizer_path(cfg))
        self.model_cfg = model_config_for(cfg, vocab_size=vocab)
        self._data = data
        self._signal: int | None = None

    @property
    def _main(self) -> bool:
        return jax.process_index() == 0

    # ---- run -------------------------------------------------------------------------------------

    def run(self) -> TrainResult:
        """Train to cfg.train.steps, resuming from the newest good checkpoint; export at the end."""
        with use_rules(self.rules):
            self.check_resume()
            data = self._data_iterator()  # bad data fails here, before the run dir is touched
            with self._one_writer():
                return self._run(data)

    def _run(self, data: BatchIterator) -> TrainResult:
        with use_rules(self.rules):
            self._check_shared_checkpoint_dir()  # before orbax meets the folder on every host
            ckpt = self._checkpointer()
            ts = self._initial_state()
            start, rng = self._restore(ckpt, ts, data)
            # only now, with every check of a resume passed, do the run files change
            self._write_run_files(ckpt)
            step_fn = self._compile_step(ts)
            try:
                step, losses = self._loop(ts, step_fn, data, ckpt, start, rng)
            except jax.errors.JaxRuntimeError as e:
                if jax.process_count() == 1:
                    raise
                _exit_lost_peer(e, ckpt)
            finally:
                ckpt.close()
        code = {signal.SIGTERM: EXIT_PREEMPTED, signal.SIGINT: EXIT_INTERRUPTED}.get(
            self._signal, 0
        )
        hf_dir = None
        if self.cfg.export.hf and code == 0 and step >= self.cfg.train.steps:
            hf_dir = self.export_hf(ts.state["params"], ts.frozen, ts.lora_scale)
        return TrainResult(self.run_dir, step, losses, hf_dir, preempted=code != 0, exit_code=code)

    # ---- before anything is written -----------------------------------------------------------

    def _one_writer(self):
        """The run dir's lock (process 0 holds it for the job): a second `octojax train` on the
        same run dir is refused at once, naming this one (beam_pipelines/run_lock.py)."""
        from beam_pipelines.run_lock import RunLock

        if not self._main:
            return contextlib.nullcontext()
        return RunLock(self.run_dir, f"octojax train ({self.run_dir})")

    def check_resume(self) -> None:
        """Refuse to resume a run directory whose saved config differs in a key that matters.

        Runs before the trainer writes anything, so a refused run leaves the directory as it was.
        """
        saved_path = self.run_dir / "config.json"
        if not saved_path.exists() or not self._has_checkpoints():
            return
        try:
            saved = json.loads(saved_path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"{saved_path}: unreadable saved config ({e})") from None
        diffs = [
            d
            for d in saved_config_diff(saved, self.cfg.to_dict())
            if not d.startswith(RESUMABLE_CHANGES)
        ]
        saved_model = self.cfg.checkpoint_dir / CONFIG_FILE  # the resolved model (e.g. vocab)
        if saved_model.exists():
            before = json.loads(saved_model.read_text())
            now = dataclasses.asdict(self.model_cfg)
            diffs += [
                f"model {k}: {before.get(k)!r} -> {now[k]!r}"
                for k in SHAPE_KEYS
                if before.get(k) != now[k]
            ]
        if diffs:
            raise ConfigError(
                f"{self.run_dir}: the run there was started with a different config; resuming "
                f"would mix two runs. Changed: {'; '.join(diffs)}. Use a new run_dir, or "
                "`octojax train --reset` to set the old run aside and start over"
            )

    def _has_checkpoints(self) -> bool:
        directory = self.cfg.checkpoint_dir
        return directory.exists() and any(p.name.isdigit() for p in directory.iterdir())

    def _checkpointer(self) -> Checkpointer:
        return Checkpointer(
            self.cfg.checkpoint_dir,
            keep=self.cfg.checkpoint.keep,
            async_save=self.cfg.checkpoint.async_save,
            param_item="lora" if self.cfg.lora.enabled else "params",
        )

    def _write_run_files(self, ckpt: Checkpointer) -> None:
        """config.json, the model config and a copy of the tokenizer (process 0 only)."""
        if not self._main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "config.json").write_text(json.dumps(self.cfg.to_dict(), indent=2) + "\n")
        ckpt.write_model_config(self.model_cfg)
        self._save_tokenizer(self.cfg.checkpoint_dir)

    def _check_shared_checkpoint_dir(self) -> None:
        """Multi-host: warn when the checkpoint dir is not one storage seen by every host (orbax
        writes each host's shards there; a host-local path would leave each checkpoint partial).
        Process 0 writes a fresh token into it; every other process must read the same token."""
        directory = self.cfg.checkpoint_dir
        if jax.process_count() == 1 or "://" in str(directory):
            return
        from jax.experimental import multihost_utils

        mine = np.random.default_rng().integers(1, 2**31, dtype=np.int64) if self._main else 0
        token = str(int(multihost_utils.broadcast_one_to_all(np.asarray(mine, np.int64))))
        probe = Path(directory) / ".shared-check"
        if self._main:
            probe.parent.mkdir(parents=True, exist_ok=True)
            probe.write_text(token)
        multihost_utils.sync_global_devices("octojax: shared checkpoint dir check")
        seen = probe.read_text() if probe.exists() else None
        if seen != token:
            log.warning("checkpoint dir is host-local")
            print(
                f"[train] warning: process {jax.process_index()} does not see process 0's "
                f"checkpoint dir {directory} (not shared storage): every host must write to the "
                "same place (a gs:// bucket, a shared filesystem) or checkpoints stay partial",
                file=sys.stderr,
                flush=True,
            )

    # ---- state ----------------------------------------------------------------------------------

    def _initial_state(self) -> TrainState:
        """Parameters (+ LoRA adapters), optimizer state and their shardings, on the mesh."""
        param_shardings = tree_shardings(
            param_logical_axes(self.model_cfg), param_shapes(self.model_cfg), self.mesh
        )
        params = self._initial_params(param_shardings)
        frozen = frozen_shardings = lora_scale = None
        trainable, trainable_shardings = params, param_shardings
        if self.cfg.lora.enabled:
            frozen, frozen_shardings = params, param_shardings
            trainable, trainable_shardings = self._initial_lora()
            lora_scale = self.cfg.lora.alpha / self.cfg.lora.rank
        del params
        tx = make_optimizer(self.cfg.optimizer, self.cfg.train.steps)
        opt_shardings = self._opt_state_shardings(tx, trainable, trainable_shardings)
        replicated = NamedSharding(self.mesh, PartitionSpec())
        state = {
            "step": jax.device_put(jnp.zeros((), jnp.int32), replicated),
            "params": trainable,
            "opt_state": jax.jit(tx.init, out_shardings=opt_shardings)(trainable),
        }
        shardings = {"step": replicated, "params": trainable_shardings, "opt_state": opt_shardings}
        return TrainState(state, shardings, frozen, frozen_shardings, lora_scale, tx)

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
        from flax import nnx

        from octojax.model.gptbigcode import GPTBigCode

        cfg = self.model_cfg

        def make():
            return param_dict(GPTBigCode(cfg, rngs=nnx.Rngs(params=init.seed)))

        return jax.jit(make, out_shardings=shardings)()

    def _initial_lora(self) -> tuple[dict, dict]:
        lora = self.cfg.lora

        def make(seed: int):
            return init_lora(self.model_cfg, lora.targets, lora.rank, jax.random.key(seed))

        shapes = jax.eval_shape(lambda: make(0))
        axes = lora_logical_axes(self.model_cfg, lora.targets)
        shardings = tree_shardings(axes, shapes, self.mesh)
        return jax.jit(lambda: make(self.cfg.train.seed), out_shardings=shardings)(), shardings

    def _opt_state_shardings(self, tx, trainable: dict, trainable_shardings: dict):
        """Optimizer moments sharded like their parameters; counters replicated."""
        replicated = NamedSharding(self.mesh, PartitionSpec())
        return optax.tree_map_params(
            tx,
            lambda _, s: s,
            jax.eval_shape(tx.init, trainable),
            trainable_shardings,
            transform_non_params=lambda _: replicated,
            is_leaf=lambda x: isinstance(x, NamedSharding),
        )

    def _data_iterator(self) -> BatchIterator:
        if self._data is not None:
            return self._data
        if self.cfg.data is None:
            raise ConfigError("config has no data section and no batches were given to Trainer")
        from octojax.data.pipeline import make_train_iterator

        it = make_train_iterator(
            self.cfg.data, global_batch_size=self.cfg.train.global_batch_size, mesh=self.mesh
        )
        print(  # every process: what it reads is its own share of the records
            f"[train] data: process {it.process_index}/{it.process_count}, rows "
            f"{it.rows[0]}..{it.rows[-1]} of {it.global_batch_size}, "
            f"{it.data_stats['examples']} examples",
            flush=True,
        )
        return it

    def _restore(self, ckpt: Checkpointer, ts: TrainState, data: BatchIterator):
        """Restore the newest good checkpoint into ts (in place); (start step, rng). Says where."""
        abstract = jax.tree.map(
            lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), ts.state, ts.shardings
        )
        restored = ckpt.restore_latest(
            {"params": abstract["params"], "opt_state": abstract["opt_state"]}
        )
        if restored is None:
            self._say(f"no checkpoint in {ckpt.directory}: starting at step 0")
            return 0, jax.random.key(self.cfg.train.seed)
        rstate, meta = restored
        start = int(meta["step"])
        ts.state = {
            "step": jax.device_put(jnp.asarray(start, jnp.int32), ts.shardings["step"]),
            "params": rstate["params"],
            "opt_state": rstate["opt_state"],
        }
        if meta.get("data_state") is not None:
            data.set_state(meta["data_state"])
        self._say(f"resumed from {ckpt.directory / str(start)} at step {start}")
        return start, jax.random.wrap_key_data(jnp.asarray(meta["rng"], jnp.uint32))

    def _compile_step(self, ts: TrainState):
        t = self.cfg.train
        from flax import nnx

        spec = StepSpec(
            graphdef=nnx.graphdef(abstract_model(self.model_cfg)),
            lora_scale=ts.lora_scale,
            num_micro_batches=t.global_batch_size // (t.micro_batch_size or t.global_batch_size),
            loss_chunk=t.loss_chunk,
            lora_dropout=self.cfg.lora.dropout if self.cfg.lora.enabled else 0.0,
            seed=t.seed,
        )
        return jax.jit(
            make_train_step(spec, ts.tx),
            in_shardings=(ts.shardings, ts.frozen_shardings, None),
            out_shardings=(ts.shardings, ts.shardings["step"]),
            donate_argnums=(0,),
        )

    # ---- the loop ---------------------------------------------------------------------------------

    def _loop(self, ts: TrainState, step_fn, data, ckpt: Checkpointer, start: int, rng):
        """Dispatch step n+1 before reading step n's metrics; the next host batch is fetched and
        sent to the devices while the current step runs. Returns (last step, logged losses)."""
        cfg, total = self.cfg, self.cfg.train.steps
        logger = MetricsLogger(
            self.run_dir, total_steps=total, start_step=start,
            tensorboard=cfg.log.tensorboard, progress=cfg.log.progress,
        )  # fmt: skip
        metrics = DelayedMetrics(self._record_maker(start), logger.log)
        batches = _Prefetcher(data, batch_sharding(self.mesh))
        handlers = self._install_signal_handlers()
        step, data_state = start, data.get_state()
        try:
            with jax.set_mesh(self.mesh):
                batch, batch_state = batches.next()
                while batch is not None and step < total:
                    ts.state, step_metrics = step_fn(ts.state, ts.frozen, batch)
                    step += 1
                    logger.advance()
                    shape, data_state = batch["inputs"].shape, batch_state
                    if step < total:  # host work for the next step overlaps this one
                        batch, batch_state = batches.next()
                    if step % cfg.log.every == 0 or step == total:
                        metrics.submit(step, step_metrics, shape)  # fetches the previous one
                    if self._agreed_stop(step):
                        self._say(
                            f"{signal.Signals(self._signal).name}: saving step {step}, stopping"
                        )
                        ckpt.save(step, ts.state, self._meta(step, rng, data_state), force=True)
                        break
                    if step % cfg.checkpoint.every == 0 and step < total:
                        ckpt.save(step, ts.state, self._meta(step, rng, data_state))
                    ckpt.check()  # a failed asynchronous save stops training here
                if batch is None:
                    self._say(f"data exhausted after step {step}; stopping")
                metrics.flush()
            if self._signal is None and step not in ckpt.steps():
                ckpt.save(step, ts.state, self._meta(step, rng, data_state), force=True)
            ckpt.wait()
        finally:
            logger.close()
            _restore_signal_handlers(handlers)
        return step, metrics.losses

    def _record_maker(self, start: int):
        """A function (step, fetched metrics, batch shape) -> the logged record (throughput, MFU)."""
        peak = peak_tflops_per_device(self.cfg.log.peak_tflops_per_device)
        schedule_lr = learning_rate_schedule(self.cfg.optimizer, self.cfg.train.steps)
        last = {"time": time.perf_counter(), "step": start}

        def record(step: int, m: dict, batch_shape: tuple[int, int]) -> dict:
            now = time.perf_counter()
            steps, dt = step - last["step"], now - last["time"]
            last.update(time=now, step=step)
            B, T = batch_shape
            tps = B * T * steps / dt
            mfu = None
            if peak:
                flops = self.model_cfg.flops_per_token(T, frozen_base=self.cfg.lora.enabled)
                mfu = flops * tps / (peak * 1e12 * self.mesh.size)
            return {
                "step": step, "loss": float(m["loss"]), "grad_norm": float(m["grad_norm"]),
                "lr": float(schedule_lr(step - 1)), "tokens_per_s": tps, "mfu": mfu,
                "loss_tokens": float(m["tokens"]), "step_time_s": dt / steps,
            }  # fmt: skip

        return record

    def _meta(self, step: int, rng, data_state: dict | None) -> dict:
        return {
            "step": step,
            "rng": np.asarray(jax.random.key_data(rng)).tolist(),
            "data_state": data_state,
            "time": time.time(),
        }

    def _install_signal_handlers(self) -> dict:
        """SIGTERM (preemption) and SIGINT (Ctrl-C): save at the next step boundary, then stop.
        A second Ctrl-C while stopping interrupts at once.

        With several processes SIGTERM stays with jax's preemption service (installed by
        jax.distributed.initialize): a notice on any host makes every host agree on one step to
        save at (`_agreed_stop`). SIGINT is forwarded to it, so a Ctrl-C on one host stops all.
        """
        if threading.current_thread() is not threading.main_thread():
            return {}
        multi = jax.process_count() > 1

        def on_signal(signum, frame):
            if self._signal == signal.SIGINT and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._signal = signum
            if multi:
                os.kill(os.getpid(), signal.SIGTERM)  # a preemption notice for every host

        signals = (signal.SIGINT,) if multi else (signal.SIGTERM, signal.SIGINT)
        return {s: signal.signal(s, on_signal) for s in signals}

    def _agreed_stop(self, step: int) -> bool:
        """Whether to save and stop after `step`: at once on one process; on several, at the
        step jax's preemption service agreed on (every host calls this at every step)."""
        if jax.process_count() == 1:
            return self._signal is not None
        from jax.experimental import multihost_utils

        if multihost_utils.reached_preemption_sync_point(step):
            self._signal = self._signal or signal.SIGTERM
            return True
        return False

    def _say(self, message: str) -> None:
        if self._main:
            log.info(message)
            print(f"[train] {message}", flush=True)

    # ---- files ----------------------------------------------------------------------------------

    def export_hf(self, trainable: dict, frozen: dict | None, lora_scale: float | None) -> Path:
        """Write <run_dir>/hf (LoRA merged into the base weights) with the tokenizer."""
        from octojax.convert.hf_checkpoint import save_hf_checkpoint

        params = (
            trainable if lora_scale is None else merge_into_params(frozen, trainable, lora_scale)
        )
        out = self.run_dir / "hf"
        # every process takes part (tensors sharded over hosts are gathered one at a time);
        # process 0 writes
        save_hf_checkpoint(
            out, self.model_cfg, params, dtype=self.cfg.export.dtype,
            tokenizer_dir=tokenizer_path(self.cfg), max_shard_size=self.cfg.export.max_shard_size,
            write=self._main,
        )  # fmt: skip
        self._say(f"exported Hugging Face model to {out}")
        return out

    def _save_tokenizer(self, checkpoint_dir) -> None:
        """A copy of the tokenizer beside the checkpoints (local or gs://), for generation."""
        tok = tokenizer_path(self.cfg)
        if tok:
            src = Path(tok)
            files = [src] if src.is_file() else [p for p in src.iterdir() if p.is_file()]
            dst = checkpoint_dir / "tokenizer"
            dst.mkdir(parents=True, exist_ok=True)
            for f in files:
                name = "tokenizer.json" if src.is_file() else f.name
                (dst / name).write_bytes(f.read_bytes())


def set_aside(cfg: TrainConfig) -> None:
    """--reset: move the run's files into <run_dir>/reset-<time>/ (nothing is deleted)."""
    run_dir = Path(cfg.run_dir)
    if cfg.checkpoint.dir and "://" in cfg.checkpoint.dir:
        raise ConfigError(
            f"--reset: checkpoint.dir {cfg.checkpoint.dir} is remote; move it aside yourself"
        )
    names = ["config.json", "metrics.jsonl", "metrics.discarded.jsonl", "tensorboard", "hf"]
    moves = [run_dir / n for n in names] + [Path(cfg.checkpoint_dir)]
    moves = [p for p in moves if p.exists()]
    if not moves:
        return
    aside = run_dir / time.strftime("reset-%Y%m%d-%H%M%S")
    aside.mkdir(parents=True)
    for path in moves:
        path.rename(aside / path.name)
    print(f"[train] --reset: moved the earlier run's files to {aside}")


def _check_batch_fits_mesh(cfg: TrainConfig, mesh: Mesh) -> None:
    """The load-time batch check again, now that -1 mesh axes are resolved to device counts."""
    problem = batch_split_problem(cfg.train, mesh.shape["data"] * mesh.shape["fsdp"])
    if problem:
        raise ConfigError(f"{problem} (mesh {dict(mesh.shape)})")


def _exit_lost_peer(error: Exception, ckpt: Checkpointer) -> None:
    """A collective failed because another process of the job is gone: say so in one line and
    exit at once (waiting would end in jax's shutdown barrier, then an abort, minutes later)."""
    first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    peer = re.search(r"\[([0-9a-fA-F.:]+)\]:(\d+)", first)
    who = f"the process at {peer.group(1)}:{peer.group(2)}" if peer else "a peer process"
    steps = ckpt.steps()
    print(
        f"[train] process {jax.process_index()}: lost {who} of this {jax.process_count()}-process "
        f"job ({first}); last complete checkpoint: "
        f"{f'step {steps[-1]}' if steps else 'none'} in {ckpt.directory}; rerun every process "
        "to resume from it",
        file=sys.stderr,
        flush=True,
    )
    sys.stdout.flush()
    os._exit(EXIT_PEER_LOST)


def _restore_signal_handlers(handlers: dict) -> None:
    for signum, handler in handlers.items():
        signal.signal(signum, handler)


class _Prefetcher:
    """Host batches -> global arrays on the mesh, with the iterator state right after each batch
    (what a checkpoint of the step that consumes the batch must record)."""

    def __init__(self, data: BatchIterator, sharding: NamedSharding):
        self.data, self.sharding = data, sharding

    def next(self) -> tuple[dict | None, dict | None]:
        try:
            host = next(self.data)
        except StopIteration:
            return None, None
        state = self.data.get_state()
        return {k: _as_global(v, self.sharding) for k, v in host.items()}, state


def _as_global(x: Any, sharding: NamedSharding) -> jax.Array:
    """A numpy global batch (the same on every process) becomes an array with the batch
    sharding; each process places only the rows its devices hold. jax.Arrays pass through."""
    if isinstance(x, jax.Array):
        return x
    x = np.asarray(x)
    if jax.process_count() > 1:
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])
    return jax.device_put(x, sharding)  # asynchronous
