"""Tensor types (integer, binary, minifloat) and real-input quantization."""
from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest

from qat.importers.input_quant import check_raw, quantize_real
from qat.importers.scales import round_float_exact
from qat.ir.network import Input, NetworkError
from qat.ir.types import (BinaryType, IntType, MinifloatType, is_po2, log2_exact, parse_fixed, signed_bits_for,
                       type_for_range, type_from_json, type_to_json, unit_scale, unsigned_bits_for, with_scale)

# ---- integer and binary types ---------------------------------------------------------


def test_int_type_ranges():
    for bits in range(2, 70):
        t = IntType(bits)
        assert (t.lo, t.hi) == (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    for bits in range(1, 70):
        t = IntType(bits, False)
        assert (t.lo, t.hi) == (0, 2 ** bits - 1)
    assert IntType(np.int64(8)).bits == 8 and type(IntType(np.int64(8)).bits) is int


@pytest.mark.parametrize("args", [(1, True), (0, False), (-3, True), (8.0, True), ("8", True)])
def test_int_type_rejects_impossible_widths(args):
    with pytest.raises(ValueError):
        IntType(*args)


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf"), [], [1.0, 0.0]])
def test_scales_must_be_positive_finite(scale):
    with pytest.raises(ValueError, match="scale"):
        IntType(8, True, scale)
    with pytest.raises(ValueError, match="scale"):
        BinaryType(scale)


def test_scales_normalised_to_float_tuples():
    t = IntType(8, True, np.array([0.5, 0.25], dtype=np.float32))
    assert t.scale == (0.5, 0.25) and all(type(v) is float for v in t.scale)
    assert IntType(8, True, 0.125).scale == (0.125,)
    assert IntType(8, True, 0.125) == IntType(8, True, (0.125,))
    b = BinaryType()
    assert (b.lo, b.hi, b.bits, b.scale) == (-1, 1, 1, (1.0,))
    assert with_scale(IntType(4, False), [2.0, 4.0]) == IntType(4, False, (2.0, 4.0))
    assert with_scale(MinifloatType(4, 3), 0.5).scale == (0.5,)


def test_unit_scale():
    assert unit_scale(IntType(8, True, (0.5, 0.25))).tolist() == [0.5, 0.25]
    assert unit_scale(BinaryType((3.0,))).tolist() == [3.0]
    assert unit_scale(MinifloatType(4, 3)).tolist() == [2.0 ** -9]
    assert unit_scale(MinifloatType(4, 3, variant="fnuz", scale=(0.5,))).tolist() == [2.0 ** -11]
    assert unit_scale(MinifloatType(2, 1)).tolist() == [0.5]


def test_bits_for_brute_force():
    for lo in range(-70, 1):
        for hi in range(lo, 70):
            need = next(b for b in range(2, 20) if -(1 << (b - 1)) <= lo and hi <= (1 << (b - 1)) - 1)
            assert signed_bits_for(lo, hi) == need, (lo, hi)
    for hi in range(0, 300):
        assert unsigned_bits_for(hi) == next(b for b in range(1, 20) if hi <= (1 << b) - 1)
    big = 1 << 100
    assert signed_bits_for(-big, big - 1) == 101 and signed_bits_for(-big, big) == 102
    assert unsigned_bits_for(big) == 101
    assert type_for_range(0, 255, 1.0) == IntType(8, False)
    assert type_for_range(-1, 0, 0.5) == IntType(2, True, (0.5,))
    assert type_for_range(-129, 5, 1.0) == IntType(9)


def test_po2_helpers():
    assert is_po2([1.0, 0.5, 2.0 ** -60, 2.0 ** 70, 2.0 ** -1074])
    assert not is_po2([1.0, 3.0]) and not is_po2(0.75) and not is_po2(0.1)
    assert log2_exact([1.0, 0.25, 1024.0]).tolist() == [0, -2, 10]
    with pytest.raises(ValueError):
        log2_exact(3.0)


def test_parse_fixed():
    assert parse_fixed("fixed<8,3>") == IntType(8, True, (2.0 ** -5,))
    assert parse_fixed("ap_fixed<16,6>") == IntType(16, True, (2.0 ** -10,))
    assert parse_fixed(" ufixed< 10 , 0 > ") == IntType(10, False, (2.0 ** -10,))
    assert parse_fixed("ap_ufixed<4,6>") == IntType(4, False, (4.0,))
    assert parse_fixed("fixed<8,-2>") == IntType(8, True, (2.0 ** -10,))
    t = parse_fixed("fixed<6,2>")  # range [-2, 2 - 2^-4]
    assert t.lo * t.scale[0] == -2.0 and t.hi * t.scale[0] == 2 - 2 ** -4
    for bad in ("fixed<1,1>", "ufixed<0,0>", "fixed<65,3>", "float<8,3>", "fixed<8>", "int8"):
        with pytest.raises(ValueError):
            parse_fixed(bad)


def test_describe():
    assert IntType(8).describe() == "int8"
    assert IntType(5, False, (0.25,)).describe() == "uint5*2^-2"
    assert IntType(8, True, (0.3,)).describe() == "int8*0.3"
    assert IntType(8, True, (0.5, 1.0)).describe() == "int8*per-ch[2]"
    assert BinaryType().describe() == "bin"
    assert MinifloatType(4, 3, variant="ocp").describe() == "fp8e4m3b7-ocp"
    assert MinifloatType(4, 3, variant="fnuz").describe() == "fp8e4m3b8-fnuz"


def test_json_round_trip():
    types = [IntType(8), IntType(3, False, (0.5, 0.25, 0.1)), BinaryType((0.75,)), MinifloatType(4, 3),
             MinifloatType(5, 2, variant="ocp", scale=(2.0 ** -3,)), MinifloatType(4, 3, 11, "fnuz"),
             MinifloatType(2, 1, variant="ocp", scale=(1 / 3,))]
    for t in types:
        d = json.loads(json.dumps(type_to_json(t)))
        assert type_from_json(d) == t
    with pytest.raises(ValueError, match="unknown tensor type kind"):
        type_from_json({"kind": "posit"})
    with pytest.raises(TypeError):
        type_to_json("int8")


# ---- minifloats ---------------------------------------------------------------------------

# (E, M, variant, bias, max, codes reserved for inf/NaN at the top: decoded independently)
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
    (2, 3, "plain", 1, Fraction(15, 2)),
    (2, 1, "ocp", 1, Fraction(6)),
    (2, 1, "fnuz", 2, Fraction(3)),
]


def decoded_max(e_bits, m_bits, variant, bias) -> Fraction:
    """Largest finite value by decoding every bit pattern (OCP FP8 rules)."""
    best = Fraction(0)
    for f in range(1 << e_bits):
        for m in range(1 << m_bits):
            if variant == "ocp" and e_bits == 5 and m_bits == 2 and f == 31:
                continue  # E5M2: inf / NaN
            if variant == "ocp" and e_bits == 4 and m_bits == 3 and f == 15 and m == 7:
                continue  # E4M3: NaN
            v = (Fraction(m, 1 << m_bits) * Fraction(2) ** (1 - bias) if f == 0
                 else (1 + Fraction(m, 1 << m_bits)) * Fraction(2) ** (f - bias))
            best = max(best, v)
    return best


@pytest.mark.parametrize("e_bits,m_bits,variant,bias,maxval", FORMATS)
def test_minifloat_max_value(e_bits, m_bits, variant, bias, maxval):
    t = MinifloatType(e_bits, m_bits, variant=variant)
    assert t.bias == bias
    assert t.bits == 1 + e_bits + m_bits
    assert Fraction(t.max_value) == maxval == decoded_max(e_bits, m_bits, variant, bias)
    unit = Fraction(2) ** (1 - bias - m_bits)
    assert t.unit_exp == 1 - bias - m_bits
    assert t.max_units == maxval / unit and t.hi == t.max_units and t.lo == -t.max_units


def test_minifloat_max_value_vs_ml_dtypes():
    import ml_dtypes

    for t, dt in ((MinifloatType(4, 3, variant="ocp"), ml_dtypes.float8_e4m3fn),
                  (MinifloatType(5, 2, variant="ocp"), ml_dtypes.float8_e5m2),
                  (MinifloatType(4, 3, variant="fnuz"), ml_dtypes.float8_e4m3fnuz),
                  (MinifloatType(5, 2, variant="fnuz"), ml_dtypes.float8_e5m2fnuz)):
        fi = ml_dtypes.finfo(dt)
        assert t.max_value == float(fi.max)
        assert 2.0 ** t.unit_exp == float(fi.smallest_subnormal)


def test_minifloat_explicit_bias_and_scale():
    t = MinifloatType(4, 3, bias=11)
    assert t.max_value == 480 / 16 and t.unit_exp == -13
    assert MinifloatType(4, 3, variant="fnuz").bias == 8
    assert MinifloatType(4, 3, variant="ocp", scale=(0.5,)).max_value == 448  # max_value is before scaling


@pytest.mark.parametrize("kw", [dict(exp_bits=0, man_bits=3), dict(exp_bits=9, man_bits=1),
                                dict(exp_bits=4, man_bits=11), dict(exp_bits=4, man_bits=3, variant="ieee")])
def test_minifloat_rejects_impossible_formats(kw):
    with pytest.raises(ValueError):
        MinifloatType(**kw)


# ---- real inputs -> raw integers -------------------------------------------------------------

def fixed_input(shift=4, rounding="half_even", lo=-128, hi=127, t=None, shape=(3,)):
    t = t or IntType(8, True, (2.0 ** -shift,))
    return Input("x", shape, t, {"kind": "fixed", "shift": shift, "rounding": rounding, "lo": lo, "hi": hi})


def ref_fixed(x, shift, rounding, lo, hi):
    out = []
    for v in np.asarray(x, dtype=np.float32).ravel():
        f = Fraction(float(v)) * Fraction(2) ** shift
        fl = f.numerator // f.denominator
        rem = f - fl
        if rounding == "floor":
            r = fl
        elif rounding == "toward_zero":
            r = int(f)
        elif rem != Fraction(1, 2):
            r = fl + (rem > Fraction(1, 2))
        elif rounding == "half_even":
            r = fl + (fl % 2)
        elif rounding == "half_up":
            r = fl + 1
        else:  # half_away
            r = fl + 1 if f > 0 else fl
        out.append(min(max(r, lo), hi))
    return np.array(out).reshape(np.shape(x))


@pytest.mark.parametrize("rounding", ["half_even", "half_up", "half_away", "floor", "toward_zero"])
def test_quantize_real_fixed(rounding):
    rng = np.random.default_rng(300)
    inp = fixed_input(rounding=rounding)
    ties = (np.arange(-40, 40) + 0.5) / 16  # exact ties of x * 2^4
    x = np.concatenate([ties, rng.normal(0, 4, size=600), [0.0, -0.0, 7.96875, -8.0, 100.0, -100.0, 1e30, -1e30]])
    x = x[: (x.size // 3) * 3].reshape(-1, 3)
    got = quantize_real(inp, x)
    assert got.dtype == np.int64
    assert np.array_equal(got, ref_fixed(x, 4, rounding, -128, 127))


def test_quantize_real_half_even_matches_numpy_float32():
    """QKeras rounds with tf.round in float32: half to even."""
    rng = np.random.default_rng(301)
    inp = fixed_input(shift=3, lo=-128, hi=127, t=IntType(8, True, (2.0 ** -3,)))
    x = np.concatenate([(np.arange(-300, 300) + 0.5) / 8, rng.uniform(-20, 20, size=900)])
    x = x.reshape(-1, 3)
    want = np.clip(np.round(x.astype(np.float32) * np.float32(8)), -128, 127).astype(np.int64)
    assert np.array_equal(quantize_real(inp, x), want)
    # float64 inputs are first rounded to float32, as the framework does
    v = np.float64(1 / 32) + 2.0 ** -40  # x*16 is just above the tie 0.5 in float64, exactly 0.5 in float32
    assert quantize_real(fixed_input(), np.array([[v, -v, 0.15625]])).tolist() == [[0, 0, 2]]
    assert quantize_real(fixed_input(rounding="half_up"), np.array([[v, -v, 0.15625]])).tolist() == [[1, 0, 3]]


def test_quantize_real_binary_ternary():
    inp = Input("x", (4,), BinaryType(), {"kind": "binary"})
    assert quantize_real(inp, np.array([[0.0, -0.0, -1e-9, 3.0]])).tolist() == [[1, 1, -1, 1]]
    inp = Input("x", (4,), IntType(2), {"kind": "ternary", "threshold": 0.5})
    assert quantize_real(inp, np.array([[0.5, -0.5, 0.49, -7.0]])).tolist() == [[1, -1, 0, -1]]
    with pytest.raises(NetworkError, match="unknown real-input quantizer"):
        quantize_real(Input("x", (4,), IntType(2), {"kind": "lookup"}), np.zeros((1, 4)))


def test_quantize_real_rejects_bad_values():
    inp = fixed_input()
    with pytest.raises(NetworkError, match="expected shape"):
        quantize_real(inp, np.zeros((2, 4)))
    with pytest.raises(NetworkError, match="expected shape"):
        quantize_real(inp, np.zeros(3))
    with pytest.raises(NetworkError, match="NaN or infinite"):
        quantize_real(inp, np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(NetworkError, match="NaN or infinite"):
        quantize_real(inp, np.array([[0.0, -np.inf, 1.0]]))
    with pytest.raises(NetworkError, match="numbers"):
        quantize_real(inp, np.array([["a", "b", "c"]]))
    # a spec whose clamp lies outside the input type cannot produce legal raw values
    with pytest.raises(NetworkError, match="outside the input type"):
        quantize_real(fixed_input(lo=-1000, hi=1000), np.array([[100.0, 0.0, 0.0]]))


def test_exact_inputs_without_quantizer():
    inp = Input("x", (3,), IntType(6, True, (0.25,)))
    assert quantize_real(inp, np.array([[0.25, -8.0, 7.75]])).tolist() == [[1, -32, 31]]
    with pytest.raises(NetworkError, match=r"value 0.3 at index \(0, 1\) is not representable"):
        quantize_real(inp, np.array([[0.25, 0.3, 0.5]]))
    with pytest.raises(NetworkError, match="outside the input type"):
        quantize_real(inp, np.array([[8.0, 0.0, 0.0]]))
    # integer-typed real values are real values too: 3 (real) is 12 raw units of 0.25
    assert quantize_real(inp, np.array([[3, -2, 0]])).tolist() == [[12, -8, 0]]
    with pytest.raises(NetworkError, match="outside the input type"):
        quantize_real(inp, np.array([[8, 0, 0]]))
    # per-channel scales
    inp = Input("x", (2,), IntType(8, True, (0.5, 0.125)))
    assert quantize_real(inp, np.array([[1.5, 1.5]])).tolist() == [[3, 12]]
    # unit scale: integers are used as they are
    inp = Input("x", (2,), IntType(8))
    assert quantize_real(inp, np.array([[5, -128]], dtype=np.int16)).tolist() == [[5, -128]]
    # binary inputs must be exactly -1/+1
    inp = Input("x", (2,), BinaryType())
    assert quantize_real(inp, np.array([[1.0, -1.0]])).tolist() == [[1, -1]]
    with pytest.raises(NetworkError, match="-1 or \\+1"):
        quantize_real(inp, np.array([[1.0, 0.0]]))


def test_exact_minifloat_inputs():
    inp = Input("x", (4,), MinifloatType(4, 3, variant="ocp"))
    # 1.0, 1.125, 448 and the smallest subnormal, in units of 2^-9
    assert quantize_real(inp, np.array([[1.0, 1.125, 448.0, 2.0 ** -9]])).tolist() == [[512, 576, 229376, 1]]
    with pytest.raises(NetworkError, match="not a fp8e4m3b7-ocp value"):
        quantize_real(inp, np.array([[1.0 + 2.0 ** -9, 0.0, 0.0, 0.0]]))  # needs 10 significant bits
    with pytest.raises(NetworkError, match="outside the input type"):
        quantize_real(inp, np.array([[480.0, 0.0, 0.0, 0.0]]))


def test_check_raw():
    inp = Input("x", (2,), IntType(4, False))
    assert check_raw(inp, np.array([[0, 15]])).tolist() == [[0, 15]]
    assert check_raw(inp, np.array([[0.0, 15.0]])).dtype == np.int64
    for bad, msg in ((np.array([[0, 16]]), "outside"), (np.array([[-1, 0]]), "outside"),
                     (np.array([[0.5, 1.0]]), "non-integer"), (np.array([[np.nan, 1.0]]), "non-integer"),
                     (np.array([[1, 2, 3]]), "expected shape")):
        with pytest.raises(NetworkError, match=msg):
            check_raw(inp, bad)
    binp = Input("x", (2,), BinaryType())
    with pytest.raises(NetworkError, match="-1 or \\+1"):
        check_raw(binp, np.array([[0, 1]]))
    # minifloat raw values: only grid points (M+1 significant bits) are legal
    mf = MinifloatType(2, 1)  # units 0.5: values 0, .5, 1, 1.5, 2, 3, 4, 6 -> raw 0..4, 6, 8, 12
    minp = Input("x", (1,), mf)
    legal = [0, 1, 2, 3, 4, 6, 8, 12]
    for r in range(-12, 13):
        if abs(r) in legal:
            assert check_raw(minp, np.array([[r]])).tolist() == [[r]]
        else:
            with pytest.raises(NetworkError):
                check_raw(minp, np.array([[r]]))


def test_round_float_exact():
    v = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, -0.75, 0.75, 3.0, 2.0 ** 40 + 0.5])
    assert round_float_exact(v, "half_even").tolist() == [-2, -2, -0, 0, 2, 2, -1, 1, 3, 2.0 ** 40]
    assert round_float_exact(v, "half_up").tolist() == [-2, -1, 0, 1, 2, 3, -1, 1, 3, 2.0 ** 40 + 1]
    assert round_float_exact(v, "half_away").tolist() == [-3, -2, -1, 1, 2, 3, -1, 1, 3, 2.0 ** 40 + 1]
    assert round_float_exact(v, "floor").tolist() == [-3, -2, -1, 0, 1, 2, -1, 0, 3, 2.0 ** 40]
    assert round_float_exact(v, "toward_zero").tolist() == [-2, -1, 0, 0, 1, 2, 0, 0, 3, 2.0 ** 40]
    with pytest.raises(NetworkError, match="unknown rounding"):
        round_float_exact(v, "stochastic")
