"""Constant matrix-vector multiplication as a depth-bounded adder graph.

``y[r] = sum_i W[r, i] * x[i] + bias[r]`` for an integer matrix ``W`` (rows = outputs) and
integer inputs ``x[i]`` in known ranges, built from two-input adders only (shifts are free
wiring).  Plain data in, plain data out: :func:`build` returns a :class:`Graph`; the Verilog
writer (``hls.rtl.text.ModuleText.linear_layer``) only names its nodes.

Stages:

1. *Spanning tree* (optional): each row is a vertex below a zero root; the distance of two rows
   is the number of canonical-signed-digit (CSD) nonzeros of their difference or sum, whichever
   is smaller, plus the one adder that joins the parent's result.  A depth-bounded spanning
   tree (``hls.engine.spanning_tree``) turns each row into "parent's result +- a cheap
   correction".
2. *Common subexpressions*: every weight becomes CSD digits, i.e. terms ``+-(x << k)``; the
   pair pattern ``a +- (b << d)`` found most often becomes one new node, repeatedly.  Ties and
   near-ties are broken by the new adder's bit width (narrow first).  A pattern is extracted in
   a row only when the row can still be summed within its adder-depth bound.
3. *Trees*: what is left in each row is summed shallowest-first (Huffman on depth), narrowest
   first on equal depth.

Several decompositions (spanning-tree depth) are built and the one that
``hls.engine.cost.graph_luts`` predicts cheapest is kept.  Deterministic: no hashing of
objects, no randomness; every tie is broken by indices.

Depth: leaves (inputs) have depth 0, an adder one more than its deeper operand.  Each row's
sum (before its bias and a possible final negation) stays within ``depth_bound`` (default: the
minimum, ``ceil(log2(digits))`` of the row with the most CSD digits).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, replace

import numpy as np

from hls.engine.cost import adder_lut_bits, bits_for, graph_luts
from hls.engine.spanning_tree import spanning_tree


@dataclass(frozen=True)
class Node:
    """``(sig[a] << sa) + (-1 if sub else 1) * (sig[b] << sb)``; signals 0..n_inputs-1 are the
    inputs, signal n_inputs + j is node j.  ``lo``/``hi``: exact range over all inputs;
    ``depth``: adder levels from the inputs."""

    a: int
    sa: int
    b: int
    sb: int
    sub: bool
    lo: int
    hi: int
    depth: int


@dataclass(frozen=True)
class Output:
    """``(-1 if neg else 1) * (sig[sig] << shift) + bias``; ``sig`` -1: the constant ``bias``."""

    sig: int
    shift: int
    neg: bool
    bias: int
    lo: int
    hi: int


@dataclass(frozen=True)
class Graph:
    n_inputs: int
    input_ranges: tuple[tuple[int, int], ...]
    nodes: tuple[Node, ...]
    outputs: tuple[Output, ...]
    note: str = ""  # which decomposition was kept

    def sig_range(self, s: int) -> tuple[int, int]:
        if s < self.n_inputs:
            return self.input_ranges[s]
        n = self.nodes[s - self.n_inputs]
        return n.lo, n.hi

    def sig_depth(self, s: int) -> int:
        return 0 if s < self.n_inputs else self.nodes[s - self.n_inputs].depth

    @property
    def depth(self) -> int:
        """Adder levels of the deepest output, its final negation and bias included."""
        d = 0
        for o in self.outputs:
            if o.sig >= 0:
                d = max(d, self.sig_depth(o.sig) + (1 if (o.neg or o.bias) else 0))
        return d

    def values(self, x: np.ndarray) -> list[np.ndarray]:
        """Every signal's value (inputs, then nodes) for integer inputs ``x`` (batch, n_inputs)."""
        x = np.asarray(x, dtype=object)
        vals = [x[:, i] for i in range(self.n_inputs)]
        for n in self.nodes:
            a = vals[n.a] * (1 << n.sa)
            b = vals[n.b] * (1 << n.sb)
            vals.append(a - b if n.sub else a + b)
        return vals

    def evaluate(self, x: np.ndarray) -> np.ndarray:
        """Outputs for integer inputs ``x`` (batch, n_inputs), exact (Python integers)."""
        x = np.asarray(x, dtype=object)
        vals = self.values(x)
        cols = []
        for o in self.outputs:
            if o.sig < 0:
                cols.append(np.full(x.shape[0], o.bias, dtype=object))
            else:
                v = vals[o.sig] * (1 << o.shift)
                cols.append((-v if o.neg else v) + o.bias)
        return np.stack(cols, axis=1) if cols else np.zeros((x.shape[0], 0), dtype=object)


# ---- digits ---------------------------------------------------------------------------------------

def csd(value: int) -> list[tuple[int, int]]:
    """Canonical signed digits of ``value``: [(shift, +1|-1), ...], fewest nonzeros."""
    digits = []
    k = 0
    v = int(value)
    while v:
        if v & 1:
            d = 2 - (v & 3)
            digits.append((k, d))
            v -= d
        v >>= 1
        k += 1
    return digits


def csd_weight(a: np.ndarray) -> np.ndarray:
    """Number of CSD nonzeros of every element of the integer array ``a``: popcount(|a| ^ 3|a|)."""
    v = np.abs(np.asarray(a, dtype=np.int64))
    h = v ^ (3 * v)
    n = np.zeros(v.shape, dtype=np.int64)
    while np.any(h):
        n += h & 1
        h = h >> 1
    return n


TREE_WINDOW = 8  # candidate terms per step of the final trees
TREE_GREEDY_MAX = 96  # longer rows: shallowest-first trees only
CSE_OCCURRENCE_WEIGHT = None  # LUTs one more occurrence of a pattern saves (None: the median output width)
SEARCH_MAX_DIGITS = 12_000  # larger matrices: one decomposition, no search
RESORT_STALE = 20_000  # CSE: re-sort the two-input patterns after this many stale ones (speed only)


def _ceil_log2(n: int) -> int:
    return max(0, (int(n) - 1).bit_length())


# ---- the builder ----------------------------------------------------------------------------------

class _Builder:
    """Signals, their exact ranges (through coefficient vectors over the inputs) and nodes."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray):
        self.n_in = len(lo)
        self.in_lo, self.in_hi = lo, hi
        self.lo: list[int] = [int(v) for v in lo]
        self.hi: list[int] = [int(v) for v in hi]
        self.depth: list[int] = [0] * self.n_in
        self.coef: list[dict[int, int]] = [{i: 1} for i in range(self.n_in)]
        self.nodes: list[Node] = []

    def _range(self, coef: dict[int, int]) -> tuple[int, int]:
        lo = hi = 0
        for i, c in coef.items():
            a, b = c * int(self.in_lo[i]), c * int(self.in_hi[i])
            lo += min(a, b)
            hi += max(a, b)
        return lo, hi

    def mark(self) -> int:
        return len(self.nodes)

    def rollback(self, mark: int) -> None:
        """Forget the nodes added since ``mark``."""
        n = self.n_in + mark
        del self.nodes[mark:], self.coef[n:], self.lo[n:], self.hi[n:], self.depth[n:]

    def cost_since(self, mark: int) -> int:
        return sum(adder_lut_bits(nd.lo, nd.hi, max(0, nd.sb - nd.sa)) for nd in self.nodes[mark:])

    def add(self, a: int, sa: int, b: int, sb: int, sub: bool) -> int:
        coef = {i: c << sa for i, c in self.coef[a].items()}
        g = -1 if sub else 1
        for i, c in self.coef[b].items():
            v = coef.get(i, 0) + g * (c << sb)
            if v:
                coef[i] = v
            else:
                coef.pop(i, None)
        lo, hi = self._range(coef)
        d = max(self.depth[a], self.depth[b]) + 1
        self.nodes.append(Node(a, sa, b, sb, sub, lo, hi, d))
        self.coef.append(coef)
        self.lo.append(lo)
        self.hi.append(hi)
        self.depth.append(d)
        return len(self.lo) - 1


class _Row:
    """One row's terms (signal, shift, sign) as growable numpy arrays plus a lookup by signal."""

    __slots__ = ("s", "k", "g", "alive", "n", "at")

    def __init__(self, terms: list[tuple[int, int, int]]):
        cap = len(terms) + 8
        self.s = np.zeros(cap, dtype=np.int64)
        self.k = np.zeros(cap, dtype=np.int64)
        self.g = np.zeros(cap, dtype=np.int64)
        self.alive = np.zeros(cap, dtype=bool)
        self.n = 0
        self.at: dict[int, dict[int, int]] = {}  # signal -> shift -> slot
        for t in terms:
            self.append(*t)

    def append(self, s: int, k: int, g: int) -> None:
        if self.n == len(self.s):
            cap = 2 * self.n + 8
            for name in ("s", "k", "g", "alive"):
                old = getattr(self, name)
                new = np.zeros(cap, dtype=old.dtype)
                new[:self.n] = old[:self.n]
                setattr(self, name, new)
        i = self.n
        self.s[i], self.k[i], self.g[i], self.alive[i] = s, k, g, True
        self.at.setdefault(s, {})[k] = i
        self.n += 1

    def remove(self, s: int, k: int) -> None:
        ks = self.at[s]
        self.alive[ks.pop(k)] = False
        if not ks:
            del self.at[s]

    def sign(self, s: int, k: int) -> int:
        i = self.at.get(s, {}).get(k)
        return 0 if i is None else int(self.g[i])

    def live(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = np.nonzero(self.alive[:self.n])[0]
        return self.s[i], self.k[i], self.g[i]

    def terms(self) -> list[tuple[int, int, int]]:
        s, k, g = self.live()
        return sorted(zip(s.tolist(), k.tolist(), g.tolist()))


def _bit_length(v: np.ndarray) -> np.ndarray:
    """int.bit_length of every element of a non-negative int64 array."""
    v = v.copy()
    n = np.zeros(v.shape, dtype=np.int64)
    for sh in (32, 16, 8, 4, 2, 1):
        m = v >= (1 << sh)
        n[m] += sh
        v[m] >>= sh
    return n + (v > 0)


def _static_costs(skeys: np.ndarray, S: int, D: int, bld: _Builder) -> np.ndarray:
    """``adder_lut_bits`` of the adder of every two-input pattern key (vectorised ``cost_of``); exact in
    int64 when the shifted input ranges fit, else computed per key with Python integers."""
    kk = skeys >> 1
    d = kk % D
    a = kk // D // S
    b = kk // D % S
    lo, hi = np.asarray(bld.in_lo, dtype=np.int64), np.asarray(bld.in_hi, dtype=np.int64)
    mag = max([abs(int(x)) for x in lo.tolist() + hi.tolist()] + [1])
    if len(skeys) == 0 or mag.bit_length() + D + 2 > 62:
        return np.array([adder_lut_bits(*_pattern_range(bld, int(x), int(y), int(z), int(k) & 1), int(z))
                         for x, y, z, k in zip(a, b, d, skeys)], dtype=np.int64)
    la, ha, lb, hb = lo[a], hi[a], lo[b] << d, hi[b] << d
    neg = (skeys & 1) == 1
    rlo = np.where(neg, la - hb, la + lb)
    rhi = np.where(neg, ha - lb, ha + hb)
    w = np.maximum(_bit_length(np.maximum(rhi, 0)), np.where(rlo < 0, _bit_length(np.maximum(-rlo - 1, 0)), 0)) + 1
    return np.maximum(1, w - d - 1)


def _pattern_range(bld: _Builder, a: int, b: int, d: int, neg: int) -> tuple[int, int]:
    la, ha = bld.lo[a], bld.hi[a]
    lb, hb = bld.lo[b] << d, bld.hi[b] << d
    return (la - hb, ha - lb) if neg else (la + lb, ha + hb)


def _cse(bld: _Builder, rows: list[_Row], bounds: list[int], reserve: list[int], out_width: int) -> None:
    """Greedy common-subexpression extraction in place on ``rows``.

    ``bounds[r]``: the row's adder-depth bound; ``reserve[r]``: 2**depth of terms joining the
    row later (a spanning-tree parent).  Patterns are integer keys
    ``((a * S + b) * D + d) * 2 + (sign < 0)``, a's digit being the lower (shift, signal).  The
    score of a pattern found ``c`` times is ``c * out_width - (LUTs of its adder)``: the count
    first, then the narrower adder."""
    total = sum(r.n for r in rows)
    ow = out_width if CSE_OCCURRENCE_WEIGHT is None else CSE_OCCURRENCE_WEIGHT
    S = bld.n_in + total + 1
    maxk = max([int(r.k[:r.n].max()) for r in rows if r.n] + [0])
    D = maxk + 2
    pot = [reserve[i] + sum(1 << bld.depth[s] for s in r.live()[0].tolist()) for i, r in enumerate(rows)]

    def keys(s1, k1, g1, s2, k2, g2):
        """Canonical pattern keys of digit pairs (vectorised): the lower (shift, signal) first."""
        swap = (k2 < k1) | ((k2 == k1) & (s2 < s1))
        a = np.where(swap, s2, s1)
        b = np.where(swap, s1, s2)
        d = np.abs(k2 - k1)
        return ((a * S + b) * D + d) * 2 + (g1 * g2 < 0)

    # initial pair counts, a few rows at a time (memory bounded by the flush size)
    uk = np.zeros(0, dtype=np.int64)
    uc = np.zeros(0, dtype=np.int64)
    chunks: list[np.ndarray] = []
    pending = 0

    def flush() -> None:
        nonlocal uk, uc, chunks, pending
        if not chunks:
            return
        u, c = np.unique(np.concatenate(chunks), return_counts=True)
        allk, inv = np.unique(np.concatenate([uk, u]), return_inverse=True)
        uc = np.bincount(inv, weights=np.concatenate([uc, c]).astype(np.float64)).astype(np.int64)
        uk = allk
        chunks, pending = [], 0

    for row in rows:
        s, k, g = row.live()
        if len(s) < 2:
            continue
        i, j = np.triu_indices(len(s), 1)
        chunks.append(keys(s[i], k[i], g[i], s[j], k[j], g[j]))
        pending += len(i)
        if pending > 2_000_000:
            flush()
    flush()
    keep = uc >= 2
    skeys = uk[keep]  # patterns of two input digits: sorted keys, counts in a numpy array
    scount = uc[keep].copy()
    del uk, uc
    dyn: dict[int, int] = {}  # patterns involving a node: key -> count
    NODE0 = bld.n_in

    rows_of: list[set[int]] = [set() for _ in range(bld.n_in)]
    for r, row in enumerate(rows):
        for sig in row.at:
            rows_of[sig].add(r)

    def decode(key: int) -> tuple[int, int, int, int]:
        neg = key & 1
        key >>= 1
        d = key % D
        key //= D
        return key // S, key % S, d, (-1 if neg else 1)

    def count(key: int) -> int:
        a_ = (key >> 1) // D // S
        if a_ < NODE0 and (key >> 1) // D % S < NODE0:
            i = int(np.searchsorted(skeys, key))
            return int(scount[i]) if i < len(skeys) and skeys[i] == key else 0
        return dyn.get(key, 0)

    def forget(key: int) -> None:
        a_ = (key >> 1) // D // S
        if a_ < NODE0 and (key >> 1) // D % S < NODE0:
            i = int(np.searchsorted(skeys, key))
            if i < len(skeys) and skeys[i] == key:
                scount[i] = 0
        else:
            dyn.pop(key, None)

    def decrement(ks: np.ndarray) -> None:
        """One occurrence fewer of each pattern in ``ks`` (patterns not tracked are ignored)."""
        kk = ks >> 1
        b_ = kk // D % S
        a_ = kk // D // S
        node = (a_ >= NODE0) | (b_ >= NODE0)
        st = ks[~node]
        if len(st) and len(skeys):
            i = np.searchsorted(skeys, st)
            ok = i < len(skeys)
            i, st = i[ok], st[ok]
            np.subtract.at(scount, i[skeys[i] == st], 1)
        if dyn and np.any(node):
            u, m = np.unique(ks[node], return_counts=True)
            hit = dyn.keys() & set(u.tolist())
            if hit:
                h = np.array(sorted(hit), dtype=np.int64)
                for k2, m2 in zip(h.tolist(), m[np.searchsorted(u, h)].tolist()):
                    c = dyn[k2] - m2
                    if c <= 0:
                        del dyn[k2]
                    else:
                        dyn[k2] = c

    def cost_of(a: int, b: int, d: int, g: int) -> int:
        return adder_lut_bits(*_pattern_range(bld, a, b, d, g < 0), d)

    # heap items are single integers: (-score * CB + cost) * KS + key, score = count * W - cost
    KS = S * S * D * 2
    CB = 1 << 16

    def item(key: int, score: int, cost: int) -> int:
        return (-score * CB + cost) * KS + key

    # The two-input patterns start in one sorted array (their heap items, in item order) walked from the
    # front; the heap holds patterns with a node and re-scored ones.  Popping the smaller of the array's
    # front and the heap's top is popping one heap holding everything (every pattern's stored item <= its
    # true item), without pushing millions of Python integers; when many array entries have gone stale,
    # the rest of the array is re-scored and re-sorted at once.
    scost = _static_costs(skeys, S, D, bld)
    sscore = scount * ow - scost
    order = np.lexsort((skeys, scost, -sscore))
    p = 0
    front: list[int] = []  # the next array entries that still had a count >= 2 when read
    stale = 0
    heap: list[int] = []

    def static_head() -> int:
        """Index (into skeys) of the array's first pattern with a count >= 2 left, or -1."""
        nonlocal p, front
        while True:
            while front:
                if scount[front[-1]] >= 2:
                    return front[-1]
                front.pop()
            if p >= len(order):
                return -1
            blk = order[p:p + 4096]
            p += len(blk)
            front = blk[scount[blk] >= 2][::-1].tolist()

    def resort() -> None:
        nonlocal order, p, front, sscore, stale
        rest = np.concatenate([np.array(front[::-1], dtype=np.int64), order[p:]])
        rest = rest[scount[rest] >= 2]
        sscore = scount * ow - scost
        order = rest[np.lexsort((skeys[rest], scost[rest], -sscore[rest]))]
        p, front, stale = 0, [], 0

    while True:
        i = static_head()
        if i >= 0 and (not heap or item(int(skeys[i]), int(sscore[i]), int(scost[i])) < heap[0]):
            front.pop()
            key, cnt, cost = int(skeys[i]), int(scount[i]), int(scost[i])
            if cnt * ow - cost != int(sscore[i]):
                stale += 1
                if stale > max(RESORT_STALE, (len(order) - p) // 8):
                    resort()
                else:
                    heapq.heappush(heap, item(key, cnt * ow - cost, cost))
                continue
        elif heap:
            it = heapq.heappop(heap)
            key = it % KS
            rest = it // KS
            cost = rest % CB
            neg_sc = rest // CB
            cnt = count(key)
            if cnt < 2:
                continue
            if cnt * ow - cost != -neg_sc:
                heapq.heappush(heap, item(key, cnt * ow - cost, cost))
                continue
        else:
            break
        a, b, d, g = decode(key)
        da, db = bld.depth[a], bld.depth[b]
        grow = (1 << (max(da, db) + 1)) - (1 << da) - (1 << db)
        occ: list[tuple[int, int, int]] = []  # (row, shift, sign)
        for r in sorted(rows_of[a] & rows_of[b]):
            row = rows[r]
            used: set[tuple[int, int]] = set()
            for k in sorted(row.at.get(a, {})):
                ga, gb = row.sign(a, k), row.sign(b, k + d)
                if not ga or ga * gb != g or (a, k) in used or (b, k + d) in used:
                    continue
                if pot[r] + grow > (1 << bounds[r]):
                    break
                used.add((a, k))
                used.add((b, k + d))
                pot[r] += grow
                occ.append((r, k, ga))
        forget(key)
        if len(occ) < 2:
            for r, _, _ in occ:
                pot[r] -= grow
            continue
        nid = bld.add(a, 0, b, d, g < 0)
        rows_of.append(set())
        by_row: dict[int, list[tuple[int, int]]] = {}
        for r, k, sg in occ:
            by_row.setdefault(r, []).append((k, sg))
        new_pairs = []
        for r, lst in by_row.items():
            row = rows[r]
            for k, sg in lst:
                row.remove(a, k)
                row.remove(b, k + d)
            # one occurrence fewer of every pair a removed digit was in: with the row's other digits and with
            # the other occurrences' digits (an occurrence's own pair is the pattern being extracted)
            rs = np.array([x for _ in lst for x in (a, b)], dtype=np.int64)
            rk = np.array([x for k, _ in lst for x in (k, k + d)], dtype=np.int64)
            rg = np.array([x for _, sg in lst for x in (sg, sg * g)], dtype=np.int64)
            s, kk, gg = row.live()
            parts = []
            if len(s):
                ii, jj = np.repeat(np.arange(len(rs)), len(s)), np.tile(np.arange(len(s)), len(rs))
                parts.append(keys(rs[ii], rk[ii], rg[ii], s[jj], kk[jj], gg[jj]))
            if len(rs) > 2:
                ii, jj = np.triu_indices(len(rs), 1)
                ok = ii // 2 != jj // 2
                parts.append(keys(rs[ii[ok]], rk[ii[ok]], rg[ii[ok]], rs[jj[ok]], rk[jj[ok]], rg[jj[ok]]))
            if parts:
                decrement(np.concatenate(parts))
            for sgl in (a, b):
                if sgl not in row.at:
                    rows_of[sgl].discard(r)
            for k, sg in lst:
                row.append(nid, k, sg)
            rows_of[nid].add(r)
            s, kk, gg = row.live()
            mine = s == nid
            other = ~mine
            m = np.nonzero(mine)[0]
            if np.any(other):
                for i in m:
                    new_pairs.append(keys(s[i], kk[i], gg[i], s[other], kk[other], gg[other]))
            if len(m) > 1:
                i, j = np.triu_indices(len(m), 1)
                new_pairs.append(keys(s[m[i]], kk[m[i]], gg[m[i]], s[m[j]], kk[m[j]], gg[m[j]]))
        if new_pairs:
            u, c = np.unique(np.concatenate([np.atleast_1d(p) for p in new_pairs]), return_counts=True)
            for k2, c2 in zip(u[c >= 2].tolist(), c[c >= 2].tolist()):
                dyn[k2] = dyn.get(k2, 0) + c2
                cost2 = cost_of(*decode(k2))
                heapq.heappush(heap, item(k2, dyn[k2] * ow - cost2, cost2))


def _tree(bld: _Builder, terms: list[tuple[int, int, int]], bound: int | None = None,
          window: int = TREE_WINDOW) -> tuple[int, int, int] | None:
    """Sum of terms (signal, shift, sign) as (signal, shift, sign) within ``bound`` adder levels.

    Each step adds, among the ``window`` terms with the lowest top bit, the pair whose adder
    needs the fewest LUTs, if the rest can still be summed within the bound (the minimum depth
    of a sum of terms at depths d_i is ceil(log2(sum 2**d_i))); otherwise the two shallowest."""
    if not terms:
        return None
    if window == 0:
        return _shallow_tree(bld, terms)
    items = sorted(terms)
    dep = [bld.depth[s] for s, _, _ in items]
    pot = sum(1 << d for d in dep)
    if bound is None:
        bound = _ceil_log2(pot)
    cap = 1 << max(bound, _ceil_log2(pot))

    def top(t):
        s, k, _ = t
        return bits_for(bld.lo[s], bld.hi[s]) + k

    live = list(zip(dep, items))
    while len(live) > 1:
        by_top = sorted(range(len(live)), key=lambda i: (top(live[i][1]), live[i][0], live[i][1]))[:window]
        best = None
        for x in range(len(by_top)):
            for y in range(x + 1, len(by_top)):
                i, j = by_top[x], by_top[y]
                (di, (si, ki, gi)), (dj, (sj, kj, gj)) = live[i], live[j]
                dn = max(di, dj) + 1
                grow = (1 << dn) - (1 << di) - (1 << dj)
                if pot + grow > cap:
                    continue
                if (kj, sj) < (ki, si):
                    si, ki, sj, kj = sj, kj, si, ki
                lo_b, hi_b = bld.lo[sj] << (kj - ki), bld.hi[sj] << (kj - ki)
                neg = gi * gj < 0
                lo, hi = (bld.lo[si] - hi_b, bld.hi[si] - lo_b) if neg else (bld.lo[si] + lo_b, bld.hi[si] + hi_b)
                c = (adder_lut_bits(lo, hi, kj - ki), dn, i, j)
                if best is None or c < best:
                    best = c
        if best is None:
            order = sorted(range(len(live)), key=lambda i: (live[i][0], top(live[i][1]), live[i][1]))
            i, j = order[0], order[1]
        else:
            i, j = best[2], best[3]
        (di, (s1, k1, g1)), (dj, (s2, k2, g2)) = live[i], live[j]
        nid, k1, g1 = _join(bld, s1, k1, g1, s2, k2, g2, len(live) == 2)
        pot += (1 << bld.depth[nid]) - (1 << di) - (1 << dj)
        live = [t for q, t in enumerate(live) if q not in (i, j)] + [(bld.depth[nid], (nid, k1, g1))]
    return live[0][1]


def _join(bld: _Builder, s1: int, k1: int, g1: int, s2: int, k2: int, g2: int, last: bool) -> tuple[int, int, int]:
    """g1*(s1 << k1) + g2*(s2 << k2) as one adder: (signal, shift, sign), the lower term as the base
    (its low bits pass through).  The ``last`` adder of a row prefers a positive result (no negation
    after it): (s2 << d) - s1 when only the base is negative."""
    if (k2, s2) < (k1, s1):
        s1, k1, g1, s2, k2, g2 = s2, k2, g2, s1, k1, g1
    if last and g1 < 0 < g2:
        return bld.add(s2, k2 - k1, s1, 0, True), k1, 1
    return bld.add(s1, 0, s2, k2 - k1, g1 * g2 < 0), k1, g1


def _shallow_tree(bld: _Builder, terms: list[tuple[int, int, int]]) -> tuple[int, int, int]:
    """Huffman on depth: always the two shallowest terms (then the lowest top bit)."""
    heap = []
    for n, (s, k, g) in enumerate(sorted(terms)):
        heap.append((bld.depth[s], bits_for(bld.lo[s], bld.hi[s]) + k, n, s, k, g))
    heapq.heapify(heap)
    n = len(heap)
    while len(heap) > 1:
        _, _, _, s1, k1, g1 = heapq.heappop(heap)
        _, _, _, s2, k2, g2 = heapq.heappop(heap)
        nid, k1, g1 = _join(bld, s1, k1, g1, s2, k2, g2, not heap)
        n += 1
        heapq.heappush(heap, (bld.depth[nid], bits_for(bld.lo[nid], bld.hi[nid]) + k1, n, nid, k1, g1))
    _, _, _, s, k, g = heap[0]
    return s, k, g


def _best_tree(bld: _Builder, terms: list[tuple[int, int, int]], bound: int) -> tuple[int, int, int] | None:
    """The cheaper (by LUT estimate) of the LUT-greedy and the shallowest-first tree; rows of
    more than ``TREE_GREEDY_MAX`` terms take the shallowest-first tree alone (it is O(n log n))."""
    if len(terms) > TREE_GREEDY_MAX:
        return _tree(bld, terms, bound, window=0)
    m = bld.mark()
    _tree(bld, terms, bound, window=0)
    shallow = bld.cost_since(m)
    bld.rollback(m)
    res = _tree(bld, terms, bound)
    if bld.cost_since(m) <= shallow:
        return res
    bld.rollback(m)
    return _tree(bld, terms, bound, window=0)


def _rows_digits(W: np.ndarray) -> list[_Row]:
    return [_Row([(i, k, d) for i in np.nonzero(W[r])[0].tolist() for k, d in csd(int(W[r, i]))])
            for r in range(W.shape[0])]


def _build_one(W: np.ndarray, bias: np.ndarray, lo: np.ndarray, hi: np.ndarray, bound: int,
               mst_depth: int, out_width: int) -> Graph:
    n_out, n_in = W.shape
    bld = _Builder(lo, hi)
    parent = np.full(n_out, -1, dtype=np.int64)
    flip = np.zeros(n_out, dtype=bool)
    nnz = csd_weight(W).sum(axis=1)
    if mst_depth > 1 and n_out > 1:
        parent, flip = _decompose(W, nnz, bound, mst_depth)
    D = W.copy()
    for v in range(n_out):
        if parent[v] >= 0:
            D[v] = W[v] + W[parent[v]] if flip[v] else W[v] - W[parent[v]]
    ht = _heights(parent)
    bounds = [bound - int(ht[v]) for v in range(n_out)]
    reserve = [(1 << bounds[int(parent[v])]) if parent[v] >= 0 else 0 for v in range(n_out)]
    rows = _rows_digits(D)
    _cse(bld, rows, bounds, reserve, out_width)
    res: list[tuple[int, int, int] | None] = [None] * n_out
    for v in _parents_first(parent):
        terms = rows[v].terms()
        p = int(parent[v])
        if p >= 0 and res[p] is not None:
            s, k, g = res[p]
            terms.append((s, k, -g if flip[v] else g))
        res[v] = _best_tree(bld, terms, bounds[v])
    outs = []
    for v in range(n_out):
        lo_v, hi_v = _row_range(W[v], lo, hi)
        b = int(bias[v])
        if res[v] is None:
            outs.append(Output(-1, 0, False, b, b, b))
        else:
            s, k, g = res[v]
            outs.append(Output(s, k, g < 0, b, lo_v + b, hi_v + b))
    return Graph(n_in, tuple((int(a), int(c)) for a, c in zip(lo, hi)), tuple(bld.nodes), tuple(outs),
                 f"spanning-tree depth {mst_depth}, adder depth {bound}")


def _row_range(w: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[int, int]:
    a = [int(c) * int(x) for c, x in zip(w.tolist(), lo.tolist())]
    b = [int(c) * int(x) for c, x in zip(w.tolist(), hi.tolist())]
    return sum(min(p, q) for p, q in zip(a, b)), sum(max(p, q) for p, q in zip(a, b))


def _heights(parent: np.ndarray) -> np.ndarray:
    """Longest chain of descendants below each vertex (0 for a leaf)."""
    ht = np.zeros(len(parent), dtype=np.int64)
    for v in reversed(_parents_first(parent)):
        p = int(parent[v])
        if p >= 0:
            ht[p] = max(ht[p], ht[v] + 1)
    return ht


def _parents_first(parent: np.ndarray) -> list[int]:
    depth = np.zeros(len(parent), dtype=np.int64)
    for v in range(len(parent)):
        d, u = 0, v
        while parent[u] >= 0:
            u = int(parent[u])
            d += 1
        depth[v] = d
    return sorted(range(len(parent)), key=lambda v: (int(depth[v]), v))


def _decompose(W: np.ndarray, nnz: np.ndarray, bound: int, mst_depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Spanning tree over the rows (``mst_depth`` levels below the zero root), then rows whose
    depth bound would be broken are re-attached to the root."""
    n = W.shape[0]
    dm = np.zeros((n, n), dtype=np.int64)
    dp = np.zeros((n, n), dtype=np.int64)
    for u in range(n):
        dm[u] = csd_weight(W - W[u]).sum(axis=1)
        dp[u] = csd_weight(W + W[u]).sum(axis=1)
    flip = dp < dm
    dist = np.minimum(dm, dp) + 1  # + the adder joining the parent's result
    tree = spanning_tree(dist, nnz, mst_depth, flip)
    parent = tree.parent.copy()
    fl = tree.flip.copy()
    dn = np.where(flip, dp, dm)
    while True:
        ht = _heights(parent)
        bad = False
        for v in _parents_first(parent):
            p = int(parent[v])
            own = int(nnz[v]) if p < 0 else int(dn[p, v]) + (1 << (bound - int(ht[p])))
            if own > (1 << (bound - int(ht[v]))):
                if ht[v] > 0:
                    parent[parent == v] = -1
                else:
                    parent[v] = -1
                bad = True
                break
        if not bad:
            break
    fl &= parent >= 0
    return parent, fl


def build(W: np.ndarray, bias: np.ndarray, in_lo: np.ndarray, in_hi: np.ndarray,
          depth_bound: int | None = None, mst_depths: tuple[int, ...] = (1, 3),
          slack: int = 0) -> Graph:
    """The cheapest adder graph (by ``hls.engine.cost.graph_luts``) for ``W @ x + bias``.

    ``W`` (n_out, n_in) integers; ``in_lo``/``in_hi`` (n_in,) input ranges; ``depth_bound``:
    adder levels per row sum (before bias/negation), default minimum + ``slack``;
    ``mst_depths``: spanning-tree depths tried (1 = no decomposition)."""
    W = np.asarray(W, dtype=np.int64)
    bias = np.asarray(bias, dtype=np.int64)
    lo = np.asarray(in_lo, dtype=np.int64)
    hi = np.asarray(in_hi, dtype=np.int64)
    n_out, n_in = W.shape
    nnz = csd_weight(W).sum(axis=1)
    need = _ceil_log2(int(nnz.max())) if n_out else 0
    if depth_bound is not None:
        bounds = [max(int(depth_bound), need)]
    else:
        bounds = sorted({need, need + slack})
    widths = [bits_for(*_row_range(W[v], lo, hi)) for v in range(n_out)]
    out_width = int(np.median(widths)) if widths else 1
    big = int(nnz.sum()) > SEARCH_MAX_DIGITS
    best: Graph | None = None
    best_cost = None
    tried = []
    for bound in (bounds[-1:] if big else bounds):
        for h in (mst_depths[:1] if big else mst_depths):
            if h > 1 and (h - 1 > bound or n_out < 2 or (bound == need and len(bounds) > 1)):
                continue  # a spanning tree at the minimum depth rarely pays: tried with the slack only
            g = _build_one(W, bias, lo, hi, bound, h, out_width)
            c = graph_luts(g)
            tried.append(f"{h}/{bound}:{round(c)}")
            if best is None or c < best_cost:
                best, best_cost = g, c
    if best is not None and len(tried) > 1:
        best = replace(best, note=f"{best.note}; tried tree depth/adder depth:LUT {' '.join(tried)}")
    return best
