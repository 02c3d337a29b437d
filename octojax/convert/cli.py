"""`octojax convert import|export`: Hugging Face directory <-> octojax checkpoint."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("convert", help="convert checkpoints between Hugging Face and octojax")
    conv = p.add_subparsers(dest="direction", required=True)
    imp = conv.add_parser("import", help="Hugging Face GPTBigCode directory -> octojax checkpoint")
    imp.add_argument("hf_dir", type=Path)
    imp.add_argument("out_dir", type=Path)
    imp.add_argument("--dtype", default=None, help="parameter dtype (default: as config.json says)")
    imp.add_argument(
        "--overwrite", action="store_true", help="replace out_dir if it exists and is not empty"
    )
    exp = conv.add_parser(
        "export", help="octojax checkpoint / training run -> Hugging Face directory"
    )
    exp.add_argument("checkpoint", type=Path, help="params checkpoint, training run or step dir")
    exp.add_argument("out_dir", type=Path)
    exp.add_argument("--dtype", default=None, help="dtype of the written safetensors")
    exp.add_argument("--tokenizer", type=Path, default=None, help="tokenizer dir to copy alongside")
    exp.add_argument(
        "--max-shard-size",
        default="5GB",
        help="split the safetensors into files of at most this size (default 5GB, as transformers)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from octojax.convert.hf_checkpoint import load_hf_params, save_hf_checkpoint
    from octojax.convert.octojax_checkpoint import find_params_dir, load_params, save_params
    from octojax.convert.staging import recover, staged_dir
    from octojax.model.config import ModelConfig
    from octojax.tokenizer import copy_tokenizer_files

    if args.direction == "import":
        out = args.out_dir
        recover(out)  # a killed earlier publish: the old folder back before it is judged
        if out.exists() and (not out.is_dir() or any(out.iterdir())) and not args.overwrite:
            raise FileExistsError(f"{out}: exists and is not empty; pass --overwrite to replace it")
        cfg = ModelConfig.from_hf_json(args.hf_dir)
        if args.dtype:
            cfg = cfg.replace(param_dtype=args.dtype)
        cfg, params = load_hf_params(args.hf_dir, cfg)
        with staged_dir(out, replace=True) as tmp:  # the old folder goes only once this is done
            save_params(tmp, cfg, params)
            if any((args.hf_dir / f).exists() for f in ("tokenizer.json", "vocab.json")):
                (tmp / "tokenizer").mkdir()
                copy_tokenizer_files(args.hf_dir, tmp / "tokenizer")
        print(f"wrote octojax checkpoint {args.out_dir} ({cfg.num_params() / 1e6:.1f}M parameters)")
        return 0
    cfg, params = load_params(args.checkpoint)
    tokenizer = args.tokenizer
    if tokenizer is None:
        beside = find_params_dir(args.checkpoint)[1].parent / "tokenizer"
        tokenizer = beside if beside.exists() else None
    save_hf_checkpoint(
        args.out_dir,
        cfg,
        params,
        dtype=args.dtype,
        tokenizer_dir=tokenizer,
        max_shard_size=args.max_shard_size,
    )
    print(f"wrote Hugging Face directory {args.out_dir}")
    return 0
