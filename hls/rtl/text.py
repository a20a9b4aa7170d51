"""Building blocks for generated Verilog: signals with proven value ranges,
constant multiplication as canonical-signed-digit shift-and-add, and
balanced adder trees whose every node is exactly as wide as its range.

All internal signals are signed two's complement; an unsigned tensor element
is zero-extended by one bit when it enters arithmetic.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from hls.engine.cmvm import build, csd, csd_weight
from hls.rtl.emitters import RTLError
from qat.ir.types import signed_bits_for

GENERATOR = "qrtl hls.verilog 1"  # named in every generated file
LINEAR_SLACK = 2  # extra adder levels linear_layer may try when the module is not pipelined by depth
MAX_UNROLL_ADDERS = 200_000  # beyond this a constant layer is not unrolled (about 20 LUTs per adder)


@dataclass(frozen=True)
class Sig:
    """A signed Verilog wire ``name`` of ``width`` bits holding [lo, hi].

    ``stage``: registers passed since the module's inputs (-1 for constants,
    valid at any stage); ``level``: adder levels since the last register.
    """

    name: str
    width: int
    lo: int
    hi: int
    stage: int = 0
    level: int = 0


def msb(s: Sig) -> str:
    """The sign (top) bit of ``s`` as a Verilog expression."""
    return s.name if s.width == 1 else f"{s.name}[{s.width - 1}]"


def const(value: int, width: int) -> str:
    value = int(value)
    return f"{width}'sd{value}" if value >= 0 else f"-{width}'sd{-value}"


@dataclass
class ModuleText:
    """Accumulates the body of one Verilog module."""

    name: str
    lines: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)
    max_level: int = 0  # register after this many adder levels (0: no registers inside)
    ternary: bool = False  # linear layers fuse adder pairs into Xilinx ternary adders (add3)
    genvar: bool = False  # the body uses the generate variable ``gi`` (declared by the module writer)
    fused: list = field(default_factory=list)  # (lo, hi, low free bits) of adders fused into ternary ones
    _n: int = 0
    _products: dict = field(default_factory=dict)
    _delays: dict = field(default_factory=dict)
    graphs: list = field(default_factory=list)  # hls.engine.cmvm.Graph of every linear_layer
    multipliers: int = 0  # general multipliers (fold="dsp" slots), each meant for one DSP48

    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def wire(self, base: str, width: int, lo: int, hi: int, expr: str, src: Sig | None = None,
             levels: int = 0) -> Sig:
        """A combinational node; it sits at ``src``'s stage, ``levels`` adder levels deeper."""
        name = self.fresh(base)
        self.lines.append(f"  wire signed [{width - 1}:0] {name} = {expr};")
        stage = src.stage if src is not None else 0
        level = (src.level if src is not None else 0) + levels
        return Sig(name, width, lo, hi, stage, level)

    def delay(self, s: Sig, cycles: int) -> Sig:
        """``s`` delayed by ``cycles`` registers (shared chains)."""
        for _ in range(cycles):
            key = s.name
            if key not in self._delays:
                name = self.fresh("p")
                self.lines.append(f"  reg signed [{s.width - 1}:0] {name};")
                self.lines.append(f"  always @(posedge clk) {name} <= {s.name};")
                self._delays[key] = Sig(name, s.width, s.lo, s.hi, s.stage + 1, 0)
            s = self._delays[key]
        return s

    def at_stage(self, s: Sig, stage: int) -> Sig:
        if s.stage < 0 or s.stage >= stage:
            return s
        return self.delay(s, stage - s.stage)

    def _maybe_register(self, s: Sig) -> Sig:
        if self.max_level and s.level >= self.max_level:
            return self.delay(s, 1)
        return s

    def maybe_register(self, s: Sig) -> Sig:
        """``s``, registered when it is ``max_level`` logic levels past the last register (depth:N)."""
        return self._maybe_register(s)

    def ext(self, s: Sig, width: int) -> str:
        """``s`` sign-extended (or exactly kept) to ``width`` bits."""
        if width == s.width:
            return s.name
        if width < s.width:
            # only legal when the range fits: keep the low bits, mark the rest unused
            self.unused.append(f"{s.name}[{s.width - 1}:{width}]")
            return f"{s.name}[{width - 1}:0]"
        if s.width == 1:
            return f"{{{width}{{{s.name}}}}}"
        return f"{{{{{width - s.width}{{{msb(s)}}}}}, {s.name}}}"

    def fit(self, s: Sig, lo: int, hi: int, base: str = "n") -> Sig:
        """Re-declare ``s`` with the width its (narrower or wider) range needs."""
        w = signed_bits_for(lo, hi)
        if w == s.width:
            return Sig(s.name, s.width, lo, hi, s.stage, s.level)
        return self.wire(base, w, lo, hi, self.ext(s, w), src=s)

    def shl(self, s: Sig, k: int) -> Sig:
        if k == 0:
            return s
        key = (s.name, -k)
        if key not in self._products:
            self._products[key] = self.wire("sh", s.width + k, s.lo << k, s.hi << k, f"{{{s.name}, {k}'b0}}",
                                            src=s)
        return self._products[key]

    def neg(self, s: Sig) -> Sig:
        lo, hi = -s.hi, -s.lo
        w = signed_bits_for(lo, hi)
        return self._maybe_register(self.wire("ng", w, lo, hi, f"-{self.ext(s, w)}", src=s, levels=1))

    def add(self, a: Sig, b: Sig, sub: bool = False, lo: int | None = None, hi: int | None = None) -> Sig:
        """a + b (a - b with ``sub``), exactly as wide as its range: the interval of the operands, or
        ``lo``/``hi`` when the caller knows the exact range (two's-complement arithmetic modulo 2^w
        is exact when the result fits)."""
        if lo is None:
            lo = a.lo - b.hi if sub else a.lo + b.lo
            hi = a.hi - b.lo if sub else a.hi + b.hi
        w = signed_bits_for(lo, hi)
        stage = max(a.stage, b.stage, 0)
        a, b = self.at_stage(a, stage), self.at_stage(b, stage)
        src = max((a, b), key=lambda x: (x.stage, x.level))
        r = self.wire("ad", w, lo, hi, f"{self.ext(a, w)} {'-' if sub else '+'} {self.ext(b, w)}", src=src, levels=1)
        return self._maybe_register(r)

    def add3(self, terms: list[tuple[Sig, int, int]], lo: int, hi: int) -> Sig | None:
        """``sum(g * (s << k))`` of three terms ``(s, k, g)`` (g = +-1) in [lo, hi] as one Xilinx
        ternary adder, or None where it does not apply (three negative terms, a chain under 2 bits).

        Per result bit one LUT6_2: O6 is the XOR of the bit's three operand bits and the carry-save
        bit below, O5 their majority (the next bit's carry-save bit), on the CARRY4 chain with DI = the
        carry-save bit: one LUT per bit where two binary adders need two.  A negative term enters
        inverted (in the LUT's INIT) with its +1 as the chain's carry-in (a second one as bit 0's
        carry-save bit).  Bits below the second-lowest shift hold one operand only: when that operand
        is positive they are its bits (wires), else the chain starts at the lowest shift."""
        w = signed_bits_for(lo, hi)
        stage = max(max(t[0].stage for t in terms), 0)
        terms = sorted(((self.at_stage(s, stage), k, g) for s, k, g in terms), key=lambda t: t[1])
        s0, k0, g0 = terms[0]
        kc = terms[1][1] if g0 > 0 else k0  # the chain's lowest bit
        n = w - kc
        negs = [g < 0 for _, _, g in terms]
        if n < 2 or sum(negs) > 2:
            return None
        src = max((t[0] for t in terms), key=lambda x: (x.stage, x.level))
        t = self.fresh("t3")
        vecs = []
        for s, k, _ in terms:
            if k >= kc:
                sh = k - kc
                if sh >= n:
                    vecs.append(f"{n}'b0")
                    self.unused.append(s.name)
                else:
                    body = self.ext(s, n - sh)
                    vecs.append(f"{{{body}, {sh}'b0}}" if sh else body)
            elif kc - k >= s.width:  # the lowest, positive term: only its sign reaches the chain
                vecs.append(f"{{{n}{{{msb(s)}}}}}")
            else:  # its bits from kc up enter the chain
                d = kc - k
                hp = self.wire("hp", s.width - d, s.lo >> d, s.hi >> d, f"{s.name}[{s.width - 1}:{d}]", src=s)
                vecs.append(self.ext(hp, n))
        init = 0
        for idx in range(64):
            a, b, c, cs, _, i5 = ((idx >> j) & 1 for j in range(6))
            a, b, c = a ^ negs[0], b ^ negs[1], c ^ negs[2]
            init |= ((a ^ b ^ c ^ cs) if i5 else ((a & b) | (a & c) | (b & c))) << idx
        m4 = (n + 3) // 4
        pad = 4 * m4 - n
        L = self.lines
        for v, x in zip("abc", vecs):
            L.append(f"  wire [{n - 1}:0] {t}_{v} = {x};")
        L += [f"  wire [{n}:0] {t}_cs;", f"  wire [{4 * m4 - 1}:0] {t}_p, {t}_o, {t}_co;", f"  wire [{m4}:0] {t}_ci;",
              f"  assign {t}_cs[0] = 1'b{int(sum(negs) == 2)};", f"  assign {t}_ci[0] = 1'b{int(sum(negs) >= 1)};"]
        if pad:
            L.append(f"  assign {t}_p[{4 * m4 - 1}:{n}] = {pad}'b0;")
        L += [f"  for (gi = 0; gi < {n}; gi = gi + 1) begin : {t}_l",
              f"    LUT6_2 #(.INIT(64'h{init:016X})) u_lut (.I0({t}_a[gi]), .I1({t}_b[gi]), .I2({t}_c[gi]), "
              f".I3({t}_cs[gi]), .I4(1'b0), .I5(1'b1), .O6({t}_p[gi]), .O5({t}_cs[gi + 1]));",
              "  end",
              f"  wire [{4 * m4 - 1}:0] {t}_d = {f'{{{pad}{chr(39)}b0, {t}_cs[{n - 1}:0]}}' if pad else f'{t}_cs[{n - 1}:0]'};",
              f"  for (gi = 0; gi < {m4}; gi = gi + 1) begin : {t}_c4",
              f"    CARRY4 u_carry (.CI({t}_ci[gi]), .CYINIT(1'b0), .DI({t}_d[4 * gi + 3:4 * gi]), "
              f".S({t}_p[4 * gi + 3:4 * gi]), .O({t}_o[4 * gi + 3:4 * gi]), .CO({t}_co[4 * gi + 3:4 * gi]));",
              f"    assign {t}_ci[gi + 1] = {t}_co[4 * gi + 3];",
              "  end"]
        self.unused += [f"{t}_cs[{n}]", f"{t}_co", f"{t}_ci[{m4}]"] + ([f"{t}_o[{4 * m4 - 1}:{n}]"] if pad else [])
        self.genvar = True
        parts = [f"{t}_o[{n - 1}:0]"]
        if kc > k0:  # the lowest term's own bits below the chain
            d = kc - k0
            parts.append(self.ext(s0, d) if d >= s0.width else f"{s0.name}[{d - 1}:0]")  # (its top bits: the chain)
        if k0:
            parts.append(f"{k0}'b0")
        expr = parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"
        return self._maybe_register(self.wire("ad", w, lo, hi, expr, src=src, levels=2))

    def const_sig(self, value: int) -> Sig:
        w = signed_bits_for(value, value)
        k = self.wire("k", w, value, value, const(value, w))
        return Sig(k.name, k.width, k.lo, k.hi, -1, 0)

    def tree(self, terms: list[Sig]) -> Sig | None:
        """Balanced adder tree (depth ceil(log2 n))."""
        level = list(terms)
        if not level:
            return None
        while len(level) > 1:
            nxt = [self.add(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
            if len(level) % 2:
                nxt.append(level[-1])
            level = nxt
        return level[0]

    def multiple(self, x: Sig, m: int) -> Sig:
        """x * m for an odd m > 0, built once per (x, m) from CSD digits."""
        key = (x.name, m)
        if key not in self._products:
            if m == 1:
                self._products[key] = x
            else:
                pos = [self.shl(x, k) for k, d in csd(m) if d > 0]
                negs = [self.shl(x, k) for k, d in csd(m) if d < 0]
                p = self.tree(pos)
                n = self.tree(negs)
                self._products[key] = p if n is None else self.add(p, n, sub=True)
        return self._products[key]

    def linear(self, terms: list[tuple[Sig, int]], bias: int) -> Sig:
        """sum(x * w) + bias for constant w; zero weights vanish.

        Each |w| = m * 2^k with m odd: x*m is built once per input from CSD
        digits and shared by every output that uses it; positive and
        negative terms go to separate balanced trees subtracted once.
        """
        pos: list[Sig] = []
        negs: list[Sig] = []
        for x, w in terms:
            if w == 0:
                continue
            mag = abs(int(w))
            k = (mag & -mag).bit_length() - 1
            term = self.shl(self.multiple(x, mag >> k), k)
            (pos if w > 0 else negs).append(term)
        p = self.tree(pos)
        n = self.tree(negs)
        if p is None and n is None:
            return self.const_sig(bias)
        if p is None:
            acc = self.neg(n)
        elif n is None:
            acc = p
        else:
            acc = self.add(p, n, sub=True)
        if bias:
            acc = self.add(acc, self.const_sig(bias))
        return acc

    def cost_comment(self) -> str | None:
        """The adder/LUT estimate line of this module's constant-matrix graphs (None without)."""
        from hls.engine.cost import adder_luts, comment

        return comment(self.graphs, len(self.fused), sum(adder_luts(*f) for f in self.fused)) \
            if self.graphs else None

    def check_unroll(self, adders: int) -> None:
        """Refuse (RTLError, one line) a constant layer of about ``adders`` adders (CSD digits)
        too large to unroll, pointing to the streaming and folding options."""
        if adders > MAX_UNROLL_ADDERS:
            raise RTLError(f"{self.name}: unrolling this layer needs about {adders:,} adders "
                           f"(~{adders * 20:,} LUTs, over the {MAX_UNROLL_ADDERS:,}-adder limit); "
                           "build it streamed (--io stream) or folded (--reuse N) instead")

    def linear_layer(self, rows: list[list[tuple[Sig, int]]], biases: list[int]) -> list[Sig]:
        """Many outputs sum(x * w) + b as one constant-matrix adder graph (hls.engine.cmvm).

        The engine decomposes the matrix (spanning tree over the outputs, shared CSD
        subexpressions, shallowest-first trees) within the minimum adder depth when the module
        is pipelined by depth (``max_level``), so latency never grows; every node here is
        exactly as wide as its proven range."""
        self.check_unroll(sum(int(csd_weight(np.array([int(w) for _, w in row], dtype=np.int64)).sum())
                              for row in rows if row))
        ins: list[Sig] = []
        col: dict[str, int] = {}
        for row in rows:
            for x, _ in row:
                if x.name not in col:
                    col[x.name] = len(ins)
                    ins.append(x)
        W = np.zeros((len(rows), len(ins)), dtype=np.int64)
        for r, row in enumerate(rows):
            for x, w in row:
                W[r, col[x.name]] += int(w)
        g = build(W, np.asarray(biases, dtype=np.int64), np.array([x.lo for x in ins], dtype=np.int64),
                  np.array([x.hi for x in ins], dtype=np.int64), slack=0 if self.max_level else LINEAR_SLACK)
        self.graphs.append(g)
        sigs: list[Sig | None] = list(ins)
        fuse = ternary_plan(g) if self.ternary and not self.max_level else {}
        absorbed = set(fuse.values())

        def binary(j: int) -> Sig:
            nd = g.nodes[j]
            for x in (nd.a, nd.b):
                if sigs[x] is None:  # an absorbed child whose parent could not use add3
                    sigs[x] = binary(x - g.n_inputs)
            a = self.shl(sigs[nd.a], nd.sa)
            return self.add(a, self.shl(sigs[nd.b], nd.sb), sub=nd.sub, lo=nd.lo, hi=nd.hi)

        for j, nd in enumerate(g.nodes):
            sig = None
            if j in fuse:
                c = fuse[j]
                ch = g.nodes[c]
                if nd.b == g.n_inputs + c:  # parent = a +- (child << sb)
                    gc, kc, other = (-1 if nd.sub else 1), nd.sb, (nd.a, nd.sa, 1)
                else:  # parent = (child << sa) +- b
                    gc, kc, other = 1, nd.sa, (nd.b, nd.sb, -1 if nd.sub else 1)
                terms = [(sigs[ch.a], kc + ch.sa, gc), (sigs[ch.b], kc + ch.sb, -gc if ch.sub else gc),
                         (sigs[other[0]], other[1], other[2])]
                sig = self.add3(terms, nd.lo, nd.hi)
                if sig is not None:
                    self.fused.append((ch.lo, ch.hi, max(0, ch.sb - ch.sa)))
            if sig is None and j not in absorbed:
                sig = binary(j)
            sigs.append(sig)
        outs = []
        for o in g.outputs:
            if o.sig < 0:
                outs.append(self.const_sig(o.bias))
                continue
            acc = self.shl(sigs[o.sig], o.shift)
            if o.neg and o.bias:
                acc = self.add(self.const_sig(o.bias), acc, sub=True, lo=o.lo, hi=o.hi)
            elif o.neg:
                acc = self.neg(acc)
            elif o.bias:
                acc = self.add(acc, self.const_sig(o.bias), lo=o.lo, hi=o.hi)
            outs.append(acc)
        return outs

    def mul_const(self, x: Sig, m: int) -> Sig:
        return x if m == 1 else self.linear([(x, m)], 0)


def ternary_plan(g) -> dict[int, int]:
    """Adder pairs of an engine graph (``hls.engine.cmvm.Graph``) to fuse into ternary adders:
    {parent node: child node}.  A child must feed only its parent (no other node, no output); a node is
    in at most one pair (a fused child cannot itself absorb one: four operands).  The pairs form a
    matching on the forest of such parent-child edges; it is chosen to remove the most adder LUTs
    (exact, by dynamic programming over the forest, children before parents)."""
    from hls.engine.cost import adder_luts

    n_in = g.n_inputs
    fanout = [0] * len(g.nodes)
    for nd in g.nodes:
        for x in (nd.a, nd.b):
            if x >= n_in:
                fanout[x - n_in] += 1
    for o in g.outputs:
        if o.sig >= n_in:
            fanout[o.sig - n_in] += 2
    kids: list[list[int]] = []
    for nd in g.nodes:
        ks = sorted({x - n_in for x in (nd.a, nd.b) if x >= n_in and fanout[x - n_in] == 1})
        kids.append(ks)
    gain = [adder_luts(nd.lo, nd.hi, max(0, nd.sb - nd.sa)) for nd in g.nodes]
    free = [0.0] * len(g.nodes)  # best of the subtree with the node not absorbing a child
    used = [0.0] * len(g.nodes)  # best with the node absorbing its best child
    pick = [-1] * len(g.nodes)
    for v, ks in enumerate(kids):
        best = [max(free[c], used[c]) for c in ks]
        free[v] = sum(best)
        used[v] = float("-inf")
        for i, c in enumerate(ks):
            val = gain[c] + free[c] + free[v] - best[i]
            if val > used[v]:
                used[v], pick[v] = val, c
    plan: dict[int, int] = {}

    def take(v: int, absorb_allowed: bool) -> None:
        stack = [(v, absorb_allowed)]
        while stack:
            u, ok = stack.pop()
            if ok and pick[u] >= 0 and used[u] > free[u]:
                plan[u] = pick[u]
                stack.append((pick[u], False))
                stack += [(c, True) for c in kids[u] if c != pick[u]]
            else:
                stack += [(c, True) for c in kids[u]]

    for v in range(len(g.nodes)):
        if fanout[v] != 1:  # a root of the forest (read by several nodes or an output)
            take(v, True)
    return plan
