"""Golden integer model: every op against an independent reference.

References are written here from the op semantics (network.py docstring and
the product brief): Python ``Fraction`` arithmetic for rounding and
minifloats, TensorFlow float64 (exact on small integers) for dense / conv /
max pooling, and plain loops for the rest.  Nothing here calls golden's own
helpers to compute an expected value.
"""
from __future__ import annotations

import math
import os
from fractions import Fraction

import numpy as np
import pytest

from qat.ir import golden
from qat.ir.intervals import validate
from qat.ir.network import Input, Network, NetworkError, Op
from qat.ir.types import BinaryType, IntType, MinifloatType

MODES = ("half_even", "half_up", "half_away", "floor", "toward_zero")


@pytest.fixture(scope="module")
def tf():
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import tensorflow

    return tensorflow


# ---- references -------------------------------------------------------------------

def ref_round(v: Fraction, mode: str) -> int:
    """Round a Fraction to an integer (independent of golden)."""
    fl = math.floor(v)
    rem = v - fl
    if mode == "floor":
        return fl
    if mode == "toward_zero":
        return math.trunc(v)
    half = Fraction(1, 2)
    if rem > half:
        return fl + 1
    if rem < half:
        return fl
    if mode == "half_even":
        return fl if fl % 2 == 0 else fl + 1
    if mode == "half_up":
        return fl + 1
    if mode == "half_away":
        return fl + 1 if v > 0 else fl
    raise AssertionError(mode)


def pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def ref_shift(n: int, s: int, mode: str) -> int:
    return ref_round(Fraction(n) / pow2(s), mode)


def ref_wrap(v: int, bits: int, signed: bool) -> int:
    m = v % (1 << bits)
    if signed and m >= 1 << (bits - 1):
        m -= 1 << bits
    return m


def floor_log2(a: Fraction) -> int:
    assert a > 0
    k = a.numerator.bit_length() - a.denominator.bit_length()
    while pow2(k) > a:
        k -= 1
    while pow2(k + 1) <= a:
        k += 1
    return k


def ref_floatquant(v: Fraction, man: int, bias: int, maxval: Fraction, mode: str = "half_even") -> Fraction:
    """QONNX FloatQuant (scale 1): e = max(floor(log2|x|) - M, 1 - bias - M);
    q = 2^e * round(x / 2^e); clip to +-max."""
    if v == 0:
        return Fraction(0)
    e = max(floor_log2(abs(v)) - man, 1 - bias - man)
    q = pow2(e) * ref_round(v / pow2(e), mode)
    return max(min(q, maxval), -maxval)


def single(op: Op, in_type, in_shape, check=True) -> Network:
    net = Network("t", [Input("x", tuple(in_shape), in_type)], [op], [op.name])
    if check:
        validate(net)
    return net


def run1(op: Op, in_type, in_shape, x, check=True) -> np.ndarray:
    return golden.run(single(op, in_type, in_shape, check), x)[op.name]


def as_ints(a) -> list:
    return [int(v) for v in np.asarray(a).ravel()]


# ---- shift_round -------------------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
def test_shift_round_random_int64(mode):
    rng = np.random.default_rng(1)
    n = rng.integers(-(1 << 40), 1 << 40, size=3000)
    n[:50] = rng.integers(-40, 40, size=50)
    s = rng.integers(-12, 30, size=n.size)
    got = golden.shift_round(n, s, mode)
    assert got.dtype != object
    assert as_ints(got) == [ref_shift(int(a), int(b), mode) for a, b in zip(n, s)]


@pytest.mark.parametrize("mode", MODES)
def test_shift_round_exact_ties_and_signs(mode):
    ns, ss = [], []
    for s in range(1, 20):
        for k in range(-6, 6):
            base = (2 * k + 1) << (s - 1)  # exactly (k + 1/2) * 2^s
            for d in (-1, 0, 1):
                ns.append(base + d)
                ss.append(s)
    for n in range(-9, 10):  # small values with small shifts
        for s in range(0, 5):
            ns.append(n)
            ss.append(s)
    n, s = np.array(ns, dtype=np.int64), np.array(ss, dtype=np.int64)
    want = [ref_shift(a, b, mode) for a, b in zip(ns, ss)]
    assert as_ints(golden.shift_round(n, s, mode)) == want
    assert as_ints(golden.shift_round(n.astype(object), s, mode)) == want  # Python-int path agrees


def test_shift_round_tie_examples():
    n = np.array([5, -5, 3, -3, 1, -1, 7, -7], dtype=np.int64)  # /2: 2.5 -2.5 1.5 -1.5 .5 -.5 3.5 -3.5
    assert as_ints(golden.shift_round(n, 1, "half_even")) == [2, -2, 2, -2, 0, 0, 4, -4]
    assert as_ints(golden.shift_round(n, 1, "half_up")) == [3, -2, 2, -1, 1, 0, 4, -3]
    assert as_ints(golden.shift_round(n, 1, "half_away")) == [3, -3, 2, -2, 1, -1, 4, -4]
    assert as_ints(golden.shift_round(n, 1, "floor")) == [2, -3, 1, -2, 0, -1, 3, -4]
    assert as_ints(golden.shift_round(n, 1, "toward_zero")) == [2, -2, 1, -1, 0, 0, 3, -3]


@pytest.mark.parametrize("mode", MODES)
def test_shift_round_left_shift(mode):
    n = np.array([3, -3, 0, 1 << 20, -(1 << 20), 12345], dtype=np.int64)
    for s in (0, -1, -5, -20):
        assert as_ints(golden.shift_round(n, s, mode)) == [v << -s for v in as_ints(n)]


@pytest.mark.parametrize("mode", MODES)
def test_shift_round_per_channel_shift(mode):
    rng = np.random.default_rng(2)
    n = rng.integers(-100000, 100000, size=(50, 6))
    s = np.array([-3, 0, 1, 2, 7, 16])
    got = golden.shift_round(n, s, mode)
    want = [[ref_shift(int(n[i, c]), int(s[c]), mode) for c in range(6)] for i in range(50)]
    assert got.tolist() == want


@pytest.mark.parametrize("mode", MODES)
def test_shift_round_python_int_path(mode):
    rng = np.random.default_rng(3)
    vals = [int(v) * (1 << 40) + int(w) for v, w in zip(rng.integers(-(1 << 40), 1 << 40, 400),
                                                         rng.integers(0, 1 << 40, 400))]
    vals += [(1 << 62) + 1, -(1 << 62) - 1, (1 << 63) + (1 << 10), -(1 << 70) - (1 << 9)]
    shifts = [int(v) for v in rng.integers(-5, 90, len(vals))]
    n = np.array(vals, dtype=object)
    got = golden.shift_round(n, np.array(shifts), mode)
    assert got.dtype == object
    assert as_ints(got) == [ref_shift(a, b, mode) for a, b in zip(vals, shifts)]


@pytest.mark.parametrize("mode", MODES)
def test_shift_round_huge_shifts_on_int64(mode):
    # shifts of 62 bits or more must still be exact when the values are int64
    n = np.array([5, -5, 3, -3, 1 << 40, -(1 << 40), (1 << 61) + 3, -(1 << 61) - 3, (1 << 62) - 1, -(1 << 62)],
                 dtype=np.int64)
    for s in (40, 61, 62, 63, 64, 65, 70, 127):
        got = golden.shift_round(n, s, mode)
        assert as_ints(got) == [ref_shift(v, s, mode) for v in as_ints(n)], s


@pytest.mark.parametrize("mode", MODES)
def test_shift_round_left_shift_overflowing_int64(mode):
    n = np.array([3, -3, (1 << 40) + 1, -(1 << 50)], dtype=np.int64)
    for s in (-30, -40, -62):
        assert as_ints(golden.shift_round(n, s, mode)) == [v << -s for v in as_ints(n)]


def test_shift_round_narrow_dtypes():
    n = np.array([3, -3, 100, -128], dtype=np.int8)
    assert as_ints(golden.shift_round(n, 40, "half_up")) == [0, 0, 0, 0]
    assert as_ints(golden.shift_round(n, -40, "floor")) == [v << 40 for v in as_ints(n)]
    u = np.array([(1 << 64) - 1, 5], dtype=np.uint64)
    assert as_ints(golden.shift_round(u, 1, "half_even")) == [1 << 63, 2]


# ---- requant -----------------------------------------------------------------------

def requant_op(out_type, mult, shift, **attrs) -> Op:
    return Op("rq", "requant", ["x"], attrs.pop("shape"), out_type, attrs,
              {"mult": np.asarray(mult, dtype=np.int64), "shift": np.asarray(shift, dtype=np.int64)})


def ref_requant(x: int, m: int, s: int, mode: str, lo: int, hi: int, overflow: str, bits: int, signed: bool):
    r = ref_round(Fraction(x * m) / pow2(s), mode)
    if overflow == "saturate":
        return min(max(r, lo), hi)
    return ref_wrap(r, bits, signed)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_requant_per_channel(mode, overflow):
    rng = np.random.default_rng(4)
    c = 5
    in_t = IntType(20)
    mult = rng.integers(1, 1 << 15, size=c)
    shift = np.array([-2, 0, 3, 12, 20])
    for out_t in (IntType(8), IntType(6, False), IntType(12)):
        op = requant_op(out_t, mult, shift, shape=(3, c), rounding=mode, overflow=overflow)
        x = rng.integers(in_t.lo, in_t.hi + 1, size=(40, 3, c))
        x[0] = in_t.lo
        x[1] = in_t.hi
        got = run1(op, in_t, (3, c), x)
        want = [[[ref_requant(int(x[i, j, k]), int(mult[k]), int(shift[k]), mode, out_t.lo, out_t.hi, overflow,
                              out_t.bits, out_t.signed) for k in range(c)] for j in range(3)] for i in range(40)]
        assert got.tolist() == want


@pytest.mark.parametrize("mode", MODES)
def test_requant_scalar_and_ties(mode):
    in_t = IntType(12)
    x = np.arange(in_t.lo, in_t.hi + 1).reshape(-1, 1)
    for m, s in ((1, 1), (3, 2), (5, 3), (1, 0), (7, -1), (1, 4)):
        op = requant_op(IntType(10), [m], [s], shape=(1,), rounding=mode)
        got = run1(op, in_t, (1,), x)
        want = [[ref_requant(int(v), m, s, mode, -512, 511, "saturate", 10, True)] for v in x[:, 0]]
        assert got.tolist() == want, (m, s)


@pytest.mark.parametrize("mode", MODES)
def test_requant_explicit_clamps(mode):
    in_t = IntType(10)
    x = np.arange(in_t.lo, in_t.hi + 1).reshape(-1, 1)
    op = requant_op(IntType(8), 3, 2, shape=(1,), rounding=mode, overflow="saturate", lo=0, hi=100)
    got = run1(op, in_t, (1,), x)
    assert got.tolist() == [[ref_requant(int(v), 3, 2, mode, 0, 100, "saturate", 8, True)] for v in x[:, 0]]
    assert got.min() == 0 and got.max() == 100


def test_requant_wrap_values():
    in_t = IntType(10)
    x = np.array([[127], [128], [-129], [255], [300], [-300]])
    op = requant_op(IntType(8), 1, 0, shape=(1,), overflow="wrap")
    assert run1(op, in_t, (1,), x).ravel().tolist() == [127, -128, 127, -1, 44, -44]
    op = requant_op(IntType(8, False), 1, 0, shape=(1,), overflow="wrap")
    assert run1(op, in_t, (1,), x).ravel().tolist() == [127, 128, 127, 255, 44, 212]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("overflow", ["saturate", "wrap"])
def test_requant_python_int_path(mode, overflow):
    rng = np.random.default_rng(5)
    in_t = IntType(64)
    x = np.array([[int(v)] for v in rng.integers(-(1 << 63), (1 << 63) - 1, size=200, dtype=np.int64)]
                 + [[(1 << 63) - 1], [-(1 << 63)], [(1 << 62) + 1], [-(1 << 62) - 1]], dtype=np.int64)
    for m, s, out_t in ((1 << 31, 31, IntType(64)), ((1 << 30) + 12345, 70, IntType(32)),
                        (987654321, 33, IntType(40, False)), (3, -2, IntType(64))):
        op = requant_op(out_t, [m], [s], shape=(1,), rounding=mode, overflow=overflow)
        got = run1(op, in_t, (1,), x)
        want = [[ref_requant(int(v), m, s, mode, out_t.lo, out_t.hi, overflow, out_t.bits, out_t.signed)]
                for v in x[:, 0]]
        assert [[int(v) for v in row] for row in got] == want, (m, s, out_t)


def test_requant_wrap_64_bits_stays_integer():
    x = np.array([[5], [-3], [127], [-128]], dtype=np.int64)
    op = requant_op(IntType(64), 3, 1, shape=(1,), overflow="wrap")
    got = run1(op, IntType(8), (1,), x)
    assert got.dtype.kind in "iO"
    assert as_ints(got) == [8, -4, 190, -192]
    x = np.array([[5], [-3], [(1 << 62) - 1]], dtype=np.int64)
    op = requant_op(IntType(64), 1, 0, shape=(1,), overflow="wrap")
    assert as_ints(run1(op, IntType(63), (1,), x)) == [5, -3, (1 << 62) - 1]


@pytest.mark.parametrize("mode", MODES)
def test_requant_large_shift_small_input(mode):
    """HAWQ multipliers M << 1 give shifts beyond 62 bits on an int64-sized product."""
    rng = np.random.default_rng(9)
    in_t = IntType(30)
    x = rng.integers(in_t.lo, in_t.hi + 1, size=(300, 1))
    x[:4, 0] = [in_t.lo, in_t.hi, 0, -1]
    for m, s in (((1 << 31) - 1, 60), ((1 << 31) - 1, 62), ((1 << 31) - 1, 63), ((1 << 30) + 7, 64),
                 (12345, 70), (1 << 31, 61)):
        op = requant_op(IntType(4), [m], [s], shape=(1,), rounding=mode)
        got = run1(op, in_t, (1,), x)
        want = [[ref_requant(int(v), m, s, mode, -8, 7, "saturate", 4, True)] for v in x[:, 0]]
        assert got.tolist() == want, (m, s)


# ---- minifloat -----------------------------------------------------------------------

# (E, M, variant, bias, max): max values from the OCP / MX specs and the brief
FORMATS = [
    (4, 3, "plain", 7, Fraction(480)),
    (4, 3, "ocp", 7, Fraction(448)),
    (4, 3, "fnuz", 8, Fraction(240)),
    (5, 2, "ocp", 15, Fraction(57344)),
    (5, 2, "plain", 15, Fraction(114688)),
    (5, 2, "fnuz", 16, Fraction(57344)),
    (3, 2, "plain", 3, Fraction(28)),
    (3, 2, "ocp", 3, Fraction(28)),
    (2, 3, "ocp", 1, Fraction(15, 2)),
    (2, 1, "ocp", 1, Fraction(6)),
    (2, 1, "plain", 1, Fraction(6)),
]


def grid(e_bits: int, m_bits: int, bias: int, maxval: Fraction) -> list[Fraction]:
    """All non-negative finite values, decoded from the bit fields."""
    vals = set()
    for f in range(1 << e_bits):
        for m in range(1 << m_bits):
            if f == 0:
                v = Fraction(m, 1 << m_bits) * pow2(1 - bias)
            else:
                v = (1 + Fraction(m, 1 << m_bits)) * pow2(f - bias)
            if v <= maxval:
                vals.add(v)
    return sorted(vals)


def minifloat_inputs(e_bits, m_bits, bias, maxval, rng) -> list[Fraction]:
    g = grid(e_bits, m_bits, bias, maxval)
    vals = list(g)
    vals += [(a + b) / 2 for a, b in zip(g, g[1:])]  # exact ties
    vals += [(3 * a + b) / 4 for a, b in zip(g, g[1:])]
    vals += [(a + 3 * b) / 4 for a, b in zip(g, g[1:])]
    step_top = g[-1] - g[-2]
    vals += [maxval + step_top / 2, maxval + step_top / 4, maxval + step_top, maxval * 2, maxval * 1000]
    vals += [g[1] / 2, g[1] / 4, g[1] * 3 / 4]  # below the smallest subnormal
    lo_exp = 1 - bias - m_bits - 2
    vals += [Fraction(int(v), 1) * pow2(lo_exp) for v in rng.integers(1, int(maxval * 2 * pow2(-lo_exp)), 300)]
    return vals + [-v for v in vals]


@pytest.mark.parametrize("e_bits,m_bits,variant,bias,maxval", FORMATS)
def test_minifloat_requant_vs_floatquant(e_bits, m_bits, variant, bias, maxval):
    rng = np.random.default_rng(6)
    t = MinifloatType(e_bits, m_bits, variant=variant)
    assert t.bias == bias
    vals = minifloat_inputs(e_bits, m_bits, bias, maxval, rng)
    shift = bias + m_bits + 2  # all inputs are multiples of 2^-shift
    raw_in = [v * pow2(shift) for v in vals]
    assert all(r.denominator == 1 for r in raw_in)
    x = np.array([[int(r)] for r in raw_in], dtype=np.int64)
    in_t = IntType(int(max(abs(x.min()), x.max())).bit_length() + 2)
    op = requant_op(t, 1, shift, shape=(1,))
    got = run1(op, in_t, (1,), x)
    unit = pow2(1 - bias - m_bits)
    want = [ref_floatquant(v, m_bits, bias, maxval) / unit for v in vals]
    assert all(w.denominator == 1 for w in want)
    assert as_ints(got) == [int(w) for w in want]
    # every result lies on the grid, max is reached and never exceeded
    on_grid = set(grid(e_bits, m_bits, bias, maxval))
    assert all(abs(Fraction(int(r)) * unit) in on_grid for r in got.ravel())
    assert max(as_ints(got)) == maxval / unit and min(as_ints(got)) == -maxval / unit


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("e_bits,m_bits,variant,bias,maxval", [FORMATS[1], FORMATS[6], FORMATS[9]])
def test_minifloat_requant_other_roundings_and_multipliers(mode, e_bits, m_bits, variant, bias, maxval):
    rng = np.random.default_rng(7)
    t = MinifloatType(e_bits, m_bits, variant=variant)
    c = 4
    mult = rng.integers(1, 1000, size=c)
    shift = np.array([bias + m_bits, bias + m_bits + 5, bias + m_bits + 9, 2])
    in_t = IntType(16)
    x = rng.integers(in_t.lo, in_t.hi + 1, size=(300, c))
    x[:5] = 0
    op = requant_op(t, mult, shift, shape=(c,), rounding=mode)
    got = run1(op, in_t, (c,), x)
    unit = pow2(1 - bias - m_bits)
    want = [[int(ref_floatquant(Fraction(int(x[i, k]) * int(mult[k])) / pow2(int(shift[k])), m_bits, bias, maxval,
                                mode) / unit) for k in range(c)] for i in range(x.shape[0])]
    assert got.tolist() == want


def test_minifloat_reference_agrees_with_ml_dtypes():
    """The Fraction reference itself against ml_dtypes' FP8 casts (in range)."""
    import ml_dtypes

    rng = np.random.default_rng(8)
    for e_bits, m_bits, variant, bias, maxval, dt in (
            (4, 3, "ocp", 7, Fraction(448), ml_dtypes.float8_e4m3fn),
            (5, 2, "ocp", 15, Fraction(57344), ml_dtypes.float8_e5m2),
            (4, 3, "fnuz", 8, Fraction(240), ml_dtypes.float8_e4m3fnuz),
            (5, 2, "fnuz", 16, Fraction(57344), ml_dtypes.float8_e5m2fnuz)):
        vals = [v for v in minifloat_inputs(e_bits, m_bits, bias, maxval, rng) if abs(v) <= maxval]
        ref = [float(ref_floatquant(v, m_bits, bias, maxval)) for v in vals]
        cast = np.array([float(v) for v in vals]).astype(dt).astype(np.float64)
        assert np.array_equal(np.abs(cast), np.abs(np.array(ref))), (e_bits, m_bits, variant)


def test_minifloat_scale_and_per_channel_shift_examples():
    t = MinifloatType(4, 3, variant="ocp")  # unit 2^-9
    # 1.0, 1.0625 (tie between 1.0 and 1.125 -> even mantissa 1.0), 1.1875 (tie -> 1.25), 500 -> 448
    x = np.array([[16, 17, 19, 8000]])
    op = requant_op(t, 1, 4, shape=(4,))
    got = run1(op, IntType(16), (4,), x)
    assert as_ints(got) == [512, 512, 640, 448 * 512]
    # smallest subnormal 2^-9: 2^-10 is a tie -> 0; 3*2^-10 -> 2*2^-9 (even)
    op = requant_op(t, 1, [10, 10, 10, 10], shape=(4,))
    assert as_ints(run1(op, IntType(16), (4,), np.array([[1, 3, -3, 5]]))) == [0, 2, -2, 2]


# ---- dense / conv vs TensorFlow -------------------------------------------------------

def linear_op(kind, weight, bias, out_shape, **attrs) -> Op:
    return Op("lin", kind, ["x"], tuple(out_shape), IntType(40), attrs,
              {"weight": np.asarray(weight, dtype=np.int64), "bias": np.asarray(bias, dtype=np.int64)})


def test_dense_vs_tf(tf):
    rng = np.random.default_rng(10)
    for ci, co, lead in ((1, 1, ()), (7, 3, ()), (16, 5, ()), (5, 4, (3,)), (4, 2, (2, 3))):
        w = rng.integers(-128, 128, size=(ci, co))
        b = rng.integers(-1000, 1000, size=co)
        x = rng.integers(-128, 128, size=(20,) + lead + (ci,))
        x[0] = -128
        x[1] = 127
        got = run1(linear_op("dense", w, b, lead + (co,)), IntType(8), lead + (ci,), x)
        want = tf.tensordot(tf.constant(x, tf.float64), tf.constant(w, tf.float64), 1) + tf.constant(b, tf.float64)
        assert np.array_equal(got, want.numpy().astype(np.int64))


def test_conv2d_vs_tf(tf):
    rng = np.random.default_rng(11)
    configs = []
    for h, w_ in ((5, 5), (6, 4), (7, 8), (4, 4), (1, 6)):
        for kh, kw in ((1, 1), (3, 3), (2, 2), (3, 2), (4, 1)):
            for sh, sw in ((1, 1), (2, 2), (2, 1), (3, 2)):
                for pad in ("same", "valid"):
                    if pad == "valid" and (kh > h or kw > w_):
                        continue
                    configs.append((h, w_, kh, kw, sh, sw, pad))
    picks = rng.choice(len(configs), size=60, replace=False)
    for idx in picks:
        h, w_, kh, kw, sh, sw, pad = configs[idx]
        ci, co = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        wt = rng.integers(-8, 8, size=(kh, kw, ci, co))
        b = rng.integers(-50, 50, size=co)
        x = rng.integers(-128, 128, size=(3, h, w_, ci))
        want = (tf.nn.conv2d(tf.constant(x, tf.float64), tf.constant(wt, tf.float64), [1, sh, sw, 1], pad.upper())
                + tf.constant(b, tf.float64)).numpy()
        op = linear_op("conv2d", wt, b, want.shape[1:], strides=[sh, sw], padding=pad)
        got = run1(op, IntType(8), (h, w_, ci), x)
        assert got.shape == want.shape and np.array_equal(got, want.astype(np.int64)), configs[idx]


def test_conv1d_vs_tf(tf):
    rng = np.random.default_rng(12)
    for length in (1, 4, 5, 8, 9):
        for k in (1, 2, 3, 4):
            for s in (1, 2, 3):
                for pad in ("same", "valid"):
                    if pad == "valid" and k > length:
                        continue
                    ci, co = int(rng.integers(1, 4)), int(rng.integers(1, 4))
                    wt = rng.integers(-8, 8, size=(k, ci, co))
                    b = rng.integers(-50, 50, size=co)
                    x = rng.integers(-128, 128, size=(2, length, ci))
                    want = (tf.nn.conv1d(tf.constant(x, tf.float64), tf.constant(wt, tf.float64), s, pad.upper())
                            + tf.constant(b, tf.float64)).numpy()
                    op = linear_op("conv1d", wt, b, want.shape[1:], strides=[s], padding=pad)
                    got = run1(op, IntType(8), (length, ci), x)
                    assert got.shape == want.shape and np.array_equal(got, want.astype(np.int64)), (length, k, s, pad)


def test_dense_python_int_path():
    rng = np.random.default_rng(13)
    ci, co = 6, 3
    w = rng.integers(-(1 << 40), 1 << 40, size=(ci, co))
    b = rng.integers(-(1 << 50), 1 << 50, size=co)
    in_t = IntType(40)
    x = rng.integers(in_t.lo, in_t.hi + 1, size=(10, ci))
    x[0] = in_t.lo
    op = Op("lin", "dense", ["x"], (co,), IntType(90), {}, {"weight": w, "bias": b})
    got = run1(op, in_t, (ci,), x)
    want = [[sum(int(x[n, i]) * int(w[i, o]) for i in range(ci)) + int(b[o]) for o in range(co)] for n in range(10)]
    assert [[int(v) for v in row] for row in got] == want
    assert max(abs(v) for row in want for v in row) >= 1 << 63  # really beyond int64


# ---- binary ops ----------------------------------------------------------------------

def pm1(bits):
    return 2 * np.asarray(bits, dtype=np.int64) - 1


def test_bdense_vs_pm1_matmul():
    rng = np.random.default_rng(20)
    for n_in, co in ((1, 1), (7, 3), (64, 10), (33, 5)):
        wbits = rng.integers(0, 2, size=(n_in, co)).astype(np.uint8)
        x = pm1(rng.integers(0, 2, size=(50, n_in)))
        op = Op("b", "bdense", ["x"], (co,), IntType(16), {}, {"weight": wbits})
        got = run1(op, BinaryType(), (n_in,), x)
        want = x @ pm1(wbits)
        assert np.array_equal(got, want)
        # popcount form: 2 * #matches - N
        matches = ((x[:, :, None] > 0) == (wbits[None] == 1)).sum(axis=1)
        assert np.array_equal(got, 2 * matches - n_in)


def test_bdense_thresholds_both_directions():
    rng = np.random.default_rng(21)
    n_in, co = 15, 6
    wbits = rng.integers(0, 2, size=(n_in, co)).astype(np.uint8)
    thr = np.array([-15, -3, 0, 1, 5, 16])
    dirn = np.array([1, -1, 1, -1, 1, -1])
    x = pm1(rng.integers(0, 2, size=(200, n_in)))
    op = Op("b", "bdense", ["x"], (co,), BinaryType(), {},
            {"weight": wbits, "threshold": thr, "direction": dirn})
    got = run1(op, BinaryType(), (n_in,), x)
    y = x @ pm1(wbits)
    want = np.where(np.where(dirn > 0, y >= thr, y <= thr), 1, -1)
    assert np.array_equal(got, want)
    assert set(np.unique(got)) <= {-1, 1}
    # ties on the threshold: y == T is on for both directions
    x1 = pm1(np.ones((1, n_in)))
    w1 = np.ones((n_in, 2), np.uint8)
    op = Op("b", "bdense", ["x"], (2,), BinaryType(), {},
            {"weight": w1, "threshold": np.array([n_in, n_in]), "direction": np.array([1, -1])})
    assert run1(op, BinaryType(), (n_in,), x1).tolist() == [[1, 1]]


def ref_bconv2d(x, wbits, strides):
    n, h, w_, ci = x.shape
    kh, kw, _, co = wbits.shape
    sh, sw = strides
    oh, ow = (h - kh) // sh + 1, (w_ - kw) // sw + 1
    wt = pm1(wbits)
    out = np.zeros((n, oh, ow, co), dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            for o in range(co):
                acc = 0
                for a in range(kh):
                    for b in range(kw):
                        for c in range(ci):
                            acc += x[:, i * sh + a, j * sw + b, c] * wt[a, b, c, o]
                out[:, i, j, o] = acc
    return out


def test_bconv2d_vs_reference():
    rng = np.random.default_rng(22)
    for h, w_, kh, kw, sh, sw, ci, co in ((5, 5, 3, 3, 1, 1, 2, 3), (6, 7, 2, 3, 2, 2, 1, 2),
                                          (4, 4, 1, 1, 1, 1, 3, 2), (7, 5, 3, 2, 3, 1, 2, 4)):
        wbits = rng.integers(0, 2, size=(kh, kw, ci, co)).astype(np.uint8)
        x = pm1(rng.integers(0, 2, size=(4, h, w_, ci)))
        want = ref_bconv2d(x, wbits, (sh, sw))
        op = Op("b", "bconv2d", ["x"], want.shape[1:], IntType(16), {"strides": [sh, sw], "padding": "valid"},
                {"weight": wbits})
        got = run1(op, BinaryType(), (h, w_, ci), x)
        assert np.array_equal(got, want)
        thr = rng.integers(-kh * kw * ci, kh * kw * ci + 1, size=co)
        dirn = rng.choice([-1, 1], size=co)
        op = Op("bt", "bconv2d", ["x"], want.shape[1:], BinaryType(), {"strides": [sh, sw], "padding": "valid"},
                {"weight": wbits, "threshold": thr, "direction": dirn})
        got = run1(op, BinaryType(), (h, w_, ci), x)
        assert np.array_equal(got, np.where(np.where(dirn > 0, want >= thr, want <= thr), 1, -1))


# ---- pooling -------------------------------------------------------------------------

def test_maxpool2d_vs_tf(tf):
    rng = np.random.default_rng(30)
    t = IntType(8)
    for h, w_ in ((4, 4), (5, 5), (6, 7), (3, 2)):
        for pool in ((2, 2), (3, 3), (2, 3), (1, 1)):
            for strides in ((1, 1), (2, 2), (3, 2)):
                for pad in ("same", "valid"):
                    if pad == "valid" and (pool[0] > h or pool[1] > w_):
                        continue
                    x = rng.integers(t.lo, t.hi + 1, size=(3, h, w_, 2))
                    x[0] = t.lo  # all at the minimum: padding must never win
                    want = tf.nn.max_pool2d(tf.constant(x, tf.float64), pool, strides, pad.upper()).numpy()
                    op = Op("p", "maxpool", ["x"], want.shape[1:], t,
                            {"pool": list(pool), "strides": list(strides), "padding": pad, "dims": 2})
                    got = run1(op, t, (h, w_, 2), x)
                    assert np.array_equal(got, want.astype(np.int64)), (h, w_, pool, strides, pad)


def test_maxpool1d_vs_tf(tf):
    rng = np.random.default_rng(31)
    t = IntType(6, False)
    for length in (1, 4, 5, 8):
        for pool in (1, 2, 3):
            for s in (1, 2, 3):
                for pad in ("same", "valid"):
                    if pad == "valid" and pool > length:
                        continue
                    x = rng.integers(t.lo, t.hi + 1, size=(3, length, 3))
                    x[0] = 0
                    want = tf.nn.max_pool1d(tf.constant(x, tf.float64), pool, s, pad.upper()).numpy()
                    op = Op("p", "maxpool", ["x"], want.shape[1:], t,
                            {"pool": [pool], "strides": [s], "padding": pad, "dims": 1})
                    got = run1(op, t, (length, 3), x)
                    assert np.array_equal(got, want.astype(np.int64)), (length, pool, s, pad)


def test_maxpool_same_padding_narrow_input_dtypes():
    # raw inputs given as int8 / uint8: the padding value (type minimum - 1) must not wrap and win
    t = IntType(8)
    op = Op("p", "maxpool", ["x"], (2, 1), t, {"pool": [2], "strides": [2], "padding": "same", "dims": 1})
    x = np.full((1, 3, 1), -128, dtype=np.int8)
    assert run1(op, t, (3, 1), x).ravel().tolist() == [-128, -128]
    tu = IntType(8, False)
    op = Op("p", "maxpool", ["x"], (2, 1), tu, {"pool": [2], "strides": [2], "padding": "same", "dims": 1})
    assert run1(op, tu, (3, 1), np.zeros((1, 3, 1), dtype=np.uint8)).ravel().tolist() == [0, 0]
    t64 = IntType(64)
    op = Op("p", "maxpool", ["x"], (2, 1), t64, {"pool": [2], "strides": [2], "padding": "same", "dims": 1})
    x = np.full((1, 3, 1), -(1 << 63), dtype=np.int64)
    assert as_ints(run1(op, t64, (3, 1), x)) == [-(1 << 63)] * 2


def test_avgpool_sum_vs_numpy():
    rng = np.random.default_rng(32)
    t = IntType(8)
    for h, w_, pool, strides in ((4, 4, (2, 2), (2, 2)), (5, 6, (3, 2), (1, 2)), (6, 6, (3, 3), (3, 3)),
                                 (3, 3, (1, 1), (1, 1))):
        x = rng.integers(t.lo, t.hi + 1, size=(3, h, w_, 2))
        oh, ow = (h - pool[0]) // strides[0] + 1, (w_ - pool[1]) // strides[1] + 1
        want = np.zeros((3, oh, ow, 2), dtype=np.int64)
        for i in range(oh):
            for j in range(ow):
                want[:, i, j] = x[:, i * strides[0]:i * strides[0] + pool[0],
                                  j * strides[1]:j * strides[1] + pool[1]].sum(axis=(1, 2))
        op = Op("p", "avgpool", ["x"], (oh, ow, 2), IntType(16),
                {"pool": list(pool), "strides": list(strides), "padding": "valid", "dims": 2})
        assert np.array_equal(run1(op, t, (h, w_, 2), x), want)
    # 1D
    x = rng.integers(t.lo, t.hi + 1, size=(2, 7, 3))
    op = Op("p", "avgpool", ["x"], (3, 3), IntType(16), {"pool": [3], "strides": [2], "padding": "valid", "dims": 1})
    want = np.stack([x[:, 2 * i:2 * i + 3].sum(axis=1) for i in range(3)], axis=1)
    assert np.array_equal(run1(op, t, (7, 3), x), want)


# ---- simple ops ----------------------------------------------------------------------

def test_reshape_add_concat():
    rng = np.random.default_rng(40)
    t = IntType(8)
    x = rng.integers(t.lo, t.hi + 1, size=(4, 2, 3, 2))
    op = Op("r", "reshape", ["x"], (12,), t, {"shape": [12]})
    assert np.array_equal(run1(op, t, (2, 3, 2), x), x.reshape(4, 12))

    a = rng.integers(t.lo, t.hi + 1, size=(6, 5))
    b = rng.integers(t.lo, t.hi + 1, size=(6, 5))
    c = rng.integers(t.lo, t.hi + 1, size=(6, 3))
    inputs = [Input("a", (5,), t), Input("b", (5,), t), Input("c", (3,), t)]
    ops = [Op("s", "add", ["a", "b"], (5,), IntType(9)),
           Op("s3", "add", ["a", "b", "a"], (5,), IntType(10)),
           Op("k", "concat", ["a", "c", "b"], (13,), t)]
    net = Network("n", inputs, ops, ["s", "s3", "k"])
    validate(net)
    out = golden.run(net, {"a": a, "b": b, "c": c})
    assert np.array_equal(out["s"], a + b)
    assert np.array_equal(out["s3"], 2 * a + b)
    assert np.array_equal(out["k"], np.concatenate([a, c, b], axis=1))


def test_clip():
    t = IntType(8)
    x = np.arange(-128, 128).reshape(-1, 1)
    for lo, hi in ((0, 127), (-5, 7), (-128, 127), (3, 3)):
        op = Op("c", "clip", ["x"], (1,), t, {"lo": lo, "hi": hi})
        got = run1(op, t, (1,), x)
        assert got.ravel().tolist() == [min(max(v, lo), hi) for v in range(-128, 128)]


def ref_threshold(x, thr, base, dirn, step):
    n, c = x.shape
    out = np.zeros_like(x)
    for i in range(n):
        for k in range(c):
            row = thr[k] if thr.shape[0] > 1 else thr[0]
            cnt = sum(1 for tv in row if x[i, k] >= tv)
            out[i, k] = base[k] + dirn[k] * step * cnt
    return out


def test_threshold_multi_level_both_directions():
    rng = np.random.default_rng(41)
    t = IntType(10)
    c, levels = 4, 7
    thr = np.sort(rng.integers(-300, 300, size=(c, levels)), axis=1)
    thr[0, 2] = thr[0, 3]  # repeated threshold: two levels at once
    base = np.array([0, 7, 0, 7])
    dirn = np.array([1, -1, 1, -1])
    x = rng.integers(-400, 400, size=(300, c))
    x[:levels, :] = thr.T  # exactly on each threshold (>= is on)
    x[levels:2 * levels, :] = thr.T - 1
    op = Op("th", "threshold", ["x"], (c,), IntType(4, False), {"step": 1},
            {"thresholds": thr, "base": base, "direction": dirn})
    got = run1(op, t, (c,), x)
    assert np.array_equal(got, ref_threshold(x, thr, base, dirn, 1))
    # per-tensor thresholds (one row for every channel)
    thr1 = np.array([[-10, 0, 10]])
    op = Op("th", "threshold", ["x"], (c,), IntType(3), {"step": 1},
            {"thresholds": thr1, "base": np.array([-1, -1, 0, 2]), "direction": np.array([1, 1, 1, -1])})
    got = run1(op, t, (c,), x)
    assert np.array_equal(got, ref_threshold(x, thr1, np.array([-1, -1, 0, 2]), np.array([1, 1, 1, -1]), 1))


def test_threshold_binary_step_two():
    t = IntType(8)
    x = np.arange(-128, 128).reshape(-1, 1).repeat(2, axis=1)
    thr = np.array([[5], [-7]])
    op = Op("th", "threshold", ["x"], (2,), BinaryType(), {"step": 2},
            {"thresholds": thr, "base": np.array([-1, 1]), "direction": np.array([1, -1])})
    got = run1(op, t, (2,), x)
    v = np.arange(-128, 128)
    assert got[:, 0].tolist() == np.where(v >= 5, 1, -1).tolist()
    assert got[:, 1].tolist() == np.where(v >= -7, -1, 1).tolist()


def test_lut():
    rng = np.random.default_rng(42)
    t = IntType(5)
    table = rng.integers(-100, 100, size=32)
    x = rng.integers(t.lo, t.hi + 1, size=(50, 3))
    x[0] = t.lo
    x[1] = t.hi
    op = Op("l", "lut", ["x"], (3,), IntType(8), {"in_lo": -16}, {"table": table})
    got = run1(op, t, (3,), x)
    assert got.tolist() == [[int(table[v + 16]) for v in row] for row in x]
    # table with an offset and spare entries
    table = np.arange(100, 140)
    op = Op("l", "lut", ["x"], (3,), IntType(8, False), {"in_lo": -20}, {"table": table})
    assert run1(op, t, (3,), x).tolist() == [[100 + v + 20 for v in row] for row in x]


def ref_argmax(row, scales):
    vals = [Fraction(int(v)) * Fraction(float(s)) for v, s in zip(row, scales)]
    best = 0
    for i, v in enumerate(vals):
        if v > vals[best]:
            best = i
    return best


def test_argmax_per_tensor_and_per_channel():
    rng = np.random.default_rng(43)
    x = rng.integers(-8, 8, size=(500, 5))  # many ties
    x[0] = 3
    t = IntType(8, True, (0.375,))
    op = Op("a", "argmax", ["x"], (1,), IntType(3, False))
    got = run1(op, t, (5,), x)
    assert got.shape == (500, 1)
    assert got[:, 0].tolist() == [ref_argmax(r, [1] * 5) for r in x]
    assert got[0, 0] == 0
    scales = (0.5, 0.25, 1.0, 0.1, 0.3)
    tc = IntType(8, True, scales)
    got = run1(Op("a", "argmax", ["x"], (1,), IntType(3, False)), tc, (5,), x)
    assert got[:, 0].tolist() == [ref_argmax(r, scales) for r in x]
    # equal real values in different channels: the first wins
    xt = np.array([[2, 4, 1, 0, 0], [0, 4, 1, 0, 0], [-2, -4, -1, -10, 0], [0, 0, 0, 3, 1]])
    got = run1(Op("a", "argmax", ["x"], (1,), IntType(3, False)), tc, (5,), xt)
    assert got[:, 0].tolist() == [0, 1, 4, 3]  # 3*0.1 = 0.30000000000000004.. > 0.3 (float 0.3)
    assert [ref_argmax(r, scales) for r in xt] == [0, 1, 4, 3]


def test_argmax_multi_dim():
    rng = np.random.default_rng(44)
    x = rng.integers(-4, 4, size=(10, 3, 6))
    got = run1(Op("a", "argmax", ["x"], (3, 1), IntType(3, False)), IntType(4), (3, 6), x)
    assert np.array_equal(got[..., 0], np.argmax(x, axis=-1))


def test_run_rejects_float_raw_inputs():
    op = Op("c", "clip", ["x"], (2,), IntType(8), {"lo": 0, "hi": 5})
    net = single(op, IntType(8), (2,))
    with pytest.raises(NetworkError, match="integers"):
        golden.run(net, np.array([[1.5, 2.0]]))
    assert golden.run(net, np.array([[-3, 9]], dtype=np.int16))["c"].tolist() == [[0, 5]]


def test_chain_and_dequantize():
    """dense -> requant -> argmax; golden equals a Fraction reference end to end."""
    rng = np.random.default_rng(45)
    w = rng.integers(-7, 8, size=(6, 4))
    b = rng.integers(-20, 20, size=4)
    ops = [Op("d", "dense", ["x"], (4,), IntType(16, True, (2.0 ** -6,)), {}, {"weight": w, "bias": b}),
           Op("q", "requant", ["d"], (4,), IntType(6, True, (2.0 ** -2,)), {"rounding": "half_up"},
              {"mult": np.array([1]), "shift": np.array([4])}),
           Op("a", "argmax", ["q"], (1,), IntType(2, False))]
    net = Network("n", [Input("x", (6,), IntType(8, True, (2.0 ** -3,)))], ops, ["q", "a"])
    validate(net)
    x = rng.integers(-128, 128, size=(100, 6))
    out = golden.run(net, x)
    for i in range(100):
        acc = [sum(int(x[i, k]) * int(w[k, o]) for k in range(6)) + int(b[o]) for o in range(4)]
        q = [min(max(ref_round(Fraction(a, 16), "half_up"), -32), 31) for a in acc]
        assert out["q"][i].tolist() == q
        assert out["a"][i, 0] == q.index(max(q))
    real = golden.dequantize(net.op("q").type, out["q"])
    assert np.array_equal(real, out["q"] * 0.25)
