"""Scale arithmetic shared by the importers: rescale ratios as dyadic numbers b / 2^c
(HAWQ-V3 integer-only requantization), float32 values as exact dyadic rationals, rounding of
exact float values in every rounding mode, and rounding of float32 values to a minifloat grid.

DEFAULT_MULT_BITS: multipliers b < 2^31 (HAWQ-V3).  MAX_SHIFT: largest requantization shift
(E5M2 accumulators are in units of 2^-32 of the scales and need ~80).
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from qat.ir.arith import minifloat_round
from qat.ir.network import NetworkError
from qat.ir.types import MinifloatType

DEFAULT_MULT_BITS = 31
MAX_SHIFT = 255


def nearest_dyadic(m: np.ndarray, where: str, err: type[Exception] = NetworkError,
                   mult_bits: int = DEFAULT_MULT_BITS) -> tuple[np.ndarray, np.ndarray]:
    """M ~ b / 2^c with b < 2^W (HAWQ-V3, W = ``mult_bits``): frexp M = f*2^e, b = round(f*2^W) (half to
    even, exact on the float64 value), c = W - e; b = 2^W becomes 2^(W-1), c - 1."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if np.any(m <= 0) or not np.all(np.isfinite(m)):
        raise err(f"{where}: requantization scale must be positive and finite")
    f, e = np.frexp(m)
    b = np.round(np.ldexp(f, mult_bits)).astype(np.int64)
    c = (mult_bits - e).astype(np.int64)
    full = b == (1 << mult_bits)
    b = np.where(full, b >> 1, b)
    c = np.where(full, c - 1, c)
    return b, c


def exact_dyadic(m, max_bits: int, where: str, what: str = "mult_bits", err: type[Exception] = NetworkError
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(b, c) int64 with m == b / 2^c exactly, b odd (reduced) and b < 2^max_bits; a one-line
    ``err`` naming ``where`` when some value needs more bits (or is not positive)."""
    m = np.atleast_1d(np.asarray(m, dtype=np.float64))
    if np.any(m <= 0) or not np.all(np.isfinite(m)):
        raise err(f"{where}: scale must be positive and finite")
    f, e = np.frexp(m)
    b = np.ldexp(f, 53).astype(np.int64)  # exact: the float64 significand
    c = (53 - e).astype(np.int64)
    tz = np.zeros_like(b)
    for k in range(53):  # strip trailing zero bits
        even = (b & 1) == 0
        if not even.any():
            break
        b, c, tz = np.where(even, b >> 1, b), np.where(even, c - 1, c), tz + even
    need = np.array([int(v).bit_length() for v in b])
    if np.any(need > max_bits):
        i = int(np.argmax(need))
        raise err(f"{where} of channel {i} ({m[i]!r} = {int(b[i])}/2^{int(c[i])}) needs "
                           f"{int(need[i])} multiplier bits, more than {what}={max_bits}")
    return b, c


def dyadic_ratio(num: np.ndarray, den: np.ndarray, mult_bits: int, exact: bool, where: str,
                 err: type[Exception] = NetworkError) -> tuple[np.ndarray, np.ndarray, bool]:
    """num/den (float64 arrays, exact values) as b/2^c with 0 < b < 2^mult_bits.

    Returns (b, c, exact?).  Exact when every ratio is a dyadic rational whose
    odd numerator fits; otherwise the nearest b/2^c with b in
    [2^(mult_bits-1), 2^mult_bits) unless ``exact`` asks to refuse."""
    num, den = np.broadcast_arrays(np.atleast_1d(num), np.atleast_1d(den))
    bs, cs, all_exact = [], [], True
    for n, d in zip(num.ravel().tolist(), den.ravel().tolist()):
        r = Fraction(n) / Fraction(d)
        if r <= 0:
            raise err(f"{where}: rescale ratio {float(r):g} must be positive")
        dd = r.denominator
        if dd & (dd - 1) == 0 and r.numerator < (1 << mult_bits):
            b, c = r.numerator, dd.bit_length() - 1
            while c > 0 and b % 2 == 0:
                b, c = b // 2, c - 1
            bs.append(b), cs.append(c)
            continue
        if exact:
            raise err(f"{where}: rescale ratio {float(r):.9g} is not b/2^c with b < 2^{mult_bits} "
                                   f"(use power-of-two or dyadic scales, or allow approximation)")
        all_exact = False
        c = mult_bits - (r.numerator.bit_length() - r.denominator.bit_length())
        b = round(r * (1 << c)) if c >= 0 else round(r / (1 << -c))
        while b >= (1 << mult_bits):
            c -= 1
            b = round(r * (1 << c)) if c >= 0 else round(r / (1 << -c))
        while b < (1 << (mult_bits - 1)):
            c += 1
            b = round(r * (1 << c)) if c >= 0 else round(r / (1 << -c))
        bs.append(int(b)), cs.append(int(c))
    if max(cs) > MAX_SHIFT or min(cs) < -MAX_SHIFT:
        raise err(f"{where}: rescale ratio out of range (shift {max(cs)}, at most {MAX_SHIFT})")
    return np.array(bs, dtype=np.int64), np.array(cs, dtype=np.int64), all_exact


def float32_as_dyadic(v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 values as exact n / 2^k (n integer object array, k int64 array)."""
    m, e = np.frexp(v.astype(np.float64))  # v = m * 2^e, |m| in [0.5, 1), 24 significant bits
    n = np.round(np.ldexp(m, 24)).astype(np.int64).astype(object)
    k = (24 - e).astype(np.int64)
    return n, k


def unit_minifloat(t: MinifloatType) -> MinifloatType:
    """``t`` with unit scale (rounding happens on x / s)."""
    return MinifloatType(t.exp_bits, t.man_bits, t.bias, t.variant)


def minifloat_from_real(x32: np.ndarray, t: MinifloatType, rounding: str) -> np.ndarray:
    """Round float32 values (already divided by the quantizer scale) to ``t``'s grid: raw units."""
    n, k = float32_as_dyadic(np.asarray(x32, dtype=np.float32))
    return minifloat_round(n, k, unit_minifloat(t), rounding)


def round_float_exact(v: np.ndarray, rounding: str) -> np.ndarray:
    """Round float64 values with at most 24 significant bits (exact)."""
    if rounding == "half_even":
        return np.round(v)
    if rounding == "half_up":
        return np.floor(v + 0.5)
    if rounding == "half_away":
        return np.sign(v) * np.floor(np.abs(v) + 0.5)
    if rounding == "floor":
        return np.floor(v)
    if rounding == "toward_zero":
        return np.trunc(v)
    raise NetworkError(f"unknown rounding mode {rounding!r}")
