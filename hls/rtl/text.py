"""Building blocks for generated Verilog: signals with proven value ranges,
constant multiplication as canonical-signed-digit shift-and-add, and
balanced adder trees whose every node is exactly as wide as its range.

All internal signals are signed two's complement; an unsigned tensor element
is zero-extended by one bit when it enters arithmetic.
"""
from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from qat.ir.types import signed_bits_for

GENERATOR = "qrtl hls.verilog 1"  # named in every generated file


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


def _first_pair(t: list[tuple[int, int, int]], best: tuple, key) -> tuple[int, int] | None:
    """The first (i, j), i < j in scan order, whose pair pattern is ``best`` = (a, b, dshift, sign).

    Terms are (signal id, shift, digit).  Candidates are found through an
    index by (signal, shift) instead of trying every pair: O(n) per search."""
    a, b, dsh, _ = best
    where: dict[tuple[int, int], list[int]] = {}
    for q, (s, k, _d) in enumerate(t):
        if s in (a, b):
            where.setdefault((s, k), []).append(q)
    for i, (s, k, _d) in enumerate(t):
        cands: list[int] = []
        if s == a:
            cands += where.get((b, k + dsh), [])
        if s == b:
            cands += where.get((a, k - dsh), [])
        js = [j for j in cands if j > i and key(t[i], t[j]) == best]
        if js:
            return i, min(js)
    return None


def csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: [(shift, +1|-1), ...], fewest nonzeros."""
    digits = []
    k = 0
    v = int(value)
    while v:
        if v & 1:
            d = 2 - (v & 3)  # +1 if v%4==1, -1 if v%4==3
            digits.append((k, d))
            v -= d
        v >>= 1
        k += 1
    return digits


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
    _n: int = 0
    _products: dict = field(default_factory=dict)
    _delays: dict = field(default_factory=dict)

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
        return f"{{{{{width - s.width}{{{s.name}[{s.width - 1}]}}}}, {s.name}}}"

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

    def linear_layer(self, rows: list[list[tuple[Sig, int]]], biases: list[int]) -> list[Sig]:
        """Many outputs sum(x * w) + b sharing subexpressions across outputs.

        Every weight becomes CSD digits, i.e. terms +-(x << k).  Then, greedily,
        the pair pattern (a, b << d, relative sign) that occurs in the most
        outputs becomes one new signal a +- (b << d), replacing both terms
        wherever it occurs (common-subexpression elimination over the whole
        layer).  What is left in each output is summed by a tree that always
        combines the two shallowest operands first.
        """
        sigs: list[Sig] = []
        depth: list[int] = []
        ids: dict[str, int] = {}

        def sid(x: Sig) -> int:
            if x.name not in ids:
                ids[x.name] = len(sigs)
                sigs.append(x)
                depth.append(0)
            return ids[x.name]

        terms: list[list[tuple[int, int, int]]] = []
        for row in rows:
            t = []
            for x, w in row:
                for k, d in csd(int(w)):
                    t.append((sid(x), k, d))
            terms.append(t)

        def key(t1, t2):
            if (t1[1], t1[0]) > (t2[1], t2[0]):
                t1, t2 = t2, t1
            return (t1[0], t2[0], t2[1] - t1[1], t1[2] * t2[2])

        # row_keys[r][k]: how often pattern k occurs in row r; rows_of[k]: rows holding k;
        # a lazy max-heap orders patterns by the number of rows holding them.  A pattern of two
        # original terms that only one row holds is never tracked: rows can only lose such a
        # pattern (new terms carry new signals), so it can never be shared by two rows.
        row_keys: list[dict] = []
        rows_of: dict[tuple, set[int]] = {}
        heap: list = []

        def drop(rk: dict, r: int, k: tuple) -> None:
            """One occurrence of pattern k leaves row r (untracked patterns are not in rk)."""
            before = rk.get(k, 0)
            if before > 1:
                rk[k] = before - 1
            elif before == 1:
                del rk[k]
                rows_of[k].discard(r)

        def gain(rk: dict, r: int, k: tuple) -> None:
            """One occurrence of pattern k (it holds a new signal) joins row r."""
            before = rk.get(k, 0)
            rk[k] = before + 1
            if before == 0:
                rows = rows_of.get(k)
                if rows is None:
                    rows = rows_of[k] = set()
                rows.add(r)
                heapq.heappush(heap, (-len(rows), k))

        shared: Counter = Counter()
        for t in terms:
            rk = Counter(key(t[i], t[j]) for i in range(len(t)) for j in range(i + 1, len(t)))
            row_keys.append(rk)
            shared.update(rk.keys())
        for r, rk in enumerate(row_keys):
            row_keys[r] = rk = {k: v for k, v in rk.items() if shared[k] >= 2}
            for k in rk:
                rows_of.setdefault(k, set()).add(r)
        heap = [(-len(rs), k) for k, rs in rows_of.items()]
        heapq.heapify(heap)

        while heap:
            negc, best = heapq.heappop(heap)
            have = len(rows_of.get(best, ()))
            if have != -negc:
                if have >= 2:
                    heapq.heappush(heap, (-have, best))
                continue
            if have < 2:
                break
            a, b, dsh, sg = best
            new = self.add(sigs[a], self.shl(sigs[b], dsh), sub=sg < 0)
            nid = sid(new)
            depth[nid] = max(depth[a], depth[b]) + 1
            for r in sorted(rows_of[best]):
                t = terms[r]
                rk = row_keys[r]
                while True:
                    found = _first_pair(t, best, key)
                    if found is None:
                        break
                    i, j = found
                    t1 = t[i] if (t[i][1], t[i][0]) <= (t[j][1], t[j][0]) else t[j]
                    rest = [x for q, x in enumerate(t) if q not in (i, j)]
                    ti, tj = t[i], t[j]
                    for x in rest:
                        drop(rk, r, key(ti, x))
                        drop(rk, r, key(tj, x))
                    drop(rk, r, best)
                    nt = (nid, t1[1], t1[2])
                    for x in rest:
                        gain(rk, r, key(nt, x))
                    t = rest + [nt]
                terms[r] = t

        outs = []
        for t, bias in zip(terms, biases):
            pos = [(depth[i], self.shl(sigs[i], k)) for i, k, d in t if d > 0]
            neg = [(depth[i], self.shl(sigs[i], k)) for i, k, d in t if d < 0]
            p, dp = self._shallow_tree(pos)
            n, dn = self._shallow_tree(neg)
            if p is None and n is None:
                outs.append(self.const_sig(int(bias)))
                continue
            acc = self.neg(n) if p is None else (p if n is None else self.add(p, n, sub=True))
            if bias:
                acc = self.add(acc, self.const_sig(int(bias)))
            outs.append(acc)
        return outs

    def _shallow_tree(self, items: list[tuple[int, Sig]]) -> tuple[Sig | None, int]:
        """Sum, always adding the two shallowest operands (minimum depth)."""
        if not items:
            return None, 0
        heap = [(d, i, s) for i, (d, s) in enumerate(items)]
        heapq.heapify(heap)
        n = len(heap)
        while len(heap) > 1:
            d1, _, s1 = heapq.heappop(heap)
            d2, _, s2 = heapq.heappop(heap)
            n += 1
            heapq.heappush(heap, (max(d1, d2) + 1, n, self.add(s1, s2)))
        return heap[0][2], heap[0][0]

    def mul_const(self, x: Sig, m: int) -> Sig:
        return x if m == 1 else self.linear([(x, m)], 0)
