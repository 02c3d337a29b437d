"""Generation throughput: new tokens/s at batch 1 and 32, prompt 128, 256 new tokens, greedy.

On GPU the default is the starcoderbase-1b shape in bf16 (the issue's target: >= 1,000 tokens/s at
batch 1 and >= 20,000 at batch 32 on one H100). On CPU a small model is used. Random weights; EOS
is disabled so every row decodes all 256 tokens. octojax is timed first, at every batch size, and
each result is printed and written to --json at once. --compare-hf then runs transformers'
GPTBigCodeForCausalLM.generate on the same weights and prompts, on the GPU when there is one, in a
process of its own under --hf-timeout: first its default generate (dynamic cache, eager), then its
fastest setup, a static cache with torch.compile (--hf-compile; a failure is recorded, not fatal);
each (batch, mode) result lands as soon as it exists and the ratio uses the faster mode.

    python bench/generate_bench.py                      # auto: 1b/bf16 on GPU, small/fp32 on CPU
    python bench/generate_bench.py --compare-hf --batch-sizes 1 32
    python bench/generate_bench.py --workload humanevalpack --limit 8 --n-samples 20

--workload humanevalpack: HumanEvalPack Python synthesize prompts built as eval builds them
(eval.tasks.Task; eval never imports jax), n samples each, temperature 0.2, top-p 0.95, the
harness's stop sequences and its stop_when check, max 512 new tokens, through
Generator.generate with the static and the continuous scheduler in the same process. A random
model rarely stops by itself, so each sample ends at a realistic length instead: the token count
of the problem's canonical solution times a seeded random factor in [0.5, 3] (capped at 512).
The harness's stop check still runs on every chunk (its cost is counted) but, since random text
trips it within a few tokens, it does not end rows unless --real-stops is given.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import jax
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default=None, help="model preset (default: by backend)")
    p.add_argument("--dtype", default=None)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    p.add_argument("--prompt-len", type=int, default=128)
    p.add_argument("--new-tokens", type=int, default=256)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--compare-hf", action="store_true", help="also time transformers (PyTorch)")
    p.add_argument(
        "--hf-timeout",
        type=float,
        default=None,
        help="--compare-hf: seconds for the transformers process (default: no limit)",
    )
    p.add_argument(
        "--hf-compile",
        choices=("inductor", "eager", "off"),
        default="inductor",
        help="torch.compile backend of the static-cache mode (eager: tracing only)",
    )
    p.add_argument("--json", default=None, help="write results here")
    p.add_argument("--hf-child", default=None, help=argparse.SUPPRESS)  # the transformers process
    p.add_argument("--workload", choices=("throughput", "humanevalpack"), default="throughput")
    p.add_argument(
        "--data-dir", default=str(Path(__file__).resolve().parents[2] / "shared" / "humanevalpack")
    )
    p.add_argument("--limit", type=int, default=None, help="first N problems (CPU time)")
    p.add_argument("--n-samples", type=int, default=20)
    p.add_argument("--slots", type=int, default=32, help="decode slots (batch size)")
    p.add_argument(
        "--schedulers",
        nargs="+",
        choices=("static", "continuous"),
        default=["static", "continuous"],
        help="humanevalpack: schedulers, in order",
    )
    p.add_argument(
        "--real-stops",
        action="store_true",
        help="let the harness's stop sequences / stop_when end rows (random text trips them early)",
    )
    args = p.parse_args()
    if args.hf_child:
        return hf_child(Path(args.hf_child), args)
    if args.workload == "humanevalpack":
        return humanevalpack(args)
    throughput(args)


def throughput(args) -> None:
    """Greedy decode tokens/s per batch size: octojax first (each written at once), then HF."""
    from octojax.generate.decode import generate_tokens
    from octojax.model import get_preset, init_model, model_from_params, param_dict

    gpu = jax.default_backend() == "gpu"
    if args.preset:
        cfg = get_preset(args.preset)
    elif gpu:
        cfg = get_preset("starcoderbase-1b")
    else:  # a CPU-sized model with StarCoder's vocabulary
        cfg = get_preset("starcoderbase-1b", n_embd=256, n_layer=4, n_head=4, n_inner=1024)
    dtype = args.dtype or ("bfloat16" if gpu else "float32")
    cfg = cfg.replace(n_positions=max(cfg.n_positions, args.prompt_len + args.new_tokens))
    base = init_model(cfg.replace(param_dtype="float32"), seed=0)
    params = param_dict(base)
    model = model_from_params(
        cfg.replace(dtype=dtype, param_dtype=dtype), jax.tree.map(lambda a: a.astype(dtype), params)
    )
    results = {
        "machine": f"{jax.devices()[0].device_kind} ({jax.default_backend()}), {platform.processor() or platform.machine()}",
        "jax": jax.__version__,
        "shape": {"n_embd": cfg.n_embd, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
                  "vocab": cfg.vocab_size, "params": cfg.num_params()},
        "dtype": dtype, "prompt_len": args.prompt_len, "new_tokens": args.new_tokens, "runs": [],
    }  # fmt: skip
    rs = np.random.RandomState(0)
    prompts = {}
    for B in args.batch_sizes:
        prompts[B] = prompt = rs.randint(1, cfg.vocab_size, (B, args.prompt_len)).astype(np.int32)
        mask = np.ones_like(prompt)
        kw = dict(max_new_tokens=args.new_tokens, eos_ids=(-1,), pad_id=0)
        t0 = time.perf_counter()
        generate_tokens(model, prompt, mask, **kw)
        compile_s = time.perf_counter() - t0
        times = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            toks, n = generate_tokens(model, prompt, mask, **kw)
            times.append(time.perf_counter() - t0)
        assert (n == args.new_tokens).all()
        best = min(times)
        run = {"batch": B, "octojax_tokens_per_s": round(B * args.new_tokens / best, 1),
               "octojax_seconds": round(best, 3), "first_call_seconds": round(compile_s, 2)}  # fmt: skip
        print(json.dumps(run), flush=True)
        results["runs"].append(run)
        _write(args.json, results)
    if args.compare_hf:
        results["hf_error"] = compare_hf(args, cfg, params, prompts, dtype, results["runs"])
        if results["hf_error"] is None:
            del results["hf_error"]
    print(json.dumps(results, indent=2))
    _write(args.json, results)
    if "hf_error" in results:
        raise SystemExit(1)


def _write(path: str | None, results: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(results, indent=2))


def compare_hf(args, cfg, params, prompts: dict, dtype: str, runs: list[dict]) -> str | None:
    """transformers on the same weights and prompts in a child process (its own time box); its
    results merged into `runs` per batch. None, or why some or all of it is missing."""
    import os
    import sys

    from timebox import describe, run_boxed

    from octojax.convert import save_hf_checkpoint

    with tempfile.TemporaryDirectory() as d:
        save_hf_checkpoint(d, cfg.replace(param_dtype="float32"), params)
        np.savez(f"{d}/prompts.npz", **{str(B): x for B, x in prompts.items()})
        cmd = [sys.executable, os.path.abspath(__file__), "--hf-child", d, "--dtype", dtype,
               "--new-tokens", str(args.new_tokens), "--repeats", str(args.repeats),
               "--hf-compile", args.hf_compile]  # fmt: skip
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}  # torch alone in that process
        rc, s = run_boxed(cmd, args.hf_timeout, env=env)
        lines = Path(d, "hf.jsonl").read_text().splitlines() if Path(d, "hf.jsonl").exists() else []
    by_batch = {r["batch"]: r for r in runs}
    for line in lines:
        _merge_hf(by_batch, json.loads(line))
    if rc != 0:
        return describe(rc, s, args.hf_timeout)
    missing = [r["batch"] for r in runs if "hf_tokens_per_s" not in r]
    return f"no transformers timing at batch {missing}" if missing else None


def _merge_hf(by_batch: dict, hf: dict) -> None:
    """One transformers (batch, mode) result into that batch's run; the ratio uses its best mode."""
    run = by_batch[hf.pop("batch")]
    run.setdefault("hf_modes", {})[hf.pop("mode")] = hf
    timed = {m: v for m, v in run["hf_modes"].items() if "tokens_per_s" in v}
    if not timed:
        return
    mode = max(timed, key=lambda m: timed[m]["tokens_per_s"])
    tps = timed[mode]["tokens_per_s"]
    run.update(hf_tokens_per_s=tps, hf_best_mode=mode, hf_device=timed[mode]["device"],
               speedup_vs_hf=round(run["octojax_tokens_per_s"] / tps, 2))  # fmt: skip


def hf_child(d: Path, args) -> None:
    """The transformers process: every batch eagerly (default generate), then every batch with a
    static cache + torch.compile; one JSON line per (batch, mode) appended to d/hf.jsonl."""
    import torch
    from transformers import GPTBigCodeForCausalLM

    device = "cuda" if torch.cuda.is_available() else "cpu"
    hf = GPTBigCodeForCausalLM.from_pretrained(d, dtype=getattr(torch, args.dtype)).to(device)
    hf.eval()
    prompts = dict(np.load(d / "prompts.npz"))
    modes = ["eager"] + ([] if args.hf_compile == "off" else [f"static+compile({args.hf_compile})"])
    for mode in modes:
        for B, prompt in prompts.items():
            ids = torch.tensor(prompt, dtype=torch.long, device=device)
            try:
                out = _time_hf_generate(hf, ids, args.new_tokens, args.repeats, mode, args)
            except Exception as e:  # recorded: the other mode's result still stands
                out = {"error": f"{type(e).__name__}: {str(e)[:300]}"}
            out.update(batch=int(B), mode=mode, device=device)
            print(json.dumps(out), flush=True)
            with open(d / "hf.jsonl", "a") as f:
                f.write(json.dumps(out) + "\n")


def _time_hf_generate(hf, ids, new_tokens: int, repeats: int, mode: str, args) -> dict:
    """Best of `repeats` timed generate calls after one untimed call (compilation)."""
    import torch
    from transformers import CompileConfig

    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    if mode != "eager":
        config = CompileConfig(backend=args.hf_compile, fullgraph=True)
        if ids.device.type == "cpu":
            config._compile_all_devices = True  # transformers compiles on GPUs only, unless told
        kw.update(cache_implementation="static", compile_config=config)

    def sync():
        if ids.device.type == "cuda":
            torch.cuda.synchronize()

    with torch.no_grad():
        t0 = time.perf_counter()
        hf.generate(ids, **kw)
        sync()
        first = time.perf_counter() - t0
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            out = hf.generate(ids, **kw)
            sync()
            times.append(time.perf_counter() - t0)
    assert out.shape[1] == ids.shape[1] + new_tokens
    best = min(times)
    return {"tokens_per_s": round(ids.shape[0] * new_tokens / best, 1), "seconds": round(best, 3),
            "first_call_seconds": round(first, 2)}  # fmt: skip


def _workload_model(args, gpu: bool, out_dir: Path):
    """A random model + BPE tokenizer on disk: 1b shape on GPU, a 4-layer 256-wide one on CPU."""
    from octojax.generate.testing import tiny_model_dir

    if args.preset or gpu:
        return tiny_model_dir(out_dir, preset=args.preset or "starcoderbase-1b", vocab_size=8192,
                              initializer_range=0.3)  # fmt: skip
    return tiny_model_dir(out_dir, preset="starcoderbase-1b", vocab_size=8192, n_embd=256,
                          n_layer=4, n_head=4, n_inner=1024, initializer_range=0.3)  # fmt: skip


def _load() -> str:
    with open("/proc/loadavg") as f:
        return f.read().split()[0]


def humanevalpack(args) -> None:
    """Static vs continuous batching on the HumanEvalPack synthesize workload (same process)."""
    from eval.data import load_problems
    from eval.postprocess import is_complete
    from eval.tasks import SYNTHESIZE, Task
    from octojax.generate import Generator
    from octojax.sampling_config import SamplingConfig

    gpu = jax.default_backend() == "gpu"
    dtype = args.dtype or ("bfloat16" if gpu else "float32")
    problems = load_problems("python", args.data_dir, limit=args.limit)
    task = Task(SYNTHESIZE, "python")
    stops = task.stop_sequences()
    with tempfile.TemporaryDirectory() as d:
        gen = Generator.from_pretrained(_workload_model(args, gpu, Path(d)), dtype=dtype)
    rs = np.random.RandomState(0)
    prompts, limits = [], []
    for prob in problems:
        solution = len(gen.tokenizer(prob["canonical_solution"])["input_ids"])
        for _ in range(args.n_samples):
            prompts.append(task.prompt(prob))
            limits.append(int(min(512, max(1, round(solution * rs.uniform(0.5, 3.0))))))
    # The same settings as before Generator took a SamplingConfig: prompts already repeated
    # n_samples times (n_samples=1 here), one limit per row.
    sampling = SamplingConfig(temperature=0.2, top_p=0.95, seed=0, slots=args.slots,
                              stop_sequences=stops if args.real_stops else [])  # fmt: skip
    if args.real_stops:
        stop_when = lambda t: is_complete("python", t, stops)
    else:  # the harness's check runs on every chunk (its cost counts) but never ends a row
        stop_when = lambda t: is_complete("python", t, stops) and False
    kw = dict(max_new_tokens_per_prompt=limits, stop_when=stop_when)
    t0 = time.perf_counter()
    gen.warmup(prompts, sampling, max_new_tokens_per_prompt=limits)
    print(f"compiled in {time.perf_counter() - t0:.1f}s", flush=True)
    results = {"machine": f"{jax.devices()[0].device_kind} ({jax.default_backend()})",
               "model_params": gen.model.cfg.num_params(), "dtype": dtype,
               "problems": len(problems), "n_samples": args.n_samples, "slots": args.slots,
               "mean_limit": round(float(np.mean(limits)), 1), "runs": {}}  # fmt: skip
    outputs = {}
    for scheduler in args.schedulers:
        load = _load()
        t0 = time.perf_counter()
        outputs[scheduler] = gen.generate(prompts, sampling, scheduler=scheduler, **kw)
        s = time.perf_counter() - t0
        st = gen.last_stats
        results["runs"][scheduler] = {
            "seconds": round(s, 2), "samples_per_s": round(len(prompts) / s, 2),
            "new_tokens_per_s": round(st["new_tokens"] / s, 1), "new_tokens": st["new_tokens"],
            "decode_steps": st["decode_steps"], "prefills": st["prefills"],
            "slot_use": round(st["new_tokens"] / (st["decode_steps"] * st["slots"]), 3),
            "load_before": load, "load_after": _load(),
        }  # fmt: skip
        print(scheduler, json.dumps(results["runs"][scheduler]), flush=True)
        _write(args.json, results)
    r = results["runs"]
    if len(r) == 2:
        same = [o.token_ids for o in outputs["static"]] == [
            o.token_ids for o in outputs["continuous"]
        ]
        results["identical_outputs"] = same
        results["speedup_samples_per_s"] = round(
            r["continuous"]["samples_per_s"] / r["static"]["samples_per_s"], 2
        )
    print(json.dumps(results, indent=2))
    _write(args.json, results)


if __name__ == "__main__":
    main()
