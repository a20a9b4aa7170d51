"""Tensor types of the integer network.

Every tensor holds raw integers; its type says which integers are legal and
what real value one raw unit is worth (``scale``).  Scales are float64 and
are exact for the cases the IR produces: powers of two, dyadic b/2^c with
b < 2^53, and framework float32 scales.  A scale is either one value for the
whole tensor or one value per element of the last axis ("per channel").

* :class:`IntType`: two's-complement (``signed``) or unsigned, ``bits`` wide.
* :class:`BinaryType`: values -1/+1, stored as one bit each (1 <-> +1); the
  golden model's raw values are -1 and +1.
* :class:`MinifloatType`: E exponent bits, M mantissa bits, ``bias``;
  variants ``plain`` (no inf/NaN codes), ``ocp`` (OCP FP8: E4M3 has a NaN
  code, E5M2 reserves its top exponent; narrower MX formats have none) and
  ``fnuz`` (bias 2^(E-1), one NaN code, no negative zero).  Raw values are
  the real value in units of the smallest subnormal 2^(1-bias-M), so every
  minifloat is an exact integer and a dot product of minifloats is an exact
  fixed-point sum.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction
from typing import Union

import numpy as np

MINIFLOAT_VARIANTS = ("plain", "ocp", "fnuz")


def _scale_tuple(scale) -> tuple[float, ...]:
    arr = np.atleast_1d(np.asarray(scale, dtype=np.float64)).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ValueError(f"scale must be positive and finite, got {scale!r}")
    return tuple(float(v) for v in arr)


@dataclass(frozen=True)
class IntType:
    """Integer of ``bits`` bits; real value = raw * scale."""

    bits: int
    signed: bool = True
    scale: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if not isinstance(self.bits, (int, np.integer)) or self.bits < 1 or (self.signed and self.bits < 2):
            raise ValueError(f"impossible integer width {self.bits} (signed={self.signed})")
        object.__setattr__(self, "bits", int(self.bits))
        object.__setattr__(self, "scale", _scale_tuple(self.scale))

    @property
    def lo(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def describe(self) -> str:
        return f"{'int' if self.signed else 'uint'}{self.bits}{_scale_text(self.scale)}"


@dataclass(frozen=True)
class BinaryType:
    """Values -1/+1 (one bit, 1 <-> +1); real value = raw * scale."""

    scale: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        object.__setattr__(self, "scale", _scale_tuple(self.scale))

    bits = 1
    signed = True
    lo = -1
    hi = 1

    def describe(self) -> str:
        return f"bin{_scale_text(self.scale)}"


@dataclass(frozen=True)
class MinifloatType:
    """Minifloat with E exponent and M mantissa bits (plus sign bit).

    Raw integer = real value / (scale * 2^(1-bias-M)); see module docstring.
    """

    exp_bits: int
    man_bits: int
    bias: int | None = None
    variant: str = "plain"
    scale: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        if self.variant not in MINIFLOAT_VARIANTS:
            raise ValueError(f"minifloat variant must be one of {MINIFLOAT_VARIANTS}, got {self.variant!r}")
        if not (1 <= self.exp_bits <= 8 and 0 <= self.man_bits <= 10):
            raise ValueError(f"impossible minifloat format E{self.exp_bits}M{self.man_bits}")
        if self.bias is None:
            bias = (1 << (self.exp_bits - 1)) if self.variant == "fnuz" else (1 << (self.exp_bits - 1)) - 1
            object.__setattr__(self, "bias", bias)
        object.__setattr__(self, "scale", _scale_tuple(self.scale))
        if self.max_units < 1:
            raise ValueError(f"minifloat E{self.exp_bits}M{self.man_bits} {self.variant} has no finite values")

    @property
    def bits(self) -> int:
        return 1 + self.exp_bits + self.man_bits

    signed = True

    @property
    def unit_exp(self) -> int:
        """Exponent of the smallest subnormal, 1 - bias - M."""
        return 1 - self.bias - self.man_bits

    @property
    def max_exp_field(self) -> int:
        """Largest exponent field that encodes finite numbers."""
        top = (1 << self.exp_bits) - 1
        if self.variant == "ocp" and self.bits == 8 and self.exp_bits >= 5:
            return top - 1  # E5M2: top exponent is inf/NaN
        return top

    @property
    def max_mantissa_at_top(self) -> int:
        full = (1 << self.man_bits) - 1
        if self.variant == "ocp" and self.bits == 8 and self.exp_bits == 4:
            return full - 1  # E4M3: S.1111.111 is NaN
        return full

    @property
    def max_units(self) -> int:
        """Largest magnitude in raw units (smallest subnormals)."""
        e = self.max_exp_field
        mant = self.max_mantissa_at_top
        if e == 0:
            return mant
        return ((1 << self.man_bits) + mant) << (e - 1)

    @property
    def lo(self) -> int:
        return -self.max_units

    @property
    def hi(self) -> int:
        return self.max_units

    @property
    def max_value(self) -> float:
        return math.ldexp(self.max_units, self.unit_exp)

    def describe(self) -> str:
        return f"fp{self.bits}e{self.exp_bits}m{self.man_bits}b{self.bias}{'' if self.variant == 'plain' else '-' + self.variant}{_scale_text(self.scale)}"


TensorType = Union[IntType, BinaryType, MinifloatType]


def minifloat_magnitudes(t: MinifloatType) -> np.ndarray:
    """Every representable magnitude of ``t`` in raw units (0 first, ascending, int64)."""
    vals = {m for m in range(1 << t.man_bits)}  # exponent field 0: subnormals and zero
    for e in range(1, t.max_exp_field + 1):
        vals.update(((1 << t.man_bits) + m) << (e - 1) for m in range(1 << t.man_bits))
    return np.array(sorted(v for v in vals if v <= t.max_units), dtype=np.int64)


def unit_scale(t: TensorType) -> np.ndarray:
    """Real value of one raw unit, float64, shape (1,) or (channels,)."""
    s = np.asarray(t.scale, dtype=np.float64)
    if isinstance(t, MinifloatType):
        s = np.ldexp(s, t.unit_exp)
    return s


def with_scale(t: TensorType, scale) -> TensorType:
    """Same type with another scale."""
    from dataclasses import replace

    return replace(t, scale=_scale_tuple(scale))


def is_po2(values) -> bool:
    """True when every value is an exact power of two."""
    arr = np.atleast_1d(np.asarray(values, dtype=np.float64))
    mant, _ = np.frexp(arr)
    return bool(np.all(mant == 0.5))


def log2_exact(values) -> np.ndarray:
    """Integer log2 of exact powers of two (raises otherwise)."""
    if not is_po2(values):
        raise ValueError(f"not powers of two: {values}")
    _, e = np.frexp(np.atleast_1d(np.asarray(values, dtype=np.float64)))
    return (e - 1).astype(np.int64)


def signed_bits_for(lo: int, hi: int) -> int:
    """Smallest two's-complement width holding [lo, hi] (at least 2)."""
    lo, hi = int(lo), int(hi)
    need = max((-lo - 1).bit_length() if lo < 0 else 0, hi.bit_length() if hi > 0 else 0)
    return max(need + 1, 2)


def unsigned_bits_for(hi: int) -> int:
    return max(int(hi).bit_length(), 1)


def type_for_range(lo: int, hi: int, scale) -> IntType:
    """Narrowest IntType holding [lo, hi] (unsigned when lo >= 0)."""
    if lo >= 0:
        return IntType(unsigned_bits_for(hi), False, scale)
    return IntType(signed_bits_for(lo, hi), True, scale)


def _scale_text(scale: tuple[float, ...]) -> str:
    if len(scale) == 1:
        v = scale[0]
        if v == 1.0:
            return ""
        if is_po2(v):
            return f"*2^{int(log2_exact(v)[0])}"
        return f"*{v:.6g}"
    return f"*per-ch[{len(scale)}]"


_FIXED_RE = re.compile(r"^\s*(u?fixed|ap_u?fixed)\s*<\s*(\d+)\s*,\s*(-?\d+)\s*>\s*$")


def parse_fixed(text: str) -> IntType:
    """Parse ``fixed<W,I>`` / ``ufixed<W,I>`` (hls4ml/ap_fixed convention:
    W total bits, I integer bits including the sign bit for ``fixed``)."""
    m = _FIXED_RE.match(text)
    if not m:
        raise ValueError(f"cannot parse type {text!r}: expected fixed<W,I> or ufixed<W,I>")
    kind, width, integer = m.group(1), int(m.group(2)), int(m.group(3))
    signed = "u" not in kind
    if width < (2 if signed else 1) or width > 64:
        raise ValueError(f"impossible bit width in {text!r}: W must be in [{2 if signed else 1}, 64]")
    return IntType(width, signed, (math.ldexp(1.0, integer - width),))


def to_fraction(x: float) -> Fraction:
    return Fraction(float(x))


# ---- JSON (de)serialisation -------------------------------------------------

def type_to_json(t: TensorType) -> dict:
    if isinstance(t, IntType):
        return {"kind": "int", "bits": t.bits, "signed": t.signed, "scale": list(t.scale)}
    if isinstance(t, BinaryType):
        return {"kind": "binary", "scale": list(t.scale)}
    if isinstance(t, MinifloatType):
        return {"kind": "minifloat", "exp_bits": t.exp_bits, "man_bits": t.man_bits, "bias": t.bias,
                "variant": t.variant, "scale": list(t.scale)}
    raise TypeError(f"not a tensor type: {t!r}")


def type_from_json(d: dict) -> TensorType:
    kind = d.get("kind")
    if kind == "int":
        return IntType(int(d["bits"]), bool(d["signed"]), tuple(d["scale"]))
    if kind == "binary":
        return BinaryType(tuple(d["scale"]))
    if kind == "minifloat":
        return MinifloatType(int(d["exp_bits"]), int(d["man_bits"]), int(d["bias"]), str(d["variant"]),
                             tuple(d["scale"]))
    raise ValueError(f"unknown tensor type kind {kind!r}")
