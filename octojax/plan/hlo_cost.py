"""Loop trip counts for XLA's cost analysis, read off a compiled module's HLO text.

XLA's `cost_analysis()` counts the body of a while loop once, however many times it runs, and a
train step is mostly loops (the layer scan, micro-batch accumulation, loss chunks), so its flops
and bytes are per iteration, not per step. This module parses the optimized HLO, finds each
while loop's trip count (XLA's `known_trip_count`, else the `i < N` bound of its condition), and
counts matmul flops (dot / convolution) and bytes moved by top-level instructions twice: once per
computation as cost analysis does, and weighted by how often each computation runs. The ratio of
the two scales the compiler's own figures (`scaled_cost`).

Mosaic kernels (splash attention) carry no cost model: their flops count as 0 here and in XLA.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections import defaultdict

_DTYPE_BYTES = {"pred": 1, "s4": 0.5, "u4": 0.5, "s8": 1, "u8": 1, "f8e4m3fn": 1, "f8e5m2": 1,
                "bf16": 2, "f16": 2, "s16": 2, "u16": 2, "f32": 4, "s32": 4, "u32": 4,
                "f64": 8, "s64": 8, "u64": 8, "c64": 8, "c128": 16}  # fmt: skip
_ARRAY = re.compile(r"\b([a-z]+\d*[a-z0-9]*)\[([\d,]*)\]")
_HEADER = re.compile(r"^(ENTRY\s+)?%([\w.\-]+)\s*\(.*\{\s*$")
_INST = re.compile(r"^\s*(?:ROOT\s+)?%([\w.\-]+)\s*=\s*(.*)$")
# Instructions that move no data of their own (views, bookkeeping, control flow whose bodies are
# counted on their own).
_FREE = {"parameter", "constant", "get-tuple-element", "tuple", "bitcast", "while", "call",
         "conditional", "after-all", "partition-id", "replica-id", "iota", "opt-barrier",
         "custom-call:AllocateBuffer"}  # fmt: skip
_SLICING = {"dynamic-slice", "slice", "gather"}
# In-place updates of their first operand -> the operand holding the update (a cache column
# written by dynamic-update-slice, or by a scatter of one column per row).
_IN_PLACE = {"dynamic-update-slice": 1, "scatter": 2}
_COLLECTIVES = {"all-gather", "all-reduce", "reduce-scatter", "collective-permute", "all-to-all"}


def _arrays(type_str: str) -> list[tuple[str, tuple[int, ...]]]:
    """(dtype, dims) of every array in a (possibly tuple) HLO type."""
    out = []
    for dtype, dims in _ARRAY.findall(type_str):
        if dtype in _DTYPE_BYTES:
            out.append((dtype, tuple(int(d) for d in dims.split(",") if d)))
    return out


def type_bytes(type_str: str) -> int:
    return int(sum(_DTYPE_BYTES[t] * math.prod(d) for t, d in _arrays(type_str)))


def _closing(text: str, start: int) -> int:
    """Index just past the bracket that closes the one at text[start]."""
    pairs = {"(": ")", "{": "}", "[": "]"}
    depth, opener = 0, text[start]
    for i in range(start, len(text)):
        if text[i] == opener:
            depth += 1
        elif text[i] == pairs[opener]:
            depth -= 1
            if depth == 0:
                return i + 1
    return len(text)


@dataclasses.dataclass
class Inst:
    """One HLO instruction: result type, opcode (custom calls as "custom-call:TARGET"), operand
    names, the text inside its parentheses, the attributes after them, and whether it is ROOT."""

    name: str
    type_str: str
    opcode: str
    operands: list[str]
    args: str
    attrs: str
    root: bool


def _parse_inst(line: str) -> Inst | None:
    m = _INST.match(line)
    if not m:
        return None
    name, rest = m.group(1), m.group(2)
    end = _closing(rest, 0) if rest.startswith("(") else rest.find(" ")
    type_str, rest = rest[:end], rest[end:].lstrip()
    paren = rest.find("(")
    if paren < 0:
        return None
    opcode = rest[:paren]
    close = _closing(rest, paren)
    args = rest[paren + 1 : close - 1]
    attrs = rest[close:]
    if opcode == "custom-call":
        target = re.search(r'custom_call_target="([^"]+)"', attrs)
        opcode = f"custom-call:{target.group(1) if target else ''}"
    root = line.lstrip().startswith("ROOT ")
    return Inst(name, type_str, opcode, re.findall(r"%([\w.\-]+)", args), args, attrs, root)


def parse_module(text: str) -> tuple[dict[str, list[Inst]], str]:
    """{computation name: instructions}, and the entry computation's name."""
    comps: dict[str, list[Inst]] = {}
    entry, current = "", None
    for line in text.splitlines():
        header = _HEADER.match(line)
        if header:
            current = header.group(2)
            comps[current] = []
            if header.group(1):
                entry = current
            continue
        if line.rstrip() == "}":
            current = None
            continue
        if current is not None:
            inst = _parse_inst(line)
            if inst is not None:
                comps[current].append(inst)
            elif comps[current]:  # an instruction's attributes continued on the next lines
                comps[current][-1].attrs += line
    return comps, entry


def _dims(symbols: dict[str, Inst], name: str) -> tuple[int, ...]:
    arrays = _arrays(symbols[name].type_str) if name in symbols else []
    return arrays[0][1] if arrays else ()


def _valid_taps(out: int, size: int, inp: int, pad_lo: int, stride: int, dilation: int) -> int:
    """(output position, window tap) pairs of one convolution dimension that hit the input."""
    total = 0
    for k in range(size):
        lo = max(0, -(-(pad_lo - k * dilation) // stride))
        hi = min(out - 1, (inp - 1 + pad_lo - k * dilation) // stride)
        total += max(0, hi - lo + 1)
    return total


def _window(attrs: str, key: str, n: int, default: int) -> list[int]:
    m = re.search(rf"\b{key}=([\dx_]+)", attrs)
    if not m:
        return [default] * n
    return [int(v.split("_")[0]) for v in m.group(1).split("x")]


def conv_flops(inst: Inst, symbols: dict[str, Inst]) -> float:
    """2 x output batch x output features x input features x valid window taps (padding
    excluded), per dim_labels; TPU XLA writes most matmuls as convolutions."""
    m = re.search(r"dim_labels=(\w+)_(\w+)->(\w+)", inst.attrs)
    if not m or len(inst.operands) < 2:
        return 0.0
    lhs_l, rhs_l, out_l = m.groups()
    lhs, rhs = _dims(symbols, inst.operands[0]), _dims(symbols, inst.operands[1])
    arrays = _arrays(inst.type_str)
    if not arrays or len(lhs) != len(lhs_l) or len(rhs) != len(rhs_l):
        return 0.0
    out = arrays[0][1]
    spatial = sorted(c for c in out_l if c.isdigit())
    n = len(spatial)
    sizes = _window(inst.attrs, "size", n, 0)
    pads = re.search(r"\bpad=([\d_x\-]+)", inst.attrs)
    pad_lo = [int(p.split("_")[0]) for p in pads.group(1).split("x")] if pads else [0] * n
    strides = _window(inst.attrs, "stride", n, 1)
    rhs_dil = _window(inst.attrs, "rhs_dilate", n, 1)
    taps = 1
    for j, c in enumerate(spatial):
        size = sizes[j] or rhs[rhs_l.index(c)]
        taps *= _valid_taps(out[out_l.index(c)], size, lhs[lhs_l.index(c)], pad_lo[j],
                            strides[j], rhs_dil[j])  # fmt: skip
    return 2.0 * out[out_l.index("b")] * out[out_l.index("f")] * rhs[rhs_l.index("i")] * taps


def dot_flops(inst: Inst, symbols: dict[str, Inst]) -> float:
    """2 x output elements x contracted size."""
    arrays = _arrays(inst.type_str)
    m = re.search(r"lhs_contracting_dims=\{([\d,]*)\}", inst.attrs)
    if not arrays or not m or not inst.operands:
        return 0.0
    lhs = _dims(symbols, inst.operands[0])
    contracted = math.prod(lhs[int(i)] for i in m.group(1).split(",") if i and int(i) < len(lhs))
    return 2.0 * math.prod(arrays[0][1]) * contracted


def _source(name: str, symbols: dict[str, Inst]) -> Inst | None:
    """The instruction behind copies, bitcasts and converts."""
    inst = symbols.get(name)
    while inst is not None and inst.opcode in ("copy", "bitcast", "convert") and inst.operands:
        inst = symbols.get(inst.operands[0])
    return inst


def _int_constant(name: str, symbols: dict[str, Inst]) -> int | None:
    inst = _source(name, symbols)
    if inst is None or inst.opcode != "constant" or not re.fullmatch(r"-?\d+", inst.args.strip()):
        return None
    return int(inst.args)


def _tuple_index(name: str, symbols: dict[str, Inst]) -> int | None:
    """i when `name` is (a view of) get-tuple-element(parameter, index=i)."""
    inst = _source(name, symbols)
    if inst is None or inst.opcode != "get-tuple-element":
        return None
    m = re.search(r"index=(\d+)", inst.attrs)
    return int(m.group(1)) if m else None


def _trip_count(inst: Inst, comps: dict[str, list[Inst]], caller: list[Inst]) -> int:
    """XLA's known_trip_count, else from the loop's counter: condition `counter < N`, the body's
    increment (XLA unrolls some loops, stepping by 2), the initial value in the loop's operand
    tuple (default 0). 1 when the loop is not of that form (a data-dependent while)."""
    known = re.search(r'"known_trip_count":\{"n":"(\d+)"', inst.attrs)
    if known:
        return int(known.group(1))
    names = {k: re.search(rf"\b{k}=%([\w.\-]+)", inst.attrs) for k in ("condition", "body")}
    cond = (
        {i.name: i for i in comps.get(names["condition"].group(1), [])}
        if names["condition"]
        else {}
    )
    body = {i.name: i for i in comps.get(names["body"].group(1), [])} if names["body"] else {}
    for c in cond.values():
        if c.opcode != "compare" or "direction=LT" not in c.attrs or len(c.operands) != 2:
            continue
        bound, index = _int_constant(c.operands[1], cond), _tuple_index(c.operands[0], cond)
        if bound is None or index is None:
            continue
        step = 1
        root = next((i for i in body.values() if i.root and i.opcode == "tuple"), None)
        if root is not None and index < len(root.operands):
            update = _source(root.operands[index], body)
            if update is not None and update.opcode == "add":
                steps = [_int_constant(o, body) for o in update.operands]
                step = next((k for k in steps if k), 1)
        start = 0
        local = {i.name: i for i in caller}
        init = _source(inst.operands[0], local) if inst.operands else None
        if init is not None and init.opcode == "tuple" and index < len(init.operands):
            start = _int_constant(init.operands[index], local) or 0
        return max(1, -(-(bound - start) // max(step, 1)))
    return 1


def _callees(inst: Inst) -> list[tuple[str, str]]:
    """(role, computation) pairs an instruction calls: fused/called bodies, loop bodies, branches."""
    out = []
    for key in ("calls", "body", "to_apply", "true_computation", "false_computation"):
        for m in re.finditer(rf"\b{key}=%([\w.\-]+)", inst.attrs):
            out.append((key, m.group(1)))
    branches = re.search(r"branch_computations=\{([^}]*)\}", inst.attrs)
    if branches:
        out += [("branch", b) for b in re.findall(r"%([\w.\-]+)", branches.group(1))]
    return out


def _sliced_reads(name: str, comps: dict[str, list[Inst]], memo: dict) -> dict[int, int | None]:
    """{parameter number: bytes read} of a fused computation: the bytes of the slices taken
    when a parameter is only sliced (through bitcasts and nested fusions), updated in place or
    passed through; None when it is read whole. memo: results by computation name."""
    if name in memo:
        return memo[name]
    fused = comps.get(name, [])
    local = {i.name: i for i in fused}
    users: dict[str, list[Inst]] = defaultdict(list)
    for i in fused:
        for op in i.operands:
            users[op].append(i)

    def read(name: str) -> int | None:
        total = 0
        for u in users[name]:
            if u.opcode == "tuple" and u.root:
                inner = 0  # passed through to the output untouched
            elif u.opcode == "bitcast":
                inner = read(u.name)
            elif u.opcode == "fusion":
                called = re.search(r"calls=%([\w.\-]+)", u.attrs)
                nested = _sliced_reads(called.group(1), comps, memo) if called else {}
                inner = nested.get(u.operands.index(name))
            elif u.opcode in _SLICING and u.operands[0] == name:
                inner = type_bytes(u.type_str)
            elif u.opcode in _IN_PLACE and u.operands[0] == name:
                update = local.get(u.operands[_IN_PLACE[u.opcode]])
                inner = type_bytes(update.type_str) if update is not None else 0
            else:
                inner = None
            if inner is None:
                return None
            total += inner
        return total

    return {
        int(i.args): read(i.name) for i in fused if i.opcode == "parameter" and i.args.isdigit()
    }


def _fusion_bytes(inst: Inst, symbols: dict[str, Inst], comps: dict, memo: dict) -> int:
    """Bytes a fusion moves: each operand whole, except one the fused computation only slices
    (a layer of stacked weights: the slices' bytes) or updates in place (dynamic-update-slice or
    scatter: the update's bytes); plus its output (an in-place update: the update)."""
    called = re.search(r"calls=%([\w.\-]+)", inst.attrs)
    fused = comps.get(called.group(1), []) if called else []
    local = {i.name: i for i in fused}
    reads = _sliced_reads(called.group(1), comps, memo) if called else {}
    total = 0
    for k, op in enumerate(inst.operands):
        whole = type_bytes(symbols[op].type_str) if op in symbols else 0
        sliced = reads.get(k)
        total += whole if sliced is None else min(whole, sliced)
    root = next((i for i in fused if i.root), None)
    if root is None:
        return total + type_bytes(inst.type_str)
    outputs = root.operands if root.opcode == "tuple" else [root.name]
    for out in outputs:
        made = _source(out, local)
        if made is None or made.opcode == "parameter" or made.opcode in _COLLECTIVES:
            continue  # passed through; or an async collective's buffer (interconnect traffic)
        update = made.operands[_IN_PLACE[made.opcode]] if made.opcode in _IN_PLACE else None
        if update in local:
            total += type_bytes(local[update].type_str)  # in place: the update
        else:
            total += type_bytes(made.type_str)
    return total


def _own_cost(comp: list[Inst], comps: dict, control: bool, memo: dict) -> tuple[float, int]:
    """(matmul flops, bytes moved) of a computation's own instructions; bytes only for
    computations that run as a sequence (entry, loop bodies, branches), not fused ones."""
    symbols = {i.name: i for i in comp}
    flops, moved = 0.0, 0
    for i in comp:
        if i.opcode == "convolution":
            flops += conv_flops(i, symbols)
        elif i.opcode == "dot":
            flops += dot_flops(i, symbols)
        if not control or i.opcode in _FREE or i.opcode.endswith("-done"):
            continue
        if i.opcode == "custom-call:AsyncCollectiveDone":
            continue
        if i.opcode == "fusion":
            moved += _fusion_bytes(i, symbols, comps, memo)
        else:
            ins = sum(type_bytes(symbols[o].type_str) for o in i.operands if o in symbols)
            moved += ins + type_bytes(i.type_str)
    return flops, moved


@dataclasses.dataclass(frozen=True)
class HloCost:
    """Matmul flops and bytes moved, counting each computation once (as XLA's cost analysis
    does) and as often as it runs; the while loops' trip counts."""

    flops_once: float
    flops: float
    bytes_once: float
    bytes: float
    trip_counts: tuple[int, ...]

    def scale(self, flops: float, bytes_accessed: float) -> tuple[float, float]:
        """cost_analysis() flops and bytes scaled to every loop iteration."""
        f = self.flops / self.flops_once if self.flops_once else 1.0
        b = self.bytes / self.bytes_once if self.bytes_once else 1.0
        return flops * f, bytes_accessed * b


def hlo_cost(text: str) -> HloCost:
    """Parse a compiled module's HLO text (jax `compiled.as_text()`) into an HloCost."""
    comps, entry = parse_module(text)
    runs: dict[str, float] = defaultdict(float)
    reached: set[str] = {entry}
    control: set[str] = {entry}
    runs[entry] = 1.0
    trips = []
    for name in reversed(list(comps)):  # HLO text lists callees before their callers
        if name not in reached:
            continue
        for inst in comps[name]:
            for role, callee in _callees(inst):
                factor = 1
                if role == "body":
                    factor = _trip_count(inst, comps, comps[name])
                    trips.append(factor)
                runs[callee] += runs[name] * factor
                reached.add(callee)
                if role in ("body", "branch", "true_computation", "false_computation") or (
                    inst.opcode == "call"
                ):
                    control.add(callee)
    memo: dict = {}
    cost = {n: _own_cost(comps[n], comps, n in control, memo) for n in reached if n in comps}
    return HloCost(
        flops_once=sum(f for f, _ in cost.values()),
        flops=sum(runs[n] * f for n, (f, _) in cost.items()),
        bytes_once=float(sum(b for _, b in cost.values())),
        bytes=sum(runs[n] * b for n, (_, b) in cost.items()),
        trip_counts=tuple(trips),
    )
