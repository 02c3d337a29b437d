"""`octojax plan --compile`: compile for a TPU slice on this host and report the compiler's
figures, the fits verdict (exit 0 fits, 3 does not, 2 bad input) and the roofline, as a table
or as JSON (`fits`, `hosts`, `attention_impl`, `compiled.total_bytes`, `compiled.flops`,
`estimate.total_bytes`, ...; `train` and `generation` hold each part in full)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any

from octojax.config import ConfigError
from octojax.plan.compiled import compiled_generation, compiled_train, slice_info
from octojax.plan.devices import TpuSlice, parse_bytes, tpu_slice
from octojax.plan.estimate import make_plan, plan_model_config
from octojax.plan.tpu import INSTALL_HINT, held_stderr, libtpu_installed

EXIT_DOES_NOT_FIT = 3


def _target(args: argparse.Namespace) -> TpuSlice:
    target = tpu_slice(args.device if not args.topology else None, args.topology)
    if args.devices and args.devices != target.chips:
        raise ConfigError(f"--devices {args.devices}: {target.name} has {target.chips} chips")
    if not libtpu_installed():
        raise ConfigError(f"--compile needs libtpu (the TPU compiler): {INSTALL_HINT}")
    return target


def _generation_shape(args: argparse.Namespace, model):
    from octojax.generate.engine import length_bucket
    from octojax.plan.measure_generate import GenerationShape

    length = min(-(-args.generate_length // 128) * 128, model.n_positions)
    prompt = length_bucket(args.generate_prompt or args.generate_length // 2, length)
    return GenerationShape(args.generate_batch, length, prompt)


def compile_for_slice(args: argparse.Namespace, cfg) -> dict[str, Any]:
    """Everything `--compile` reports, as a dict (the JSON)."""
    target = _target(args)
    hbm = parse_bytes(args.device_memory) if args.device_memory else target.chip.hbm_bytes
    what = args.compile or "train"
    out: dict[str, Any] = {"target": slice_info(target), "hosts": target.hosts}
    say = f"compiling for {target.name} ({target.topology}, {target.hosts} hosts) with libtpu"
    print(f"octojax plan: {say} ...", file=sys.stderr, flush=True)
    captured: list[str] = []
    hold = held_stderr() if not getattr(args, "debug", False) else contextlib.nullcontext([])
    try:
        with hold as captured:
            if what in ("train", "all"):
                estimate = make_plan(cfg, target.chips, seq_len=args.seq_len, device_memory=hbm,
                                     platform="tpu", usable=args.usable)  # fmt: skip
                out["train"] = compiled_train(cfg, target, estimate, args.usable)
                out["train"]["estimate"]["notes"] = estimate.notes
            if what in ("generate", "all"):
                model, _ = plan_model_config(cfg)
                out["generation"] = compiled_generation(
                    model, target, args.generate_mesh, _generation_shape(args, model),
                    args.usable, hbm, cfg.mesh.logical_rules(),
                )  # fmt: skip
    except ConfigError:
        raise
    except Exception:  # a bug or a compiler error: what libtpu said may help
        sys.stderr.write("".join(captured))
        raise
    main = out.get("train") or out["generation"]
    parts = [out[k] for k in ("train", "generation") if k in out]
    out |= {
        "fits": all(p["fits"] for p in parts), "attention_impl": main["attention_impl"],
        "compiled": main["compiled"], "estimate": main["estimate"],
    }  # fmt: skip
    return out


def _gib(n: float | None) -> str:
    from octojax.plan.cli import human

    return "-" if n is None else human(n)


def _memory_rows(compiled: dict, estimate_total: int) -> list[str]:
    rows = [f"  {'per device':<26}{'compiled':>12}"]
    for key, label in (("arguments", "arguments"), ("outputs", "outputs"),
                       ("aliased", "  of which donated"), ("temporaries", "temporaries"),
                       ("generated_code", "generated code")):  # fmt: skip
        rows.append(f"  {label:<26}{_gib(compiled.get(key)):>12}")
    ratio = estimate_total / compiled["total"] if compiled.get("total") else 0
    rows.append(
        f"  {'total':<26}{_gib(compiled.get('total')):>12}   estimate {_gib(estimate_total)}"
        f" ({ratio:.2f} of the compiler's)"
    )
    return rows


def _cost_rows(compiled: dict, rl: dict, what: str) -> list[str]:
    ca = compiled["cost_analysis"]
    trips = ", ".join(map(str, compiled["loop_trip_counts"])) or "none"
    kernels = compiled.get("kernel_flops")
    extra = f", {kernels:.3g} of them splash's (Mosaic kernels report none)" if kernels else ""
    rows = [
        f"  cost per device: {compiled['flops']:.3g} flops{extra}, "
        f"{compiled['bytes_accessed']:.3g} bytes (cost_analysis() counts each loop body once: "
        f"{ca['flops'] or 0:.3g} flops, {ca['bytes_accessed'] or 0:.3g} bytes; loop trip "
        f"counts {trips})",
        f"  roofline: {what} {rl['step_s']:.3g} s ({rl['bound']}-bound), "
        f"{rl['tokens_per_s']:,.0f} tokens/s"
        + (f", MFU {rl['mfu']:.1%}" if rl.get("mfu") is not None else ""),
    ]
    return rows


def format_compiled(out: dict) -> str:
    """The --compile report as text."""
    t = out["target"]
    lines = [
        f"{t['name']}: topology {t['topology']}, chips {t['chips']}, hosts {t['hosts']}; "
        f"{_gib(t['hbm_bytes'])} HBM, {t['peak_bf16_tflops']:g} TFLOP/s bf16, "
        f"{t['hbm_gbytes_per_s']:g} GB/s per chip"
    ]
    if "train" in out:
        tr = out["train"]
        lines.append("train step" + (
            f": mesh {tr['mesh']}, micro-batch {tr['micro_batch']} x {tr['seq_len']}, attention "
            f"{tr['attention_impl']}; compiled in {tr['compiled']['compile_s']:.1f} s "
            f"(+ {tr['compiled']['lower_s']:.1f} s lowering)" if "mesh" in tr else ""))  # fmt: skip
        if tr["compiled"].get("total_bytes") is not None:
            lines += _memory_rows(tr["compiled"], tr["estimate"]["total_bytes"])
        lines.append(f"  {tr['verdict']}")
        if "roofline" in tr:
            lines += _cost_rows(tr["compiled"], tr["roofline"], "step")
        for note in tr["estimate"].get("notes", []) + [tr.get("estimate_note")]:
            if note:
                lines.append(f"  note: {note}")
    if "generation" in out:
        g = out["generation"]
        if "mesh" in g:
            lines.append(
                f"generation (one host, {g['host_chips']} chips, mesh {g['mesh']}): "
                f"{g['slots']} slots x {g['length']} columns, prefill {g['prompt']}, "
                f"decode chunks of {g['chunk']}; attention {g['attention_impl']}; compiled in "
                f"{g['compiled']['prefill']['compile_s'] + g['compiled']['decode']['compile_s']:.1f} s"
            )
            lines += _memory_rows(g["compiled"], g["estimate"]["total_bytes"])
        lines.append(f"  {g['verdict']}")
        if "roofline" in g:
            r = g["roofline"]
            lines += _cost_rows(g["compiled"]["decode"], r["decode_chunk"], "decode chunk")
            lines.append(f"  new tokens/s: {r['new_tokens_per_s_per_host']:,.0f} per host, "
                         f"{r['new_tokens_per_s']:,.0f} for the slice")  # fmt: skip
        if g.get("estimate_note"):
            lines.append(f"  note: {g['estimate_note']}")
    return "\n".join(lines)


def run_compiled(args: argparse.Namespace, cfg) -> int:
    """`octojax plan --compile`: 0 when it fits, 3 when it does not."""
    out = compile_for_slice(args, cfg)
    print(json.dumps(out, indent=2, default=str) if args.json else format_compiled(out))
    return 0 if out["fits"] else EXIT_DOES_NOT_FIT
