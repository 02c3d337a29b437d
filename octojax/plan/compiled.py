"""`octojax plan --compile`: the train step (and generation's programs) compiled for a TPU
slice by libtpu on this host, the compiler's figures per device next to the formula estimate,
the fits verdict from the compiler's total, and a roofline from its cost (loop-scaled).

Dicts here are what `--json` prints; `format_*` print the same as text.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from octojax.config import ConfigError
from octojax.plan.devices import GiB, TpuSlice
from octojax.plan.estimate import MemoryPlan
from octojax.plan.hlo_cost import hlo_cost
from octojax.plan.measure import CompiledProgram, memory_figures
from octojax.plan.roofline import roofline

# The estimate is trusted within this share of the compiler's total; outside, the plan says
# which of its terms the compiler disagrees with.
TOLERANCE = 0.15


class OutOfMemory(Exception):
    """The TPU compiler refused the program: it needs more HBM than the chip has."""


def compile_or_oom(fn, *args, **kwargs):
    """fn(...) (a compile); OutOfMemory with the compiler's first line when it runs out of HBM."""
    try:
        return fn(*args, **kwargs)
    except Exception as e:  # jax.errors.JaxRuntimeError: RESOURCE_EXHAUSTED ...
        text = str(e)
        if "RESOURCE_EXHAUSTED" not in text and "Ran out of memory" not in text:
            raise
        line = next((s for s in text.splitlines() if "memory" in s.lower()), text.splitlines()[0])
        raise OutOfMemory(line.strip()) from None


def attention_used(hlo_text: str) -> str:
    """The attention kernel the compiled program runs: splash (a Mosaic custom call), cudnn,
    or xla (plain ops)."""
    if re.search(r"splash_\w+", hlo_text) and "tpu_custom_call" in hlo_text:
        return "splash"
    if "__cudnn$fmha" in hlo_text:
        return "cudnn"
    return "xla"


def program_figures(program: CompiledProgram) -> dict[str, Any]:
    """memory_analysis() and loop-scaled cost_analysis() of one compiled program."""
    compiled = program.compiled
    out: dict[str, Any] = memory_figures(compiled)
    cost = compiled.cost_analysis() or {}
    text = compiled.as_text()
    loops = hlo_cost(text)
    flops, moved = loops.scale(cost.get("flops", 0.0), cost.get("bytes accessed", 0.0))
    out |= {
        "flops": flops,
        "bytes_accessed": moved,
        "cost_analysis": {"flops": cost.get("flops"), "bytes_accessed": cost.get("bytes accessed")},
        "loop_trip_counts": sorted(set(loops.trip_counts), reverse=True),
        "lower_s": program.lower_s,
        "compile_s": program.compile_s,
        "attention_impl": attention_used(text),
    }
    return out


def _estimate_groups(plan: MemoryPlan) -> dict[str, int]:
    """The estimate's lines as the compiler's categories: arguments (what lives across steps +
    the batch) and working memory (gradients, activations, peaks)."""
    lines = plan.lines
    kept = ("params", "frozen params", "optimizer state", "batch")
    args = sum(lines.get(k, 0) for k in kept)
    return {"arguments": args, "working": plan.total - args}


def disagreement(plan: MemoryPlan, compiled: dict) -> str | None:
    """None when the estimate is within TOLERANCE of the compiler's total; else which term of
    the formulas the compiler disagrees with most, in one line."""
    ratio = plan.total / compiled["total"] if compiled["total"] else 1.0
    if abs(ratio - 1) <= TOLERANCE:
        return None
    est = _estimate_groups(plan)
    got = {
        "arguments": compiled["arguments"],
        "working": compiled["total"] - compiled["arguments"],
    }
    what = {
        "arguments": "parameters, optimizer state and batch (the step's arguments)",
        "working": "gradients, activations and the backward/loss peak (temporaries, outputs "
        "and generated code)",
    }
    worst = max(got, key=lambda k: abs(got[k] - est[k]))
    return (
        f"the estimate is {ratio:.2f} of the compiler's total; it does not model "
        f"{what[worst]} well here: compiler {got[worst] / GiB:.2f} GiB, formulas "
        f"{est[worst] / GiB:.2f} GiB"
    )


def largest_term(compiled: dict) -> tuple[str, int]:
    """The compiler's largest memory category: (name, bytes)."""
    keys = ("arguments", "temporaries", "generated_code")
    outputs = compiled["outputs"] - compiled["aliased"]
    terms = {k: compiled[k] for k in keys} | {"outputs (not donated)": outputs}
    name = max(terms, key=terms.get)
    return name, terms[name]


@dataclasses.dataclass
class Verdict:
    """Whether a total fits `usable` of the chip's HBM, and the largest term when it does not."""

    fits: bool
    total: int
    limit: int
    largest: tuple[str, int] | None = None
    reason: str | None = None  # the compiler's own refusal (out of memory at compile time)

    def line(self) -> str:
        if self.fits:
            return f"fits: {self.total / GiB:.2f} GiB of {self.limit / GiB:.2f} GiB usable"
        if self.reason:
            return f"does NOT fit: the TPU compiler ran out of HBM ({self.reason})"
        name, size = self.largest or ("?", 0)
        return (
            f"does NOT fit: {self.total / GiB:.2f} GiB > {self.limit / GiB:.2f} GiB usable; "
            f"largest term: {name} {size / GiB:.2f} GiB"
        )


def verdict(compiled: dict, hbm: int, usable: float) -> Verdict:
    limit = int(usable * hbm)
    fits = compiled["total"] <= limit
    return Verdict(fits, compiled["total"], limit, None if fits else largest_term(compiled))


def train_roofline(target: TpuSlice, figures: dict, tokens: int, flops_per_token: float):
    return roofline(
        target.chip, figures["flops"], figures["bytes_accessed"], tokens=tokens,
        chips=target.chips, model_flops_per_token=flops_per_token,
    )  # fmt: skip


def generation_figures(programs) -> dict[str, Any]:
    """Prefill and decode chunk together, per device: the parameters and slots live throughout;
    the peak is the larger of a decode chunk (slots donated) and a prefill while the slots wait;
    both programs' code is loaded. programs: measure_generate.GenerationPrograms."""
    pre, dec = program_figures(programs.prefill), program_figures(programs.decode)
    decode_work = dec["temporaries"] + dec["outputs"] - dec["aliased"]
    prefill_work = pre["temporaries"] + pre["outputs"]
    code = pre["generated_code"] + dec["generated_code"]
    out = {
        "arguments": dec["arguments"],  # parameters + slots (+ a few scalars)
        "slots_bytes": programs.slot_bytes,
        "outputs": 0,
        "aliased": 0,
        "temporaries": max(decode_work, prefill_work),
        "generated_code": code,
        "prefill": pre,
        "decode": dec,
        "attention_impl": pre["attention_impl"],
    }
    peak_prefill = pre["arguments"] + programs.slot_bytes + prefill_work
    out["total"] = max(dec["arguments"] + decode_work, peak_prefill) + code
    return out


def generation_rooflines(target: TpuSlice, figures: dict, shape, chunk: int) -> dict[str, Any]:
    """Decode: one chunk of `chunk` tokens in every slot of one host, x hosts for the slice;
    prefill: one prompt bucket on one host."""
    host = target.one_host() if target.hosts > 1 else target
    dec, pre = figures["decode"], figures["prefill"]
    decode = roofline(host.chip, dec["flops"], dec["bytes_accessed"],
                      tokens=shape.slots * chunk, chips=host.chips)  # fmt: skip
    prefill = roofline(host.chip, pre["flops"], pre["bytes_accessed"],
                       tokens=shape.prompt, chips=host.chips)  # fmt: skip
    return {
        "decode_chunk": decode.as_dict(),
        "prefill": prefill.as_dict(),
        "new_tokens_per_s_per_host": decode.tokens_per_s,
        "new_tokens_per_s": decode.tokens_per_s * target.hosts,
    }


def slice_info(target: TpuSlice) -> dict[str, Any]:
    chip = target.chip
    return {
        "name": target.name, "topology": target.topology, "chips": target.chips,
        "hosts": target.hosts, "hbm_bytes": chip.hbm_bytes,
        "peak_bf16_tflops": chip.peak_bf16_tflops, "hbm_gbytes_per_s": chip.hbm_gbytes_per_s,
    }  # fmt: skip


def compiled_train(cfg, target: TpuSlice, estimate: MemoryPlan, usable: float) -> dict:
    """The train step at the estimate's micro-batch compiled for the slice: figures, verdict,
    roofline, and the estimate beside them."""
    from octojax.plan.estimate import plan_model_config
    from octojax.plan.measure import compile_train_step
    from octojax.plan.tpu import slice_devices

    t = cfg.train
    shards = estimate.mesh["data"] * estimate.mesh["fsdp"]
    if estimate.micro_batch % shards:
        raise ConfigError(
            f"micro-batch {estimate.micro_batch} of {estimate.seq_len}-token rows cannot be split "
            f"over data x fsdp = {shards} chips of {target.name}: set mesh.tensor (fewer fsdp "
            f"shards) or a global batch that is a multiple of {shards}"
        )
    if estimate.micro_batch != (t.micro_batch_size or t.global_batch_size):
        train = t.model_copy(update={"micro_batch_size": estimate.micro_batch})
        cfg = cfg.model_copy(update={"train": train})
    hbm = estimate.device_memory or target.chip.hbm_bytes
    out: dict[str, Any] = {"estimate": {"total_bytes": estimate.total, "lines": estimate.lines}}
    try:
        program, mesh = compile_or_oom(compile_train_step, cfg, estimate.seq_len,
                                       list(slice_devices(target)))  # fmt: skip
    except OutOfMemory as e:
        v = Verdict(False, 0, int(usable * hbm), reason=str(e))
        return out | {"fits": False, "verdict": v.line(), "compiled": {"total_bytes": None,
                      "error": str(e)}, "attention_impl": None}  # fmt: skip
    fig = program_figures(program)
    v = verdict(fig, hbm, usable)
    line = v.line()
    if not v.fits:
        name, size = max(estimate.lines.items(), key=lambda kv: kv[1])
        line += f" (the estimate's largest line: {name} {size / GiB:.2f} GiB)"
    model, _ = plan_model_config(cfg)
    tokens = t.global_batch_size * estimate.seq_len
    if fig["attention_impl"] == "splash":  # Mosaic kernels carry no cost: PaLM's attention term
        fig["kernel_flops"] = 12.0 * model.n_layer * estimate.seq_len * model.n_embd * tokens
        fig["kernel_flops"] /= target.chips
        fig["flops"] += fig["kernel_flops"]
    per_token = model.flops_per_token(estimate.seq_len, frozen_base=cfg.lora.enabled)
    rl = train_roofline(target, fig, tokens, per_token)
    note = disagreement(estimate, fig)
    return out | {
        "fits": v.fits, "verdict": line, "largest_term": v.largest and v.largest[0],
        "attention_impl": fig["attention_impl"], "mesh": dict(mesh.shape),
        "micro_batch": estimate.micro_batch, "seq_len": estimate.seq_len,
        "compiled": {"total_bytes": fig["total"]} | fig, "roofline": rl.as_dict(),
        "estimate_ratio": estimate.total / fig["total"], "estimate_note": note,
    }  # fmt: skip


def compiled_generation(model, target: TpuSlice, mesh_spec: str, shape, usable: float,
                        hbm: int, rules) -> dict:  # fmt: skip
    """Prefill + decode chunk compiled for one host of the slice, with verdict, rooflines and
    the formula estimate of the same shape."""
    from jax.sharding import AbstractMesh

    from octojax.plan.estimate import generation_bytes
    from octojax.plan.measure_generate import CHUNK, compile_generation, generation_model
    from octojax.plan.tpu import slice_devices

    host = target.one_host() if target.hosts > 1 else target
    gen_model = generation_model(model)
    try:
        programs = compile_or_oom(compile_generation, gen_model, list(slice_devices(host)),
                                  mesh_spec, shape)  # fmt: skip
    except OutOfMemory as e:
        v = Verdict(False, 0, int(usable * hbm), reason=str(e))
        return {"fits": False, "verdict": v.line(), "compiled": {"total_bytes": None,
                "error": str(e)}, "attention_impl": None}  # fmt: skip
    fig = generation_figures(programs)
    v = verdict(fig, hbm, usable)
    sizes = dict(programs.mesh.shape)
    est = generation_bytes(gen_model, AbstractMesh(tuple(sizes.values()), tuple(sizes)), rules,
                           programs.shape)  # fmt: skip
    total = sum(est.values())
    note = None
    if abs(total / fig["total"] - 1) > TOLERANCE:
        work = fig["total"] - fig["arguments"]
        note = (
            f"the estimate is {total / fig['total']:.2f} of the compiler's total: compiler "
            f"parameters + slots {fig['arguments'] / GiB:.2f} GiB and working memory "
            f"{work / GiB:.2f} GiB, formulas {est} bytes"
        )
    return {
        "fits": v.fits, "verdict": v.line(), "largest_term": v.largest and v.largest[0],
        "attention_impl": fig["attention_impl"], "mesh": sizes, "host_chips": host.chips,
        "slots": programs.shape.slots, "length": programs.shape.length,
        "prompt": programs.shape.prompt, "chunk": CHUNK,
        "compiled": {"total_bytes": fig["total"]} | fig,
        "estimate": {"total_bytes": total, "lines": est},
        "estimate_ratio": total / fig["total"], "estimate_note": note,
        "roofline": generation_rooflines(target, fig, programs.shape, CHUNK),
    }  # fmt: skip
