"""`octojax train --config configs/<name>.yaml [key.sub=value ...] [--reset]`."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from octojax.cli import add_launch_flags, start_distributed


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="instruction-tune a model (sharded jit, orbax checkpoints)")
    p.add_argument("--config", type=Path, required=True, help="YAML config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. train.steps=10")
    p.add_argument(
        "--synthetic-data",
        action="store_true",
        help="random packed token batches instead of the data section (benchmarks, smoke tests); "
        "data.tokenizer, when it exists, still sets the vocabulary",
    )
    p.add_argument("--seq-len", type=int, default=None, help="sequence length of synthetic data")
    p.add_argument(
        "--reset",
        action="store_true",
        help="set the run directory's earlier run aside (renamed, not deleted) and start over",
    )
    add_launch_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from octojax.train.config import load_config
    from octojax.train.trainer import Trainer

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    cfg = load_config(args.config, args.overrides)
    if start_distributed(args):  # the flags imply a multi-host run
        cfg.mesh.distributed = True
    if args.reset:
        from octojax.train.trainer import set_aside

        set_aside(cfg)
    seq_len = args.seq_len or (cfg.data.seq_len if cfg.data is not None else 2048)
    if args.synthetic_data:
        _drop_missing_tokenizer(cfg)
    trainer = Trainer(cfg)
    if args.synthetic_data:  # the global batch, alike on every process (each places its rows)
        from octojax.train.synthetic import SyntheticBatches

        trainer = Trainer(
            cfg,
            data=SyntheticBatches(
                vocab_size=trainer.model_cfg.vocab_size,
                global_batch_size=cfg.train.global_batch_size,
                seq_len=seq_len,
                seed=cfg.train.seed,
            ),
            mesh=trainer.mesh,
        )
    result = trainer.run()
    last = f"{result.losses[-1]:.4f}" if result.losses else "n/a"
    print(
        f"[train] stopped at step {result.final_step} (last loss {last}); run dir {result.run_dir}"
        + (f"; Hugging Face export {result.hf_dir}" if result.hf_dir else "")
    )
    return result.exit_code


def _drop_missing_tokenizer(cfg) -> None:
    """Synthetic data reads no data files: a data section whose tokenizer does not exist is set
    aside (the vocabulary is then the model section's) instead of failing the run."""
    if cfg.data is not None and not Path(cfg.data.tokenizer).exists():
        print(
            f"[train] --synthetic-data: {cfg.data.tokenizer} does not exist; the data section is "
            "not used and the vocabulary is the model section's"
        )
        cfg.data = None
