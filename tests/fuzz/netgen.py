"""Random *valid* integer networks for the whole-chain fuzzer (issue #17).

Driven by the op-spec table: :data:`GENERATORS` has one generator per op kind, and
:func:`uncovered_kinds` lists the registered kinds (``qat.ir.spec.op_kinds()``) that have
none, so a new op kind shows up as uncovered (tests/test_fuzz.py fails on it).

Generation uses ``hypothesis`` strategies: :func:`batches` draws one shared input (integer
of 1..16 or 33..48 bits, signed or unsigned, per-tensor or per-channel scale, binary, or a
minifloat in plain/OCP/FNUZ variants) and several independent sub-networks reading it; each
sub-network is a random chain/graph of ops over the pool of tensors built so far: every op
kind, widths 1..16+ and wide accumulators, all rounding and overflow modes, requant to
minifloat formats and code-level maxpool/clip/reshape/concat, binary layers with/without fused
thresholds, explicit/same/valid pads and strides, adds and concats of branches of unequal
pipeline depth, argmax with forced ties (a tensor concatenated with itself, saturating clips),
weights drawn at random, all at their extreme magnitude, all zero, +-1 or sparse.  Bulk arrays
come from a numpy generator seeded by a drawn integer (deterministic for a hypothesis seed).

:func:`wrap` joins the sub-networks into one network (one HLS C++ compile, one Verilator
build): each sub-network's output is requantized exactly (mult 1, shift 0) to a plain integer
(values wider than 40 bits are split into their low 32 bits, wrapped, and the rest), flattened
and concatenated; :class:`Batch` knows which output columns belong to which sub-network.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from hypothesis import strategies as st

from hls.rtl.minifloat_code import grid
from qat.ir import intervals
from qat.ir.network import OVERFLOW_MODES, ROUNDING_MODES, Input, Network, NetworkError, Op
from qat.ir.spec import op_kinds
from qat.ir.types import BinaryType, IntType, MinifloatType, TensorType, is_po2, type_for_range, unit_scale

MAX_ELEMS = 48        # largest tensor a sub-network builds (keeps builds small)
WIDE = (33, 36, 40, 48)
SCALES = (1.0, 0.5, 2.0 ** -3, 2.0 ** -7, 0.75, 3 * 2.0 ** -10, 5 * 2.0 ** -6)
MINIFLOATS = (
    MinifloatType(4, 3), MinifloatType(4, 3, variant="ocp"), MinifloatType(4, 3, variant="fnuz"),
    MinifloatType(5, 2), MinifloatType(5, 2, variant="ocp"), MinifloatType(5, 2, variant="fnuz"),
    MinifloatType(3, 2), MinifloatType(2, 3), MinifloatType(2, 1), MinifloatType(3, 1),
    MinifloatType(4, 3, bias=4), MinifloatType(3, 2, bias=0, variant="ocp"), MinifloatType(3, 2, bias=-4),
    MinifloatType(2, 2, variant="ocp"), MinifloatType(3, 3, variant="fnuz"),
)
WEIGHT_MODES = ("random", "random", "extreme", "extreme_mixed", "zero", "pm1", "sparse")


# ---- the pool of tensors of one sub-network ------------------------------------------------

class SubNet:
    """Ops of one sub-network over a shared input; ``feat`` records what was exercised."""

    def __init__(self, draw, prefix: str, inp: Input, seed: int):
        self.draw = draw
        self.prefix = prefix
        self.inp = inp
        self.rng = np.random.default_rng(seed)
        self.ops: list[Op] = []
        self.bounds = {inp.name: intervals.type_bounds(inp.type, tuple(inp.shape))}
        self.types: dict[str, TensorType] = {inp.name: inp.type}
        self.shapes: dict[str, tuple[int, ...]] = {inp.name: tuple(inp.shape)}
        self.depth: dict[str, int] = {inp.name: 0}
        self.feat: set[str] = set()

    # helpers
    def rint(self, lo: int, hi: int) -> int:
        """A random integer in [lo, hi] (any size)."""
        lo, hi = int(lo), int(hi)
        if hi - lo < 1 << 62:
            return lo + int(self.rng.integers(0, hi - lo + 1))
        return lo + int.from_bytes(self.rng.bytes(16), "little") % (hi - lo + 1)

    def name(self, kind: str) -> str:
        return f"{self.prefix}{kind}{len(self.ops)}"

    def add(self, kind: str, inputs: list[str], t: TensorType | None = None, attrs=None, arrays=None,
            scale=None, slack: bool = True, shape: tuple[int, ...] = ()) -> str | None:
        """Append an op; its type is ``t`` or the narrowest integer holding its proven range
        (with a few random spare bits).  Returns None when the op is not valid here."""
        arrays = {k: np.asarray(v) for k, v in (arrays or {}).items()}
        in_t = [self.types[i] for i in inputs]
        op = Op(self.name(kind), kind, list(inputs), tuple(shape), t or IntType(64, True), dict(attrs or {}), arrays,
                source=f"fuzz {kind}")
        try:
            intervals.check_op(op, in_t, [self.shapes[i] for i in inputs])
            b = intervals.op_bounds(op, [self.bounds[i] for i in inputs], in_t)
        except (NetworkError, ValueError, IndexError, KeyError, TypeError, OverflowError):
            return None
        shape = tuple(b.lo.shape)
        if int(np.prod(shape)) > MAX_ELEMS or 0 in shape or len(shape) == 0:
            return None
        if t is None:
            sc = in_t[0].scale if scale is None else scale
            if isinstance(in_t[0], MinifloatType) and scale is None:
                sc = tuple(float(v) for v in unit_scale(in_t[0]))
            t = type_for_range(b.min, b.max, sc)
            if slack and self.draw(st.integers(0, 3)) == 3:
                t = IntType(t.bits + self.draw(st.integers(1, 3)), True, t.scale)
                self.feat.add("slack_bits")
            op.type = t
        op.shape = shape
        if b.min < op.type.lo or b.max > op.type.hi:
            return None
        self.ops.append(op)
        self.bounds[op.name], self.types[op.name], self.shapes[op.name] = b, op.type, shape
        self.depth[op.name] = max(self.depth[i] for i in inputs) + 1
        self.feat.add(kind)
        return op.name

    def pick(self, pred) -> str | None:
        cands = [n for n in self.types if pred(self.types[n], self.shapes[n])]
        if not cands:
            return None
        return self.draw(st.sampled_from(sorted(cands, key=lambda n: list(self.types).index(n))))

    def weights(self, shape: tuple[int, ...]) -> np.ndarray:
        mode = self.draw(st.sampled_from(WEIGHT_MODES))
        bits = self.draw(st.one_of(st.integers(1, 8), st.sampled_from([12, 16, 20])))
        m = (1 << (bits - 1)) if bits > 1 else 1
        self.feat.add(f"weights_{mode}")
        if mode == "zero":
            return np.zeros(shape, np.int64)
        if mode == "pm1":
            return self.rng.choice(np.array([-1, 1]), size=shape)
        if mode == "extreme":
            return np.full(shape, self.draw(st.sampled_from([m, -m, m - 1, -(m - 1) or 1])), np.int64)
        if mode == "extreme_mixed":
            return self.rng.choice(np.array([-m, m - 1 if m > 1 else m]), size=shape)
        w = self.rng.integers(-m, m, size=shape, endpoint=True)
        if mode == "sparse":
            w[self.rng.random(shape) < 0.7] = 0
        return w.astype(np.int64)

    def bias(self, n: int) -> np.ndarray:
        mode = self.draw(st.sampled_from(["zero", "small", "big", "extreme"]))
        if mode == "zero":
            return np.zeros(n, np.int64)
        mag = {"small": 8, "big": 1 << 12, "extreme": 1 << 20}[mode]
        if mode == "extreme":
            return self.rng.choice(np.array([-mag, mag]), size=n)
        return self.rng.integers(-mag, mag, size=n, endpoint=True)

    def out_scale(self, c: int, per_channel_ok: bool = True):
        if per_channel_ok and c > 1 and self.draw(st.integers(0, 3)) == 0:
            self.feat.add("per_channel_scale")
            pool = SCALES if self.draw(st.integers(0, 3)) == 0 else tuple(v for v in SCALES if is_po2(v))
            return tuple(self.rng.choice(np.array(pool), size=c))
        return (self.draw(st.sampled_from(SCALES)),)

    def padding(self, dims: int, kernel: tuple[int, int], allow_explicit: bool = True, pads_only: bool = True):
        """``pads_only``: a window may cover padding alone (convolutions); maxpool needs pad < pool."""
        opts = ["valid", "same"] + (["explicit"] if allow_explicit else [])
        p = self.draw(st.sampled_from(opts))
        self.feat.add(f"pad_{p}")
        if p != "explicit":
            return p
        top = [kernel[a] - 1 if kernel[a] > 1 or not pads_only else 1 for a in range(2)]
        pairs = [[self.draw(st.integers(0, top[a])), self.draw(st.integers(0, top[a]))] for a in range(2 - dims, 2)]
        return pairs


def single_scale(t: TensorType) -> bool:
    return len(set(t.scale)) == 1


# ---- one generator per op kind: (subnet) -> new tensor name or None ---------------------------

def g_dense(s: SubNet):
    src = s.pick(lambda t, sh: single_scale(t))
    if src is None:
        return None
    c, co = s.shapes[src][-1], s.draw(st.integers(1, 5))
    sc = (float(unit_scale(s.types[src])[0]) * s.draw(st.sampled_from([1.0, 2.0 ** -3, 0.375])),)
    return s.add("dense", [src], arrays={"weight": s.weights((c, co)), "bias": s.bias(co)}, scale=sc)


def _conv(s: SubNet, kind: str):
    rank = 2 if kind == "conv1d" else 3
    src = ranked(s, rank, lambda t, sh: single_scale(t))
    if src is None:
        return None
    sh = s.shapes[src]
    dims = rank - 1
    kh = 1 if dims == 1 else s.draw(st.integers(1, 3))
    kw = s.draw(st.integers(1, 3))
    co = s.draw(st.integers(1, 3))
    strides = [s.draw(st.integers(1, 2)) for _ in range(dims)]
    pad = s.padding(dims, (kh, kw))
    s.feat.add(f"{kind}_stride{max(strides)}")
    wshape = (kw, sh[-1], co) if dims == 1 else (kh, kw, sh[-1], co)
    return s.add(kind, [src], attrs={"strides": strides, "padding": pad},
                 arrays={"weight": s.weights(wshape), "bias": s.bias(co)},
                 scale=(float(unit_scale(s.types[src])[0]) * 0.25,))


def g_conv1d(s: SubNet):
    return _conv(s, "conv1d")


def g_conv2d(s: SubNet):
    return _conv(s, "conv2d")


def _binary_arrays(s: SubNet, n: int, co: int) -> tuple[dict, TensorType | None]:
    arrays = {"weight": s.rng.integers(0, 2, size=None)}  # replaced by the caller
    if s.draw(st.booleans()):
        th = s.rng.integers(-n - 2, n + 3, size=co)
        d = s.rng.choice(np.array([-1, 1]), size=co)
        s.feat.add("binary_fused_threshold")
        arrays.update(threshold=th, direction=d)
        return arrays, BinaryType()
    s.feat.add("binary_popcount_out")
    return arrays, None


def g_bdense(s: SubNet):
    src = s.pick(lambda t, sh: isinstance(t, BinaryType))
    if src is None:
        return None
    c, co = s.shapes[src][-1], s.draw(st.integers(1, 5))
    arrays, t = _binary_arrays(s, c, co)
    arrays["weight"] = _bits(s, (c, co))
    return s.add("bdense", [src], t, arrays=arrays)


def _bits(s: SubNet, shape) -> np.ndarray:
    mode = s.draw(st.sampled_from(["random", "ones", "zeros"]))
    s.feat.add(f"bits_{mode}")
    if mode == "ones":
        return np.ones(shape, np.int64)
    if mode == "zeros":
        return np.zeros(shape, np.int64)
    return s.rng.integers(0, 2, size=shape)


def g_bconv2d(s: SubNet):
    src = ranked(s, 3, lambda t, sh: isinstance(t, BinaryType))
    if src is None:
        return None
    h, w, c = s.shapes[src]
    kh, kw = s.draw(st.integers(1, min(3, h))), s.draw(st.integers(1, min(3, w)))
    co = s.draw(st.integers(1, 3))
    arrays, t = _binary_arrays(s, kh * kw * c, co)
    arrays["weight"] = _bits(s, (kh, kw, c, co))
    strides = [s.draw(st.integers(1, 2)), s.draw(st.integers(1, 2))]
    return s.add("bconv2d", [src], t, attrs={"strides": strides, "padding": "valid"}, arrays=arrays)


def _pool(s: SubNet, kind: str):
    src = ranked(s, s.draw(st.sampled_from([2, 3])), lambda t, sh: True)
    if src is None:
        return None
    sh = s.shapes[src]
    dims = len(sh) - 1
    pool = [s.draw(st.integers(1, 3)) for _ in range(dims)]
    strides = [s.draw(st.integers(1, 2)) for _ in range(dims)]
    if kind == "maxpool":
        pad = s.padding(dims, (pool[0] if dims == 2 else 1, pool[-1]), pads_only=False)
        t = s.types[src] if not isinstance(s.types[src], IntType) or s.draw(st.booleans()) else None
    else:
        pad, t = "valid", None
    return s.add(kind, [src], t, attrs={"pool": pool, "strides": strides, "dims": dims, "padding": pad})


def g_maxpool(s: SubNet):
    return _pool(s, "maxpool")


def g_avgpool(s: SubNet):
    return _pool(s, "avgpool")


def _factor_shapes(n: int) -> list[tuple[int, ...]]:
    out = [(n,)]
    for a in range(1, n + 1):
        if n % a == 0:
            out.append((a, n // a))
            for b in range(1, n // a + 1):
                if (n // a) % b == 0:
                    out.append((a, b, n // a // b))
    return out


def g_reshape(s: SubNet):
    src = s.pick(lambda t, sh: True)
    if src is None:
        return None
    n = int(np.prod(s.shapes[src]))
    shape = s.draw(st.sampled_from(_factor_shapes(n)))
    return s.add("reshape", [src], s.types[src], attrs={"shape": list(shape)}, shape=shape)


def ranked(s: SubNet, rank: int, pred) -> str | None:
    """A tensor of ``rank`` satisfying ``pred``, reshaping one into that rank when none exists."""
    src = s.pick(lambda t, sh: pred(t, sh) and len(sh) == rank)
    if src is not None:
        return src
    src = s.pick(pred)
    if src is None:
        return None
    n = int(np.prod(s.shapes[src]))
    shape = s.draw(st.sampled_from([f for f in _factor_shapes(n) if len(f) == rank]))
    return s.add("reshape", [src], s.types[src], attrs={"shape": list(shape)}, shape=shape)


def _concat_type(s: SubNet, srcs: list[str]) -> TensorType | None:
    ts = [s.types[i] for i in srcs]
    if all(isinstance(t, BinaryType) for t in ts) and s.draw(st.booleans()):
        return BinaryType()
    if all(isinstance(t, MinifloatType) for t in ts):
        fmt = {(t.exp_bits, t.man_bits, t.bias, t.variant) for t in ts}
        if len(fmt) == 1 and s.draw(st.booleans()):
            return ts[0]
    lo = min(int(s.bounds[i].min) for i in srcs)
    hi = max(int(s.bounds[i].max) for i in srcs)
    scales = []
    for i in srcs:
        scales += list(np.broadcast_to(unit_scale(s.types[i]), (s.shapes[i][-1],)))
    sc = tuple(float(v) for v in scales) if len(set(scales)) > 1 else (float(scales[0]),)
    return type_for_range(lo, hi, sc)


def g_concat(s: SubNet):
    a = s.pick(lambda t, sh: True)
    if a is None:
        return None
    lead = s.shapes[a][:-1]
    if s.draw(st.integers(0, 2)) == 0:
        srcs = [a, a]  # duplicated channels: argmax ties at the maximum
        s.feat.add("concat_self")
    else:
        b = s.pick(lambda t, sh: sh[:-1] == lead)
        srcs = [a, b]
        if s.draw(st.integers(0, 3)) == 0:
            srcs.append(s.pick(lambda t, sh: sh[:-1] == lead))
    if len({s.depth[i] for i in srcs}) > 1:
        s.feat.add("concat_unequal_depth")
    return s.add("concat", srcs, _concat_type(s, srcs))


def _branch(s: SubNet, a: str) -> str | None:
    """A same-shape, same-unit-scale tensor computed from ``a`` (a requant, maybe a clip)."""
    t = s.types[a]
    us = tuple(float(v) for v in unit_scale(t))
    b = s.bounds[a]
    bits = s.draw(st.integers(2, 12))
    lo, hi = int(b.min), int(b.max)
    need = type_for_range(min(lo, 0), max(hi, 0), us).bits
    ot = IntType(min(bits, need + 1) if s.draw(st.booleans()) else need + 1, True, us)
    r = s.add("requant", [a], ot, attrs={"rounding": s.draw(st.sampled_from(ROUNDING_MODES))},
              arrays={"mult": np.array(1), "shift": np.array(0)})
    if r is not None and s.draw(st.booleans()):
        r2 = s.add("clip", [r], None, attrs={"lo": ot.lo // 2, "hi": ot.hi // 2}, scale=us)
        r = r2 or r
    return r


def g_add(s: SubNet):
    a = s.pick(lambda t, sh: True)
    if a is None:
        return None
    ua = unit_scale(s.types[a])
    peers = [n for n in s.types if s.shapes[n] == s.shapes[a] and n != a and
             unit_scale(s.types[n]).shape == ua.shape and bool(np.all(unit_scale(s.types[n]) == ua))]
    if peers and s.draw(st.booleans()):
        b = s.draw(st.sampled_from(sorted(peers)))
    else:
        b = _branch(s, a)
        if b is None:
            return None
    srcs = [a, b] + ([b] if s.draw(st.integers(0, 3)) == 0 else [])
    if len({s.depth[i] for i in srcs}) > 1:
        s.feat.add("add_unequal_depth")
    return s.add("add", srcs, None, scale=tuple(float(v) for v in ua))


def g_clip(s: SubNet):
    src = s.pick(lambda t, sh: not isinstance(t, BinaryType))
    if src is None:
        return None
    t, b = s.types[src], s.bounds[src]
    if isinstance(t, MinifloatType):
        g = grid(t)
        lo, hi = sorted(int(v) for v in s.rng.choice(g, size=2))
        if s.draw(st.booleans()):
            lo = 0  # ReLU on codes
            hi = max(hi, 0)
        s.feat.add("clip_minifloat")
        return s.add("clip", [src], t, attrs={"lo": lo, "hi": hi})
    span = max(int(b.max) - int(b.min), 1)
    lo = int(b.min) + s.rint(-2, span // 2)
    hi = lo + s.rint(0, span + 1)
    if s.draw(st.integers(0, 2)) == 0:
        lo = 0  # ReLU
        hi = max(hi, 0)
    return s.add("clip", [src], None, attrs={"lo": lo, "hi": hi})


def g_requant(s: SubNet):
    src = s.pick(lambda t, sh: True)
    if src is None:
        return None
    b, c = s.bounds[src], s.shapes[src][-1]
    span = max(abs(int(b.min)), abs(int(b.max)), 1)
    to_mf = s.draw(st.integers(0, 3)) == 0
    rounding = s.draw(st.sampled_from(ROUNDING_MODES))
    overflow = "saturate" if to_mf else s.draw(st.sampled_from(OVERFLOW_MODES))
    per_ch = c > 1 and s.draw(st.booleans())
    n = c if per_ch else 1
    mmode = s.draw(st.sampled_from(["one", "small", "dyadic"]))
    if mmode == "one":
        mult = np.ones(n, np.int64)
    elif mmode == "small":
        mult = s.rng.integers(1, 16, size=n)
    else:
        mult = s.rng.integers(1 << 29, 1 << 31, size=n)
    if to_mf:
        t = s.draw(st.sampled_from(MINIFLOATS))
        t = MinifloatType(t.exp_bits, t.man_bits, t.bias, t.variant, s.out_scale(c))
        target = t.max_units
        s.feat.add(f"requant_to_{t.variant}_e{t.exp_bits}m{t.man_bits}")
    else:
        bits = s.draw(st.one_of(st.integers(1, 16), st.sampled_from(WIDE)))
        signed = s.draw(st.booleans()) and bits >= 2 or bits == 1 and False
        if bits == 1:
            signed = False
        t = IntType(bits, signed, s.out_scale(c))
        target = max(t.hi, 1)
        s.feat.add(f"requant_int{'wide' if bits > 32 else ''}")
    s.feat.add(f"round_{rounding}")
    s.feat.add(f"overflow_{overflow}")
    shift = np.array([int(np.ceil(np.log2(span * int(m) / target))) for m in mult]) + \
        s.rng.integers(-2, 3, size=n)
    if s.draw(st.integers(0, 4)) == 0:
        shift = shift - 40 if span < 1 << 20 else shift  # far left shifts: wide products
        s.feat.add("requant_left_shift")
    attrs = {"rounding": rounding, "overflow": overflow}
    if not to_mf and overflow == "saturate" and s.draw(st.integers(0, 3)) == 0:
        lo = s.rint(t.lo, t.hi)
        attrs["lo"], attrs["hi"] = lo, s.rint(lo, t.hi)
        s.feat.add("requant_window")
    mult = mult if per_ch else mult[:1].reshape(())
    shift = shift if per_ch else shift[:1].reshape(())
    return s.add("requant", [src], t, attrs=attrs, arrays={"mult": mult, "shift": shift})


def g_threshold(s: SubNet):
    src = s.pick(lambda t, sh: True)
    if src is None:
        return None
    b, c = s.bounds[src], s.shapes[src][-1]
    lo, hi = max(int(b.min), -(1 << 60)), min(int(b.max), 1 << 60)
    to_bin = s.draw(st.integers(0, 2)) == 0
    levels = 1 if to_bin else s.draw(st.integers(1, 4))
    rows = c if s.draw(st.booleans()) else 1
    th = np.sort(s.rng.integers(lo - 2, hi + 3, size=(rows, levels)), axis=1)
    if to_bin:
        d = s.rng.choice(np.array([-1, 1]), size=c)
        return s.add("threshold", [src], BinaryType(), attrs={"step": 2},
                     arrays={"thresholds": th, "base": -d, "direction": d})
    step = s.draw(st.sampled_from([1, 2, 3, 4]))
    base = s.rng.integers(-5, 6, size=c)
    d = s.rng.choice(np.array([-1, 1]), size=c)
    return s.add("threshold", [src], None, attrs={"step": step},
                 arrays={"thresholds": th, "base": base, "direction": d}, scale=(1.0,))


def g_lut(s: SubNet):
    src = s.pick(lambda t, sh: t.hi - t.lo <= 600)
    if src is None:
        return None
    t = s.types[src]
    spare = s.draw(st.integers(0, 2))
    size = t.hi - t.lo + 1 + spare + s.draw(st.integers(0, 2))
    mag = 1 << s.draw(st.integers(0, 12))
    table = s.rng.integers(-mag, mag + 1, size=size) if s.draw(st.booleans()) else \
        s.rng.integers(0, mag + 1, size=size)
    return s.add("lut", [src], None, attrs={"in_lo": int(t.lo - spare)}, arrays={"table": table}, scale=(1.0,))


def g_argmax(s: SubNet):
    src = s.pick(lambda t, sh: True)
    if src is None:
        return None
    if s.draw(st.integers(0, 2)) == 0:  # forced ties: the tensor twice, or a saturating clip first
        if s.draw(st.booleans()) and not isinstance(s.types[src], BinaryType):
            b = s.bounds[src]
            mid = (int(b.min) + int(b.max)) // 2
            t = s.types[src]
            if isinstance(t, MinifloatType):
                clip = None
            else:
                clip = s.add("clip", [src], None, attrs={"lo": int(b.min), "hi": mid})
            src = clip or src
        else:
            cat = s.add("concat", [src, src], _concat_type(s, [src, src]))
            src = cat or src
        s.feat.add("argmax_forced_ties")
    c = s.shapes[src][-1]
    if not single_scale(s.types[src]):
        if not is_po2(s.types[src].scale):
            return None  # documented: the RTL compares per-channel scales only when they are powers of two
        s.feat.add("argmax_per_channel_scale")
    bits = max(int(c - 1).bit_length(), 1) + s.draw(st.integers(0, 1))
    return s.add("argmax", [src], IntType(bits, False), attrs={})


GENERATORS = {"dense": g_dense, "conv1d": g_conv1d, "conv2d": g_conv2d, "bdense": g_bdense,
              "bconv2d": g_bconv2d, "maxpool": g_maxpool, "avgpool": g_avgpool, "reshape": g_reshape,
              "concat": g_concat, "add": g_add, "clip": g_clip, "requant": g_requant, "threshold": g_threshold,
              "lut": g_lut, "argmax": g_argmax}


def uncovered_kinds() -> list[str]:
    """Registered op kinds the fuzzer cannot generate (a new kind needs a generator here)."""
    return [k for k in op_kinds() if k not in GENERATORS]


# ---- inputs, sub-networks, batches ----------------------------------------------------------

@st.composite
def input_types(draw) -> TensorType:
    kind = draw(st.sampled_from(["int", "int", "int", "wide", "binary", "binary", "minifloat"]))
    if kind == "binary":
        return BinaryType((draw(st.sampled_from(SCALES)),))
    if kind == "minifloat":
        return draw(st.sampled_from(MINIFLOATS))
    bits = draw(st.integers(1, 16)) if kind == "int" else draw(st.sampled_from(WIDE))
    signed = bits >= 2 and draw(st.booleans())
    return IntType(bits, signed, (draw(st.sampled_from(SCALES)),))


@st.composite
def input_shapes(draw) -> tuple[int, ...]:
    rank = draw(st.integers(1, 3))
    if rank == 1:
        return (draw(st.integers(1, 12)),)
    if rank == 2:
        return (draw(st.integers(1, 7)), draw(st.integers(1, 3)))
    return (draw(st.integers(1, 5)), draw(st.integers(1, 5)), draw(st.integers(1, 2)))


def subnet(draw, prefix: str, inp: Input, max_ops: int = 6) -> SubNet:
    """One random sub-network reading ``inp`` (at least one op; its last op is its output)."""
    s = SubNet(draw, prefix, inp, draw(st.integers(0, 2 ** 32 - 1)))
    target = draw(st.integers(1, max_ops))
    kinds = sorted(GENERATORS, key=list(op_kinds()).index)
    tries = 0
    while len(s.ops) < target and tries < 4 * max_ops:
        tries += 1
        kind = draw(st.sampled_from(kinds))
        before = len(s.ops)
        out = GENERATORS[kind](s)
        if out is None:
            del s.ops[before:]  # a helper op of a failed attempt
            for d in (s.bounds, s.types, s.shapes, s.depth):
                for k in [k for k in d if k.startswith(prefix) and k not in {o.name for o in s.ops}]:
                    del d[k]
    if not s.ops:  # an op that always fits
        s.add("requant", [inp.name], IntType(8, True), attrs={"rounding": "half_even"},
              arrays={"mult": np.array(1), "shift": np.array(0)})
    return s


@dataclass
class Part:
    """One sub-network inside a batch: its network and its output columns in the wrapper."""

    net: Network
    cols: list[tuple[int, int, str]] = field(default_factory=list)  # (start, stop, what)
    feat: set[str] = field(default_factory=set)


@dataclass
class Batch:
    net: Network
    parts: list[Part]


def _subnet_network(s: SubNet, name: str) -> Network:
    out = s.ops[-1].name
    return Network(name, [s.inp], list(s.ops), [out])


@st.composite
def batches(draw, n_nets: int = 8, max_ops: int = 6):
    """A :class:`Batch`: one shared input and ``n_nets`` random sub-networks, wrapped."""
    t = draw(input_types())
    shape = draw(input_shapes())
    if not single_scale(t) or len(shape) == 0:
        pass
    inp = Input("x", shape, t)
    subs = [subnet(draw, f"n{k}_", inp, max_ops) for k in range(n_nets)]
    return wrap([(_subnet_network(s, f"fz_n{k}"), s.feat) for k, s in enumerate(subs)], inp)


def wrap(nets: list[tuple[Network, set]], inp: Input, name: str = "fuzz_batch") -> Batch:
    """Join networks over the same input into one network with one flat integer output."""
    bounds = {inp.name: intervals.type_bounds(inp.type, tuple(inp.shape))}
    types: dict[str, TensorType] = {inp.name: inp.type}
    ops: list[Op] = []
    parts, flats = [], []
    col = 0
    for net, feat in nets:
        b = intervals.analyze(net)
        have = {op.name for op in ops}
        ops += [op for op in net.ops if op.name not in have]  # nets may share ops (shrink's tap network)
        for op in net.ops:
            bounds[op.name], types[op.name] = b[op.name], op.type
        o = net.outputs[0]
        lo, hi = int(b[o].min), int(b[o].max)
        n = int(np.prod(net.op(o).shape))
        part = Part(net, [], set(feat))
        pieces = []
        if max(abs(lo), abs(hi)).bit_length() <= 39:
            pieces.append(("all", IntType(max(type_for_range(lo, hi, (1.0,)).bits, 2), True), {"rounding": "floor"},
                           0))
        else:
            pieces.append(("low32", IntType(32, True), {"rounding": "floor", "overflow": "wrap"}, 0))
            hl, hh = lo >> 32, hi >> 32
            pieces.append(("high", IntType(max(type_for_range(hl, hh, (1.0,)).bits, 2), True),
                           {"rounding": "floor"}, 32))
        for what, t, attrs, shift in pieces:
            rq = Op(f"{o}__{what}", "requant", [o], tuple(net.op(o).shape), t, attrs,
                    {"mult": np.array(1), "shift": np.array(shift)}, source="fuzz wrapper")
            ops.append(rq)
            fl = Op(f"{o}__{what}_flat", "reshape", [rq.name], (n,), t, {"shape": [n]}, {}, source="fuzz wrapper")
            ops.append(fl)
            flats.append(fl)
            part.cols.append((col, col + n, what))
            col += n
        parts.append(part)
    if len(flats) == 1:
        out = flats[0].name
    else:
        lo = min(f.type.lo for f in flats)
        hi = max(f.type.hi for f in flats)
        cat = Op("fuzz_out", "concat", [f.name for f in flats], (col,), type_for_range(lo, hi, (1.0,)), {}, {},
                 source="fuzz wrapper")
        ops.append(cat)
        out = cat.name
    net = Network(name, [inp], ops, [out])
    intervals.validate(net)
    return Batch(net, parts)


def vectors(net: Network, n: int, seed: int = 0) -> np.ndarray:
    """Edge vectors, uniform random ones (rtl_sim.vectors), and for narrow integer inputs every
    value on every element (ties and saturation limits are hit)."""
    from rtl_sim.vectors import random_vectors

    x = random_vectors(net, n, seed)
    t = net.inputs[0].type
    if isinstance(t, IntType) and t.hi - t.lo < 512:
        sweep = np.arange(t.lo, t.hi + 1)
        size = int(np.prod(net.inputs[0].shape))
        rows = np.stack([np.roll(sweep, k) for k in range(size)], axis=1)
        x = np.concatenate([np.asarray(x).astype(object), rows.reshape((-1,) + tuple(net.inputs[0].shape))
                            .astype(object)])
        x = x.astype(np.int64)
    return x
