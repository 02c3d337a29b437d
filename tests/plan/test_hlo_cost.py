"""octojax/plan/hlo_cost.py on hand-written HLO: loop trip counts (plain, unrolled by 2, XLA's
known_trip_count), matmul flops of dots and convolutions, bytes of a fusion that slices one layer
of stacked weights. No libtpu needed."""

from octojax.plan.hlo_cost import hlo_cost

# A scan over 8 layers: body = one [4,16] x [16,8] dot on a dynamically sliced layer (a fusion),
# and a second loop that XLA unrolled by 2 (counter += 2, bound 6: 3 trips) holding a
# convolution written as a matmul ([4,16] x [16,8] as bf_io->bf).
HLO = """HloModule jit_f, is_scheduled=true

%slice_layer (p0: f32[8,16,8], p1: s32[]) -> f32[16,8] {
  %p0 = f32[8,16,8]{2,1,0} parameter(0)
  %p1 = s32[]{:T(128)} parameter(1)
  %zero = s32[] constant(0)
  %ds = f32[1,16,8]{2,1,0} dynamic-slice(%p0, %p1, %zero, %zero), dynamic_slice_sizes={1,16,8}
  ROOT %bc = f32[16,8]{1,0} bitcast(%ds)
}

%body (param: (s32[], f32[4,16], f32[8,16,8])) -> (s32[], f32[4,16], f32[8,16,8]) {
  %param = (s32[], f32[4,16]{1,0}, f32[8,16,8]{2,1,0}) parameter(0)
  %i = s32[] get-tuple-element(%param), index=0
  %x = f32[4,16]{1,0} get-tuple-element(%param), index=1
  %w = f32[8,16,8]{2,1,0} get-tuple-element(%param), index=2
  %one = s32[] constant(1)
  %next = s32[] add(%i, %one)
  %layer = f32[16,8]{1,0} fusion(%w, %i), kind=kLoop, calls=%slice_layer
  %y = f32[4,8]{1,0} dot(%x, %layer), lhs_contracting_dims={1}, rhs_contracting_dims={0}
  %pad = f32[4,16]{1,0} pad(%y, %zero_f), padding=0_0x0_8
  %zero_f = f32[] constant(0)
  ROOT %out = (s32[], f32[4,16]{1,0}, f32[8,16,8]{2,1,0}) tuple(%next, %pad, %w)
}

%cond (param.1: (s32[], f32[4,16], f32[8,16,8])) -> pred[] {
  %param.1 = (s32[], f32[4,16]{1,0}, f32[8,16,8]{2,1,0}) parameter(0)
  %i.1 = s32[] get-tuple-element(%param.1), index=0
  %eight = s32[] constant(8)
  ROOT %lt = pred[] compare(%i.1, %eight), direction=LT
}

%body2 (param.2: (s32[], f32[4,16], f32[16,8])) -> (s32[], f32[4,16], f32[16,8]) {
  %param.2 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) parameter(0)
  %j = s32[] get-tuple-element(%param.2), index=0
  %a = f32[4,16]{1,0} get-tuple-element(%param.2), index=1
  %b = f32[16,8]{1,0} get-tuple-element(%param.2), index=2
  %two = s32[] constant(2)
  %j2 = s32[] add(%j, %two)
  %c = f32[4,8]{1,0} convolution(%a, %b), dim_labels=bf_io->bf
  %c2 = f32[4,8]{1,0} convolution(%a, %b), dim_labels=bf_io->bf
  ROOT %out.2 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) tuple(%j2, %a, %b)
}

%cond2 (param.3: (s32[], f32[4,16], f32[16,8])) -> pred[] {
  %param.3 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) parameter(0)
  %j.1 = s32[] get-tuple-element(%param.3), index=0
  %six = s32[] constant(6)
  ROOT %lt.2 = pred[] compare(%j.1, %six), direction=LT
}

ENTRY %main (x0: f32[4,16], w0: f32[8,16,8], v0: f32[16,8]) -> f32[4,16] {
  %x0 = f32[4,16]{1,0} parameter(0)
  %w0 = f32[8,16,8]{2,1,0} parameter(1)
  %v0 = f32[16,8]{1,0} parameter(2)
  %z = s32[] constant(0)
  %t = (s32[], f32[4,16]{1,0}, f32[8,16,8]{2,1,0}) tuple(%z, %x0, %w0)
  %loop = (s32[], f32[4,16]{1,0}, f32[8,16,8]{2,1,0}) while(%t), condition=%cond, body=%body
  %h = f32[4,16]{1,0} get-tuple-element(%loop), index=1
  %t2 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) tuple(%z, %h, %v0)
  %loop2 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) while(%t2), condition=%cond2, body=%body2
  %k = f32[4,16]{1,0} get-tuple-element(%loop2), index=1
  %t3 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) tuple(%z, %k, %v0)
  %loop3 = (s32[], f32[4,16]{1,0}, f32[16,8]{1,0}) while(%t3), condition=%cond2, body=%body2, backend_config={"known_trip_count":{"n":"5"}}
  ROOT %r = f32[4,16]{1,0} get-tuple-element(%loop3), index=1
}
"""

MATMUL = 2 * 4 * 8 * 16  # one [4,16] x [16,8]


def test_trip_counts_scale_flops_and_bytes():
    cost = hlo_cost(HLO)
    assert sorted(cost.trip_counts) == [3, 5, 8]  # body2's bound 6 stepped by 2; XLA's count 5
    assert cost.flops_once == MATMUL + 2 * MATMUL  # each body once, as XLA's cost analysis
    assert cost.flops == 8 * MATMUL + (3 + 5) * 2 * MATMUL
    # Bytes of the loop bodies' instructions (operands + result): the fusion reads one [16,8]
    # layer (512 bytes) of the [8,16,8] stack, not the whole 4096-byte stack.
    body = 12 + (512 + 4 + 512) + (256 + 512 + 128) + (128 + 4 + 256)  # add, fusion, dot, pad
    body2 = 12 + 2 * (256 + 512 + 128)  # add, two convolutions
    assert cost.bytes_once == body + body2
    assert cost.bytes == 8 * body + (3 + 5) * body2
    flops, moved = cost.scale(100.0, 10.0)
    assert flops == 100.0 * cost.flops / cost.flops_once and moved > 10.0


# One column per row written into a [8, 64, 4] cache by a scatter fusion (how decoding updates
# its KV cache): in place, so it moves the update and indices, not the cache.
SCATTER_HLO = """HloModule jit_g, is_scheduled=true

%add (a: f32[], b: f32[]) -> f32[] {
  %a = f32[] parameter(0)
  %b = f32[] parameter(1)
  ROOT %s = f32[] add(%a, %b)
}

%write_column (c: f32[8,64,4], i: s32[8,2], u: f32[8,4]) -> f32[8,64,4] {
  %c = f32[8,64,4]{2,1,0} parameter(0)
  %i = s32[8,2]{1,0} parameter(1)
  %u = f32[8,4]{1,0} parameter(2)
  ROOT %sc = f32[8,64,4]{2,1,0} scatter(%c, %i, %u), update_window_dims={1}, inserted_window_dims={0,1}, scatter_dims_to_operand_dims={0,1}, index_vector_dim=1, to_apply=%add
}

ENTRY %main (cache: f32[8,64,4], idx: s32[8,2], upd: f32[8,4]) -> f32[8,64,4] {
  %cache = f32[8,64,4]{2,1,0} parameter(0)
  %idx = s32[8,2]{1,0} parameter(1)
  %upd = f32[8,4]{1,0} parameter(2)
  ROOT %f = f32[8,64,4]{2,1,0} fusion(%cache, %idx, %upd), kind=kCustom, calls=%write_column
}
"""


def test_an_in_place_scatter_moves_its_update_not_the_cache():
    update, indices = 8 * 4 * 4, 8 * 2 * 4
    # read: the cache's updated part, the indices, the update; written: the update
    assert hlo_cost(SCATTER_HLO).bytes_once == update + indices + update + update
