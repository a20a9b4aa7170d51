"""Exact integer arithmetic shared by the golden model, the interval analysis
and the importers: rounding shifts in every mode, saturation and wrapping,
rounding to a minifloat grid.  int64 where a bound proves it safe, Python
integers (numpy ``object`` arrays) otherwise; no floating point.
"""
from __future__ import annotations

import numpy as np

from .types import MinifloatType

SAFE_BITS = 62


# ---- integer helpers ---------------------------------------------------------

def as_compute(arr: np.ndarray, bound_bits: int) -> np.ndarray:
    """int64 when values up to 2^bound_bits are safe, else Python ints."""
    if bound_bits <= SAFE_BITS and arr.dtype != object:
        return arr.astype(np.int64, copy=False)
    return np.asarray(arr).astype(object)


def max_abs_bits(arr: np.ndarray) -> int:
    """Bit length of the largest magnitude in ``arr``."""
    if arr.size == 0:
        return 0
    return int(max(abs(int(np.max(arr))), abs(int(np.min(arr))))).bit_length()


def shift_round(n: np.ndarray, shift, rounding: str) -> np.ndarray:
    """round(n / 2^shift) with an explicit rounding mode (exact).

    ``shift`` may be an array broadcast against ``n``; shift <= 0 is an exact
    left shift.  Modes: half_even, half_up (toward +inf on ties), half_away
    (away from zero on ties), floor, toward_zero.
    """
    n = np.asarray(n)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), n.shape)
    if n.dtype != object:
        if n.dtype.kind == "u" and n.dtype.itemsize >= 8:
            n = n.astype(object)
        else:
            n = n.astype(np.int64)
            # int64 shifts by >= 63 bits, and left shifts that overflow, are not exact: use Python ints
            if n.size and (int(shift.max()) > SAFE_BITS
                           or max_abs_bits(n) + max(0, -int(shift.min())) > SAFE_BITS):
                n = n.astype(object)
    if n.dtype == object:
        flat_n, flat_s = n.ravel(), shift.ravel()
        out = np.empty(flat_n.shape, dtype=object)
        for i in range(flat_n.size):
            out[i] = _shift_round_int(int(flat_n[i]), int(flat_s[i]), rounding)
        return out.reshape(n.shape)
    left = shift <= 0
    s = np.where(left, 0, shift)
    up = np.left_shift(n, np.where(left, -shift, 0))
    one = np.ones_like(n)
    half = np.where(s > 0, np.left_shift(one, np.maximum(s - 1, 0)), 0)
    q = np.right_shift(n, s)  # floor
    r = n - np.left_shift(q, s)
    if rounding == "floor":
        res = q
    elif rounding == "half_up":
        res = q + (r >= half) * (s > 0)
    elif rounding == "half_even":
        res = q + ((r > half) | ((r == half) & (q & 1 == 1))) * (s > 0)
    elif rounding == "half_away":
        res = np.where(n >= 0, q + (r >= half) * (s > 0), q + (r > half) * (s > 0))
    elif rounding == "toward_zero":
        res = np.where((n < 0) & (r != 0), q + 1, q)
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    return np.where(left, up, res)


def _shift_round_int(n: int, s: int, rounding: str) -> int:
    if s <= 0:
        return n << -s
    q = n >> s
    r = n - (q << s)
    half = 1 << (s - 1)
    if rounding == "floor":
        return q
    if rounding == "half_up":
        return q + (r >= half)
    if rounding == "half_even":
        return q + (r > half or (r == half and q & 1))
    if rounding == "half_away":
        return q + (r >= half) if n >= 0 else q + (r > half)
    if rounding == "toward_zero":
        return q + 1 if (n < 0 and r != 0) else q
    raise ValueError(f"unknown rounding mode {rounding!r}")


def saturate_or_wrap(y: np.ndarray, lo: int, hi: int, overflow: str, bits: int, signed: bool) -> np.ndarray:
    if overflow == "saturate":
        if y.dtype == object:
            return np.array([min(max(int(v), lo), hi) for v in y.ravel()], dtype=object).reshape(y.shape)
        return np.clip(y, lo, hi)
    if overflow == "wrap":
        if y.dtype != object and (bits >= SAFE_BITS or max_abs_bits(y) >= SAFE_BITS):
            y = y.astype(object)  # int64 arithmetic would overflow (or turn float) here
        mod = 1 << bits
        off = (1 << (bits - 1)) if signed else 0
        return (y + off) % mod - off
    raise ValueError(f"unknown overflow mode {overflow!r}")


def minifloat_round(n: np.ndarray, shift, t: MinifloatType, rounding: str) -> np.ndarray:
    """Round n/2^shift to the minifloat grid of ``t`` (QONNX FloatQuant rule:
    e = max(floor(log2|v|) - M, 1-bias-M), q = 2^e*round(v/2^e), saturate to
    +-max).  Returns raw units of 2^(1-bias-M)."""
    n = np.asarray(n)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), n.shape)
    flat_n, flat_s = n.ravel(), shift.ravel()
    out = np.empty(flat_n.shape, dtype=object)
    emin, mx = t.unit_exp, t.max_units
    for i in range(flat_n.size):
        v, s = int(flat_n[i]), int(flat_s[i])
        if v == 0:
            out[i] = 0
            continue
        fl = abs(v).bit_length() - 1 - s  # floor(log2|v/2^s|)
        e = max(fl - t.man_bits, emin)
        q = _shift_round_int(v, s + e, rounding)  # v/2^s/2^e rounded
        u = q << (e - emin)
        out[i] = min(max(u, -mx), mx)
    return out.reshape(n.shape)


def narrow(y: np.ndarray) -> np.ndarray:
    """Store small Python-int arrays as int64 again."""
    if y.dtype == object and y.size and max_abs_bits(y) <= SAFE_BITS:
        return y.astype(np.int64)
    return y
