"""The `octojax plan` subcommand: its flags, and the plan printed as a table or as JSON."""

from __future__ import annotations

import argparse
import dataclasses
import json

from jax.sharding import AbstractMesh

from octojax.plan.devices import DEVICES, GiB, parse_bytes, parse_device
from octojax.plan.estimate import (
    DEFAULT_USABLE,
    MemoryPlan,
    kv_cache_bytes,
    largest_micro_batch,
    make_plan,
    plan_model_config,
)


def human(n: float) -> str:
    """Bytes as '12.3 GiB' / '456.7 MiB'."""
    for unit, size in (("GiB", GiB), ("MiB", 1024**2), ("KiB", 1024)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def format_plan(p: MemoryPlan, kv: int | None = None, kv_shape: tuple[int, int] = (0, 0)) -> str:
    """The plan as a readable table (per device)."""
    m = p.mesh
    head = [
        f"mesh data={m['data']} fsdp={m['fsdp']} tensor={m['tensor']}; micro-batch {p.micro_batch} "
        f"({p.rows_per_device} rows/device) x {p.seq_len}; remat {p.remat}; attention {p.attention}; "
        f"loss {f'chunks of {p.loss_chunk}' if p.loss_chunk else 'plain'}",
        f"{'per device':<22}{'bytes':>14}",
    ]
    rows = [f"{k:<22}{human(v):>14}" for k, v in p.lines.items() if v]
    rows.append(f"{'total (train step)':<22}{human(p.total):>14}")
    if kv is not None:
        rows.append(
            f"{'KV cache (generate)':<22}{human(kv):>14}  batch {kv_shape[0]} x {kv_shape[1]}"
        )
    if p.device_memory is not None:
        verdict = "fits" if p.fits else "does NOT fit"
        rows.append(
            f"{verdict} in {human(p.device_memory)} x {p.usable:.0%} usable = "
            f"{human(p.usable * p.device_memory)}"
        )
    return "\n".join(head + rows + [f"note: {n}" for n in p.notes])


def _at_least_one(text: str) -> int:
    """argparse type: an integer >= 1 (0 devices or a 0-token sequence is no plan)."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    """argparse type: a share of memory in (0, 1]."""
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {value}")
    return value


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plan", help="per-device memory of a training config; does it fit?")
    p.add_argument("--config", required=True, help="YAML training config (see configs/)")
    p.add_argument("overrides", nargs="*", help="key.sub=value overrides, e.g. model.remat=full")
    p.add_argument("--device", help=f"{'/'.join(DEVICES)}[-N] (TPU slice names: v4-32 = 16 chips)")
    p.add_argument(
        "--devices", type=_at_least_one, help="number of chips (default: from --device-N, else 8)"
    )
    p.add_argument("--device-memory", help="memory per device, e.g. 16GiB (default: --device's)")
    p.add_argument(
        "--platform", choices=["tpu", "gpu", "cpu"], help="default: --device's, else cpu"
    )
    p.add_argument("--usable", type=_fraction, default=DEFAULT_USABLE, help="usable part of memory")
    p.add_argument("--seq-len", type=_at_least_one, help="default: data.seq_len, else 2048")
    g = p.add_argument_group("generation (KV cache line; with --compile: the compiled programs)")
    g.add_argument("--generate-batch", type=_at_least_one, default=32, help="slots (rows)")
    g.add_argument(
        "--generate-length", type=_at_least_one, default=2048, help="cache columns (prompt + new)"
    )
    g.add_argument(
        "--generate-prompt", type=_at_least_one, help="prefill length (default: half the length)"
    )
    g.add_argument(
        "--generate-mesh", default="tensor=-1", help="one host's generation mesh (--compile)"
    )
    c = p.add_argument_group("TPU compiler (needs libtpu: pip install 'octojax[tpu]'; no TPU)")
    c.add_argument(
        "--compile",
        nargs="?",
        const="train",
        choices=["train", "generate", "all"],
        help="compile for the TPU slice of --device/--topology: the train step (default), "
        "generation's prefill + decode chunk, or all; exit 3 when it does not fit",
    )
    c.add_argument("--topology", help="TPU topology instead of a slice name, e.g. v5e:8x8")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """`octojax plan`: print the plan, the largest micro-batch that fits and the KV cache; with
    --compile, the TPU compiler's figures (octojax/plan/compile_cli.py)."""
    from octojax.train.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.compile or args.topology:
        from octojax.plan.compile_cli import run_compiled

        return run_compiled(args, cfg)
    memory, platform, chips = None, args.platform or "cpu", None
    if args.device:
        memory, dev_platform, chips = parse_device(args.device)
        platform = args.platform or dev_platform
    if args.device_memory:
        memory = parse_bytes(args.device_memory)
    n = args.devices or chips or 8
    kwargs = dict(seq_len=args.seq_len, device_memory=memory, platform=platform, usable=args.usable)
    plan = make_plan(cfg, n, **kwargs)
    best = largest_micro_batch(cfg, n, **kwargs) if memory is not None else None
    sizes = plan.mesh
    mesh = AbstractMesh(tuple(sizes.values()), tuple(sizes))
    model, _ = plan_model_config(cfg)
    shape = (args.generate_batch, args.generate_length)
    kv = kv_cache_bytes(model, *shape, mesh, cfg.mesh.logical_rules())
    if args.json:
        out = dataclasses.asdict(plan) | {"total": plan.total, "fits": plan.fits, "devices": n}
        out["platform"] = platform
        out["kv_cache"] = {"batch": shape[0], "length": shape[1], "bytes": kv}
        out["largest_micro_batch"] = None if best is None else best.micro_batch
        print(json.dumps(out, indent=2))
        return 0
    print(f"{n} devices ({platform}{', ' + args.device if args.device else ''})")
    print(format_plan(plan, kv, shape))
    if memory is not None:
        print(
            "largest micro-batch that fits: "
            + ("none" if best is None else f"{best.micro_batch} ({human(best.total)})")
        )
    return 0
