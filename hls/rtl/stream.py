"""Streaming RTL (``--io stream``): pixels enter one per clock, one kernel instance per layer.

The network must be a chain whose input is spatial ((W, C) or (H, W, C)).  Every tensor
travels as a stream of *beats* in raster order: a beat is one pixel, all its channels in
parallel (element c at bits [c*W +: W], W the element's bus bits).  Each op is one
*stage* module with a valid/ready handshake on both sides:

* **window stage** (conv1d, conv2d, bconv2d, maxpool, avgpool): walks the *virtual*
  (padded) input image, one position per clock; padding positions are made up inside
  (conv: 0, maxpool: the channel's lowest reachable value, so pads never win) and do not
  consume a beat.  ``kh - 1`` line buffers (one memory ``lb`` of ``(kh-1)*C*W`` bits x
  ``Wp`` words, asynchronous read, written at the read address: distributed RAM) and
  ``kw - 1`` window column registers hold the window; when a position ends a window
  (stride-aware masks ``OUT_ROW``/``OUT_COL``) the one instance of the kernel's logic
  (``<stage>_core``: the op's emitter over the kh*kw*C taps, i.e. ModuleText.linear_layer's
  CSE'd constant-matrix graph for a convolution) produces the output pixel into the
  stage's output register;
* **pointwise stage** (requant, clip, threshold, lut, dense/bdense over the last axis,
  argmax, and any single-input op once the stream is one beat per image): the op's
  emitter over one beat, registered;
* **flatten + dense** (reshape to a vector, then dense): accumulates per arriving pixel
  ``acc[o] += sum_c x[c] * W[p*C + c, o]`` with the pixel's weight block read from a
  constant table indexed by the pixel counter (C*O small multipliers), and emits the
  sums as one beat after the last pixel.

Geometry comes from qat.ir.geometry (op_window).  A stage accepts a position when its
input beat is valid (or the position is padding) and, if the position emits, its output
register is free or being read; ``in_ready`` never depends on ``in_valid``, and no beat
is ever dropped.  Arithmetic is unchanged: the same emitters as the unrolled design,
with element bounds taken over all pixels of a channel (exact; narrowed back to the
op's type on the bus).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qat.ir.geometry import op_window
from qat.ir.intervals import analyze
from qat.ir.network import Network, Op
from qat.ir.types import BinaryType, MinifloatType, signed_bits_for

from hls.rtl.emitters import RTLError
from hls.rtl.op_module import Design, OpModule, TensorInfo, _identifiers, _layout, _op_module, _signed_bus
from hls.rtl.text import GENERATOR, ModuleText, Sig, const

WINDOW_KINDS = ("conv1d", "conv2d", "bconv2d", "maxpool", "avgpool")
ELEMENTWISE = ("requant", "clip", "threshold", "lut")
POINTWISE = ELEMENTWISE + ("dense", "bdense", "argmax")


@dataclass
class Stage:
    """One stage module: ``kind`` window | point | flatdense; per image it walks ``len(pad)``
    positions (pad[i]: position i takes no beat; emit[i]: it produces an output beat)."""
    kind: str
    op: Op
    ident: str
    in_c: int  # elements per input beat
    out_c: int  # elements per output beat
    pad: list[bool]
    emit: list[bool]
    info: dict = field(default_factory=dict)


@dataclass
class Shape:
    """How a tensor streams: ``kind`` spatial (h x w pixels) | flat (a flattened spatial
    tensor, still p pixels) | vector (one beat); ``c`` elements per beat."""
    kind: str
    h: int
    w: int
    c: int

    @property
    def beats(self) -> int:
        return self.h * self.w


def _chan_bounds(lo: np.ndarray, hi: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel bounds over every pixel (Python ints)."""
    lo = np.asarray(lo, dtype=object).reshape(-1, c)
    hi = np.asarray(hi, dtype=object).reshape(-1, c)
    return (np.array([min(lo[:, k]) for k in range(c)], dtype=object),
            np.array([max(hi[:, k]) for k in range(c)], dtype=object))


def _refuse(op: Op, why: str) -> RTLError:
    return RTLError(f"{op.where()}: --io stream: {why}")


def plan(net: Network, ops: list[Op]) -> tuple[list[Stage], Shape, Shape]:
    """The stages of a chain network, and its input and output stream shapes."""
    inp = net.inputs[0]
    shape = tuple(inp.shape)
    if len(shape) not in (2, 3):
        raise RTLError(f"input '{inp.name}' {shape}: --io stream needs a spatial input (W, C) or (H, W, C); "
                       f"use the default --io parallel")
    cur = Shape("spatial", 1 if len(shape) == 2 else shape[0], shape[-2], shape[-1])
    first = cur
    prev = inp.name
    stages: list[Stage] = []
    for op in ops:
        if len(op.inputs) != 1:
            raise _refuse(op, f"{len(op.inputs)} inputs: only chains of single-input ops stream (no add, concat)")
        if op.inputs[0] != prev:
            raise _refuse(op, f"its input '{op.inputs[0]}' is not the previous op's output '{prev}': "
                              f"branches do not stream")
        n_out = int(np.prod(op.shape)) if op.shape else 1
        k = op.kind
        if k in WINDOW_KINDS:
            if cur.kind != "spatial":
                raise _refuse(op, "the input of a window op must be spatial")
            in_shape = (cur.w, cur.c) if k == "conv1d" or (k in ("maxpool", "avgpool") and op.attr("dims") == 1) \
                else (cur.h, cur.w, cur.c)
            if len(in_shape) == 2 and cur.h != 1:
                raise _refuse(op, "a 1-D window op over a 2-D stream")
            g = op_window(op, in_shape)
            hp, wp = g.pt + g.h + g.pb, g.pl + g.w + g.pr
            if hp < g.kh or wp < g.kw:
                raise _refuse(op, "window larger than the padded input")
            if k == "maxpool" and any(not list(g.taps(y, x)) for y in range(g.oh) for x in range(g.ow)):
                raise _refuse(op, "a pooling window lies wholly in the padding")
            pad = [not (g.pt <= y < g.pt + g.h and g.pl <= x < g.pl + g.w) for y in range(hp) for x in range(wp)]
            rows = {y * g.sh + g.kh - 1 for y in range(g.oh)}
            cols = {x * g.sw + g.kw - 1 for x in range(g.ow)}
            emit = [y in rows and x in cols for y in range(hp) for x in range(wp)]
            co = n_out // (g.oh * g.ow)
            stages.append(Stage("window", op, "", cur.c, co, pad, emit, {"g": g, "hp": hp, "wp": wp}))
            cur = Shape("spatial", g.oh, g.ow, co)
        elif k == "reshape":
            if cur.kind == "vector":
                raise _refuse(op, "reshape of a one-beat vector (only flatten of a spatial stream)")
            if len(op.shape) == 1:
                cur = Shape("flat", cur.h, cur.w, cur.c)
            elif op.shape[-1] == cur.c and cur.kind == "spatial":
                cur = Shape("spatial", 1, n_out // cur.c, cur.c)
            else:
                raise _refuse(op, f"reshape to {tuple(op.shape)} regroups the channels of a pixel")
            prev = op.name
            continue  # wiring: the beats do not change
        elif k == "dense" and cur.kind == "flat":
            co = op.arrays["weight"].shape[1]
            stages.append(Stage("flatdense", op, "", cur.c, co, [False] * cur.beats,
                                [False] * (cur.beats - 1) + [True], {"p": cur.beats}))
            cur = Shape("vector", 1, 1, co)
        elif k == "bdense" and cur.kind == "flat":
            raise _refuse(op, "a binary dense over a flattened stream has no streaming RTL yet")
        elif k in POINTWISE and (cur.kind != "flat" or (k in ELEMENTWISE and all(
                np.asarray(a).shape[:1] in ((), (1,)) for name, a in op.arrays.items() if name != "table"))):
            co = n_out // cur.beats
            stages.append(Stage("point", op, "", cur.c, co, [False] * cur.beats, [True] * cur.beats))
            cur = Shape(cur.kind, cur.h, cur.w, co)
        elif k in ELEMENTWISE:
            raise _refuse(op, "per-channel arrays over a flattened stream (requantize before the flatten)")
        else:
            raise _refuse(op, f"op kind '{k}' has no streaming RTL")
        prev = op.name
    if prev == inp.name:
        raise RTLError(f"network '{net.name}': the output is the input; there is nothing to build")
    return stages, first, cur


def schedule(stages: list[Stage], images: int = 3) -> tuple[int, int]:
    """(clocks per image in steady state, latency: clocks from the rising edge that accepts an
    image's first input beat to the one after which its last output beat is valid)."""
    first_in, done = clock_stages(stages, images)
    ii = done[-1] - done[-2] if images > 1 else done[0]
    return ii, done[0] - first_in[0]


def clock_stages(stages: list[Stage], images: int) -> tuple[list[int], list[int]]:
    """Clock the stages' handshakes as the Verilog does (rising edges numbered from 1 after reset),
    input always valid, output always read: per image, the edge that accepts its first input beat
    and the edge after which its last output beat is valid."""
    n = len(stages)
    pos = [0] * n
    out_v = [False] * n
    first_pad = [s.pad for s in stages]
    beats_in = sum(1 for p in stages[0].pad if not p)
    beats_out = sum(stages[-1].emit)
    fed = 0
    got = 0
    first_in: list[int] = []
    done: list[int] = []
    cycle = 0
    limit = 20 * images * max(len(s.pad) for s in stages) + 1000
    while len(done) < images and cycle < limit:
        cycle += 1
        ready = [False] * n
        go = [False] * n
        nxt_ready = True
        for s in range(n - 1, -1, -1):
            st = stages[s]
            pad, emit = first_pad[s][pos[s]], st.emit[pos[s]]
            room = (not out_v[s]) or nxt_ready
            ready[s] = (not pad) and (room or not emit)
            valid = fed < images * beats_in if s == 0 else out_v[s - 1]
            go[s] = (pad or valid) and (room or not emit)
            nxt_ready = ready[s]
        for s in range(n):
            st = stages[s]
            emit = st.emit[pos[s]]
            nxt = ready[s + 1] if s + 1 < n else True
            if s == 0 and go[0] and not first_pad[0][pos[0]]:
                fed += 1
                if fed % beats_in == 1 or beats_in == 1:
                    first_in.append(cycle)
            if go[s] and emit:
                out_v[s] = True
            elif nxt:
                out_v[s] = False
            if go[s]:
                pos[s] = (pos[s] + 1) % len(st.pad)
        if out_v[-1]:
            got += 1
            if got % beats_out == 0:
                done.append(cycle)
    if len(done) < images:
        raise RTLError("internal error: the streaming schedule does not finish")
    return first_in, done


# ---- Verilog -------------------------------------------------------------------------------------

def _bits_expr(bits: list[bool]) -> str:
    """A constant vector, bit i = bits[i]."""
    return f"{len(bits)}'b" + "".join("1" if b else "0" for b in reversed(bits))


def _cw(n: int) -> int:
    """Counter bits for 0..n-1."""
    return max(1, (n - 1).bit_length())


def _handshake_ports(in_w: int, out_w: int, core: tuple[int, int] | None = None) -> list[str]:
    """Stage ports; ``core`` = (taps bits, result bits): the stage drives its kernel's inputs
    (``taps``) and takes its result (``core_out``) from the kernel module, which the top instantiates
    next to the stage (one level of hierarchy, so Yosys reports LUTs per stage and per kernel)."""
    ports = ["  input wire clk", "  input wire rst", "  input wire in_valid", "  output wire in_ready",
             f"  input wire [{in_w - 1}:0] in_data", "  output wire out_valid", "  input wire out_ready",
             f"  output wire [{out_w - 1}:0] out_data"]
    if core:
        ports += [f"  output wire [{core[0] - 1}:0] taps", f"  input wire [{core[1] - 1}:0] core_out"]
    return ports


def _out_reg(out_w: int, fire: str, value: str) -> list[str]:
    """Output register and valid: loaded on ``fire``, emptied when read."""
    return [
        f"  reg [{out_w - 1}:0] out_r;",
        "  always @(posedge clk) begin",
        "    if (rst) out_v <= 1'b0;",
        f"    else if ({fire}) out_v <= 1'b1;",
        "    else if (out_ready) out_v <= 1'b0;",
        f"    if ({fire}) out_r <= {value};",
        "  end",
        "  assign out_valid = out_v;",
        "  assign out_data = out_r;",
    ]


def _counter(name: str, n: int, step: str) -> list[str]:
    """A wrap-around counter 0..n-1 advanced by ``step`` (its reg is declared by :func:`_regs`)."""
    w = _cw(n)
    if n == 1:
        return []
    return ["  always @(posedge clk) begin",
            f"    if (rst) {name} <= {w}'d0;",
            f"    else if ({step}) {name} <= ({name} == {w}'d{n - 1}) ? {w}'d0 : {name} + {w}'d1;",
            "  end"]


def _regs(*counters: tuple[str, int]) -> list[str]:
    """Declarations of the output valid flag and of the counters (before any use)."""
    return ["  reg out_v;"] + [f"  reg [{_cw(n) - 1}:0] {name};" for name, n in counters if n > 1]


def window_module(name: str, st: Stage, ew: int, out_ew: int, pad_bits: list[int]) -> str:
    """A window stage: it drives its combinational kernel (in0: kh*kw*C taps -> out: one pixel)."""
    g, hp, wp = st.info["g"], st.info["hp"], st.info["wp"]
    kh, kw, c = g.kh, g.kw, st.in_c
    cw = c * ew
    ow = st.out_c * out_ew
    L = [f"// {st.op.where()}: streaming window stage, {g.kh}x{g.kw} window, strides {g.sh}x{g.sw}, "
         f"padded image {hp}x{wp} (pads t{g.pt} b{g.pb} l{g.pl} r{g.pr})",
         f"// generated by {GENERATOR}", "`default_nettype none", f"module {name} (",
         ",\n".join(_handshake_ports(cw, ow, (kh * kw * cw, ow))), ");"]
    has_pad = any(st.pad)
    row_pad = [not g.pt <= y < g.pt + g.h for y in range(hp)]
    col_pad = [not g.pl <= x < g.pl + g.w for x in range(wp)]
    rows_out = [any(st.emit[y * wp + x] for x in range(wp)) for y in range(hp)]
    cols_out = [any(st.emit[y * wp + x] for y in range(hp)) for x in range(wp)]
    L += _regs(("vx", wp), ("vy", hp))
    cnt = _counter("vx", wp, "go")
    if hp > 1:
        last_x = f"vx == {_cw(wp)}'d{wp - 1}" if wp > 1 else "1'b1"
        cnt.append(f"  wire last_x = {last_x};")
        cnt += _counter("vy", hp, "go & last_x")

    def sel(bits: list[bool], var: str, n: int) -> str:
        if all(bits):
            return "1'b1"
        if not any(bits):
            return "1'b0"
        lname = f"M_{var.upper()}_{len(L)}"
        L.append(f"  localparam [{n - 1}:0] {lname} = {_bits_expr(bits)};")
        return f"{lname}[{var}]"

    pad_e = "1'b0"
    if has_pad:
        pr = sel(row_pad, "vy", hp) if hp > 1 else "1'b0"
        pc = sel(col_pad, "vx", wp) if wp > 1 else "1'b0"
        pad_e = f"{pr} | {pc}"
    emit_r = sel(rows_out, "vy", hp) if hp > 1 else "1'b1"
    emit_c = sel(cols_out, "vx", wp) if wp > 1 else "1'b1"
    L += [f"  wire pad = {pad_e};",
          f"  wire emit = {emit_r} & {emit_c};",
          "  wire room = ~out_v | out_ready;",
          "  wire go = (pad | in_valid) & (room | ~emit);",
          "  assign in_ready = ~pad & (room | ~emit);"] + cnt
    if has_pad:
        padv = "".join(format(v & ((1 << ew) - 1), f"0{ew}b") for v in reversed(pad_bits))
        L.append(f"  wire [{cw - 1}:0] px = pad ? {cw}'b{padv} : in_data;")
    else:
        L.append(f"  wire [{cw - 1}:0] px = in_data;")
    # column of the window at this position: row a (0 = top) at bits [a*cw +: cw]
    col_parts = []
    if kh > 1:
        lw = (kh - 1) * cw
        L += [f"  reg [{lw - 1}:0] lb [0:{wp - 1}];  // line buffers: the {kh - 1} rows above, word vx",
              f"  wire [{lw - 1}:0] lb_q = lb[vx];" if wp > 1 else f"  wire [{lw - 1}:0] lb_q = lb[0];"]
        nxt = f"{{lb_q[{(kh - 2) * cw - 1}:0], px}}" if kh > 2 else "px"
        L.append(f"  always @(posedge clk) if (go) lb[{'vx' if wp > 1 else 0}] <= {nxt};")
        # slot j (1 = previous row) at lb_q[j*cw-1 -: cw]; row a = kh-1-j
        for a in range(kh - 1):
            j = kh - 1 - a
            col_parts.append(f"lb_q[{j * cw - 1}:{(j - 1) * cw}]")
    col_parts.append("px")
    L.append(f"  wire [{kh * cw - 1}:0] col = {{{', '.join(reversed(col_parts))}}};")
    for b in range(kw - 1):
        L.append(f"  reg [{kh * cw - 1}:0] wc{b};")
    if kw > 1:
        L.append("  always @(posedge clk) if (go) begin")
        for b in range(kw - 1):
            L.append(f"    wc{b} <= {'wc' + str(b + 1) if b + 1 < kw - 1 else 'col'};")
        L.append("  end")
    taps = []  # flat index (a*kw + b)*C + c, element at [i*ew +: ew]
    for a in range(kh):
        for b in range(kw):
            src = f"wc{b}" if b < kw - 1 else "col"
            lo = a * cw
            taps.append(f"{src}[{lo + cw - 1}:{lo}]")
    L.append(f"  assign taps = {{{', '.join(reversed(taps))}}};")
    L += _out_reg(ow, "go & emit", "core_out")
    L += ["endmodule", "`default_nettype wire", ""]
    return "\n".join(L)


def point_module(name: str, st: Stage, in_w: int, out_w: int) -> str:
    L = [f"// {st.op.where()}: streaming pointwise stage (one beat in, one beat out)",
         f"// generated by {GENERATOR}", "`default_nettype none", f"module {name} (",
         ",\n".join(_handshake_ports(in_w, out_w, (in_w, out_w))), ");", "  reg out_v;",
         "  wire room = ~out_v | out_ready;",
         "  assign in_ready = room;",
         "  wire go = in_valid & room;",
         "  assign taps = in_data;"]
    L += _out_reg(out_w, "go", "core_out")
    L += ["endmodule", "`default_nettype wire", ""]
    return "\n".join(L)


def flatdense_module(name: str, st: Stage, in_info, out_info, x_lo, x_hi) -> str:
    """Flatten + dense: per pixel p, acc[o] += sum_c x[c] * W[p*C + c, o]; one output beat."""

    op = st.op
    p_n, c = st.info["p"], st.in_c
    w = op.arrays["weight"].astype(np.int64).reshape(p_n, c, -1)
    b = op.arrays["bias"].astype(np.int64)
    co = w.shape[2]
    m = ModuleText(name)
    gen = OpModule(m, op, [in_info], out_info)
    pw = _cw(p_n)
    # weight words: column (c, o) holds W[p, c, o] for the current pixel p
    wb = {}
    for ch in range(c):
        for o in range(co):
            col = w[:, ch, o]
            lo, hi = int(col.min()), int(col.max())
            wb[(ch, o)] = (signed_bits_for(min(lo, 0), max(hi, 0)), lo, hi)
    order = [(ch, o) for ch in range(c) for o in range(co) if np.any(w[:, ch, o])]
    tot = sum(wb[k][0] for k in order) or 1
    L_rom = [f"  reg [{tot - 1}:0] wrow;  // the weights of pixel p, (c, o) words",
             "  always @(*) begin", "    case (p)"]
    for p in range(p_n):
        bits = "".join(format(int(w[p, ch, o]) & ((1 << wb[(ch, o)][0]) - 1), f"0{wb[(ch, o)][0]}b")
                       for ch, o in reversed(order))
        L_rom.append(f"      {pw}'d{p}: wrow = {tot}'b{bits or '0'};")
    L_rom += [f"      default: wrow = {tot}'b0;", "    endcase", "  end"]
    wsig, at = {}, 0
    for k in order:
        bits, lo, hi = wb[k]
        s = m.wire("wv", bits, lo, hi, f"wrow[{at + bits - 1}:{at}]")
        wsig[k] = Sig(s.name, bits, lo, hi, 0, 0)
        at += bits
    outs, acc_decl = [], []
    for o in range(co):
        prods = []
        clo, chi = [0] * p_n, [0] * p_n
        for ch in range(c):
            col = w[:, ch, o]
            for p in range(p_n):
                a, bb = int(x_lo[ch]) * int(col[p]), int(x_hi[ch]) * int(col[p])
                clo[p] += min(a, bb)
                chi[p] += max(a, bb)
            if (ch, o) not in wsig:
                continue
            x, wv = gen.x(0, ch), wsig[(ch, o)]
            corners = [x.lo * wv.lo, x.lo * wv.hi, x.hi * wv.lo, x.hi * wv.hi]
            prods.append(m.wire("pr", x.width + wv.width, min(corners), max(corners),
                                f"$signed({x.name}) * $signed({wv.name})", src=x, levels=1))
        bias = int(b[o])
        lo_acc = bias + sum(min(v, 0) for v in clo)
        hi_acc = bias + sum(max(v, 0) for v in chi)
        aw = signed_bits_for(min(lo_acc, bias), max(hi_acc, bias))
        s = m.tree(prods) if prods else m.const_sig(0)
        acc = f"acc_{o}"
        acc_decl.append(f"  reg signed [{aw - 1}:0] {acc};")
        base = m.wire("base", aw, lo_acc, hi_acc, f"(p == {pw}'d0) ? {const(bias, aw)} : {acc}")
        nxt = m.wire("nx", aw, lo_acc, hi_acc, f"{base.name} + {m.ext(s, aw) if s.width != aw else s.name}")
        acc_decl.append(f"  always @(posedge clk) if (go) {acc} <= {nxt.name};")
        outs.append(nxt)
    packed, _ = gen.pack(outs)
    in_w, ow = in_info.width, out_info.width
    L = [f"// {op.where()}: streaming flatten + dense: {p_n} pixels x {c} channels -> {co} outputs, "
         f"one beat after the last pixel", f"// generated by {GENERATOR}", "`default_nettype none",
         f"module {name} (", ",\n".join(_handshake_ports(in_w, ow)), ");"]
    L += [f"  wire [{in_w - 1}:0] in0 = in_data;"]
    L += _regs(("p", p_n)) + ([] if p_n > 1 else [f"  wire [{pw - 1}:0] p = {pw}'d0;"])
    L += [f"  wire last = p == {pw}'d{p_n - 1};",
          "  wire room = ~out_v | out_ready;",
          "  assign in_ready = room | ~last;",
          "  wire go = in_valid & in_ready;"] + _counter("p", p_n, "go")
    L += L_rom + acc_decl[0::2] + m.lines + acc_decl[1::2]
    L += _out_reg(ow, "go & last", packed)
    sinks = list(m.unused)
    if sinks:
        L.append(f"  wire unused_ok = ^{{1'b0, {', '.join(sinks)}}};")
    L += ["endmodule", "`default_nettype wire", ""]
    return "\n".join(L)


def axis_stream_wrapper(top: str, in_bits: int, out_bits: int, out_beats: int) -> tuple[str, str]:
    """AXI4-Stream wrapper of a streaming top: tready/tvalid map onto in_ready/out_ready; the
    output's tlast marks the last beat of each image (input tlast is not needed: beats are counted)."""
    name = f"{top}_axis"
    i8, o8 = max(8, -(-in_bits // 8) * 8), max(8, -(-out_bits // 8) * 8)
    bw = _cw(out_beats)
    L = [f"// {name}: AXI4-Stream wrapper of the streaming top {top} (one beat = one pixel; "
         f"m_axis_tlast on the last of the {out_beats} output beat(s) of an image)",
         f"// generated by {GENERATOR}", "`default_nettype none", f"module {name} (",
         "  input wire aclk,", "  input wire aresetn,", f"  input wire [{i8 - 1}:0] s_axis_tdata,",
         "  input wire s_axis_tvalid,", "  output wire s_axis_tready,", "  input wire s_axis_tlast,",
         f"  output wire [{o8 - 1}:0] m_axis_tdata,", "  output wire m_axis_tvalid,", "  input wire m_axis_tready,",
         "  output wire m_axis_tlast", ");",
         f"  wire [{out_bits - 1}:0] core_data;",
         f"  {top} u_core (.clk(aclk), .rst(~aresetn), .in_valid(s_axis_tvalid), .in_ready(s_axis_tready),",
         f"    .in_data(s_axis_tdata[{in_bits - 1}:0]), .out_valid(m_axis_tvalid), .out_ready(m_axis_tready),"
         " .out_data(core_data));",
         f"  assign m_axis_tdata = {{{o8 - out_bits}'d0, core_data}};" if o8 > out_bits
         else "  assign m_axis_tdata = core_data;"]
    if out_beats > 1:
        L += [f"  reg [{bw - 1}:0] beat;",
              "  always @(posedge aclk) begin",
              f"    if (!aresetn) beat <= {bw}'d0;",
              f"    else if (m_axis_tvalid & m_axis_tready) beat <= (beat == {bw}'d{out_beats - 1}) ? {bw}'d0 "
              f": beat + {bw}'d1;",
              "  end",
              f"  assign m_axis_tlast = beat == {bw}'d{out_beats - 1};"]
    else:
        L.append("  assign m_axis_tlast = 1'b1;")
    unused = ["s_axis_tlast"] + ([f"s_axis_tdata[{i8 - 1}:{in_bits}]"] if i8 > in_bits else [])
    L.append(f"  wire unused_ok = ^{{1'b0, {', '.join(unused)}}};")
    L += ["endmodule", "`default_nettype wire", ""]
    return name, "\n".join(L)


def check_stream_options(net: Network, weights: str, pipeline: str, bnn_order: str) -> None:
    """Refuse option combinations the streaming generator cannot build, in one line."""
    if weights != "fixed":
        raise RTLError(f"network '{net.name}': --weight-storage {weights} with --io stream has no RTL yet; "
                       f"use --weight-storage fixed")
    if pipeline.startswith("depth"):
        raise RTLError(f"network '{net.name}': --pipeline {pipeline} with --io stream: stream stages register "
                       f"once per op; use --pipeline layer")
    if bnn_order == "mst":
        raise RTLError(f"network '{net.name}': --bnn-order mst with --io stream: streamed binary layers are "
                       f"plain; use --bnn-order plain or auto")
    for name, t in net.tensor_types().items():
        if isinstance(t, MinifloatType):
            raise RTLError(f"tensor '{name}' ({t.describe()}): minifloat tensors with --io stream have no RTL; "
                           f"use --io parallel")


def generate_stream(net: Network, top: str, pipeline: str, weights: str, bnn_order: str):
    """The streaming design of ``net`` (a chain with a spatial input), as hls.rtl.verilog.Design."""

    check_stream_options(net, weights, pipeline, bnn_order)
    stages, first, last = plan(net, net.ops)
    bounds = analyze(net)
    types = net.tensor_types()
    ids = _identifiers(net)
    files: dict[str, str] = {}

    def chan_info(name: str, c: int, reps: int = 1, pad: int | None = None) -> TensorInfo:
        lo, hi = _chan_bounds(bounds[name].lo, bounds[name].hi, c)
        if pad is not None:
            lo = np.array([min(int(v), pad) for v in lo], dtype=object)
            hi = np.array([max(int(v), pad) for v in hi], dtype=object)
        return TensorInfo(name, (reps, c) if reps > 1 else (c,), types[name], np.tile(lo, reps), np.tile(hi, reps))

    def bus_ew(name: str) -> int:
        return 1 if isinstance(types[name], BinaryType) else types[name].bits

    inst, decls = [], []
    src_valid, src_data, src_ready_wire = "in_valid", "in_data", "in_ready"
    man_ops = {}
    for k, st in enumerate(stages):
        op = st.op
        src = op.inputs[0]
        ident = ids[op.name]
        st.ident = ident
        mname = f"{top}_{ident}"
        ew, oew = bus_ew(src), bus_ew(op.name)
        out_info = TensorInfo(op.name, (st.out_c,), op.type, np.zeros(st.out_c, dtype=object),
                              np.zeros(st.out_c, dtype=object))
        if st.kind == "window":
            g = st.info["g"]
            binary = isinstance(types[src], BinaryType)
            clo, chi = _chan_bounds(bounds[src].lo, bounds[src].hi, st.in_c)
            if op.kind in ("maxpool",):
                pad_vals = [0 if binary else int(v) for v in clo]  # the lowest value: pads never win
                pad_num = None
            else:
                if binary and any(st.pad):
                    raise _refuse(op, "padding a binary input (a pad has no +-1 code)")
                pad_vals = [0] * st.in_c
                pad_num = 0 if any(st.pad) else None
            kk = g.kh * g.kw
            tin = chan_info(src, st.in_c, kk, pad_num)
            tin = TensorInfo(src, (g.kh, g.kw, st.in_c), tin.type, tin.lo, tin.hi)
            if op.kind in ("conv1d", "conv2d"):
                w = op.arrays["weight"]
                core_op = Op(op.name, "dense", [src], (st.out_c,), op.type, {},
                             {"weight": w.reshape(-1, w.shape[-1]), "bias": op.arrays["bias"]}, op.source)
            elif op.kind == "bconv2d":
                w = op.arrays["weight"]
                arrays = {"weight": w.reshape(-1, w.shape[-1])}
                arrays.update({a: op.arrays[a] for a in ("threshold", "direction") if a in op.arrays})
                core_op = Op(op.name, "bdense", [src], (st.out_c,), op.type, {}, arrays, op.source)
            else:
                core_op = Op(op.name, op.kind, [src], (1, 1, st.out_c), op.type,
                             {"pool": [g.kh, g.kw], "strides": [g.kh, g.kw], "dims": 2, "padding": "valid"}, {},
                             op.source)
            out_info.shape = tuple(core_op.shape)
            cname, ctext, _ = _op_module(top, core_op, [tin], out_info, False, 0, ident=f"{ident}_core")
            files[f"{cname}.v"] = ctext
            files[f"{mname}.v"] = window_module(mname, st, ew, oew, pad_vals)
        elif st.kind == "point":
            tin = chan_info(src, st.in_c)
            core_op = Op(op.name, op.kind, [src], (st.out_c,), op.type, dict(op.attrs), dict(op.arrays), op.source)
            cname, ctext, _ = _op_module(top, core_op, [tin], out_info, False, 0, ident=f"{ident}_core")
            files[f"{cname}.v"] = ctext
            files[f"{mname}.v"] = point_module(mname, st, st.in_c * ew, st.out_c * oew)
        else:
            cname = None
            tin = chan_info(src, st.in_c)
            clo, chi = _chan_bounds(bounds[src].lo, bounds[src].hi, st.in_c)
            files[f"{mname}.v"] = flatdense_module(mname, st, tin, out_info, clo, chi)
        ow = st.out_c * oew
        v, d, r = f"s{k}_valid", f"s{k}_data", f"s{k}_ready"
        decls += [f"  wire {v};", f"  wire {r};", f"  wire [{ow - 1}:0] {d};"]
        core_ports = ""
        if cname:
            tw = tin.width
            decls += [f"  wire [{tw - 1}:0] s{k}_taps;", f"  wire [{ow - 1}:0] s{k}_core;"]
            inst.append(f"  {cname} u_{ident}_core (.clk(clk), .in0(s{k}_taps), .out(s{k}_core));")
            core_ports = f", .taps(s{k}_taps), .core_out(s{k}_core)"
        inst.append(f"  {mname} u_{ident} (.clk(clk), .rst(rst), .in_valid({src_valid}), .in_ready({src_ready_wire}),"
                    f" .in_data({src_data}), .out_valid({v}), .out_ready({r}), .out_data({d}){core_ports});")
        src_valid, src_data, src_ready_wire = v, d, r
        man_ops[op.name] = {"module": mname, "instance": f"u_{ident}", "stage_kind": st.kind,
                            "positions_per_image": len(st.pad), "beats_in": sum(1 for p in st.pad if not p),
                            "beats_out": sum(st.emit), "beat_elements": st.out_c, "element_bits": oew}
    ii, latency = schedule(stages)
    inp = net.inputs[0]
    out_name = stages[-1].op.name
    iew, oew = bus_ew(inp.name), bus_ew(out_name)
    iw, ow = first.c * iew, last.c * oew
    beats_in, beats_out = first.beats, sum(stages[-1].emit)
    in_i = TensorInfo(inp.name, tuple(inp.shape), inp.type, np.zeros(1), np.zeros(1))
    out_i = TensorInfo(out_name, tuple(stages[-1].op.shape), types[out_name], np.zeros(1), np.zeros(1))
    lines = [
        f"// {top}: integer network '{net.name}' as a streaming datapath (--io stream)",
        f"// generated by {GENERATOR}",
        f"// in_data : one pixel per beat, {first.c} x {iew}-bit {_layout(in_i)}, channel c at bits [c*W +: W];",
        f"//           {beats_in} beats per image in raster order (row by row, left to right)",
        f"// out_data: {last.c} x {oew}-bit {_layout(out_i)} per beat, {beats_out} beat(s) per image",
        "// handshake: a beat moves when valid & ready on a rising edge (in_valid/in_ready, out_valid/out_ready);",
        "//   in_ready never depends on in_valid; back-pressure (out_ready low) stalls the pipeline, nothing is lost",
        f"// one image every {ii} clocks with input always valid and output always read (initiation interval);",
        f"// latency {latency} clocks from accepting an image's first input beat to its last output beat",
        "`default_nettype none",
        f"module {top} (",
        "  input wire clk,",
        "  input wire rst,",
        "  input wire in_valid,",
        "  output wire in_ready,",
        f"  input wire [{iw - 1}:0] in_data,",
        "  output wire out_valid,",
        "  input wire out_ready,",
        f"  output wire [{ow - 1}:0] out_data",
        ");",
    ] + decls + inst + [
        f"  assign out_valid = {src_valid};",
        f"  assign {src_ready_wire} = out_ready;",
        f"  assign out_data = {src_data};",
        "endmodule", "`default_nettype wire", ""]
    files[f"{top}.v"] = "\n".join(lines)
    axis_name, axis_text = axis_stream_wrapper(top, iw, ow, beats_out)
    files[f"{axis_name}.v"] = axis_text
    manifest = {
        "generator": GENERATOR, "top": top, "network": net.name, "io": "stream", "latency": latency,
        "initiation_interval": ii, "in_ready": True, "out_ready": True, "pipeline": pipeline, "weights": weights,
        "stream": {"in_beats": beats_in, "in_beat_elements": first.c, "out_beats": beats_out,
                   "out_beat_elements": last.c, "clocks_per_image": ii, "latency": latency,
                   "latency_definition": "clocks from accepting an image's first input beat to its last output beat"},
        "input": {"name": inp.name, "shape": list(inp.shape), "element_bits": iew, "width": iw,
                  "signed": _signed_bus(in_i), "binary": in_i.binary},
        "output": {"name": out_name, "shape": list(stages[-1].op.shape), "element_bits": oew, "width": ow,
                   "signed": _signed_bus(out_i), "binary": out_i.binary},
        "ops": man_ops, "files": sorted(files), "axis_top": axis_name,
    }
    return Design(top, files, latency, {}, manifest)
