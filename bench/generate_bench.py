"""Generation throughput: new tokens/s at batch 1 and 32, prompt 128, 256 new tokens, greedy.

On GPU the default is the starcoderbase-1b shape in bf16 (the issue's target: >= 1,000 tokens/s at
batch 1 and >= 20,000 at batch 32 on one H100). On CPU a small model is used, and --compare-hf runs
transformers' GPTBigCodeForCausalLM.generate on the same weights in the same process for a ratio.
Random weights; EOS is disabled so every row decodes all 256 tokens.

    python bench/generate_bench.py                      # auto: 1b/bf16 on GPU, small/fp32 on CPU
    python bench/generate_bench.py --compare-hf --batch-sizes 1 32
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time

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
    p.add_argument("--json", default=None, help="write results here")
    args = p.parse_args()

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
    for B in args.batch_sizes:
        prompt = rs.randint(1, cfg.vocab_size, (B, args.prompt_len)).astype(np.int32)
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
        if args.compare_hf:
            run.update(_time_hf(cfg, params, prompt, args.new_tokens, dtype, args.repeats))
            run["speedup_vs_hf"] = round(run["octojax_tokens_per_s"] / run["hf_tokens_per_s"], 2)
        print(json.dumps(run), flush=True)
        results["runs"].append(run)
    print(json.dumps(results, indent=2))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


def _time_hf(cfg, params, prompt, new_tokens, dtype, repeats) -> dict:
    """transformers' default generate() on the same weights (exported through octojax)."""
    import torch
    from transformers import GPTBigCodeForCausalLM

    from octojax.convert import save_hf_checkpoint

    with tempfile.TemporaryDirectory() as d:
        save_hf_checkpoint(d, cfg.replace(param_dtype="float32"), params)
        hf = GPTBigCodeForCausalLM.from_pretrained(d, dtype=getattr(torch, dtype)).eval()
    ids = torch.tensor(prompt, dtype=torch.long)
    kw = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        hf.generate(ids, **kw)
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            hf.generate(ids, **kw)
            times.append(time.perf_counter() - t0)
    best = min(times)
    return {
        "hf_tokens_per_s": round(prompt.shape[0] * new_tokens / best, 1),
        "hf_seconds": round(best, 3),
    }


if __name__ == "__main__":
    main()
