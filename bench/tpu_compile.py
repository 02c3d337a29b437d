"""OctoCoder on Cloud TPU slices, from the TPU compiler on a CPU host (libtpu; no TPU needed).

Training rows: configs/octocoder.yaml (full fine-tuning) and configs/octocoder_lora.yaml (LoRA)
at seq 2048 on v5e-64, v5e-256, v4-32, v5p-16, v5p-32 and v6e-16. The global batch (32 rows)
must split over data x fsdp, so slices of more than 32 chips take mesh.tensor = chips / 32. For
each row the train step is compiled at every micro-batch that splits (largest first, down to
the first that fits) and at the config's own micro-batch: fits, the largest micro-batch that
fits, the compiler's GiB per chip, the estimate's ratio, roofline tokens/s and MFU, compile s.

Generation rows: StarCoder 15.5B, HumanEvalPack (164 prompts x 20 samples, prompt <= 1024 tokens,
512 new tokens: cache of 1536 columns, prefill bucket 1024) on v5e-4, v5e-8 and v6e-8 with
`--mesh tensor=<chips>`: the largest power-of-two slot count that fits, its GiB, decode tokens/s
at the roofline and the time the 3,280 completions take at that rate.

    python bench/tpu_compile.py --out bench/tpu_compile.jsonl          # everything (~1 h here)
    python bench/tpu_compile.py --part train --slices v5e-64 --configs octocoder.yaml
    python bench/tpu_compile.py --table bench/tpu_compile.jsonl        # the markdown tables

Each compile is one JSON line in --out as soon as it is done (re-runs skip lines already there).
bench/tpu_compile.jsonl holds the compiler's figures behind docs/training.md and
docs/generation.md; the estimate and roofline stored in a line are those of the code that ran it,
and `--table` recomputes both from today's code (tests/plan/test_estimate_vs_tpu_compiler.py
checks today's estimate against every stored row).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

TRAIN_SLICES = ("v5e-64", "v5e-256", "v4-32", "v5p-16", "v5p-32", "v6e-16")
TRAIN_CONFIGS = ("octocoder.yaml", "octocoder_lora.yaml")
GEN_SLICES = ("v5e-4", "v5e-8", "v6e-8")
GEN = {"prompts": 164, "samples": 20, "prompt": 1024, "new": 512}
SEQ = 2048


def _emit(out: Path, record: dict) -> None:
    with out.open("a") as f:
        f.write(json.dumps(record, default=str) + "\n")
    print(json.dumps({k: record.get(k) for k in ("key", "fits", "gib", "compile_s")}), flush=True)


def train_rows(out: Path, configs, slices) -> None:
    """Compile each (config, slice) at the micro-batches described in the module docstring; when
    none fits, again with `model.remat=full` (the variant "remat-full")."""
    from octojax.plan.devices import tpu_slice

    for name in configs:
        for dev in slices:
            tensor = max(1, tpu_slice(dev).chips // 32)
            overrides = [f"mesh.tensor={tensor}"]
            if not _micro_batch_rows(out, name, dev, overrides, variant=""):
                _micro_batch_rows(out, name, dev, [*overrides, "model.remat=full"], "remat-full")


def _stored(out: Path, key: str) -> dict | None:
    """The record of `key` already in `out` (a re-run skips its compile), or None."""
    lines = out.read_text().splitlines() if out.exists() else []
    return next((r for r in map(json.loads, filter(str.strip, lines)) if r["key"] == key), None)


def _micro_batch_rows(out: Path, name: str, dev: str, overrides: list[str], variant: str) -> bool:
    """Compile the largest micro-batches first, down to the first that fits, and the config's
    own; one JSON line each. Whether any fits."""
    from octojax.config import ConfigError
    from octojax.plan.compiled import compiled_train
    from octojax.plan.devices import tpu_slice
    from octojax.train.config import load_config

    target = tpu_slice(dev)
    cfg = load_config(REPO / "configs" / name, overrides)
    shards = target.chips // cfg.mesh.tensor
    batch = cfg.train.global_batch_size
    own = cfg.train.micro_batch_size or batch
    micros = {m for m in range(batch, shards - 1, -1) if batch % m == 0 and m % shards == 0}
    fitted = False
    for micro in sorted(micros | ({own} if own % shards == 0 else set()), reverse=True):
        if fitted and micro != own:
            continue  # a larger one fits already: only the config's own is still wanted
        key = f"train/{name}/{dev}/" + (f"{variant}/" if variant else "") + f"micro{micro}"
        if (record := _stored(out, key)) is not None:
            fitted |= record["fits"]
            continue
        est = slice_plan(cfg, target, micro)
        t0 = time.perf_counter()
        try:
            r = compiled_train(cfg, target, est, 0.9)
        except ConfigError as e:
            r = {"fits": False, "error": str(e)}
        total = (r.get("compiled") or {}).get("total_bytes")
        _emit(out, {
            "key": key, "config": name, "slice": dev, "variant": variant, "hosts": target.hosts,
            "overrides": overrides, "micro": micro, "config_micro": own,
            "fits": r["fits"], "gib": total and total / 2**30,
            "estimate_gib": est.total / 2**30, "wall_s": time.perf_counter() - t0,
            "compile_s": (r.get("compiled") or {}).get("compile_s"), "result": r,
        })  # fmt: skip
        fitted |= r["fits"]
    return fitted


def generation_rows(out: Path, slices) -> None:
    """For each slice: slots 64, 128, ... until one does not fit (or 1024)."""
    from octojax.model.config import get_preset
    from octojax.plan.compiled import compiled_generation
    from octojax.plan.devices import tpu_slice
    from octojax.plan.measure_generate import GenerationShape, cache_columns
    from octojax.sharding import LOGICAL_RULES

    model = get_preset("starcoder")
    length = cache_columns(model, GEN["prompt"], GEN["new"])
    for dev in slices:
        target = tpu_slice(dev)
        slots = 64
        while slots <= 1024:
            key = f"generate/starcoder/{dev}/slots{slots}"
            record = _stored(out, key)
            if record is None:
                shape = GenerationShape(slots, length, GEN["prompt"])
                t0 = time.perf_counter()
                r = compiled_generation(model, target, f"tensor={target.chips}", shape, 0.9,
                                        target.chip.hbm_bytes, LOGICAL_RULES)  # fmt: skip
                total = r["compiled"].get("total_bytes")
                c = r["compiled"]
                record = {
                    "key": key, "slice": dev, "slots": slots, "fits": r["fits"],
                    "gib": total and total / 2**30, "wall_s": time.perf_counter() - t0,
                    "compile_s": c.get("prefill", {}).get("compile_s", 0)
                    + c.get("decode", {}).get("compile_s", 0),
                    "result": r,
                }  # fmt: skip
                _emit(out, record)
            if not record["fits"]:
                break
            slots *= 2


def _config_micro(name: str) -> int:
    from octojax.train.config import load_config

    t = load_config(REPO / "configs" / name).train
    return t.micro_batch_size or t.global_batch_size


def _train_roofline(name: str, dev: str, res: dict) -> dict:
    """The roofline from the stored compiler figures, splash's flops added as octojax plan
    does now (records written before that change lack them)."""
    from octojax.plan.devices import tpu_slice
    from octojax.plan.estimate import plan_model_config
    from octojax.plan.roofline import roofline
    from octojax.train.config import load_config

    c, target = res["compiled"], tpu_slice(dev)
    cfg = load_config(REPO / "configs" / name)
    model, _ = plan_model_config(cfg)
    tokens = cfg.train.global_batch_size * SEQ
    flops = c["flops"]
    if res["attention_impl"] == "splash" and "kernel_flops" not in c:
        flops += 12.0 * model.n_layer * SEQ * model.n_embd * tokens / target.chips
    per_token = model.flops_per_token(SEQ, frozen_base=cfg.lora.enabled)
    return roofline(target.chip, flops, c["bytes_accessed"], tokens=tokens, chips=target.chips,
                    model_flops_per_token=per_token).as_dict()  # fmt: skip


def estimate_ratio(record: dict) -> float:
    """The formula estimate of today's code over the record's stored compiler total."""
    if record["key"].startswith("generate/"):
        return _generation_estimate_ratio(record)
    return _estimate_ratio(record)


def _generation_estimate_ratio(record: dict) -> float:
    from jax.sharding import AbstractMesh

    from octojax.model.config import get_preset
    from octojax.plan.estimate import generation_bytes
    from octojax.plan.measure_generate import GenerationShape, generation_model
    from octojax.sharding import LOGICAL_RULES

    res = record["result"]
    mesh = AbstractMesh(tuple(res["mesh"].values()), tuple(res["mesh"]))
    shape = GenerationShape(res["slots"], res["length"], res["prompt"])
    model = generation_model(get_preset("starcoder"))
    est = generation_bytes(model, mesh, LOGICAL_RULES, shape)
    return sum(est.values()) / res["compiled"]["total_bytes"]


def slice_plan(cfg, target, micro: int):
    """The formula plan of a training row: the config on the slice at `micro`, sequence SEQ."""
    from octojax.plan.estimate import make_plan

    return make_plan(cfg, target.chips, seq_len=SEQ, micro_batch=micro,
                     device_memory=target.chip.hbm_bytes, platform="tpu")  # fmt: skip


def record_plan(record: dict):
    """Today's formula plan of a stored training record."""
    from octojax.plan.devices import tpu_slice
    from octojax.train.config import load_config

    cfg = load_config(REPO / "configs" / record["config"], record["overrides"])
    return slice_plan(cfg, tpu_slice(record["slice"]), record["micro"])


def _estimate_ratio(record: dict) -> float:
    return record_plan(record).total / record["result"]["compiled"]["total_bytes"]


def _train_row(name: str, dev: str, rs: list[dict]) -> str:
    own_micro = _config_micro(name)
    own = next((r for r in rs if r["micro"] == own_micro), None)
    fit = [r for r in rs if r["fits"]]
    best = max(fit, key=lambda r: r["micro"]) if fit else None
    shown = best or max(rs, key=lambda r: r["micro"])
    res = shown["result"]
    if not shown["gib"]:
        return f"| {name} | {dev} | - | - | {res.get('error', '')} | | | | | |"
    mesh = "/".join(str(res["mesh"][a]) for a in ("data", "fsdp", "tensor"))
    if own is not None:
        own_txt = f"{'yes' if own['fits'] else 'no'} ({own['gib']:.1f} GiB)"
    else:
        own_txt = f"micro {own_micro} does not split"
    rl = _train_roofline(name, dev, res)
    if rs[0].get("variant"):
        name += " `model.remat=full`"
    return (
        f"| {name} | {dev} ({rs[0]['hosts']}) | {mesh} | {own_txt} "
        f"| {best['micro'] if best else 'none'} | {shown['gib']:.1f} "
        f"| {_estimate_ratio(shown):.2f} | {rl.get('tokens_per_s', 0):,.0f} "
        f"| {rl.get('mfu') or 0:.0%} | {shown['compile_s']:.0f} |"
    )


def _train_table(records: list[dict]) -> list[str]:
    rows = [
        "| config | slice (hosts) | mesh d/f/t | fits at the config's micro-batch | largest "
        "micro-batch that fits | compiled GiB / chip | estimate / compiled | roofline tokens/s "
        "| roofline MFU | compile s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in TRAIN_CONFIGS:
        for dev in TRAIN_SLICES:
            for variant in ("", "remat-full"):
                rs = [r for r in records if r.get("config") == name and r["slice"] == dev
                      and r.get("variant", "") == variant]  # fmt: skip
                if rs:
                    rows.append(_train_row(name, dev, rs))
    return rows


def _gen_table(records: list[dict]) -> list[str]:
    rows = [
        "| slice | mesh | largest slots that fit | compiled GiB / chip | estimate / compiled "
        "| decode tokens/s (roofline) | 164 x 20 completions of 512 tokens | compile s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    total_tokens = GEN["prompts"] * GEN["samples"] * GEN["new"]
    for dev in GEN_SLICES:
        fit = [r for r in records if r["slice"] == dev and r["fits"]]
        if not fit:
            continue
        r = max(fit, key=lambda r: r["slots"])
        res = r["result"]
        tps = res["roofline"]["new_tokens_per_s"]
        rows.append(
            f"| {dev} | tensor={res['host_chips']} | {r['slots']} | {r['gib']:.1f} "
            f"| {estimate_ratio(r):.2f} | {tps:,.0f} | {total_tokens / tps / 60:.1f} min "
            f"| {r['compile_s']:.0f} |"
        )
    return rows


def table(path: Path) -> str:
    records = [json.loads(x) for x in path.read_text().splitlines() if x.strip()]
    train = [r for r in records if r["key"].startswith("train/")]
    gen = [r for r in records if r["key"].startswith("generate/")]
    return "\n".join(_train_table(train) + [""] + _gen_table(gen))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "bench" / "tpu_compile.jsonl")
    p.add_argument("--part", choices=["train", "generate", "all"], default="all")
    p.add_argument("--slices", nargs="*", help="only these slices")
    p.add_argument("--configs", nargs="*", default=list(TRAIN_CONFIGS))
    p.add_argument("--table", type=Path, help="print the markdown tables of a results file")
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    from octojax.plan.tpu import held_stderr

    print(
        f"host: {platform.node()} {platform.processor()}, jax on CPU; libtpu compiles", flush=True
    )
    with held_stderr():
        if args.part in ("train", "all"):
            train_rows(args.out, args.configs, args.slices or TRAIN_SLICES)
        if args.part in ("generate", "all"):
            generation_rows(args.out, args.slices or GEN_SLICES)
    print(table(args.out))


if __name__ == "__main__":
    main()
