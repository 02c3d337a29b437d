"""`octojax generate`: complete prompts with a Hugging Face or octojax model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from octojax.cli import add_launch_flags, start_distributed
from octojax.sampling_config import add_sampling_flags, sampling_from_args


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="generate completions with KV-cache decoding")
    p.add_argument("--model", type=Path, required=True, help="HF directory or octojax checkpoint")
    p.add_argument("--tokenizer", type=Path, default=None)
    p.add_argument("--prompt", action="append", default=[], help="a prompt (repeatable)")
    p.add_argument("--prompts-file", type=Path, help='JSONL with a "prompt" field per line')
    p.add_argument("--output", type=Path, help="write JSONL results here (default: print)")
    add_sampling_flags(p.add_argument_group("sampling"))
    p.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    p.add_argument(
        "--strict",
        action="store_true",
        help="refuse prompts that do not fit n_positions - max_new_tokens (default: warn, keep their end)",
    )
    p.add_argument("--scheduler", choices=("continuous", "static"), default="continuous")
    p.add_argument(
        "--mesh",
        default=None,
        help='device mesh, e.g. "data=2,fsdp=1,tensor=4" (-1 fills; dcn_* too; octojax/mesh.py)',
    )
    add_launch_flags(p)
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


def run(args: argparse.Namespace) -> int:
    from octojax.generate.generator import Generator

    prompts = list(args.prompt) + (read_prompts(args.prompts_file) if args.prompts_file else [])
    if not prompts:
        print("octojax generate: give --prompt or --prompts-file", file=sys.stderr)
        return 2
    sampling = sampling_from_args(args)
    if args.output is not None and not args.output.parent.is_dir():
        print(
            f"octojax generate: error: {args.output.parent}: no such folder for --output",
            file=sys.stderr,
        )
        return 2  # checked before any generation work, so no text is lost at the end
    distributed = start_distributed(args)
    gen = Generator.from_pretrained(
        args.model, dtype=args.dtype, tokenizer=args.tokenizer, mesh=args.mesh,
        distributed=distributed,
    )  # fmt: skip
    gen.strict = args.strict
    outs = gen.generate(prompts, sampling, progress=True, scheduler=args.scheduler)
    n = sampling.n_samples
    import jax

    if distributed and jax.process_index() != 0:
        return 0  # every process holds every output; process 0 writes them once
    rows = [
        {
            "prompt": prompts[i // n],
            "sample": i % n,
            "completion": o.text,
            "finish_reason": o.finish_reason,
            "token_ids": o.token_ids,
        }
        for i, o in enumerate(outs)
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
