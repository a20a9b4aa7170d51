"""Minifloat bit codes: how a minifloat tensor element travels on a bus.

The IR holds a minifloat as its raw integer (the value in units of the
smallest subnormal, see qat.ir.types).  Hardware carries the 1+E+M bit code
``[sign | exponent field e (E bits) | mantissa m (M bits)]``:

* e = 0: subnormal, |raw| = m;
* e >= 1: |raw| = (2^M + m) << (e - 1);
* sign-magnitude; zero is always encoded as +0 (code 0).

The rule is the same for the plain, OCP and FNUZ variants: they differ only
in the bias (which sets what one raw unit is worth, not the code) and in the
largest finite code (``MinifloatType.max_exp_field`` /
``max_mantissa_at_top``).  Codes above it (OCP NaN/inf, FNUZ's 0x80 NaN) have
no finite value: :func:`decode` rejects them unless ``strict=False``.

The generated RTL never produces -0 (sign 1, magnitude 0).  Arriving at the
network input, it is read as 0 by every arithmetic op and by maxpool, clip
and argmax (whose results are +0); reshape and concat pass codes unchanged.
NaN/inf codes at the input are outside the contract (the decoder is sized
for the proven finite range).
"""
from __future__ import annotations

import numpy as np

from qat.ir.types import MinifloatType, minifloat_magnitudes


class MinifloatCodeError(ValueError):
    """A raw value off the minifloat grid, or a code with no finite value."""


def code_bits(t: MinifloatType) -> int:
    """Bits of one code: 1 + E + M."""
    return 1 + t.exp_bits + t.man_bits


def max_magnitude_code(t: MinifloatType) -> int:
    """The (E+M)-bit magnitude code of the largest finite value (``t.max_units``)."""
    return (t.max_exp_field << t.man_bits) | t.max_mantissa_at_top


def encode_one(raw: int, t: MinifloatType) -> int:
    """Code of one raw integer (raises MinifloatCodeError off the grid)."""
    raw = int(raw)
    mag = abs(raw)
    if mag > t.max_units:
        raise MinifloatCodeError(f"raw value {raw} exceeds the largest {t.describe()} magnitude {t.max_units}")
    man = t.man_bits
    if mag < (1 << man):
        e, m = 0, mag
    else:
        e = mag.bit_length() - man  # leading one at bit M + e - 1
        if mag & ((1 << (e - 1)) - 1):
            raise MinifloatCodeError(f"raw value {raw} is not on the {t.describe()} grid "
                                     f"(only {man + 1} significant bits are representable)")
        m = (mag >> (e - 1)) - (1 << man)
    sign = 1 if raw < 0 else 0
    return (sign << (t.exp_bits + man)) | (e << man) | m


def decode_one(code: int, t: MinifloatType, strict: bool = True) -> int:
    """Raw integer of one code; with ``strict`` codes without a finite value raise."""
    code = int(code)
    man, eb = t.man_bits, t.exp_bits
    if not 0 <= code < (1 << (1 + eb + man)):
        raise MinifloatCodeError(f"code {code:#x} does not fit {1 + eb + man} bits")
    sign = code >> (eb + man)
    magc = code & ((1 << (eb + man)) - 1)
    e, m = magc >> man, magc & ((1 << man) - 1)
    if strict:
        if magc > max_magnitude_code(t):
            raise MinifloatCodeError(f"code {code:#x} is not a finite {t.describe()} value (NaN/inf code)")
        if t.variant == "fnuz" and sign and magc == 0:
            raise MinifloatCodeError(f"code {code:#x} is the NaN code of {t.describe()}")
    mag = m if e == 0 else ((1 << man) + m) << (e - 1)
    return -mag if sign else mag


def encode(raw, t: MinifloatType) -> np.ndarray:
    """Codes (int64 array, same shape) of raw minifloat integers."""
    arr = np.asarray(raw)
    out = np.array([encode_one(int(v), t) for v in arr.ravel()], dtype=np.int64)
    return out.reshape(arr.shape)


def decode(codes, t: MinifloatType, strict: bool = True) -> np.ndarray:
    """Raw integers (int64 array, same shape) of codes."""
    arr = np.asarray(codes)
    out = np.array([decode_one(int(v), t, strict) for v in arr.ravel()], dtype=np.int64)
    return out.reshape(arr.shape)


def finite_codes(t: MinifloatType) -> list[int]:
    """Every code with a finite value, in increasing code order (both zeros except FNUZ's)."""
    return [c for c in range(1 << code_bits(t)) if _finite(c, t)]


def _finite(code: int, t: MinifloatType) -> bool:
    try:
        decode_one(code, t)
    except MinifloatCodeError:
        return False
    return True


def grid(t: MinifloatType) -> np.ndarray:
    """Every representable raw value, ascending (int64): +-qat.ir.types.minifloat_magnitudes."""
    mags = minifloat_magnitudes(t)
    return np.concatenate([-mags[:0:-1], mags])


def type_to_manifest(t: MinifloatType) -> dict:
    """The format fields a testbench needs to encode/decode (see :func:`type_from_manifest`)."""
    return {"exp_bits": t.exp_bits, "man_bits": t.man_bits, "bias": t.bias, "variant": t.variant}


def type_from_manifest(info: dict) -> MinifloatType | None:
    """The minifloat format of a manifest tensor entry, or None for integer/binary tensors."""
    mf = info.get("minifloat")
    if not mf:
        return None
    return MinifloatType(int(mf["exp_bits"]), int(mf["man_bits"]), int(mf["bias"]), str(mf["variant"]))


def bus_view(info: dict, raw) -> np.ndarray:
    """Raw integers of a manifest tensor entry as its bus elements carry them:
    codes for a minifloat tensor, else unchanged (what testbenches compare)."""
    t = type_from_manifest(info)
    return np.asarray(raw) if t is None else encode(raw, t)


def mismatch_entry(info: dict, expected: int, got: int) -> dict:
    """``expected``/``got`` bus elements as raw integers for a mismatch report
    (minifloat: decoded, plus both codes in hex; a code without a finite value
    decodes as its bit pattern would)."""
    t = type_from_manifest(info)
    if t is None:
        return {"expected": int(expected), "got": int(got)}
    return {"expected": decode_one(int(expected), t, strict=False), "got": decode_one(int(got), t, strict=False),
            "expected_code": f"{int(expected):#x}", "got_code": f"{int(got):#x}"}
