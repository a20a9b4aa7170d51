"""MST-reordered binary layers (MST-compression, ICCV 2023): the ``mst`` Verilog variant of
``bdense`` and ``bconv2d``.  The golden model is unchanged: the variant computes the same
integers as the plain XNOR-popcount layer on another structure.

Output channels are the vertices of a complete graph whose edge weight is the Hamming distance
of two channels' weight vectors, or of one and the *negation* of the other when that is fewer
(:func:`hls.engine.spanning_tree.hamming`).  A depth-bounded spanning tree
(:func:`hls.engine.spanning_tree.spanning_tree`) picks, per channel, a parent; roots are
computed in full (P = popcount(XNOR(x, w)) over all N positions), every other channel c from
its parent p over its *edit set* E only, with a_i = XNOR(x_i, w_p,i) and e = |E|:

* plain edge, E = {i : w_c,i != w_p,i}:   P_c = P_p + e - 2*sum_E a_i
* negated edge, E = {i : w_c,i == w_p,i}: P_c = N - P_p - e + 2*sum_E a_i
  (outside E, XNOR(x, w_c) = NOT a_i; inside E it equals a_i:
  P_c = (N - e) - (P_p - sum_E a_i) + sum_E a_i).

No negation or constant adder is ever built: each channel's popcount is held as a register-free
value R_c with P_c = s_c * (R_c - k_c) for a sign s_c = +-1 and an integer offset k_c known at
generation time, and an edge is one add or subtract of 2*popcount(B) where B is either the bits
a_i or their complements (sum_E NOT a_i = e - sum_E a_i) -- whichever keeps R_c narrower:

* B = a:     R_c = R_p - 2*s_p*sum_E a_i,      k_c = k_p - s_p*e (plain) or k_p + s_p*(N - e) (negated)
* B = NOT a: R_c = R_p + 2*s_p*sum_E (NOT a_i), k_c = k_p + s_p*e (plain) or k_p + s_p*(N + e) (negated)

and s_c = s_p on plain edges, -s_p on negated ones (roots: R = P, s = 1, k = 0).  Thresholds
compare R_c with the shifted constant (direction mirrored when s_c = -1); raw outputs are
y = 2*P_c - N = 2*s_c*R_c - (2*s_c*k_c + N), one add as in the plain form.

Latency: R_c = R_a + sum of the corrections on the path a -> c for the deepest ancestor a whose
sum (smallest-time operands first) ends within ceil(log2 D) + 1 adder levels of the roots'
popcount (D: the tree's depth); the root always qualifies, so an op has at most that many extra
adder levels -- extra cycles in ``--pipeline depth:N``, none in the per-layer modes.
"""
from __future__ import annotations

import heapq
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hls.engine.spanning_tree import Tree, hamming, spanning_tree
from hls.rtl.text import Sig, const
from hls.rtl.emitters import EMITTERS, RTLError
from qat.ir.geometry import op_window
from qat.ir.types import signed_bits_for

if TYPE_CHECKING:  # annotations only: hls.rtl.op_module imports this module
    from hls.rtl.op_module import OpModule

BINARY_KINDS = ("bdense", "bconv2d")
ORDERS = ("plain", "mst", "auto")


# ---- the arithmetic (pure Python; the emitter builds exactly this) -------------------------

@dataclass(frozen=True)
class Edge:
    """How channel ``c`` comes from its parent ``p``: R_c = R_p + sign * 2 * popcount(bits),
    bits = XNOR(x, w_p) (``complement`` False) or its complement, over positions ``pos``."""

    c: int
    p: int
    pos: np.ndarray
    negated: bool
    complement: bool
    sign: int
    s: int  # s_c
    k: int  # k_c


@dataclass(frozen=True)
class Plan:
    """A layer's MST schedule over its active (non-constant) channels."""

    n: int                   # fan-in N
    channels: tuple[int, ...]  # active channels (tree vertex i <-> channel channels[i])
    tree: Tree
    edges: dict[int, Edge]   # channel -> its edge (roots absent)
    s: dict[int, int]
    k: dict[int, int]

    def path(self, c: int) -> list[int]:
        """Channels from c's root down to c."""
        out = [c]
        while out[-1] in self.edges:
            out.append(self.edges[out[-1]].p)
        return out[::-1]

    @property
    def max_depth(self) -> int:
        """Edges on the longest root-to-channel path (0: every channel computed in full)."""
        return max(self.tree.max_depth - 1, 0)


def make_plan(wbits: np.ndarray, channels: list[int], max_depth: int | None) -> Plan:
    """The spanning tree over ``channels`` (columns of the (N, C) bit matrix) and each edge's form."""
    w = np.asarray(wbits, dtype=np.int64)
    n = w.shape[0]
    sub = w[:, channels]
    dist, flip = hamming(sub)
    # spanning_tree counts the virtual root's children (computed in full) as level 1: a bound of D
    # edges below a computed root is D + 1 levels there
    tree = spanning_tree(dist, np.full(len(channels), n, dtype=np.int64),
                         None if max_depth is None else max_depth + 1, flip)
    s: dict[int, int] = {}
    k: dict[int, int] = {}
    edges: dict[int, Edge] = {}
    for v in tree.order:
        c = channels[v]
        if tree.parent[v] < 0:
            s[c], k[c] = 1, 0
            continue
        p = channels[int(tree.parent[v])]
        neg = bool(tree.flip[v])
        pos = np.flatnonzero((w[:, c] == w[:, p]) if neg else (w[:, c] != w[:, p]))
        e = len(pos)
        sp, kp = s[p], k[p]
        sc = -sp if neg else sp
        opts = []
        for comp in (False, True):
            if neg:
                kc = kp + sp * (n + e) if comp else kp + sp * (n - e)
            else:
                kc = kp + sp * e if comp else kp - sp * e
            lo, hi = (kc, kc + n) if sc > 0 else (kc - n, kc)
            opts.append((signed_bits_for(lo, hi), abs(kc), comp, kc))
        _, _, comp, kc = min(opts)
        edges[c] = Edge(c, p, pos, neg, comp, sp if comp else -sp, sc, kc)
        s[c], k[c] = sc, kc
    return Plan(n, tuple(channels), tree, edges, s, k)


def r_range(plan: Plan, c: int) -> tuple[int, int]:
    kc, n = plan.k[c], plan.n
    return (kc, kc + n) if plan.s[c] > 0 else (kc - n, kc)


def evaluate(plan: Plan, wbits: np.ndarray, xbits: np.ndarray) -> dict[int, np.ndarray]:
    """P_c for every active channel computed the way the RTL does (for tests): (batch,) each."""
    w = np.asarray(wbits, dtype=np.int64)
    x = np.asarray(xbits, dtype=np.int64)
    r: dict[int, np.ndarray] = {}
    for v in plan.tree.order:
        c = plan.channels[v]
        if c not in plan.edges:
            r[c] = (x == w[:, c]).sum(axis=1)
            continue
        ed = plan.edges[c]
        a = (x[:, ed.pos] == w[ed.pos, ed.p]).astype(np.int64)
        b = 1 - a if ed.complement else a
        r[c] = r[ed.p] + ed.sign * 2 * b.sum(axis=1)
    return {c: plan.s[c] * (r[c] - plan.k[c]) for c in r}


# ---- the emitter ----------------------------------------------------------------------------

def popcount_threshold(op, o: int, n: int):
    """Output channel ``o`` of a binary layer with fused thresholds, over ``n`` XNOR bits with popcount P:
    (cmp, p) for P >= p / P <= p, a constant '1'b1'/'1'b0', or None (no thresholds: raw 2P - n).
    One rule for the plain and the MST emitters."""
    if "threshold" not in op.arrays:
        return None
    t = int(op.arrays["threshold"][o])
    d = int(op.arrays["direction"][o])
    if d > 0:  # 2pc - n >= t  <=>  pc >= ceil((t+n)/2)
        p = -((-(t + n)) // 2)
        if p <= 0:
            return "1'b1"
        if p > n:
            return "1'b0"
        return (">=", p)
    p = (t + n) // 2  # 2pc - n <= t  <=>  pc <= floor((t+n)/2)
    if p >= n:
        return "1'b1"
    if p < 0:
        return "1'b0"
    return ("<=", p)


def active_channels(op) -> list[int]:
    wm = op.arrays["weight"]
    n = int(np.prod(wm.shape[:-1]))
    return [o for o in range(wm.shape[-1]) if not isinstance(popcount_threshold(op, o, n), str)]


class _Builder:
    def __init__(self, gen: OpModule, plan: Plan, wmat: np.ndarray):
        self.g, self.m, self.plan, self.w = gen, gen.m, plan, wmat
        self.ml = gen.m.max_level

    def t(self, s: Sig) -> int:
        return max(s.stage, 0) * self.ml + s.level if self.ml else s.level

    def popcount(self, xb: list[str], col: np.ndarray, pos, complement: bool = False) -> Sig:
        """popcount of XNOR(x, w) (or its complement) over ``pos``; a leaf per position."""
        bits = []
        for i in pos:
            same = bool(col[i]) != complement
            bits.append(xb[i] if same else f"~{xb[i]}")
        leaves = [self.m.wire("b", 2, 0, 1, f"{{1'b0, {b}}}") for b in bits]
        return self.m.tree(leaves)

    def combine(self, terms: list[tuple[Sig, int]], lo: int, hi: int) -> Sig:
        """Sum of signed terms (at least one positive), earliest-finishing two first; the last
        adder is exactly as wide as [lo, hi]."""
        heap = [(self.t(s), i, s, sg) for i, (s, sg) in enumerate(terms)]
        heapq.heapify(heap)
        n = len(heap)
        while len(heap) > 1:
            _, _, a, sa = heapq.heappop(heap)
            _, _, b, sb = heapq.heappop(heap)
            if sa < 0 and sb > 0:
                a, sa, b, sb = b, sb, a, sa
            last = not heap
            r = self.m.add(a, b, sa != sb, *((lo, hi) if last else (None, None)))
            n += 1
            heapq.heappush(heap, (self.t(r), n, r, sa))
        s = heap[0][2]
        if heap[0][3] < 0:
            raise RTLError("internal error: MST sum without a positive term")
        return s

    def predict(self, times: list[int]) -> int:
        heap = list(times)
        heapq.heapify(heap)
        while len(heap) > 1:
            a = heapq.heappop(heap)
            b = heapq.heappop(heap)
            heapq.heappush(heap, self._after(max(a, b)))
        return heap[0]

    def _after(self, t: int) -> int:
        return t + 1  # an adder adds one level; registering keeps stage*ML + level

    def build(self, xb: list[str]) -> dict[int, Sig]:
        """R_c for every active channel from the input bit expressions ``xb``."""
        plan, w = self.plan, self.w
        r: dict[int, Sig] = {}
        corr: dict[int, tuple[Sig, int] | None] = {}
        roots = [c for c in plan.channels if c not in plan.edges]
        for c in roots:
            r[c] = self.popcount(xb, w[:, c], range(plan.n))
        budget = max(self.t(r[c]) for c in roots) + math.ceil(math.log2(max(plan.max_depth, 1))) + 1
        for v in plan.tree.order:
            c = plan.channels[v]
            if c in r:
                continue
            ed = plan.edges[c]
            if len(ed.pos) == 0:
                corr[c] = None
            else:
                b = self.popcount(xb, w[:, ed.p], ed.pos, ed.complement)
                corr[c] = (self.m.shl(b, 1), ed.sign)
            path = plan.path(c)  # root ... p, c
            lo, hi = r_range(plan, c)
            chosen = None
            for j in range(len(path) - 2, -1, -1):  # anchor path[j]: deepest first
                a = path[j]
                terms = [corr[x] for x in path[j + 1:] if corr[x] is not None]
                if not terms:
                    chosen = (a, [])
                    break
                if self.predict([self.t(r[a])] + [self.t(s) for s, _ in terms]) <= budget:
                    chosen = (a, terms)
                    break
            if chosen is None:  # cannot happen (the root anchor meets the budget); keep it exact anyway
                chosen = (path[0], [corr[x] for x in path[1:] if corr[x] is not None])
            a, terms = chosen
            if not terms:
                base = r[a]
                r[c] = Sig(base.name, base.width, lo, hi, base.stage, base.level) if signed_bits_for(lo, hi) == \
                    base.width else self.m.fit(base, lo, hi)
            else:
                r[c] = self.combine([(r[a], 1)] + terms, lo, hi)
        return r

    def outputs(self, r: dict[int, Sig], op, cout: int) -> list:
        plan, n, m = self.plan, self.plan.n, self.m
        outs = []
        for o in range(cout):
            th = popcount_threshold(op, o, n)
            if isinstance(th, str):
                outs.append(th)
                continue
            R, s, k = r[o], plan.s[o], plan.k[o]
            if th is not None:
                cmp, p = th
                v = p + k if s > 0 else k - p
                if s < 0:
                    cmp = "<=" if cmp == ">=" else ">="
                outs.append(self.g._emit_bit(f"({R.name} {cmp} {const(v, R.width)})", R))
                continue
            # y = 2*P - N = 2*s*R - (2*s*k + N)
            two = m.shl(R, 1)
            if s > 0:
                outs.append(m.add(two, m.const_sig(-(2 * k + n)), False, -n, n))
            else:
                outs.append(m.add(m.const_sig(2 * k - n), two, True, -n, n))
        return outs


def _plan_for(gen: OpModule) -> Plan:
    op = gen.op
    opts = getattr(gen, "options", None) or {}
    wmat = op.arrays["weight"].reshape(-1, op.arrays["weight"].shape[-1]).astype(np.int64)
    key = "_mst_plan"
    if key not in opts:
        opts[key] = make_plan(wmat, active_channels(op), opts.get("mst_depth"))
    return opts[key]


@EMITTERS.register("bdense", variant="mst")
def g_bdense_mst(gen: OpModule) -> list:
    w = gen.op.arrays["weight"]
    plan = _plan_for(gen)
    b = _Builder(gen, plan, w.astype(np.int64))
    ci = w.shape[0]
    outs = []
    for p in range(gen.ins[0].n // ci):  # every position of a rank > 1 input
        r = b.build([gen.bit(0, p * ci + i) for i in range(ci)]) if plan.channels else {}
        outs += b.outputs(r, gen.op, w.shape[1])
    return outs


@EMITTERS.register("bconv2d", variant="mst")
def g_bconv2d_mst(gen: OpModule) -> list:
    op = gen.op
    w = op.arrays["weight"]
    co = w.shape[-1]
    wmat = w.reshape(-1, co).astype(np.int64)
    plan = _plan_for(gen)
    b = _Builder(gen, plan, wmat)
    g = op_window(op, gen.ins[0].shape)
    ci = w.shape[-2]
    outs = []
    for y in range(g.oh):
        for xx in range(g.ow):
            # row (a*KW + b)*Ci + c of the weight matrix <-> input element pos*Ci + c (the plain order)
            xb = [gen.bit(0, pos * ci + c) for _a, _b, pos in g.taps(y, xx) for c in range(ci)]
            r = b.build(xb) if plan.channels else {}
            outs += b.outputs(r, op, co)
    return outs


# ---- cost, report and selection ------------------------------------------------------------

_WIRE = re.compile(r"^  wire signed \[(\d+):0\] ((ad|b|sh|n)_\d+) = (.*);$")
_NAME = re.compile(r"\b[a-z]+_\d+\b")


def module_cost(text: str) -> dict:
    """XNOR leaves and adders (count, output bits) of a generated op module, and ``adder_bits_shared``:
    the adder bits left after structural hashing (identical adders on identical operands counted once),
    which synthesis does too (Yosys opt_merge, ABC).  It matters for the plain form: a pair of inputs
    has only four polarity patterns, so the first popcount levels are shared across many channels.
    Fitted on Yosys synth_xilinx (bench/bnn): about 0.6-0.66 LUT per shared adder bit for both forms,
    where raw adder bits give 0.21 (plain) vs 0.48 (MST)."""
    xnor = adders = bits = shared = 0
    canon: dict[str, str] = {}
    ids: dict[tuple, str] = {}
    for ln in text.splitlines():
        mt = _WIRE.match(ln)
        if not mt:
            continue
        w, name, kind, expr = int(mt.group(1)) + 1, mt.group(2), mt.group(3), mt.group(4)
        if kind == "ad":
            ops = [canon.get(x, x) for x in _NAME.findall(expr)]
            sub = " - " in expr
            key = (w, "-" if sub else "+", tuple(ops) if sub else tuple(sorted(ops)))
            adders += 1
            bits += w
        else:
            key = (w, kind, _NAME.sub(lambda mm: canon.get(mm.group(0), mm.group(0)), expr))
            xnor += kind == "b"
        if key not in ids:
            ids[key] = f"k{len(ids)}"
            shared += w if kind == "ad" else 0
        canon[name] = ids[key]
    return {"xnor": xnor, "adders": adders, "adder_bits": bits, "adder_bits_shared": shared}


class BnnOrder:
    """Per-op choice between the plain and the MST-reordered binary layer, and its report.

    ``order``: ``plain`` (every binary layer plain), ``mst`` (every binary layer reordered, unless
    it is too small to benefit: then a notice and the plain form), ``auto`` (the default: per layer,
    whichever the cost model -- adder bits of the generated popcount trees -- says is smaller)."""

    def __init__(self, net, order: str, depth: int | None, weights: str = "fixed"):
        if order not in ORDERS:
            raise RTLError(f"--bnn-order must be one of {', '.join(ORDERS)}, got {order!r}")
        if depth is not None and int(depth) < 1:
            raise RTLError(f"--mst-depth must be at least 1 (tree levels below the root), got {depth}")
        self.order, self.depth = order, (int(depth) if depth is not None else None)
        self.notices: list[str] = []
        self.report: dict[str, dict] = {}
        binary = [op for op in net.ops if op.kind in BINARY_KINDS]
        if order == "mst" and not binary:
            raise RTLError(f"network '{net.name}': --bnn-order mst needs binary layers (bdense, bconv2d); it has none")
        if order != "plain" and weights != "fixed":
            if order == "mst":
                raise RTLError(f"network '{net.name}': --bnn-order mst needs --weights fixed (the tree is built "
                               f"from the weights), got {weights}")
            self.order = "plain"

    def module(self, build, op):
        """``build(variant, options)`` -> (module name, text, cycles): the chosen form of ``op``."""
        if self.order == "plain" or op.kind not in BINARY_KINDS:
            return build(None, None)
        plain = build(None, None)
        opts = {"mst_depth": self.depth}
        mst = build("mst", opts)
        cp, cm = module_cost(plain[1]), module_cost(mst[1])
        plan: Plan = opts["_mst_plan"]
        # a tree without edges computes every channel in full: nothing to gain from the reordering
        use = bool(plan.edges) and cm["adder_bits_shared"] < cp["adder_bits_shared"]
        rep = {"kind": op.kind, "plain": cp, "mst": cm, "fan_in": plan.n, "channels": int(op.arrays["weight"].shape[-1]),
               "tree_channels": len(plan.channels), "roots": sum(1 for c in plan.channels if c not in plan.edges),
               "tree_depth": plan.max_depth, "depth_bound": self.depth, "mst_distance": plan.tree.total - plan.n * sum(
                   1 for c in plan.channels if c not in plan.edges),
               "negated_edges": sum(1 for e in plan.edges.values() if e.negated),
               "cycles_plain": plain[2], "cycles_mst": mst[2], "added_latency": mst[2] - plain[2],
               "form": "mst" if use else "plain"}
        if not use:
            rep["added_latency"] = 0
        if not use and self.order == "mst":
            self.notices.append(f"{op.where()}: too small to benefit from MST reordering ({cm['adder_bits_shared']} "
                                f"shared adder bits vs {cp['adder_bits_shared']} plain); plain form")
        self.report[op.name] = rep
        return mst if use else plain



def report_lines(bnn: dict) -> list[str]:
    """One line per binary layer of a manifest's ``bnn`` section, then its notices."""
    lines = []
    for name, r in bnn["layers"].items():
        p, m = r["plain"], r["mst"]
        lines.append(f"{name} ({r['kind']}, N={r['fan_in']}, C={r['channels']}): {r['form']}; XNOR {p['xnor']} -> "
                     f"{m['xnor']}, adders {p['adders']} -> {m['adders']} ({p['adder_bits']} -> {m['adder_bits']} "
                     f"bits), tree depth {r['tree_depth']}, MST distance {r['mst_distance']}, "
                     f"+{r['added_latency']} cycles")
    return lines + [f"notice: {n}" for n in bnn["notices"]]


def print_report(bnn: dict) -> None:
    print(f"binary layers ({bnn['order']}, MST depth bound {bnn['mst_depth'] or 'none'}): plain -> MST")
    for ln in report_lines(bnn):
        print("  " + ln)
