"""Throughput of the instruction-tuning input pipeline (octojax.data) on the real instruction mix.

Measures, for each --workers value: building the iterator (index, read, format, tokenise this
host's share; tokens/s of example tokens) and iterating (packing + gathering global batches;
tokens/s of non-padding tokens). Without --tokenizer a byte-level BPE is trained on the mix
(StarCoder's tokenizer cannot be downloaded here); pass a local StarCoder tokenizer directory for
real numbers.

    python bench/data_bench.py --repeat 8 --workers 0 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
DEFAULT_MIX = REPO_ROOT.parent / "shared" / "data" / "octogeex_instruct_mix.jsonl"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mix", default=str(DEFAULT_MIX))
    parser.add_argument("--tokenizer", help="tokenizer dir/file (default: BPE trained on the mix)")
    parser.add_argument("--vocab_size", type=int, default=8192)
    parser.add_argument("--repeat", type=int, default=4, help="concatenate the mix N times")
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq_len", type=int, default=2048)
    args = parser.parse_args(argv)

    from octojax.data.config import DataConfig
    from octojax.data.pipeline import make_train_iterator
    from octojax.tokenizer import train_bpe_tokenizer

    mix = Path(args.mix)
    if not mix.exists():
        print(f"{mix} is absent", file=sys.stderr)
        return 2
    lines = [line for line in mix.read_text(encoding="utf-8").splitlines() if line.strip()]
    with tempfile.TemporaryDirectory() as tmp:
        tokenizer = args.tokenizer
        if tokenizer is None:
            t0 = time.perf_counter()
            texts = [json.loads(x)["prompt"] + json.loads(x)["completion"] for x in lines]
            tokenizer = str(train_bpe_tokenizer(texts, Path(tmp) / "tok", args.vocab_size))
            print(
                f"trained BPE tokenizer (vocab {args.vocab_size}) in {time.perf_counter() - t0:.1f}s"
            )
        from octojax.tokenizer import load_tokenizer

        t0 = time.perf_counter()
        load_tokenizer(tokenizer)  # import transformers once, outside the timings
        print(f"first tokenizer load (imports) {time.perf_counter() - t0:.1f}s")
        data = Path(tmp) / "mix.jsonl"
        data.write_text("\n".join(lines * args.repeat) + "\n", encoding="utf-8")
        results = []
        for workers in args.workers:
            cfg = DataConfig.from_dict(
                {
                    "sources": [{"kind": "jsonl", "path": str(data)}],
                    "tokenizer": tokenizer,
                    "seq_len": args.seq_len,
                    "num_workers": workers,
                }
            )
            t0 = time.perf_counter()
            it = make_train_iterator(cfg, global_batch_size=args.batch)
            build = time.perf_counter() - t0
            t0 = time.perf_counter()
            steps = sum(1 for _ in it)
            iterate = time.perf_counter() - t0
            s = it.stats
            row = {
                "workers": workers,
                "examples": s["examples"],
                "example_tokens": s["example_tokens"],
                "build_s": round(build, 2),
                "build_tokens_per_s": round(s["example_tokens"] / build),
                "steps": steps,
                "iterate_s": round(iterate, 3),
                "iterate_tokens_per_s": round(s["tokens"] / iterate),
                "padding_fraction": round(s["padding_fraction"], 4),
            }
            results.append(row)
            print(json.dumps(row))
    print(
        json.dumps(
            {
                "machine": f"{platform.machine()} {os.cpu_count()} cpus, {platform.python_version()}",
                "TOKENIZERS_PARALLELISM": os.environ.get("TOKENIZERS_PARALLELISM"),
                "repeat": args.repeat,
                "batch": args.batch,
                "seq_len": args.seq_len,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
