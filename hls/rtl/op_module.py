"""Per-op Verilog modules and the design's data: tensor bus layouts (``TensorInfo``), the
emitted files (``Design``), one module per op (``OpModule``, whose ``g_<kind>`` methods are the
registered emitters, and ``_op_module``), identifiers and bus packing.  The top-level assembly of
these modules (fully pipelined, folded or streamed) is in hls.rtl.verilog and hls.rtl.stream.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from qat.ir.geometry import op_window
from qat.ir.spec import spec_of
from qat.ir.intervals import Bounds
from qat.ir.network import Network, Op, unique_name
from qat.ir.types import BinaryType, MinifloatType, TensorType, is_po2, log2_exact, signed_bits_for

from hls.rtl import minifloat as vmf
from hls.rtl.minifloat_code import MinifloatCodeError, encode_one
from hls.rtl.binary_mst import popcount_threshold
from hls.rtl.reconfig import ParamBlock
from hls.rtl.emitters import EMITTERS, RTLError
from hls.rtl.text import GENERATOR, ModuleText, Sig, const
from hls.engine.cmvm import csd_weight
from hls.engine.cost import MULT_TAG

PIPELINE_MODES = ("layer", "none", "depth:N")


def parse_pipeline(mode: str) -> int:
    """Adder levels between registers inside an op: 'layer'/'none' -> 0 (none
    inside); 'depth:N' -> a register after every N adder levels, plus one per op."""
    if mode in ("layer", "none"):
        return 0
    m = re.fullmatch(r"depth:(\d+)", mode or "")
    if not m or int(m.group(1)) < 1:
        raise RTLError(f"--pipeline must be 'layer', 'none' or 'depth:N' (N >= 1 adder levels), got {mode!r}")
    return int(m.group(1))


def vname(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9_]", "_", text)
    if not s or not (s[0].isalpha()):
        s = "n_" + s
    return s


# (System)Verilog keywords a network name could plausibly be; the top module gets a suffix
_KEYWORDS = {"always", "and", "assign", "begin", "bit", "buf", "byte", "case", "class", "config", "const", "default",
             "design", "do", "edge", "else", "end", "event", "final", "for", "function", "generate", "if", "initial",
             "inout", "input", "int", "integer", "interface", "logic", "module", "nand", "nor", "not", "or", "output",
             "package", "parameter", "program", "real", "reg", "repeat", "signed", "string", "supply0", "supply1",
             "table", "task", "time", "type", "wait", "while", "wire", "xor"}


def _identifiers(net: Network) -> dict[str, str]:
    """A distinct Verilog identifier stem per tensor.  vname() alone can map two
    names to one identifier ('a.b' and 'a_b'), and an op named 'axis' would give a
    module <top>_axis, the AXI4-Stream wrapper's name: those get a numeric suffix."""
    used = {"axis"}
    out: dict[str, str] = {}
    for name in [i.name for i in net.inputs] + [op.name for op in net.ops]:
        out[name] = unique_name(vname(name), used)
    return out


def _live_ops(net: Network) -> Network:
    """``net`` without the ops its output does not depend on (they would be unused logic)."""
    need = set(net.outputs)
    for op in reversed(net.ops):
        if op.name in need:
            need.update(op.inputs)
    ops = [op for op in net.ops if op.name in need]
    return net if len(ops) == len(net.ops) else Network(net.name, net.inputs, ops, net.outputs, net.notes, net.meta)


@dataclass
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    type: TensorType
    lo: np.ndarray  # flat element bounds (Python ints)
    hi: np.ndarray

    @property
    def n(self) -> int:
        return int(np.prod(self.shape)) if self.shape else 1

    @property
    def binary(self) -> bool:
        return isinstance(self.type, BinaryType)

    @property
    def mf(self) -> MinifloatType | None:
        """The minifloat format when the bus carries minifloat codes."""
        return self.type if isinstance(self.type, MinifloatType) else None

    @property
    def ew(self) -> int:
        """Bits per element on the bus."""
        return 1 if self.binary else self.type.bits

    @property
    def width(self) -> int:
        return self.n * self.ew


@dataclass
class Design:
    top: str
    files: dict[str, str]  # file name -> text
    latency: int
    stages: dict[str, int]  # tensor -> cycles after in_valid at which it is valid at the top
    manifest: dict = field(default_factory=dict)

    def write(self, out_dir: str | Path) -> list[Path]:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        paths = []
        for name in sorted(self.files):
            p = out / name
            p.write_text(self.files[name])
            paths.append(p)
        (out / "manifest.json").write_text(json.dumps(self.manifest, indent=1, sort_keys=True) + "\n")
        return paths

    @property
    def verilog_files(self) -> list[str]:
        return sorted(f for f in self.files if f.endswith(".v"))


class OpModule:
    """Generates one op's module body.  With ``params`` the op's weights and
    biases live in registers (see hls.rtl.reconfig), triplicated when ``tmr``."""

    def __init__(self, mod: ModuleText, op: Op, ins: list[TensorInfo], out: TensorInfo,
                 params: ParamBlock | None = None, tmr: bool = False, variant: str | None = None,
                 options: dict | None = None):
        self.m, self.op, self.ins, self.out = mod, op, ins, out
        self.params, self.tmr = params, tmr
        self.variant, self.options = variant, options  # a hardware variant (EMITTERS) and its options
        self._cache: dict[tuple[int, int], Sig] = {}

    # -- element access --
    def x(self, port: int, i: int) -> Sig:
        """Element i of input ``port`` as a raw two's-complement integer (minifloat codes decoded)."""
        key = (port, i)
        if key not in self._cache:
            t = self.ins[port]
            lo, hi = int(t.lo[i]), int(t.hi[i])
            w = t.ew
            sl = f"in{port}[{i * w + w - 1}:{i * w}]" if w > 1 else f"in{port}[{i}]"
            if t.mf:
                sign, mag = self._decoded(port, i)
                self._cache[key] = vmf.value(self.m, sign, mag, lo, hi, str(port))
            elif t.binary:  # bit b is the value 2b-1: the 2-bit two's complement {~b, 1} (01 = +1, 11 = -1)
                self._cache[key] = self.m.wire(f"x{port}", 2, lo, hi, f"{{~{sl}, 1'b1}}")
            elif t.type.signed:
                self._cache[key] = self.m.wire(f"x{port}", w, lo, hi, sl)
            else:
                self._cache[key] = self.m.wire(f"x{port}", w + 1, lo, hi, f"{{1'b0, {sl}}}")
        return self._cache[key]

    def bit(self, port: int, i: int) -> str:
        return f"in{port}[{i}]"

    def code(self, port: int, i: int) -> Sig:
        """Element i of minifloat input ``port``: its (1+E+M)-bit code."""
        key = ("code", port, i)
        if key not in self._cache:
            w = self.ins[port].ew
            self._cache[key] = self.m.wire(f"c{port}", w, 0, 0, f"in{port}[{i * w + w - 1}:{i * w}]")
        return self._cache[key]

    def _decoded(self, port: int, i: int) -> tuple[Sig | None, Sig]:
        """(sign, magnitude) of minifloat element i of input ``port``."""
        key = ("dec", port, i)
        if key not in self._cache:
            t = self.ins[port]
            self._cache[key] = vmf.decode(self.m, self.code(port, i).name, t.mf, int(t.lo[i]), int(t.hi[i]),
                                          str(port))
        return self._cache[key]

    def sign_mag(self, port: int, i: int) -> tuple[Sig | None, Sig]:
        """(sign bit or None when never negative, |x| >= 0) of element i of input ``port``."""
        if self.ins[port].mf:
            return self._decoded(port, i)
        key = ("mag", port, i)
        if key not in self._cache:
            x = self.x(port, i)
            big = max(abs(x.lo), abs(x.hi))
            if x.lo >= 0:
                self._cache[key] = (None, x)
            else:
                w = signed_bits_for(0, big)
                sign = Sig(self.m.fresh("sg"), 1, 0, 1, x.stage, x.level)
                self.m.lines.append(f"  wire {sign.name} = {x.name}[{x.width - 1}];")
                e = self.m.ext(x, w)
                mag = self.m.wire("ab", w, 0, big,
                                  f"{sign.name} ? -{e} : {e}", src=x, levels=1)
                self._cache[key] = (sign, mag)
        return self._cache[key]

    def pack(self, elems: list) -> tuple[str, int]:
        """Concatenate output elements (Sig, or wired input bits for binary), all
        delayed to the latest element's stage; returns (expression, stage)."""
        parts = []
        t = self.out
        if len(elems) != t.n:  # never emit hardware that drives only part of the output
            raise RTLError(f"{self.op.where()}: internal error: {len(elems)} output elements built, {t.n} expected")
        stage = max([e.stage for e in elems if isinstance(e, Sig)] + [0])
        elems = [self.m.at_stage(e, stage) if isinstance(e, Sig) else e for e in elems]
        for e in elems:
            if t.mf:  # minifloat codes, built by the op's code path
                if not isinstance(e, Sig) or e.width != t.ew:
                    raise RTLError(f"{self.op.where()}: internal error: minifloat output element is not a code")
                parts.append(e.name)
                continue
            if t.binary:
                if isinstance(e, Sig) and e.width > 1:  # a +-1 integer (maxpool, clip, lut): +1 <-> sign bit 0
                    parts.append(f"~{e.name}[{e.width - 1}]")
                    self.m.unused.append(f"{e.name}[{e.width - 2}:0]")
                else:
                    parts.append(e.name if isinstance(e, Sig) else e)
                continue
            w = t.ew
            if t.type.signed:
                parts.append(self.m.ext(e, w) if e.width != w else e.name)
            else:
                wide = e if e.width == w + 1 else self.m.wire("u", w + 1, e.lo, e.hi, self.m.ext(e, w + 1), src=e)
                self.m.unused.append(f"{wide.name}[{w}]")
                parts.append(f"{wide.name}[{w - 1}:0]")
        return "{" + ", ".join(reversed(parts)) + "}", stage

    # -- ops --
    def gen(self) -> list:
        fn = EMITTERS.get(self.op.kind, self.variant) if self.variant else EMITTERS.get(self.op.kind)
        if fn is None:
            raise RTLError(f"{self.op.where()}: no RTL for this op kind yet")
        return fn(self)

    @EMITTERS.register("dense")
    def g_dense(self) -> list:
        w = self.op.arrays["weight"]
        b = self.op.arrays["bias"]
        ci, co = w.shape
        pos = self.ins[0].n // ci  # a dense applies to the last axis of any rank (as the golden model's matmul)
        if self.params:
            wr, br = self._param_registers()
            rows = [[(self.x(0, p * ci + i), wr[i * co + o]) for i in range(ci)] for p in range(pos) for o in range(co)]
            return self._register_sums(rows, [br[o] for _ in range(pos) for o in range(co)])
        rows = [[(self.x(0, p * ci + i), int(w[i, o])) for i in range(ci) if w[i, o]] for p in range(pos)
                for o in range(co)]
        return self.m.linear_layer(rows, [int(b[o]) for _ in range(pos) for o in range(co)])

    def _param_registers(self) -> tuple[list[Sig], list[Sig]]:
        """Shadow shift chain, active (voted) registers, and one wire per weight/bias word."""
        blk, m = self.params, self.m
        tot = blk.bits
        m.lines.append(f"  reg [{tot - 1}:0] w_shadow;")
        m.lines.append("  always @(posedge clk) if (cfg_en) w_shadow <= " +
                       (f"{{w_shadow[{tot - 2}:0], cfg_sdi}};" if tot > 1 else "cfg_sdi;"))
        m.lines.append(f"  assign cfg_sdo = w_shadow[{tot - 1}];")
        copies = ("a", "b", "c") if self.tmr else ("a",)
        for c in copies:
            m.lines.append(f"  reg [{tot - 1}:0] w_active_{c};")
            m.lines.append(f"  always @(posedge clk) if (cfg_commit) w_active_{c} <= w_shadow;")
        if self.tmr:
            m.lines.append(f"  wire [{tot - 1}:0] w_active = (w_active_a & w_active_b) | (w_active_a & w_active_c)"
                           " | (w_active_b & w_active_c);")
        else:
            m.lines.append(f"  wire [{tot - 1}:0] w_active = w_active_a;")
        words, top = [], tot
        for n, bits in ((blk.n_w, blk.w_bits), (blk.n_b, blk.b_bits)):
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            for _ in range(n):
                s = m.wire("wq", bits, lo, hi, f"w_active[{top - 1}:{top - bits}]")
                words.append(Sig(s.name, s.width, lo, hi, -1, 0))  # static between commits
                top -= bits
        return words[:blk.n_w], words[blk.n_w:]

    def _register_sums(self, rows: list[list[tuple[Sig, Sig]]], biases: list[Sig]) -> list[Sig]:
        """sum(x * w) + b with w, b from registers: one multiplier per term."""
        outs = []
        for row, b in zip(rows, biases):
            prods = []
            for x, w in row:
                corners = [x.lo * w.lo, x.lo * w.hi, x.hi * w.lo, x.hi * w.hi]
                lo, hi = min(corners), max(corners)
                width = x.width + w.width
                prods.append(self.m.wire("pr", width, lo, hi, f"$signed({x.name}) * $signed({w.name})", src=x,
                                         levels=1))
            acc = self.m.tree(prods)
            outs.append(self.m.add(acc, b) if acc is not None else b)
        return outs

    def _conv_taps(self):
        """For each output element: (output channel, [(input flat index, weight, weight flat index)])."""
        op = self.op
        g = op_window(op, self.ins[0].shape)
        w = op.arrays["weight"]
        wk = w.reshape((g.kh, g.kw) + w.shape[-2:])
        ci, co = w.shape[-2], w.shape[-1]
        outs = []
        for y in range(g.oh):
            for xx in range(g.ow):
                taps = list(g.taps(y, xx))
                for o in range(co):
                    outs.append((o, [(pos * ci + c, int(wk[a, bb, c, o]), ((a * g.kw + bb) * ci + c) * co + o)
                                     for a, bb, pos in taps for c in range(ci)]))
        return outs

    @EMITTERS.register("conv1d", "conv2d")
    def g_conv2d(self) -> list:
        b = self.op.arrays["bias"]
        if not self.params:  # refuse an absurd unrolling before listing its taps
            g = op_window(self.op, self.ins[0].shape)
            self.m.check_unroll(g.oh * g.ow * int(csd_weight(self.op.arrays["weight"]).sum()))
        taps = self._conv_taps()
        if self.params:
            wr, br = self._param_registers()
            return self._register_sums([[(self.x(0, i), wr[k]) for i, _, k in t] for _, t in taps],
                                       [br[o] for o, _ in taps])
        rows = [[(self.x(0, i), wv) for i, wv, _ in t if wv] for _, t in taps]
        return self.m.linear_layer(rows, [int(b[o]) for o, _ in taps])


    def _popcount_out(self, o: int, bits: list[str]) -> object:
        n = len(bits)
        th = popcount_threshold(self.op, o, n)
        if isinstance(th, str):
            return th
        cmp, p = th if th else (None, 0)
        # the popcount is built only when the output depends on it (no unused adder trees)
        leaves = [self.m.wire("b", 2, 0, 1, f"{{1'b0, {b}}}") for b in bits]
        pc = self.m.tree(leaves)
        if cmp:
            return self._emit_bit(f"({pc.name} {cmp} {const(p, pc.width)})", pc)
        y = self.m.shl(pc, 1)
        return self.m.add(y, self.m.const_sig(-n))

    @EMITTERS.register("bdense")
    def g_bdense(self) -> list:
        w = self.op.arrays["weight"]
        ci, co = w.shape
        outs = []
        for p in range(self.ins[0].n // ci):  # every position of a rank > 1 input
            for o in range(co):
                bits = [self.bit(0, p * ci + i) if w[i, o] else f"~{self.bit(0, p * ci + i)}" for i in range(ci)]
                outs.append(self._popcount_out(o, bits))
        return outs

    @EMITTERS.register("bconv2d")
    def g_bconv2d(self) -> list:
        outs = []
        for o, taps in self._conv_taps():
            bits = [self.bit(0, i) if wv else f"~{self.bit(0, i)}" for i, wv, _ in taps]
            outs.append(self._popcount_out(o, bits))
        return outs

    def _emit_bit(self, e, src: Sig | None = None):
        """A one-bit output (binary element) at ``src``'s stage."""
        if isinstance(e, str):
            name = self.m.fresh("q")
            self.m.lines.append(f"  wire {name} = {e};")
            return Sig(name, 1, 0, 1, src.stage if src is not None else 0, 0)
        return e

    def _windows(self):
        """Flat input indices of each pooling window, per output element (channels last)."""
        g = op_window(self.op, self.ins[0].shape)
        for y in range(g.oh):
            for xx in range(g.ow):
                taps = [pos for _, _, pos in g.taps(y, xx)]
                for ch in range(g.c):
                    yield [pos * g.c + ch for pos in taps]

    def _max2(self, a: Sig, b: Sig) -> Sig:
        w = max(a.width, b.width)
        ea, eb = self.m.ext(a, w), self.m.ext(b, w)
        return self.m.wire("mx", w, max(a.lo, b.lo), max(a.hi, b.hi),
                           f"($signed({ea}) >= $signed({eb})) ? {ea} : {eb}")

    def _max2_code(self, a: Sig, b: Sig) -> Sig:
        return self.m.wire("mx", a.width, 0, 0, f"{vmf.code_ge(a.name, b.name, a.width)} ? {a.name} : {b.name}")

    @EMITTERS.register("maxpool")
    def g_maxpool(self) -> list:
        if self.out.mf:  # compare the codes as values, pass the winner's code on
            return [vmf.plus_zero(self.m, _tree_reduce([self.code(0, i) for i in idx], self._max2_code))
                    for idx in self._windows()]
        return [_tree_reduce([self.x(0, i) for i in idx], self._max2) for idx in self._windows()]

    @EMITTERS.register("avgpool")
    def g_avgpool(self) -> list:
        return [self.m.tree([self.x(0, i) for i in idx]) for idx in self._windows()]

    @EMITTERS.register("add")
    def g_add(self) -> list:
        return [self.m.tree([self.x(p, i) for p in range(len(self.ins))]) for i in range(self.out.n)]

    @EMITTERS.register("reshape")
    def g_reshape(self) -> list:
        if self.out.mf:
            return [self.code(0, i) for i in range(self.out.n)]
        if self.out.binary:
            return [self.bit(0, i) for i in range(self.out.n)]
        return [self.x(0, i) for i in range(self.out.n)]

    @EMITTERS.register("concat")
    def g_concat(self) -> list:
        outs = []
        positions = self.out.n // self.out.shape[-1]
        for p in range(positions):
            for port, t in enumerate(self.ins):
                c = t.shape[-1]
                for ch in range(c):
                    i = p * c + ch
                    outs.append(self.bit(port, i) if self.out.binary else
                                self.code(port, i) if self.out.mf else self.x(port, i))
        return outs

    def _clamp(self, s: Sig, lo: int, hi: int) -> Sig:
        if s.lo >= lo and s.hi <= hi:
            return s
        w = max(s.width, signed_bits_for(lo, hi))
        e = self.m.ext(s, w)
        expr = e
        if s.hi > hi:
            expr = f"($signed({e}) > {const(hi, w)}) ? {const(hi, w)} : {expr}"
        if s.lo < lo:
            expr = f"($signed({e}) < {const(lo, w)}) ? {const(lo, w)} : ({expr})"
        r = self.m.wire("sat", w, max(min(s.lo, hi), lo), min(max(s.hi, lo), hi), expr, src=s)
        return self.m.fit(r, r.lo, r.hi)

    @EMITTERS.register("clip")
    def g_clip(self) -> list:
        lo, hi = int(self.op.attr("lo")), int(self.op.attr("hi"))
        if self.out.mf:
            return [self._clamp_code(i, lo, hi) for i in range(self.out.n)]
        return [self._clamp(self.x(0, i), lo, hi) for i in range(self.out.n)]

    def _clamp_code(self, i: int, lo: int, hi: int) -> Sig:
        """min(max(x, lo), hi) on minifloat codes; lo/hi (when reachable) must be on the grid."""
        t = self.ins[0]
        c0 = c = self.code(0, i)
        cw = c.width
        for bound, reach, below in ((lo, int(t.lo[i]) < lo, False), (hi, int(t.hi[i]) > hi, True)):
            if not reach:
                continue
            try:
                k = encode_one(bound, self.out.mf)
            except MinifloatCodeError as exc:
                raise RTLError(f"{self.op.where()}: clip bound {bound}: {exc}") from None
            keep = vmf.code_vs_const(c.name, cw, bound, self.out.mf, below=below)  # lo == hi: one of each
            c = self.m.wire("cl", cw, 0, 0, f"{keep} ? {c.name} : {cw}'d{k}")
        return vmf.plus_zero(self.m, c) if c is not c0 else c

    def _round_shift(self, n: Sig, s: int, rounding: str) -> Sig:
        """round(n / 2^s) exactly, for a constant s."""
        m = self.m
        if s <= 0:
            return m.shl(n, -s)
        # make sure bit s (and the sign) exist
        if n.width < s + 2:
            n = m.wire("n", s + 2, n.lo, n.hi, m.ext(n, s + 2), src=n)
        qlo, qhi = n.lo >> s, n.hi >> s
        q = m.wire("q", n.width - s, qlo, qhi, f"{n.name}[{n.width - 1}:{s}]", src=n)
        if rounding == "floor":
            m.unused.append(f"{n.name}[{s - 1}:0]")
            return m.fit(q, qlo, qhi)
        if rounding == "half_up" and s >= 2:
            m.unused.append(f"{n.name}[{s - 2}:0]")  # only the round bit decides
        rbit = f"{n.name}[{s - 1}]"
        sticky = f"(|{n.name}[{s - 2}:0])" if s >= 2 else "1'b0"
        sign = f"{n.name}[{n.width - 1}]"
        inc = {"half_up": rbit,
               "half_even": f"{rbit} & ({sticky} | {n.name}[{s}])",
               "half_away": f"{rbit} & ({sticky} | ~{sign})",
               "toward_zero": f"{sign} & ({rbit} | {sticky})"}[rounding]
        lo, hi = qlo, qhi + 1
        w = signed_bits_for(lo, hi)
        incw = m.fresh("inc")
        m.lines.append(f"  wire {incw} = {inc};")
        return m.wire("r", w, lo, hi, f"{m.ext(q, w)} + {{{w - 1}'b0, {incw}}}", src=q)

    @EMITTERS.register("requant")
    def g_requant(self) -> list:
        op = self.op
        mult = np.broadcast_to(op.arrays["mult"], (self.out.shape[-1],))
        shift = np.broadcast_to(op.arrays["shift"], (self.out.shape[-1],))
        rounding = op.attr("rounding")
        if self.out.mf:
            return self._requant_minifloat(mult, shift, rounding)
        lo = int(op.attr("lo"))
        hi = int(op.attr("hi"))
        wrap = op.attr("overflow") == "wrap"
        c = self.out.shape[-1]
        outs = []
        for i in range(self.out.n):
            ch = i % c
            n = self.m.mul_const(self.x(0, i), int(mult[ch]))
            r = self._round_shift(n, int(shift[ch]), rounding)
            if wrap:
                bits = op.type.bits
                if op.type.signed:
                    wide = r if r.width >= bits else self.m.wire("w", bits, r.lo, r.hi, self.m.ext(r, bits), src=r)
                    if wide.width > bits:
                        self.m.unused.append(f"{wide.name}[{wide.width - 1}:{bits}]")
                    outs.append(self.m.wire("wr", bits, op.type.lo, op.type.hi, f"{wide.name}[{bits - 1}:0]",
                                            src=r))
                else:
                    wide = r if r.width >= bits else self.m.wire("w", bits, r.lo, r.hi, self.m.ext(r, bits), src=r)
                    if wide.width > bits:
                        self.m.unused.append(f"{wide.name}[{wide.width - 1}:{bits}]")
                    outs.append(self.m.wire("wr", bits + 1, 0, op.type.hi, f"{{1'b0, {wide.name}[{bits - 1}:0]}}",
                                            src=r))
            else:
                outs.append(self._clamp(r, lo, hi))
        return outs

    def _requant_minifloat(self, mult: np.ndarray, shift: np.ndarray, rounding: str) -> list:
        """x*mult/2^shift rounded to the output's minifloat grid: |x|*mult (exact,
        shift-and-add), then vmf.round_to_code."""
        c = self.out.shape[-1]
        outs = []
        for i in range(self.out.n):
            ch = i % c
            sign, mag = self.sign_mag(0, i)
            mu = int(mult[ch])
            a = self.m.mul_const(mag, mu)
            a = self.m.fit(a, mag.lo * mu, mag.hi * mu)  # CSD bounds are loose; the product's are exact
            outs.append(vmf.round_to_code(self.m, sign, a, int(shift[ch]), rounding, self.out.mf))
        return outs

    @EMITTERS.register("threshold")
    def g_threshold(self) -> list:
        op = self.op
        t = op.arrays["thresholds"]
        base = np.broadcast_to(op.arrays["base"], (self.out.shape[-1],))
        dirs = np.broadcast_to(op.arrays["direction"], (self.out.shape[-1],))
        step = int(op.attr("step"))
        c = self.out.shape[-1]
        outs = []
        for i in range(self.out.n):
            ch = i % c
            lo, hi = int(self.ins[0].lo[i]), int(self.ins[0].hi[i])
            row = [int(v) for v in t[ch if t.shape[0] > 1 else 0]]
            always = sum(1 for v in row if v <= lo)  # passed by every reachable input
            live = [v for v in row if lo < v <= hi]  # decided by a comparator
            f = int(dirs[ch]) * step
            k = int(base[ch]) + f * always
            levels = {k + f * j for j in range(len(live) + 1)}
            if len(levels) == 1:  # the output cannot change: a constant (and no unused input wire)
                outs.append(("1'b1" if k > 0 else "1'b0") if self.out.binary else self.m.const_sig(k))
                continue
            x = self.x(0, i)

            def ge(v: int) -> str:
                w = max(x.width, signed_bits_for(v, v))
                return f"($signed({self.m.ext(x, w)}) >= {const(v, w)})"

            if self.out.binary:
                # y = k + f*count must be -1 or +1: exactly one live comparator decides
                if len(live) != 1:
                    raise RTLError(f"{op.where()}: binary threshold with {len(live)} live thresholds")
                e = ge(live[0])
                outs.append(self._emit_bit(e if k + f > 0 else f"~{e}", x))
                continue
            cnt = self.m.tree([self.m.wire("c", 2, 0, 1, f"{{1'b0, {ge(v)}}}", src=x) for v in live])
            # direction * step * count: a shift (and negation) for powers of two, else
            # shift-and-add; any integer step and direction, as the golden model computes
            if is_po2(abs(f)):
                term = self.m.shl(cnt, int(log2_exact(abs(f))[0]))
                if f < 0:
                    term = self.m.neg(term)
            else:
                term = self.m.mul_const(cnt, f)
            outs.append(self.m.add(term, self.m.const_sig(k)) if k else term)
        return outs

    @EMITTERS.register("lut")
    def g_lut(self) -> list:
        op = self.op
        table = op.arrays["table"]
        in_lo = int(op.attr("in_lo"))
        outs = []
        for i in range(self.out.n):
            x = self.x(0, i)
            lo, hi = int(table.min()), int(table.max())
            w = signed_bits_for(lo, hi)
            name = self.m.fresh("lut")
            self.m.lines.append(f"  reg signed [{w - 1}:0] {name};")
            self.m.lines.append("  always @(*) begin")
            self.m.lines.append(f"    case ({x.name})")
            for v in range(x.lo, x.hi + 1):
                self.m.lines.append(f"      {const(v, x.width)}: {name} = {const(int(table[v - in_lo]), w)};")
            self.m.lines.append(f"      default: {name} = {const(int(table[x.lo - in_lo]), w)};")
            self.m.lines.append("    endcase")
            self.m.lines.append("  end")
            outs.append(Sig(name, w, lo, hi))
        return outs

    def _argmax_tree(self, values: list[list[Sig]], cmp, choose) -> list:
        """Per position, a tree of pairwise maxima carrying the channel index; first wins ties.

        ``cmp(a, b)`` -> Verilog condition 'a >= b'; ``choose(a, b, sel)`` -> the chosen value as a Sig."""
        c = len(values[0])
        iw = max(1, (c - 1).bit_length())
        outs = []
        for row in values:
            level = [(v, self.m.wire("ix", iw + 1, ch, ch, const(ch, iw + 1))) for ch, v in enumerate(row)]
            while len(level) > 1:
                nxt = []
                for j in range(0, len(level) - 1, 2):
                    (a, ia), (b, ib) = level[j], level[j + 1]
                    sel = self.m.fresh("ge")
                    self.m.lines.append(f"  wire {sel} = {cmp(a, b)};")
                    v = choose(a, b, sel)
                    ix = self.m.wire("ai", iw + 1, min(ia.lo, ib.lo), max(ia.hi, ib.hi),
                                     f"{sel} ? {ia.name} : {ib.name}")
                    nxt.append((v, ix))
                if len(level) % 2:
                    nxt.append(level[-1])
                level = nxt
            self.m.unused.append(level[0][0].name)
            outs.append(level[0][1])
        return outs

    @EMITTERS.register("argmax")
    def g_argmax(self) -> list:
        t = self.ins[0]
        c = t.shape[-1]
        if t.mf and len(set(t.type.scale)) == 1:  # minifloat codes of one scale: compare the codes' values
            rows = [[self.code(0, p * c + ch) for ch in range(c)] for p in range(t.n // c)]
            return self._argmax_tree(rows, lambda a, b: vmf.code_ge(a.name, b.name, a.width),
                                     lambda a, b, sel: self.m.wire("av", a.width, 0, 0, f"{sel} ? {a.name} : {b.name}"))
        scale = np.broadcast_to(np.asarray(t.type.scale), (c,))
        if len(set(scale.tolist())) == 1:  # one scale (any value): compare the integers as they are
            shifts = np.zeros(c, dtype=int)
        elif not is_po2(scale):
            raise RTLError(f"{self.op.where()}: argmax over non-power-of-two per-channel scales has no RTL")
        else:
            shifts = log2_exact(scale) - int(log2_exact(scale).min())

        def ext(a: Sig, b: Sig) -> tuple[str, str, int]:
            w = max(a.width, b.width)
            return self.m.ext(a, w), self.m.ext(b, w), w

        def cmp_int(a: Sig, b: Sig) -> str:
            ea, eb, _ = ext(a, b)
            return f"$signed({ea}) >= $signed({eb})"

        def choose_int(a: Sig, b: Sig, sel: str) -> Sig:
            ea, eb, w = ext(a, b)
            return self.m.wire("av", w, min(a.lo, b.lo), max(a.hi, b.hi), f"{sel} ? {ea} : {eb}")

        rows = [[self.m.shl(self.x(0, p * c + ch), int(shifts[ch])) for ch in range(c)] for p in range(t.n // c)]
        return self._argmax_tree(rows, cmp_int, choose_int)


def _tree_reduce(items: list, combine):
    """Pairwise reduction ((a, b), (c, d), ...) level by level; an odd last item moves up unchanged."""
    level = list(items)
    while len(level) > 1:
        nxt = [combine(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def _tensor_infos(net: Network, bounds: dict[str, Bounds]) -> dict[str, TensorInfo]:
    out = {}
    shapes = net.tensor_shapes()
    for name, t in net.tensor_types().items():
        if isinstance(t, MinifloatType) and t.man_bits == 0:
            raise RTLError(f"tensor '{name}': {t.describe()}: minifloats without mantissa bits have no RTL")
        b = bounds[name]
        out[name] = TensorInfo(name, shapes[name], t, b.lo.ravel(), b.hi.ravel())
    return out


def _check_minifloat(op: Op, ins: list[TensorInfo], out: TensorInfo) -> None:
    """Raise unless the generator can produce ``op``'s minifloat output exactly:
    requant rounds to the grid; maxpool, clip, reshape and concat pass codes of
    inputs in the same format (exponent, mantissa, bias)."""
    if not out.mf:
        return
    if not spec_of(op.kind).minifloat_out:
        raise RTLError(f"{op.where()}: a {op.kind} result is not on a minifloat grid, so its type "
                       f"{out.type.describe()} has no RTL; requantize to the minifloat type instead")
    if op.kind == "requant":
        return
    fmt = (out.mf.exp_bits, out.mf.man_bits, out.mf.bias)
    for t in ins:
        if not t.mf or (t.mf.exp_bits, t.mf.man_bits, t.mf.bias) != fmt:
            raise RTLError(f"{op.where()}: input '{t.name}' ({t.type.describe()}) and output "
                           f"({out.type.describe()}) differ in minifloat format; {op.kind} passes codes "
                           f"unchanged, so they must share exponent bits, mantissa bits and bias")


def _port_decl(direction: str, name: str, width: int, kind: str = "wire") -> str:
    return f"  {direction} {kind} [{width - 1}:0] {name}" if width > 1 else f"  {direction} {kind} {name}"


def _op_module(top: str, op: Op, ins: list[TensorInfo], out: TensorInfo, registered: bool,
               max_level: int = 0, params: ParamBlock | None = None, tmr: bool = False,
               ident: str | None = None, variant: str | None = None, options: dict | None = None,
               adders: str = "binary") -> tuple[str, str, int]:
    """(module name, text, latency in cycles); ``adders`` 'ternary': constant-matrix layers fuse adder
    pairs into Xilinx ternary adders (hls.rtl.text.ModuleText.add3)."""
    name = f"{top}_{ident or vname(op.name)}"
    _check_minifloat(op, ins, out)
    m = ModuleText(name, max_level=max_level, ternary=adders == "ternary")
    gen = OpModule(m, op, ins, out, params, tmr, variant, options)
    elems = gen.gen()
    packed, inner = gen.pack(elems)
    body = (["  genvar gi;"] if m.genvar else []) + list(m.lines)
    # input buses always carry a range: element selects (in0[0]) must be legal on a 1-bit bus too
    ports = ["  input wire clk"] + [f"  input wire [{t.width - 1}:0] in{i}" for i, t in enumerate(ins)]
    if variant == "folded":  # hls.rtl.folded: the clock in which in0 holds a valid vector
        ports.append("  input wire start")
    if params:
        ports += ["  input wire cfg_en", "  input wire cfg_sdi", "  input wire cfg_commit", "  output wire cfg_sdo"]
    ports.append(_port_decl("output", "out", out.width))
    lines = [f"// {op.where()}: {op.type.describe()} {tuple(op.shape)}", f"// generated by {GENERATOR}",
             "`default_nettype none", f"module {name} (", ",\n".join(ports), ");"]
    if m.graphs:  # constant-matrix arithmetic: its LUT estimate (hls.engine.cost), read by `qrtl rtl`
        lines.insert(2, m.cost_comment())
    if m.multipliers:  # fold="dsp": the multipliers meant for DSP48 slices, read by `qrtl rtl`/`synth`
        lines.insert(2, f"{MULT_TAG} {m.multipliers}")
    lines += body
    ow = out.width
    decl = f"[{ow - 1}:0] " if ow > 1 else ""
    lines.append(f"  wire {decl}out_c = {packed};")
    if registered:
        lines.append(f"  reg {decl}out_r;")
        lines.append("  always @(posedge clk) out_r <= out_c;")
        lines.append("  assign out = out_r;")
    else:
        lines.append("  assign out = out_c;")
    sinks = list(m.unused) + [f"in{i}" for i in range(len(ins))] + \
        ([] if registered or inner or params else ["clk"])
    lines.append(f"  wire unused_ok = ^{{1'b0, {', '.join(sinks)}}};")
    lines += ["endmodule", "`default_nettype wire", ""]
    return name, "\n".join(lines), inner + (1 if registered else 0)


def _signed_bus(t: TensorInfo) -> bool:
    """Whether bus elements are two's complement (minifloat codes and binary bits are not)."""
    return bool(getattr(t.type, "signed", False)) and not t.binary and not t.mf


def _layout(t: TensorInfo) -> str:
    if t.binary:
        return "binary (1 = +1, 0 = -1)"
    if t.mf:
        return (f"minifloat codes [sign | {t.mf.exp_bits}-bit exponent | {t.mf.man_bits}-bit mantissa] "
                f"of {t.type.describe()}, zero = code 0")
    return ("signed" if t.type.signed else "unsigned") + f" integers, real = raw * {t.type.describe()}"


def pack_bus(raw: np.ndarray, bits: int, binary: bool) -> list[int]:
    """Pack raw integer vectors (N, ...) into bus integers (element i at bits i*W)."""
    flat = np.asarray(raw).reshape(len(raw), -1)
    if binary:
        flat = (flat > 0).astype(np.int64)
        bits = 1
    mask = (1 << bits) - 1
    out = []
    for row in flat:
        v = 0
        for i, e in enumerate(row):
            v |= (int(e) & mask) << (i * bits)
        out.append(v)
    return out


def unpack_bus(values: list[int], n: int, bits: int, signed: bool, binary: bool) -> np.ndarray:
    """Inverse of pack_bus: bus integers -> raw integers (len(values), n)."""
    out = np.zeros((len(values), n), dtype=np.int64)
    w = 1 if binary else bits
    mask = (1 << w) - 1
    for r, v in enumerate(values):
        for i in range(n):
            e = (int(v) >> (i * w)) & mask
            if binary:
                e = 1 if e else -1
            elif signed and e >> (w - 1):
                e -= 1 << w
            out[r, i] = e
    return out
