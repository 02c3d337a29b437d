"""`octojax generate`: complete prompts with a Hugging Face or octojax model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate completions with KV-cache decoding")
    p.add_argument("--model", type=Path, required=True, help="HF directory or octojax checkpoint")
    p.add_argument("--tokenizer", type=Path, default=None)
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts-file", type=Path, help='JSONL with a "prompt" field per line')
    p.add_argument("--output", type=Path, help="write JSONL results here (default: print)")
    p.add_argument("--max-new-tokens", type=int, default=128)
    p.add_argument("--temperature", type=float, default=0.0)
    p.add_argument("--top-p", type=float, default=1.0)
    p.add_argument("--top-k", type=int, default=0)
    p.add_argument("--stop", action="append", default=[], help="stop sequence (repeatable)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse prompts that do not fit n_positions - max_new_tokens (default: warn, keep their end)",
    )
    p.add_argument("--n-samples", type=int, default=1, help="completions per prompt (one prefill)")
    p.add_argument("--scheduler", choices=("continuous", "static"), default="continuous")
    p.add_argument(
        "--mesh", default=None, help='device mesh, e.g. "data=2,fsdp=1,tensor=4" (-1 fills)'
    )
    p.add_argument(
        "--distributed",
        action="store_true",
        help="multi-host: jax.distributed.initialize(), each process takes a share of the prompts",
    )
    p.add_argument("--coordinator", default=None, help="host:port (else auto-detected)")
    p.add_argument("--num-processes", type=int, default=None)
    p.add_argument("--process-id", type=int, default=None)
    p.set_defaults(func=run)


def read_prompts(path: Path) -> list[str]:
    """The "prompt" of every JSONL line; ConfigError naming the file and line when malformed."""
    from octojax.config import ConfigError

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.start}: {e.reason})") from None
    prompts = []
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            prompts.append(json.loads(line)["prompt"])
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise ConfigError(f"{path}:{n}: expected a JSON object with a 'prompt' ({e})") from None
    return prompts


def _initialize_distributed(args: argparse.Namespace) -> None:
    """jax.distributed.initialize with the explicit flags (else the cluster's environment)."""
    import jax

    kwargs = {
        k: v
        for k, v in (
            ("coordinator_address", args.coordinator),
            ("num_processes", args.num_processes),
            ("process_id", args.process_id),
        )
        if v is not None
    }
    if not jax.distributed.is_initialized():
        jax.distributed.initialize(**kwargs)


def run(args: argparse.Namespace) -> int:
    from octojax.generate.generator import Generator

    prompts = list(args.prompt) + (read_prompts(args.prompts_file) if args.prompts_file else [])
    if not prompts:
        print("octojax generate: give --prompt or --prompts-file", file=sys.stderr)
        return 2
    if args.n_samples < 1:
        print("octojax generate: --n-samples must be at least 1", file=sys.stderr)
        return 2
    if args.output is not None and not args.output.parent.is_dir():
        print(
            f"octojax generate: error: {args.output.parent}: no such folder for --output",
            file=sys.stderr,
        )
        return 2  # checked before any generation work, so no text is lost at the end
    if args.distributed:
        _initialize_distributed(args)
    gen = Generator.from_pretrained(
        args.model,
        dtype=args.dtype,
        tokenizer=args.tokenizer,
        mesh=args.mesh,
        distributed=args.distributed,
    )
    gen.strict = args.strict
    prompts = [p for p in prompts for _ in range(args.n_samples)]
    outs = gen.generate(
        prompts,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        top_k=args.top_k,
        stop_sequences=args.stop,
        seed=args.seed,
        batch_size=args.batch_size,
        progress=True,
        scheduler=args.scheduler,
    )
    import jax

    if args.distributed and jax.process_index() != 0:
        return 0  # every process holds every output; process 0 writes them once
    rows = [
        {
            "prompt": p,
            "sample": i % args.n_samples,
            "completion": o.text,
            "finish_reason": o.finish_reason,
            "token_ids": o.token_ids,
        }
        for i, (p, o) in enumerate(zip(prompts, outs))
    ]
    if args.output:
        tmp = args.output.with_name(args.output.name + ".partial")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in rows))
        tmp.replace(args.output)  # whole file or nothing
        print(f"wrote {len(rows)} completions to {args.output}")
    else:
        for r in rows:
            print(
                f"--- prompt:\n{r['prompt']}\n--- completion ({r['finish_reason']}):\n{r['completion']}"
            )
    s = gen.last_stats
    print(
        f"{s['new_tokens']} new tokens in {s['seconds']:.2f}s ({s['new_tokens'] / max(s['seconds'], 1e-9):.1f} tokens/s)"
    )
    return 0
