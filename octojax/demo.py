"""`octojax demo`: the smallest end-to-end check of a fresh install, on one CPU, no downloads.

Trains a byte-level BPE tokenizer on octojax's own source, builds a random StarCoder-shaped model,
exports it to Hugging Face format, loads it back and generates with KV-cache decoding.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from octojax.sampling_config import add_sampling_flags, sampling_from_args

DEFAULT_PROMPTS = (
    "def fibonacci(n):\n",
    "Question: Fix bugs in has_close_elements.\n\nAnswer:\nfrom typing import List\n",
    "// Return the sum of the array\nfunction sum(xs) {\n",
    "fn main() {\n",
)


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="random tiny StarCoder: export, reload, generate (smoke test)")
    p.add_argument("--out", type=Path, default=Path("runs/demo"))
    p.add_argument("--preset", default="smoke")
    add_sampling_flags(p.add_argument_group("sampling"))
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from octojax.convert.hf_checkpoint import save_hf_checkpoint
    from octojax.generate.generator import Generator
    from octojax.model import get_preset, init_model, param_dict
    from octojax.tokenizer import octojax_source_corpus, train_bpe_tokenizer, vocab_size_of

    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    tok_dir = train_bpe_tokenizer(octojax_source_corpus(), out / "tokenizer", vocab_size=2048)
    cfg = get_preset(args.preset, vocab_size=vocab_size_of(tok_dir))
    model = init_model(cfg, seed=0)
    hf_dir = save_hf_checkpoint(out / "hf", cfg, param_dict(model), tokenizer_dir=tok_dir)
    print(f"[demo] {cfg.num_params() / 1e6:.2f}M-parameter model exported to {hf_dir}")

    gen = Generator.from_pretrained(hf_dir, dtype="float32")
    sampling = sampling_from_args(args)
    outs = gen.generate(list(DEFAULT_PROMPTS), sampling)
    first = gen.last_stats
    outs = gen.generate(list(DEFAULT_PROMPTS), sampling)
    warm = gen.last_stats
    report = {
        "model": {"preset": args.preset, "params": cfg.num_params(), "hf_dir": str(hf_dir)},
        "generation": {
            "prompts": len(DEFAULT_PROMPTS),
            "new_tokens": warm["new_tokens"],
            "first_call_seconds": round(first["seconds"], 3),
            "warm_seconds": round(warm["seconds"], 3),
            "tokens_per_second": round(warm["new_tokens"] / warm["seconds"], 1),
        },
        "samples": [
            {"prompt": DEFAULT_PROMPTS[i // sampling.n_samples], "completion": o.text}
            for i, o in enumerate(outs)
        ],
        "total_seconds": round(time.perf_counter() - t0, 2),
    }
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    g = report["generation"]
    print(
        f"[demo] generated {g['new_tokens']} tokens for {g['prompts']} prompts: "
        f"{g['tokens_per_second']} tokens/s warm (first call {g['first_call_seconds']}s with compile)"
    )
    print(f"[demo] random weights, so the text is noise; report: {out / 'report.json'}")
    return 0
