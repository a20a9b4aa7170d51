"""Folded dense and convolution layers (``--reuse R``): the ``folded`` Verilog variant of
``dense``, ``conv1d`` and ``conv2d``.  The golden model is unchanged: the variant computes the
same integers as the unrolled layer over R clocks (initiation interval R).

Structure: **digit-serial inputs, most significant digit first.**  Every b-bit input element x
is split into R digits of d = ceil(b / R) bits (sign- or zero-extended to R*d bits):
x = D_0 * 2^(d(R-1)) + D_1 * 2^(d(R-2)) + ... + D_(R-1), D_0 signed (for a signed input), the
others unsigned in [0, 2^d).  One clock applies the layer's constant matrix -- the same CSE'd
shift-and-add graph as the unrolled layer (``ModuleText.linear_layer``), but over d-bit digits
instead of b-bit values -- to the current digit of every input, and one accumulator per output
takes A <- (A << d) + P.  After R clocks A = sum_i w_i x_i exactly (A_k = sum_i w_i *
floor(x_i / 2^(d(R-k))) after k digits; its range, computed per k by interval arithmetic,
sizes the accumulator).  The bias b = q * 2^(d(R-1)) + r (0 <= r < 2^(d(R-1))) costs no adder:
the first clock loads q into the accumulator instead of zero, and every later clock shifts r's
next d-bit digit into the d low bits that ``A << d`` leaves zero.

Why this and not phase-selected constants: weights are constants folded into the logic.
Selecting a different constant (or a different input group) per phase turns each product into
a general multiplier by an R-way constant mux -- no smaller than the R constant products it
replaces.  Digit-serial keeps every weight a constant and the *same* constants every clock, so
only the data width shrinks: every node of the adder graph is narrower by about b - d bits.
Its limit: widths also carry the weights' bits and log2(fan-in), which do not shrink; so the
saving is about (b - d) / (b + |w| + log2 n) per adder (measured: bench/folding.py).

Bit-serial digits (d = 1, ``choose_style``): the digit sum is built as **distributed arithmetic**
instead -- per output, the used inputs in chunks of six, and for each chunk a table of
sum_(i in chunk) w_i * bit_i (one LUT6 per result bit) -- which replaces the chunk's whole
shift-and-add subtree by one LUT level; signed inputs are then in offset binary
(x + 2^(R*d-1), the MSB flipped) so every digit is unsigned, the offset folded into the bias.
Measured on the jet tagger's fc3 (32 x 32, uint6 inputs; Yosys synth_xilinx): unrolled 7,875 LUT,
digit-serial adder graph at d = 2 (R = 3) 4,805 (0.61x), at d = 1 (R = 6) 3,640 (0.46x); distributed
arithmetic at d = 1 (R = 6) 3,237 (0.41x), so tables are used for 1-bit digits only.

**``fold="dsp"``** (``--fold dsp``, hls4ml's reuse factor): the layer is folded over its *terms*
instead.  Each output's terms (input, weight) are dealt round-robin to R phases; term t goes to phase
t mod R of multiplier slot t div R, so an output has ceil(terms / R) slots (a slot whose R weights
are all zero is left out).  A slot multiplies a phase-selected input (an R-way mux, shared by every
output with the same inputs in that slot) by a phase-selected constant (an R-entry table).  The
slots of an output form a systolic chain: slot j works on phase k one clock after slot j - 1 (its
input and the phase arrive through delay registers shared by all outputs) and adds its product to
slot j - 1's registered sum, so Yosys and Vivado put every multiply-add and its register into one
DSP48 and no path crosses two slices.  The chain's end delivers one phase sum per clock; one
accumulator per output adds the R sums onto the bias.  Latency R + L (L: the layer's longest chain;
shorter chains start later so that all outputs finish together); II R.  Exact for any R up to the
terms per output (a phase without a term multiplies by zero).  Two outputs with the same inputs slot
by slot share one chain when it fits a DSP48E1 (25 x 18 multiply, 48-bit sum): the slice multiplies
the input by w_hi * 2^K + w_lo (K: the low output's phase-sum width), so its sum is
P = S_hi * 2^K + S_lo, and S_lo = P's low K bits (signed), S_hi = (P >> K) + P[K-1] (the borrow
enters the high accumulator as a carry bit): half the slices for narrow layers (``PACK_DSP``).
With ``--weight-storage registers|tmr`` the phase-selected weight is a register word (hls.rtl.reconfig)
instead of a constant: every term keeps its slot and nothing is packed.

"R divides b" here means R <= b (a digit holds at least one bit of every input of the layer);
when R does not divide b exactly the top digit is partly sign/zero extension.

Ports: the folded module has ``start`` besides ``clk``/``in0``/``out``: high for the clock in
which ``in0`` holds a valid vector (the top's valid pipeline at the layer's input stage).  It
captures the lower digits in a shift register, so ``in0`` may change afterwards; ``out`` holds
the result from R clocks after ``start`` until the next result.  ``start`` restarts the layer
at any time (a reset needs nothing else).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from hls.rtl.emitters import EMITTERS, RTLError
from hls.rtl.text import Sig, const
from qat.ir.network import Network
from qat.ir.schedule import MAC_KINDS, parse_reuse
from qat.ir.types import BinaryType, MinifloatType, signed_bits_for

if TYPE_CHECKING:  # annotations only: hls.rtl.op_module imports this module
    from hls.rtl.op_module import OpModule

FOLDABLE = MAC_KINDS  # dense, conv1d, conv2d
VARIANT = "folded"
FOLDS = ("digits", "dsp")  # --fold: digit-serial constant logic (default), or multipliers for DSP48 slices


FORCE_STYLE: str | None = None  # 'cse' or 'rom' for every folded layer (measurements: bench/folding.py)


def choose_style(d: int) -> str:
    """'rom' (LUT tables, distributed arithmetic) for digits of at most ROM_MAX_DIGIT bits, else 'cse'."""
    return "rom" if d <= ROM_MAX_DIGIT else "cse"


ROM_MAX_DIGIT = 1
PACK_DSP = True  # --fold dsp: two outputs per DSP48 slice when their packed weights and sums fit


def input_bits(t) -> tuple[int, bool]:
    """(b, signed) of an input element as digits see it: the bus element width."""
    return int(t.type.bits), bool(t.type.signed)


def digit_bits(b: int, r: int) -> int:
    return -(-b // r)


def plan_reuse(net: Network, spec, weights: str, fold: str = "digits") -> dict[str, int]:
    """{op name: R > 1} for the layers to fold (``spec``: the ``--reuse`` text, an int or a dict,
    parsed by qat.ir.schedule.parse_reuse); raises NetworkError/RTLError (one line, naming the layer and
    the option) for unknown layers, kinds that cannot fold, minifloat or binary tensors,
    register weights, and factors larger than the input's bits (``fold="digits"``) or than the
    layer's terms per output (``fold="dsp"``)."""
    if fold not in FOLDS:
        raise RTLError(f"--fold must be one of {FOLDS}, got {fold!r}")
    ops = {op.name: op for op in net.ops}
    if isinstance(spec, dict):
        spec = ",".join(f"{k}={v}" for k, v in spec.items())
    plan = {k: v for k, v in parse_reuse(None if spec is None else str(spec), net, FOLDABLE).items() if v > 1}
    if not plan:
        return {}
    if weights != "fixed" and fold != "dsp":
        first = next(iter(plan))
        raise RTLError(f"--reuse {first}={plan[first]}: digit-serial folded layers need --weight-storage fixed "
                       f"(their datapath is constant shift-and-add logic); --fold dsp takes register weights")
    types = net.tensor_types()
    for name, r in plan.items():
        op = ops[name]
        t_in, t_out = types[op.inputs[0]], types[name]
        for what, t in (("input", t_in), ("output", t_out)):
            if isinstance(t, MinifloatType):
                raise RTLError(f"--reuse {name}={r}: layer '{name}' has a minifloat {what} ({t.describe()}); "
                               f"folding needs two's-complement integers")
            if isinstance(t, BinaryType):
                raise RTLError(f"--reuse {name}={r}: layer '{name}' has a binary {what}; folding needs "
                               f"multi-bit integers")
        limit = fold_limit(op, int(t_in.bits), fold)
        if r > limit and fold == "dsp":
            raise RTLError(f"--reuse {name}={r} --fold dsp: R must not exceed the {limit} multiplications "
                           f"per output of layer '{name}'")
        if r > limit:
            raise RTLError(f"--reuse {name}={r}: R must divide the {limit}-bit input of layer '{name}' into "
                           f"digits of at least one bit (R <= {limit})")
    return plan


def fold_limit(op, in_bits: int, fold: str) -> int:
    """The largest R a MAC layer folds by: its input's bits (digit-serial: a digit of at least one bit),
    or its terms per output (``fold="dsp"``: inputs of a dense, kernel taps x input channels of a conv)."""
    return int(np.prod(op.arrays["weight"].shape[:-1])) if fold == "dsp" else in_bits


def _rom_sums(m, rows: list, raw: dict[int, str], used: list[int], d: int) -> list:
    """Distributed arithmetic: per output, the digit's partial sum sum_i w_i D_i as LUT ROMs.  The used
    inputs are cut into chunks of 6; for each chunk and digit bit j, a 6-input table gives
    sum_(i in chunk) w_i * bit_j(D_i) (one LUT6 per result bit), shifted by j and summed."""
    chunks = [used[k:k + 6] for k in range(0, len(used), 6)]
    addr: dict[tuple[int, int], str] = {}
    outs = []
    for row in rows:
        if not row:
            outs.append(None)
            continue
        wmap = dict(row)
        terms = []
        for c, chunk in enumerate(chunks):
            ws = [wmap.get(i, 0) for i in chunk]
            if not any(ws):
                continue
            idx = [k for k, wv in enumerate(ws) if wv]
            lo = sum(ws[k] for k in idx if ws[k] < 0)
            hi = sum(ws[k] for k in idx if ws[k] > 0)
            wr = signed_bits_for(lo, hi)
            vals = [sum(ws[idx[q]] for q in range(len(idx)) if p >> q & 1) for p in range(1 << len(idx))]
            tables = []
            for bit in range(wr):
                tv = sum(1 << p for p, v in enumerate(vals) if (v >> bit) & 1)
                tables.append(tv)
            for j in range(d):
                key = (c, j, tuple(idx))
                if key not in addr:
                    a = m.fresh("da")
                    bits = ", ".join(f"{raw[chunk[k]]}[{j}]" for k in reversed(idx))
                    m.lines.append(f"  wire [{len(idx) - 1}:0] {a} = {{{bits}}};")
                    addr[key] = a
                a = addr[key]
                rom = m.fresh("rom")
                n = 1 << len(idx)
                bits = []
                for tv in reversed(tables):
                    if tv == 0:
                        bits.append("1'b0")
                    elif tv == (1 << n) - 1:
                        bits.append("1'b1")
                    else:
                        tn = m.fresh("tt")
                        m.lines.append(f"  localparam [{n - 1}:0] {tn} = {n}'h{tv:x};")
                        bits.append(f"{tn}[{a}]")
                m.lines.append(f"  wire signed [{wr - 1}:0] {rom} = {{{', '.join(bits)}}};")
                terms.append(m.shl(Sig(rom, wr, lo, hi), j))
        outs.append(m.tree(terms))
    return outs


def _floor_shift(v: int, s: int) -> int:
    return v >> s  # Python's >> floors negative numbers, as two's-complement arithmetic shift


def _hold(m, s: str, wa: int, lo: int, hi: int, when: str, stage: int) -> Sig:
    """The folded output: the accumulator's next value ``s`` (``wa`` bits) registered in the clock where
    ``when`` holds (the last phase), cut to the width of the output's range [lo, hi]; valid at ``stage``."""
    wo = signed_bits_for(lo, hi)
    y = m.fresh("y")
    m.lines.append(f"  reg signed [{wo - 1}:0] {y};")
    m.lines.append(f"  always @(posedge clk) if ({when}) {y} <= {s}[{wo - 1}:0];")
    if wa > wo:
        m.unused.append(f"{s}[{wa - 1}:{wo}]")
    return Sig(y, wo, lo, hi, stage, 0)


def _span(v: int | Sig) -> tuple[int, int]:
    """(lo, hi) of a constant or of a register word."""
    return (v, v) if isinstance(v, int) else (v.lo, v.hi)


def _bits(vals: list) -> int:
    """Signed width holding every value (constants or register words) of a list."""
    return signed_bits_for(min(_span(v)[0] for v in vals), max(_span(v)[1] for v in vals))


def _dsp_sums(gen: OpModule, rows: list, biases: list, r: int, pw: int) -> list[Sig]:
    """``fold="dsp"``: per output, ceil(terms / R) multiplier slots; slot s multiplies, in phase k, input
    rows[o][s*R + k] by its weight (both phase-selected).  The slots form a systolic chain: the j-th
    used slot of an output works on phase k one clock after the (j-1)-th (its input and phase arrive
    through delay registers) and adds its product to that slot's registered sum, so every multiply-add
    and its register map to one DSP48 and no path crosses more than one slice.  The chain's end holds
    one phase's sum per clock; a last accumulator per output adds the R phase sums onto the bias.
    Latency R + L clocks (L: the longest chain of the layer; shorter chains start later).  Weights and
    biases are ints (constants) or Sigs (register words, ``--weight-storage registers|tmr``)."""
    m, t = gen.m, gen.ins[0]
    b = int(t.type.bits)
    # phase k's value of an input: in0 itself at the start clock (k = 0), then the register taken at start
    held = sorted({row[q][0] for row in rows for q in range(len(row)) if q % r})
    for i in held:
        m.lines.append(f"  reg [{b - 1}:0] xr_{i};")
        m.lines.append(f"  always @(posedge clk) if (start) xr_{i} <= in0[{i * b + b - 1}:{i * b}];")

    def value(i: int, k: int) -> str:
        raw, top = (f"in0[{i * b + b - 1}:{i * b}]", f"in0[{i * b + b - 1}]") if k == 0 else (f"xr_{i}",
                                                                                            f"xr_{i}[{b - 1}]")
        return f"{{{top}, {raw}}}" if int(t.lo[i]) < 0 else f"{{1'b0, {raw}}}"

    def pick(vals: list[str], phase: str) -> str:
        """``vals[k]`` when ``phase`` is k (the last value also for unused phase codes)."""
        expr = vals[-1]
        for k in range(len(vals) - 2, -1, -1):
            expr = f"({phase} == {pw}'d{k}) ? {vals[k]} : {expr}"
        return expr

    # per output: its phase sums' range and its accumulator's (the bias plus any phases' sums so far)
    nslot = [-(-len(row) // r) for row in rows]
    psum, arng = [], []
    for o, (row, bias) in enumerate(zip(rows, biases)):
        plo = phi = 0
        lo_k, hi_k = _span(bias)
        alo, ahi = min(int(gen.out.lo[o]), lo_k), max(int(gen.out.hi[o]), hi_k)
        for k in range(r):
            slo = shi = 0
            for q in range(k, len(row), r):
                i, wv = row[q]
                corners = [w * x for w in _span(wv) for x in (int(t.lo[i]), int(t.hi[i]))]
                slo, shi = slo + min(corners), shi + max(corners)
            plo, phi = min(plo, slo), max(phi, shi)
            lo_k, hi_k = lo_k + slo, hi_k + shi
            alo, ahi = min(alo, lo_k), max(ahi, hi_k)
        psum.append((plo, phi))
        arng.append((alo, ahi))

    def plan(g: list[int]) -> dict:
        """One chain for the outputs ``g`` (one, or two packed as w_hi * 2^K + w_lo, K = the low output's
        phase-sum width): its used slots, their R weights, and the widths that must fit a DSP48."""
        shifts = [0] if len(g) == 1 else [0, signed_bits_for(*psum[g[0]])]
        weights = {}
        for s in range(nslot[g[0]]):
            ws = [(rows[g[0]][s * r + k][1] if len(g) == 1 else
                   sum(rows[o][s * r + k][1] << sh for o, sh in zip(g, shifts)))
                  if s * r + k < len(rows[g[0]]) else 0 for k in range(r)]
            if any(not isinstance(v, int) or v for v in ws):  # R zero weights: no multiplier
                weights[s] = ws
        lo = sum(psum[o][0] << sh for o, sh in zip(g, shifts))
        hi = sum(psum[o][1] << sh for o, sh in zip(g, shifts))
        cb = max((_bits(ws) for ws in weights.values()), default=1)
        return {"outs": g, "shifts": shifts, "weights": weights, "wq": signed_bits_for(lo, hi), "cb": cb}

    def fits(p: dict) -> bool:
        """A DSP48E1 multiplies 25 x 18 bits and adds in 48."""
        xb, cb = b + 1, p["cb"]
        return ((xb <= 18 and cb <= 25) or (xb <= 25 and cb <= 18)) and p["wq"] <= 48 and xb + cb <= 48

    # chains: outputs with the same inputs slot by slot (dense: all; conv: the channels of a pixel)
    # are packed two to a slice when the packed weights and sums fit, else one output per chain
    same: dict[tuple, list[int]] = {}
    for o, row in enumerate(rows):
        if any(not isinstance(wv, int) or wv for _, wv in row):
            same.setdefault(tuple(i for i, _ in row), []).append(o)
    plans = []
    for g in same.values():
        k = 0
        while k < len(g):
            pair = plan(g[k:k + 2]) if PACK_DSP and not gen.params and k + 1 < len(g) else None
            if pair is not None and fits(pair):
                plans.append(pair)
                k += 2
            else:
                plans.append(plan([g[k]]))
                k += 1
    chain = max((len(p["weights"]) for p in plans), default=0)  # L: all sums leave their chains together
    # q: the phase of the current clock (0 at start; 0 also when idle, which only restarts the accumulator)
    m.lines.append(f"  wire [{pw - 1}:0] q0 = start ? {pw}'d0 : ph;")
    for k in range(1, chain + 1):
        m.lines.append(f"  reg [{pw - 1}:0] q{k};")
        m.lines.append(f"  always @(posedge clk) q{k} <= q{k - 1};")
    sel: dict[tuple, str] = {}  # (inputs of a slot, delay) -> its phase-selected input, delayed
    sums: dict[int, tuple[Sig, str | None]] = {}  # output -> (its phase sum, a carry bit to add or None)
    for p in plans:
        wq, prev, row = p["wq"], None, rows[p["outs"][0]]
        for j, (s, ws) in enumerate(p["weights"].items()):
            delay = chain - len(p["weights"]) + j  # clocks after phase k's start clock that this slot sees it
            ins = tuple(i for i, _ in row[s * r:(s + 1) * r])
            if (ins, 0) not in sel:
                vals = [value(i, k) for k, i in enumerate(ins)] + [f"{b + 1}'sd0"] * (r - len(ins))
                sel[(ins, 0)] = m.fresh("xs")
                m.lines.append(f"  wire signed [{b}:0] {sel[(ins, 0)]} = {pick(vals, 'q0')};")
            for dly in range(1, delay + 1):
                if (ins, dly) not in sel:
                    sel[(ins, dly)] = m.fresh("xd")
                    m.lines.append(f"  reg signed [{b}:0] {sel[(ins, dly)]};")
                    m.lines.append(f"  always @(posedge clk) {sel[(ins, dly)]} <= {sel[(ins, dly - 1)]};")
            wb = _bits(ws)
            c = m.fresh("ws")
            vals = [const(v, wb) if isinstance(v, int) else m.ext(v, wb) for v in ws]
            m.lines.append(f"  wire signed [{wb - 1}:0] {c} = {pick(vals, f'q{delay}')};")
            m.multipliers += 1
            pr = m.fresh("pr")
            m.lines.append(f"  wire signed [{b + wb}:0] {pr} = $signed({sel[(ins, delay)]}) * $signed({c});")
            pe = m.ext(Sig(pr, b + 1 + wb, 0, 0), wq) if b + 1 + wb <= wq else f"{pr}[{wq - 1}:0]"
            if b + 1 + wb > wq:
                m.unused.append(f"{pr}[{b + wb}:{wq}]")
            sp = m.fresh("sp")  # the slot's multiply-add register (DSP48 P)
            m.lines.append(f"  reg signed [{wq - 1}:0] {sp};")
            m.lines.append(f"  always @(posedge clk) {sp} <= {pe if prev is None else f'{prev} + {pe}'};")
            prev = sp
        if len(p["outs"]) == 1:
            sums[p["outs"][0]] = (Sig(prev, wq, 0, 0), None)
        else:  # P = S_hi * 2^K + S_lo: S_lo is P's low K bits (signed), S_hi = (P >> K) + P[K-1]
            kb = p["shifts"][1]
            lo_s, hi_s = m.fresh("plo"), m.fresh("phi")
            m.lines.append(f"  wire signed [{kb - 1}:0] {lo_s} = {prev}[{kb - 1}:0];")
            m.lines.append(f"  wire signed [{wq - kb - 1}:0] {hi_s} = {prev}[{wq - 1}:{kb}];")
            sums[p["outs"][0]] = (Sig(lo_s, kb, 0, 0), None)
            sums[p["outs"][1]] = (Sig(hi_s, wq - kb, 0, 0), f"{prev}[{kb - 1}]")
    outs = []
    for o, bias in enumerate(biases):
        lo_o, hi_o = int(gen.out.lo[o]), int(gen.out.hi[o])
        if o not in sums:  # no nonzero weight: the output is the bias
            outs.append(m.const_sig(bias))
            continue
        ps, carry = sums[o]
        wa = max(signed_bits_for(*arng[o]), ps.width)
        acc, sa = m.fresh("acc"), m.fresh("sa")
        m.lines.append(f"  reg signed [{wa - 1}:0] {acc};")
        add = m.ext(ps, wa) + (f" + {{{wa - 1}'d0, {carry}}}" if carry else "")
        init = const(bias, wa) if isinstance(bias, int) else m.ext(bias, wa)
        m.lines.append(f"  wire signed [{wa - 1}:0] {sa} = (q{chain} == {pw}'d0 ? {init} : {acc}) + {add};")
        m.lines.append(f"  always @(posedge clk) {acc} <= {sa};")
        outs.append(_hold(m, sa, wa, lo_o, hi_o, f"q{chain} == {pw}'d{r - 1}", r + chain))
    m.unused.append("last")  # the accumulators count phases on q{L}
    return outs


@EMITTERS.register(*FOLDABLE, variant=VARIANT)
def g_folded(gen: OpModule) -> list:
    """The folded layer's output elements: registers valid R clocks after ``start``."""
    r = int(gen.options["reuse"])
    op, m = gen.op, gen.m
    t = gen.ins[0]
    b, signed = input_bits(t)
    d = digit_bits(b, r)
    style = gen.options.get("style") or FORCE_STYLE or choose_style(d)
    e = r * d  # extended input width
    if op.kind == "dense":
        w = op.arrays["weight"]
        ci, co = w.shape
        pos = t.n // ci
        rows = [[(p * ci + i, int(w[i, o])) for i in range(ci) if w[i, o]] for p in range(pos) for o in range(co)]
        biases = [int(op.arrays["bias"][o]) for _ in range(pos) for o in range(co)]
    else:
        taps = gen._conv_taps()
        rows = [[(i, wv) for i, wv, _ in tp if wv] for _, tp in taps]
        biases = [int(op.arrays["bias"][o]) for o, _ in taps]
    used = sorted({i for row in rows for i, _ in row})
    pw = max(1, (r - 1).bit_length())
    if style == "dsp":
        m.lines.append(f"  // folded over R = {r} clocks: each output's terms dealt to R phases of multiplier slots "
                       f"(DSP48: multiply and post-add)")
    else:
        m.lines.append(f"  // folded over R = {r} clocks: {b}-bit inputs as {r} digits of {d} bits, MSB first")
    m.lines.append(f"  reg [{pw - 1}:0] ph;  // phase of the {'terms' if style == 'dsp' else 'digit'} being "
                   f"summed (0: start)")
    m.lines.append("  always @(posedge clk) begin")
    m.lines.append(f"    if (start) ph <= {pw}'d1;")
    m.lines.append(f"    else if (ph == {pw}'d{r - 1}) ph <= {pw}'d0;")
    m.lines.append(f"    else if (ph != {pw}'d0) ph <= ph + {pw}'d1;")
    m.lines.append("  end")
    m.lines.append(f"  wire last = ph == {pw}'d{r - 1};")
    if style == "dsp":
        if gen.params:  # --weight-storage registers/tmr: every term, its weight a register word (hls.rtl.reconfig)
            wr, br = gen._param_registers()
            if op.kind == "dense":
                rows = [[(p * ci + i, wr[i * co + o]) for i in range(ci)] for p in range(pos) for o in range(co)]
                biases = [br[o] for _ in range(pos) for o in range(co)]
            else:
                rows = [[(i, wr[k]) for i, _, k in tp] for _, tp in taps]
                biases = [br[o] for o, _ in taps]
        elif op.kind == "dense":  # every used input in every row (zero weights included): slots shared by all
            cols = sorted({i % ci for i in used})
            rows = [[(p * ci + i, int(w[i, o])) for i in cols] for p in range(pos) for o in range(co)]
        else:
            rows = [[(i, wv) for i, wv, _ in tp] for _, tp in taps]
        return _dsp_sums(gen, rows, biases, r, pw)
    digits: dict[int, Sig] = {}
    raw: dict[int, str] = {}  # the d-bit digit wire of each input
    lo_x = [int(v) for v in t.lo]
    hi_x = [int(v) for v in t.hi]
    offset = set()  # 'rom': signed inputs in offset binary (x + 2^(e-1)), every digit unsigned
    for i in used:
        lo_i, hi_i = int(t.lo[i]), int(t.hi[i])
        sl = f"in0[{i * b + b - 1}:{i * b}]" if b > 1 else f"in0[{i}]"
        x = m.fresh("xe")
        flip = style == "rom" and signed and lo_i < 0
        if e == b:
            ext = sl
        elif signed:
            ext = f"{{{{{e - b}{{in0[{i * b + b - 1}]}}}}, {sl}}}"
        else:
            ext = f"{{{e - b}'d0, {sl}}}"
        m.lines.append(f"  wire [{e - 1}:0] {x} = {ext}" + (f" ^ {{1'b1, {e - 1}'d0}};" if flip else ";"))
        if flip:
            offset.add(i)
            lo_x[i], hi_x[i] = lo_i + (1 << (e - 1)), hi_i + (1 << (e - 1))
        sh = m.fresh("ds")
        rest = e - d  # lower digits kept after the first clock
        m.lines.append(f"  reg [{rest - 1}:0] {sh};")
        shifted = f"{{{sh}[{rest - d - 1}:0], {d}'d0}}" if rest > d else f"{rest}'d0"
        m.lines.append(f"  always @(posedge clk) {sh} <= start ? {x}[{rest - 1}:0] : {shifted};")
        dg = m.fresh("dg")
        m.lines.append(f"  wire [{d - 1}:0] {dg} = start ? {x}[{e - 1}:{e - d}] : {sh}[{rest - 1}:{rest - d}];")
        raw[i] = dg
        neg = signed and lo_i < 0 and i not in offset
        if style == "rom":
            continue
        if neg:  # the first digit is signed, the others are not
            dlo, dhi = -(1 << (d - 1)), (1 << d) - 1
            expr = f"{{start & {dg}[{d - 1}], {dg}}}"
        else:
            dlo, dhi = 0, (1 << d) - 1
            expr = f"{{1'b0, {dg}}}"
        digits[i] = m.wire("dv", d + 1, dlo, dhi, expr)
    live = [row for row in rows if row]  # an all-zero row is its bias: no graph, no accumulator
    if style == "rom":
        parts = _rom_sums(m, rows, raw, used, d)
        biases = [bias - (sum(wv for i, wv in row if i in offset) << (e - 1)) for row, bias in zip(rows, biases)]
    else:
        built = iter(m.linear_layer([[(digits[i], wv) for i, wv in row] for row in live], [0] * len(live)))
        parts = [next(built) if row else None for row in rows]
    outs = []
    for o, (row, bias, p) in enumerate(zip(rows, biases, parts)):
        lo_o, hi_o = int(gen.out.lo[o]), int(gen.out.hi[o])
        if not row:  # no nonzero weight: the output is the bias
            outs.append(m.const_sig(bias))
            continue
        # accumulator range: A_k = sum_i w_i floor(x_i / 2^s) + floor(bias / 2^s), s = d(R-k), k = 1..R
        alo, ahi = lo_o, hi_o
        for k in range(1, r + 1):
            s = d * (r - k)
            lo_k = hi_k = _floor_shift(bias, s)
            for i, wv in row:
                a, c = wv * _floor_shift(lo_x[i], s), wv * _floor_shift(hi_x[i], s)
                lo_k += min(a, c)
                hi_k += max(a, c)
            alo, ahi = min(alo, lo_k), max(ahi, hi_k)
        wa = max(signed_bits_for(alo, ahi), p.width, d + 1)
        q = _floor_shift(bias, d * (r - 1))
        rem = bias - (q << (d * (r - 1)))
        acc, rd = m.fresh("acc"), m.fresh("rd")
        m.lines.append(f"  reg [{wa - 1}:0] {acc};")
        # r's digit for phase k (k = 1..R-1) enters the low d bits of A << d
        rdig = [(rem >> (d * (r - 1 - k))) & ((1 << d) - 1) for k in range(1, r)]
        expr = f"{d}'d0"
        for k in range(r - 1, 0, -1):
            if rdig[k - 1]:
                expr = f"(ph == {pw}'d{k}) ? {d}'d{rdig[k - 1]} : {expr}"
        m.lines.append(f"  wire [{d - 1}:0] {rd} = {expr};")
        if wa > d:
            shl = f"{{{acc}[{wa - d - 1}:0], {rd}}}"
            m.unused.append(f"{acc}[{wa - 1}:{wa - d}]")
        else:
            shl = f"{rd}[{wa - 1}:0]"
            m.unused.append(acc)
            if wa < d:
                m.unused.append(f"{rd}[{d - 1}:{wa}]")
        init = const(q, wa)
        s = m.fresh("sa")
        pe = m.ext(p, wa) if p.width <= wa else f"{p.name}[{wa - 1}:0]"
        m.lines.append(f"  wire [{wa - 1}:0] {s} = (start ? {init} : {shl}) + {pe};")
        m.lines.append(f"  always @(posedge clk) {acc} <= {s};")
        outs.append(_hold(m, s, wa, lo_o, hi_o, "last", r))
    return outs
