"""Training throughput: tokens/s and MFU of octojax's jitted train step vs Hugging Face PyTorch.

Full fine-tuning with AdamW (fp32 master weights and optimizer state), scan over layers, the remat
policy from --remat. octojax runs exactly the trainer's step (octojax.train.step.make_train_step,
octojax.train.optimizer.make_optimizer, parameters / optimizer state / batches placed with the
trainer's NamedShardings on a mesh with fsdp over all devices, donated state); batches are the
trainer's SyntheticBatches (one segment per row by default, so both frameworks see plain causal
attention). The baseline is transformers' GPTBigCodeForCausalLM of the same shape (its own random
init: only the shape matters for speed), sdpa attention, torch.optim.AdamW, autocast bf16 on GPU.
With --compare-hf each framework runs in a process of its own, octojax first (its result is
written to --json at once), then transformers, each under its own limit (--octojax-timeout,
--hf-timeout); a side that fails or runs out of time is recorded as octojax_error / hf_error.

On GPU the default is the starcoderbase-1b shape, sequence 2048, batch 8, bf16 compute, remat
dots_saveable (issue 3's target on one H100: >= 70k tokens/s and >= 56% MFU, 1.25x Hugging Face's
55.7k tokens/s). On CPU a small shape with StarCoder's vocabulary (n_embd 256, 4 layers, vocab
49152, sequence 512, batch 8) in fp32. Timings are steady state: --warmup steps (compilation
included) are run first and not counted; each framework's time is the best of --repeats windows of
--steps steps.

    python bench/train_bench.py                         # auto: 1b / bf16 on GPU, small / fp32 on CPU
    python bench/train_bench.py --compare-hf --json out.json
    python bench/train_bench.py --remat full --batch 16 --compare-hf
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import jax
import numpy as np

from octojax.model.config import ATTENTION_IMPLS, REMAT_POLICIES
from octojax.train.loss import resolve_loss_chunk

CPU_SHAPE = dict(n_embd=256, n_layer=4, n_head=4, n_inner=1024)  # vocab stays 49152


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default=None, help="model preset (default: by backend)")
    p.add_argument("--seq-len", type=int, default=None, help="default 2048 on GPU, 512 on CPU")
    p.add_argument("--batch", type=int, default=8, help="global batch (rows)")
    p.add_argument("--steps", type=int, default=None, help="timed steps per window")
    p.add_argument("--warmup", type=int, default=2, help="untimed steps first (compilation)")
    p.add_argument("--repeats", type=int, default=None, help="timed windows; best is reported")
    p.add_argument("--remat", default=None, choices=REMAT_POLICIES,
                   help="default dots_saveable on GPU, none on CPU")  # fmt: skip
    p.add_argument("--dtype", default=None, help="compute dtype (bfloat16 on GPU, float32 on CPU)")
    p.add_argument("--segments", type=int, default=1, help="packed segments per row")
    p.add_argument("--attention", default="auto", choices=ATTENTION_IMPLS)
    p.add_argument("--loss-chunk", type=int, default=None,
                   help="chunked cross-entropy: positions per chunk; 0 = full logits; "
                        "default auto (octojax/train/loss.py)")  # fmt: skip
    p.add_argument(
        "--compare-hf",
        action="store_true",
        help="also time transformers (PyTorch): octojax first, each in its own process",
    )
    p.add_argument(
        "--octojax-timeout",
        type=float,
        default=None,
        help="--compare-hf: seconds for the octojax process (default: no limit)",
    )
    p.add_argument(
        "--hf-timeout",
        type=float,
        default=None,
        help="--compare-hf: seconds for the transformers process (default: no limit)",
    )
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--hf-only", action="store_true", help=argparse.SUPPRESS)  # the child process
    args = p.parse_args()

    if args.hf_only:  # JAX_PLATFORMS=cpu here: torch alone owns the GPU
        import torch

        gpu = torch.cuda.is_available()
        cfg, T, steps, repeats = resolve(args, gpu)
        run = time_hf(cfg, args.batch, T, args.warmup, steps, repeats, gpu)
        with open(args.json, "w") as f:
            json.dump(run, f)
        return
    if args.compare_hf:
        raise SystemExit(compare(args, sys.argv[1:]))
    results = run_octojax(args)
    print(json.dumps(results, indent=2))
    _write(args.json, results)


def run_octojax(args) -> dict:
    """Time octojax's train step in this process; the results dict (header printed first)."""
    gpu = jax.default_backend() == "gpu"
    cfg, T, steps, repeats = resolve(args, gpu)
    peak = _peak_tflops(gpu)
    flops_per_token = cfg.flops_per_token(T)
    results = {
        "machine": _machine(),
        "versions": _versions(),
        "shape": {"n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                  "n_inner": cfg.mlp_dim, "vocab": cfg.vocab_size, "params": cfg.num_params()},
        "seq_len": T, "batch": args.batch, "dtype": cfg.dtype, "remat": cfg.remat,
        "segments_per_row": args.segments, "attention": cfg.attention_impl,
        "loss_chunk": resolve_loss_chunk(args.loss_chunk, cfg.vocab_size, T),
        "timed_steps": steps, "repeats": repeats,
        "flops_per_token": flops_per_token, "peak_tflops_per_device": peak,
    }  # fmt: skip
    print(json.dumps(results), flush=True)
    ours = time_octojax(
        cfg, args.batch, T, args.warmup, steps, repeats, args.segments, args.loss_chunk
    )
    results["octojax"] = _summary(ours, args.batch * T, flops_per_token, peak, jax.device_count())
    print(json.dumps({"octojax": results["octojax"]}), flush=True)
    return results


def compare(args, argv: list[str]) -> int:
    """octojax, then transformers, each in a fresh process under its own time limit (JAX holds
    most of the GPU's memory until its process ends). The octojax result is written to --json as
    soon as it exists; a failed or timed-out side is recorded as octojax_error / hf_error and
    the other still runs. Exit status 1 when either side failed."""
    import tempfile

    from timebox import describe, run_boxed

    rest = _drop_args(argv, flags=("--compare-hf",),
                      with_value=("--json", "--octojax-timeout", "--hf-timeout"))  # fmt: skip
    me = [sys.executable, os.path.abspath(__file__), *rest]
    results, hf = {}, None
    with tempfile.TemporaryDirectory() as d:
        rc, s = run_boxed([*me, "--json", f"{d}/octojax.json"], args.octojax_timeout)
        if rc == 0:
            with open(f"{d}/octojax.json") as f:
                results = json.load(f)
        else:
            results["octojax_error"] = describe(rc, s, args.octojax_timeout)
        _write(args.json, results)
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        rc, s = run_boxed([*me, "--hf-only", "--json", f"{d}/hf.json"], args.hf_timeout, env=env)
        if rc == 0:
            with open(f"{d}/hf.json") as f:
                hf = json.load(f)
            print(json.dumps({"hf_raw": hf}), flush=True)
        else:
            results["hf_error"] = describe(rc, s, args.hf_timeout)
    if hf is not None:
        _merge_hf(args, results, hf)
    print(json.dumps(results, indent=2))
    _write(args.json, results)
    return int("octojax_error" in results or "hf_error" in results)


def _merge_hf(args, results: dict, hf: dict) -> None:
    """Summarise the transformers run like octojax's (same FLOPs per token and peak)."""
    if "flops_per_token" in results:
        flops_per_token, peak = results["flops_per_token"], results["peak_tflops_per_device"]
        tokens = results["batch"] * results["seq_len"]
        backend = results["machine"]["backend"]
        if hf["device"] != ("cuda" if backend == "gpu" else "cpu"):
            results["hf_error"] = f"torch ran on {hf['device']} but jax on {backend}"
            return
    else:  # octojax failed: its process has ended, so this one may start a backend now
        gpu = hf["device"] == "cuda"
        cfg, T, *_ = resolve(args, gpu)
        flops_per_token, peak, tokens = cfg.flops_per_token(T), _peak_tflops(gpu), args.batch * T
    results["hf"] = _summary(hf, tokens, flops_per_token, peak, 1)
    if "octojax" in results:
        results["octojax_over_hf"] = round(
            results["octojax"]["tokens_per_s"] / results["hf"]["tokens_per_s"], 3
        )
    print(json.dumps({"hf": results["hf"], "ratio": results.get("octojax_over_hf")}), flush=True)


def _drop_args(argv: list[str], flags: tuple, with_value: tuple) -> list[str]:
    """argv without the given flags and (as `--x V` or `--x=V`) valued options."""
    rest, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in with_value:
            skip = True
        elif not (a in flags or a.split("=", 1)[0] in with_value):
            rest.append(a)
    return rest


def _write(path: str | None, results: dict) -> None:
    if path:
        with open(path, "w") as f:
            json.dump(results, f, indent=2)


def resolve(args, gpu: bool):
    """(model config, seq_len, timed steps, repeats) from the flags and the backend's defaults."""
    from octojax.model import get_preset

    if args.preset:
        cfg = get_preset(args.preset)
    elif gpu:
        cfg = get_preset("starcoderbase-1b")
    else:
        cfg = get_preset("starcoderbase-1b", **CPU_SHAPE)
    T = args.seq_len or (2048 if gpu else 512)
    cfg = cfg.replace(
        dtype=args.dtype or ("bfloat16" if gpu else "float32"),
        param_dtype="float32",
        remat=args.remat or ("dots_saveable" if gpu else "none"),
        scan_layers=True,
        attention_impl=args.attention,
        n_positions=max(cfg.n_positions, T),
    )
    return cfg, T, args.steps or (10 if gpu else 3), args.repeats or (3 if gpu else 2)


def time_octojax(
    cfg, B: int, T: int, warmup: int, steps: int, repeats: int, segments: int,
    loss_chunk: int | None = None,
):  # fmt: skip
    """Seconds per step windows of the trainer's jitted step (state donated, as in the Trainer)."""
    import jax.numpy as jnp
    import optax
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from octojax.mesh import MeshSection, build_mesh
    from octojax.model.gptbigcode import (
        GPTBigCode,
        abstract_model,
        param_dict,
        param_logical_axes,
        param_shapes,
    )
    from octojax.train.config import OptimizerSection
    from octojax.train.optimizer import make_optimizer
    from octojax.train.step import StepSpec, make_train_step
    from octojax.train.synthetic import SyntheticBatches
    from octojax.train.trainer import batch_sharding, tree_shardings

    mesh = build_mesh(MeshSection(fsdp=-1))
    replicated = NamedSharding(mesh, PartitionSpec())
    shapes = param_shapes(cfg)
    param_shardings = tree_shardings(param_logical_axes(cfg), shapes, mesh)
    params = jax.jit(
        lambda: param_dict(GPTBigCode(cfg, rngs=nnx.Rngs(params=0))), out_shardings=param_shardings
    )()
    total = warmup + steps * repeats
    tx = make_optimizer(
        OptimizerSection(lr=5e-5, warmup_steps=0, schedule="cosine", weight_decay=0.05), total
    )
    opt_shardings = optax.tree_map_params(
        tx, lambda _, s: s, jax.eval_shape(tx.init, params), param_shardings,
        transform_non_params=lambda _: replicated,
        is_leaf=lambda x: isinstance(x, NamedSharding),
    )  # fmt: skip
    state_shardings = {"step": replicated, "params": param_shardings, "opt_state": opt_shardings}
    state = {
        "step": jax.device_put(jnp.zeros((), jnp.int32), replicated),
        "params": params,
        "opt_state": jax.jit(tx.init, out_shardings=opt_shardings)(params),
    }
    del params
    step_fn = jax.jit(
        make_train_step(
            StepSpec(
                graphdef=nnx.graphdef(abstract_model(cfg)), lora_scale=None, loss_chunk=loss_chunk
            ),
            tx,
        ),
        in_shardings=(state_shardings, None, None),
        out_shardings=(state_shardings, replicated),
        donate_argnums=(0,),
    )
    data = SyntheticBatches(
        vocab_size=cfg.vocab_size, global_batch_size=B, seq_len=T, seed=0,
        segments_per_row=segments, pad_fraction=0.0 if segments == 1 else 0.1,
    )  # fmt: skip
    bs = batch_sharding(mesh)
    # a few distinct batches on the device up front: the timed loop measures the step alone
    batches = [{k: jax.device_put(v, bs) for k, v in next(data).items()} for _ in range(4)]

    with jax.set_mesh(mesh):
        t0 = time.perf_counter()
        for i in range(warmup):
            state, metrics = step_fn(state, None, batches[i % len(batches)])
        first_loss = float(metrics["loss"])
        warmup_s = time.perf_counter() - t0
        windows = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            for i in range(steps):
                state, metrics = step_fn(state, None, batches[i % len(batches)])
            jax.block_until_ready((state, metrics))
            windows.append((time.perf_counter() - t0) / steps)
    return {"step_s": windows, "warmup_s": warmup_s, "loss_first": first_loss,
            "loss_last": float(metrics["loss"])}  # fmt: skip


def time_hf(cfg, B: int, T: int, warmup: int, steps: int, repeats: int, gpu: bool):
    """transformers' GPTBigCodeForCausalLM, same shape, sdpa, AdamW, autocast bf16 on GPU."""
    import contextlib

    import torch
    import transformers
    from transformers import GPTBigCodeConfig, GPTBigCodeForCausalLM

    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    skip = ("architectures", "model_type", "torch_dtype")
    kwargs = {k: v for k, v in cfg.to_hf_dict().items() if k not in skip}
    hf_cfg = GPTBigCodeConfig(**{**kwargs, "use_cache": False}, attn_implementation="sdpa")
    torch.manual_seed(0)
    with torch.device(device):  # initialised where it runs: no host copy of 1b parameters
        model = GPTBigCodeForCausalLM(hf_cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.05, fused=device == "cuda")
    rng = np.random.default_rng(0)
    batches = [
        torch.tensor(rng.integers(1, cfg.vocab_size, (B, T)), dtype=torch.long, device=device)
        for _ in range(4)
    ]
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if device == "cuda" and cfg.dtype == "bfloat16"
        else contextlib.nullcontext()
    )

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def step(ids):
        with autocast:
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)  # octojax clips too
        opt.step()
        opt.zero_grad(set_to_none=True)
        return loss.detach()

    t0 = time.perf_counter()
    for i in range(warmup):
        loss = step(batches[i % len(batches)])
    first_loss = float(loss)
    warmup_s = time.perf_counter() - t0
    windows = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        for i in range(steps):
            loss = step(batches[i % len(batches)])
        sync()
        windows.append((time.perf_counter() - t0) / steps)
    return {"step_s": windows, "warmup_s": warmup_s, "loss_first": first_loss,
            "loss_last": float(loss), "attn_implementation": model.config._attn_implementation,
            "torch_threads": torch.get_num_threads(), "device": device,
            "torch": torch.__version__, "transformers": transformers.__version__}  # fmt: skip


def _summary(run: dict, tokens_per_step: int, flops_per_token: float, peak, devices: int) -> dict:
    best = min(run["step_s"])
    tps = tokens_per_step / best
    out = {
        "tokens_per_s": round(tps, 1),
        "step_s_best": round(best, 4),
        "step_s_windows": [round(s, 4) for s in run["step_s"]],
        "mfu": round(flops_per_token * tps / (peak * 1e12 * devices), 4) if peak else None,
        "achieved_tflops": round(flops_per_token * tps / 1e12, 3),
    }
    out.update({k: v for k, v in run.items() if k != "step_s"})
    return out


def _peak_tflops(gpu: bool) -> float | None:
    from octojax.train.metrics import peak_tflops_per_device

    return peak_tflops_per_device() if gpu else None


def _machine() -> dict:
    d = jax.devices()[0]
    info = {"backend": jax.default_backend(), "device_kind": d.device_kind,
            "devices": jax.device_count(), "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine()}  # fmt: skip
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def _versions() -> dict:
    import flax
    import optax

    return {"python": platform.python_version(), "jax": jax.__version__,
            "flax": flax.__version__, "optax": optax.__version__}  # fmt: skip


if __name__ == "__main__":
    main()
