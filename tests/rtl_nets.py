"""Small integer networks for the RTL tests, built directly from
qat.ir.network.Op/Input/Network with random weights from fixed seeds.

Each network combines several op kinds so that a handful of Verilator builds
covers every op the generator supports:

* ``cnn2d``: conv2d (same/valid, stride 1 and 2, odd and even sizes,
  non-square kernels), maxpool 2D (same/valid), requant, a two-branch add
  whose inputs have different pipeline depths, avgpool 2D, reshape, dense,
  argmax;
* ``seq1d``: unsigned input, conv1d (same/valid, stride 1 and 2, odd and even
  kernels), clip (ReLU to an unsigned type, and a signed window), requant on
  an unsigned tensor, maxpool 1D (same/valid), concat of branches of
  different depths, avgpool 1D, multi-level threshold (both directions,
  step 2), lut;
* ``requant_bank``: every rounding mode, saturate (type range and narrower
  lo/hi) and wrap (signed and unsigned), per-channel mult/shift with dyadic
  multipliers near 2^30 and negative shifts, scalar mult/shift, all
  concatenated;
* ``binary``: bconv2d (stride 1 and 2) and bdense with and without
  per-channel threshold/direction (both directions, thresholds that are
  always on or off), threshold ops with binary outputs (both directions),
  binary reshape and concat, and integer ops (maxpool with a binary output,
  conv2d, dense) on binary tensors;
* ``branch``: a three-input add of branches with depths 4, 2 and 2, concat
  with the (undelayed) network input, clip, lut, a threshold with step 3 (not a power of two),
  requant to per-channel power-of-two scales, argmax.
"""
from __future__ import annotations

import numpy as np

from qat.ir import intervals
from qat.ir.network import Input, Network, Op
from qat.ir.types import BinaryType, IntType, TensorType, type_for_range

ROUNDINGS = ("half_even", "half_up", "half_away", "floor", "toward_zero")


class Builder:
    """Appends ops one at a time; shapes come from the interval analysis and,
    unless given, the type is the narrowest integer holding the proven range."""

    def __init__(self, name: str, shape: tuple[int, ...], t: TensorType, seed: int):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.inp = Input("x", tuple(shape), t)
        self.ops: list[Op] = []
        self.bounds = {"x": intervals.type_bounds(t, tuple(shape))}
        self.types: dict[str, TensorType] = {"x": t}

    def add(self, name: str, kind: str, inputs: list[str], t: TensorType | None = None, scale=None,
            **kw) -> str:
        attrs = kw.pop("attrs", {})
        arrays = kw.pop("arrays", {})
        assert not kw, kw
        arrays = {k: np.asarray(v) for k, v in arrays.items()}
        in_t = [self.types[i] for i in inputs]
        op = Op(name, kind, list(inputs), (), in_t[0], attrs, arrays, source=f"test {kind}")
        b = intervals.op_bounds(op, [self.bounds[i] for i in inputs], in_t)
        op.shape = tuple(b.lo.shape)
        if t is None:
            sc = in_t[0].scale if scale is None else scale
            t = type_for_range(b.min, b.max, sc)
        op.type = t
        self.ops.append(op)
        self.bounds[name], self.types[name] = b, t
        return name

    def weights(self, shape, lo: int, hi: int, zero_frac: float = 0.2) -> np.ndarray:
        w = self.rng.integers(lo, hi + 1, size=shape)
        w[self.rng.random(shape) < zero_frac] = 0
        return w.astype(np.int64)

    def bias(self, n: int, mag: int) -> np.ndarray:
        return self.rng.integers(-mag, mag + 1, size=n).astype(np.int64)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.bounds[name].lo.shape)

    def channels(self, name: str) -> int:
        return self.shape(name)[-1]

    def requant_to(self, name: str, src: str, bits: int, signed: bool = True, scale=(1.0,), rounding="half_even",
                   overflow="saturate", lo=None, hi=None, mult=None, shift=None, ch_scale=None) -> str:
        """Requantize ``src`` to intN/uintN; mult/shift default to a per-channel
        choice that maps the proven range onto the output range roughly."""
        c = self.channels(src)
        b = self.bounds[src]
        if mult is None or shift is None:
            span = max(abs(b.min), abs(b.max), 1)
            target = (1 << (bits - 1)) if signed else (1 << bits)
            mult = self.rng.integers(1, 8, size=c) * 2 + 1  # odd 3..15
            shift = np.array([max(0, int(np.ceil(np.log2(span * m / target))) + int(self.rng.integers(-1, 2)))
                              for m in mult])
        attrs = {"rounding": rounding, "overflow": overflow}
        if lo is not None:
            attrs["lo"], attrs["hi"] = int(lo), int(hi)
        t = IntType(bits, signed, ch_scale if ch_scale is not None else scale)
        return self.add(name, "requant", [src], t, arrays={"mult": np.asarray(mult, np.int64),
                                                            "shift": np.asarray(shift, np.int64)}, attrs=attrs)

    def network(self, output: str) -> Network:
        net = Network(self.name, [self.inp], list(self.ops), [output])
        intervals.validate(net)
        return net


# ---- the networks --------------------------------------------------------------------

def cnn2d(seed: int = 11) -> Network:
    nb = Builder("cnn2d", (7, 6, 2), IntType(4, True, (2.0 ** -3,)), seed)
    s = (2.0 ** -4,)
    conv = lambda name, src, k, st, pad, co: nb.add(  # noqa: E731
        name, "conv2d", [src], attrs={"strides": list(st), "padding": pad},
        arrays={"weight": nb.weights(k + (nb.channels(src), co), -7, 7), "bias": nb.bias(co, 20)})
    # branch A: 7x6 -> same s1 (3x2 kernel) -> maxpool same 2x2/2 (odd H) -> same s2 (even H, odd W)
    conv("c_same_s1", "x", (3, 2), (1, 1), "same", 3)
    nb.requant_to("r1", "c_same_s1", 4, rounding="half_even")
    nb.add("p_same", "maxpool", ["r1"], attrs={"pool": [2, 2], "strides": [2, 2], "padding": "same", "dims": 2})
    conv("c_same_s2", "p_same", (3, 3), (2, 2), "same", 4)
    nb.requant_to("r2", "c_same_s2", 5, scale=s, rounding="half_up")
    # branch B: valid s2 (3x2 kernel, odd H, even W) -> maxpool valid 2x2/1
    conv("c_valid_s2", "x", (3, 2), (2, 2), "valid", 4)
    nb.requant_to("r3", "c_valid_s2", 5, scale=s, rounding="toward_zero")
    nb.add("p_valid", "maxpool", ["r3"], attrs={"pool": [2, 2], "strides": [1, 1], "padding": "valid", "dims": 2})
    assert nb.shape("p_valid") == nb.shape("r2") == (2, 2, 4)
    nb.add("sum", "add", ["r2", "p_valid"])  # depths 5 and 3: the short branch is delayed
    # even-size valid stride-1 conv
    conv("c_valid_s1", "sum", (2, 1), (1, 1), "valid", 3)
    nb.requant_to("r4", "c_valid_s1", 6, scale=s, rounding="floor")
    nb.add("avg", "avgpool", ["r4"], attrs={"pool": [1, 2], "strides": [1, 1], "padding": "valid", "dims": 2})
    _reshape(nb, "flat", "avg", (3,))
    nb.add("fc", "dense", ["flat"], arrays={"weight": nb.weights((3, 5), -9, 9, 0.1), "bias": nb.bias(5, 30)})
    nb.add("cls", "argmax", ["fc"], scale=(1.0,))
    return nb.network("cls")


def _reshape(nb: Builder, name: str, src: str, shape: tuple[int, ...]) -> str:
    op = Op(name, "reshape", [src], tuple(shape), nb.types[src], {"shape": list(shape)}, {}, source="test reshape")
    nb.ops.append(op)
    b = nb.bounds[src]
    nb.bounds[name] = intervals.Bounds(b.lo.reshape(shape), b.hi.reshape(shape))
    nb.types[name] = nb.types[src]
    return name


def seq1d(seed: int = 12) -> Network:
    nb = Builder("seq1d", (9, 3), IntType(5, False, (2.0 ** -5,)), seed)
    conv = lambda name, src, k, st, pad, co: nb.add(  # noqa: E731
        name, "conv1d", [src], attrs={"strides": [st], "padding": pad},
        arrays={"weight": nb.weights((k, nb.channels(src), co), -6, 6), "bias": nb.bias(co, 40)})
    conv("c_same_s1", "x", 3, 1, "same", 4)                       # odd length, odd kernel
    nb.add("relu", "clip", ["c_same_s1"], t=IntType(9, False, (2.0 ** -5,)), attrs={"lo": 0, "hi": 400})
    conv("c_same_s2", "relu", 4, 2, "same", 4)                     # even kernel, stride 2: uneven padding
    nb.requant_to("r2", "c_same_s2", 6, rounding="floor")
    nb.add("mp_same", "maxpool", ["r2"], attrs={"pool": [3], "strides": [2], "padding": "same", "dims": 1})
    conv("c_valid_s2", "x", 2, 2, "valid", 4)                      # even kernel, valid, stride 2
    nb.add("win", "clip", ["c_valid_s2"], attrs={"lo": -60, "hi": 90})
    nb.requant_to("r3", "win", 6, rounding="half_away")
    nb.add("mp_valid", "maxpool", ["r3"], attrs={"pool": [2], "strides": [1], "padding": "valid", "dims": 1})
    assert nb.shape("mp_same") == nb.shape("mp_valid") == (3, 4), (nb.shape("mp_same"), nb.shape("mp_valid"))
    nb.add("cat", "concat", ["mp_same", "mp_valid"])               # depths 5 and 4
    nb.add("avg", "avgpool", ["cat"], attrs={"pool": [2], "strides": [1], "padding": "valid", "dims": 1})
    c = nb.channels("avg")
    b = nb.bounds["avg"]
    lo, hi = b.min, b.max
    th = np.sort(nb.rng.integers(lo - 3, hi + 3, size=(c, 3)), axis=1)
    th[0] = [lo - 10, lo - 5, lo + 1]  # two thresholds always passed
    th[1] = [hi + 1, hi + 2, hi + 3]   # never passed
    base = nb.rng.integers(-3, 4, size=c)
    dirs = np.where(np.arange(c) % 2 == 0, 1, -1)
    nb.add("thr", "threshold", ["avg"], attrs={"step": 2},
           arrays={"thresholds": th, "base": base, "direction": dirs})
    tt = nb.types["thr"]  # the table must cover the input type's range (2 spare entries each side)
    in_lo = tt.lo - 2
    table = nb.rng.integers(-100, 101, size=tt.hi - tt.lo + 5)
    nb.add("lut", "lut", ["thr"], attrs={"in_lo": int(in_lo)}, arrays={"table": table})
    return nb.network("lut")


DYADIC = (1518500249, 1073741827, 1779033703, 1431655765)  # ~2^30 .. 2^31, odd and even


def requant_bank(seed: int = 13) -> Network:
    """Every rounding mode x (saturate to the type, saturate to a narrower
    window, wrap) on four channels: small mult/shift (many exact ties), a
    dyadic multiplier ~2^30 with a large shift, a left shift (negative
    shift), and mult 1 with shift 1; and left shifts that make 74-bit products."""
    nb = Builder("requant_bank", (4,), IntType(10, True, (2.0 ** -6,)), seed)
    mult = np.array([3, DYADIC[0], 5, 1], np.int64)
    shift = np.array([3, 31, -2, 1], np.int64)
    names = []
    for r in ROUNDINGS:
        names.append(nb.requant_to(f"sat_{r}", "x", 8, rounding=r, mult=mult, shift=shift))
        names.append(nb.requant_to(f"win_{r}", "x", 8, rounding=r, lo=-50, hi=60, mult=mult, shift=shift))
        names.append(nb.requant_to(f"wrap_{r}", "x", 6, rounding=r, overflow="wrap", mult=mult, shift=shift))
    # unsigned outputs: saturate to [0, 31] and wrap modulo 32; scalar mult/shift
    names.append(nb.requant_to("usat", "x", 5, signed=False, rounding="half_even", mult=np.array(DYADIC[1]),
                               shift=np.array(33)))
    names.append(nb.requant_to("uwrap", "x", 5, signed=False, rounding="half_up", overflow="wrap",
                               mult=np.array([7, DYADIC[2], 1, DYADIC[3]]), shift=np.array([2, 31, -3, 34])))
    names.append(nb.requant_to("identity", "x", 10, rounding="floor", mult=np.array(1), shift=np.array(0)))
    # products far beyond 64 bits (x * ~2^31 * 2^33: 74 bits) before saturation
    names.append(nb.requant_to("wide", "x", 8, rounding="half_even", mult=np.array([DYADIC[0], DYADIC[1], 1, 3]),
                               shift=np.array([-30, -33, -60, -40])))
    nb.add("all", "concat", names, t=IntType(10, True, (2.0 ** -6,)))
    return nb.network("all")


def binary(seed: int = 14) -> Network:
    nb = Builder("binary", (5, 5, 2), BinaryType(), seed)
    bits = lambda shape: nb.rng.integers(0, 2, size=shape)  # noqa: E731

    def bconv(name, src, k, st, co, thresh):
        n = k[0] * k[1] * nb.channels(src)
        arrays = {"weight": bits(k + (nb.channels(src), co))}
        t = None
        if thresh:
            th = nb.rng.integers(-n + 1, n, size=co)
            d = np.where(np.arange(co) % 2, -1, 1)
            d[-1] = 1
            th[0], th[-1] = -n - 3, n + 3  # direction +1: always on / always off
            th[1] = n + 3                  # direction -1: always on
            arrays.update(threshold=th, direction=d)
            t = BinaryType()
        return nb.add(name, "bconv2d", [src], t, attrs={"strides": list(st), "padding": "valid"}, arrays=arrays)

    bconv("bc_th", "x", (3, 3), (1, 1), 5, True)          # -> (3,3,5) binary
    bconv("bc_int", "x", (2, 2), (2, 2), 3, False)        # stride 2 -> (2,2,3), 2pc-8: even, can be 0
    # int -> binary thresholds: +1 when x >= T (base -1, direction +1) or when x < T (base +1, direction -1)
    c = nb.channels("bc_int")
    nb.add("tb", "threshold", ["bc_int"], BinaryType(),
           arrays={"thresholds": np.array([[-2], [0], [3]]), "base": np.array([-1, 1, -1]),
                   "direction": np.array([1, -1, 1])}, attrs={"step": 2})
    assert c == 3
    _reshape(nb, "f1", "bc_th", (45,))
    _reshape(nb, "f2", "tb", (12,))
    nb.add("cat", "concat", ["f1", "f2"], BinaryType())     # depths 1 and 2
    n = 57
    th = nb.rng.integers(-n + 1, n, size=8)
    d = np.where(np.arange(8) % 2 == 0, 1, -1)
    th[1], th[2] = n + 1, -n - 1  # direction -1: always on; direction +1: always on
    nb.add("bd_th", "bdense", ["cat"], BinaryType(), arrays={"weight": bits((n, 8)), "threshold": th, "direction": d})
    nb.add("bd_int", "bdense", ["bd_th"], arrays={"weight": bits((8, 7))})   # 2pc - 8 in [-8, 8]
    nb.add("tmix", "threshold", ["bd_int"], BinaryType(),
           arrays={"thresholds": np.array([[-8], [-2], [0], [1], [2], [4], [9]]),
                   "base": np.array([1, -1, 1, -1, 1, -1, -1]),
                   "direction": np.array([-1, 1, -1, 1, -1, 1, 1])}, attrs={"step": 2})
    # a single-threshold table shared by every channel
    nb.add("bd_int2", "bdense", ["tmix"], arrays={"weight": bits((7, 5))})  # odd N: never 0
    nb.add("tout", "threshold", ["bd_int2"], BinaryType(),
           arrays={"thresholds": np.array([[1]]), "base": np.array([-1]), "direction": np.array([1])},
           attrs={"step": 2})
    _reshape(nb, "f3", "tout", (5,))
    # integer ops on binary tensors (bit b is the value 2b-1), as imported binary activations
    # feeding integer layers give: maxpool with a binary output, conv2d and dense
    nb.add("mp_bin", "maxpool", ["bc_th"], BinaryType(),
           attrs={"pool": [2, 2], "strides": [1, 1], "padding": "valid", "dims": 2})   # (2,2,5)
    _reshape(nb, "f4", "mp_bin", (20,))
    nb.add("cb", "conv2d", ["x"], attrs={"strides": [2, 2], "padding": "same"},
           arrays={"weight": nb.weights((3, 3, 2, 3), -5, 5), "bias": nb.bias(3, 4)})  # (3,3,3)
    nb.add("tcb", "threshold", ["cb"], BinaryType(),
           arrays={"thresholds": np.array([[0], [3], [-4]]), "base": np.array([-1, 1, -1]),
                   "direction": np.array([1, -1, 1])}, attrs={"step": 2})
    _reshape(nb, "f5", "tcb", (27,))
    nb.add("fd", "dense", ["tmix"], arrays={"weight": nb.weights((7, 4), -9, 9), "bias": nb.bias(4, 6)})
    nb.add("tfd", "threshold", ["fd"], BinaryType(),
           arrays={"thresholds": np.array([[1]]), "base": np.array([-1]), "direction": np.array([1])},
           attrs={"step": 2})
    nb.add("out", "concat", ["f3", "tmix", "f4", "f5", "tfd"], BinaryType())
    return nb.network("out")


def branch(seed: int = 15) -> Network:
    nb = Builder("branch", (8,), IntType(6, True, (2.0 ** -4,)), seed)
    s = (2.0 ** -3,)
    dense = lambda name, src, co: nb.add(  # noqa: E731
        name, "dense", [src], arrays={"weight": nb.weights((nb.channels(src), co), -15, 15), "bias": nb.bias(co, 50)})
    dense("d1", "x", 6)
    nb.requant_to("r1", "d1", 6, scale=s)
    dense("d2", "r1", 6)
    nb.requant_to("r2", "d2", 6, scale=s, rounding="half_away")                # stage 4
    dense("d3", "x", 6)
    nb.requant_to("r3", "d3", 6, scale=s, rounding="toward_zero")              # stage 2
    nb.add("sum", "add", ["r2", "r3", "r1"])                                  # depths 4, 2, 2
    nb.add("relu", "clip", ["sum"], attrs={"lo": 0, "hi": 70}, t=IntType(8, False, s))
    nb.add("sq", "lut", ["relu"], attrs={"in_lo": 0},
           arrays={"table": np.array([(v * v) >> 5 for v in range(256)], np.int64)})
    nb.add("cat", "concat", ["sq", "x"], scale=s)                              # the input joins at depth 0
    c = nb.channels("cat")
    th = np.sort(nb.rng.integers(-40, 100, size=(c, 4)), axis=1)
    dirs = np.where(np.arange(c) % 3, 1, -1)
    dirs[1], dirs[4] = 2, -2  # direction * step * count with |direction| > 1, as the golden model allows
    nb.add("lvl", "threshold", ["cat"], attrs={"step": 3},                    # not a power of two
           arrays={"thresholds": th, "base": nb.rng.integers(-2, 3, size=c), "direction": dirs})
    # per-channel power-of-two output scales: argmax compares real values
    ch_scale = tuple(2.0 ** int(e) for e in nb.rng.integers(-3, 2, size=c))
    mult = nb.rng.integers(1, 6, size=c) * 2 + 1
    nb.requant_to("rq", "lvl", 6, mult=mult, shift=np.full(c, 1), ch_scale=ch_scale)
    nb.add("am", "argmax", ["rq"], scale=(1.0,))
    return nb.network("am")


def awkward_names(seed: int = 16) -> Network:
    """Names that clash once made Verilog identifiers ('a.b' and 'a_b'), an op named
    'axis' (the wrapper is <top>_axis), a network named like a keyword, and a dead op
    after the output (the output is not the last op)."""
    nb = Builder("module", (4,), IntType(5, True, (2.0 ** -2,)), seed)
    nb.inp.name = "in.x"
    nb.bounds["in.x"], nb.types["in.x"] = nb.bounds.pop("x"), nb.types.pop("x")
    nb.add("a.b", "dense", ["in.x"], arrays={"weight": nb.weights((4, 3), -9, 9), "bias": nb.bias(3, 9)})
    nb.requant_to("a_b", "a.b", 5, scale=(0.25,), rounding="half_away")
    nb.add("axis", "clip", ["a_b"], attrs={"lo": -3, "hi": 11})
    nb.add("out", "add", ["axis", "a_b"])
    nb.add("dead", "clip", ["a.b"], attrs={"lo": 0, "hi": 5})
    return nb.network("out")


ALL = {"cnn2d": cnn2d, "seq1d": seq1d, "requant_bank": requant_bank, "binary": binary, "branch": branch}


def vectors(net: Network, n: int, seed: int = 0) -> np.ndarray:
    """Edge vectors then uniform random vectors over the input type's whole range
    (rtl_sim.vectors.random_vectors); for narrow inputs also every input value on every
    element (a sweep), so that ties and saturation limits are all hit."""
    from rtl_sim.vectors import random_vectors

    x = random_vectors(net, n, seed)
    t = net.inputs[0].type
    if not isinstance(t, BinaryType) and t.hi - t.lo < 2048:
        sweep = np.arange(t.lo, t.hi + 1)
        size = int(np.prod(net.inputs[0].shape))
        rows = np.stack([np.roll(sweep, k)[:sweep.size] for k in range(size)], axis=1)
        x = np.concatenate([x, rows.reshape((-1,) + tuple(net.inputs[0].shape))])
    return x.astype(np.int64)
