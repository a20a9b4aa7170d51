"""requant: y = sat(round(x * mult / 2^shift)) -- every rescale of the network.

Arrays mult (> 0) and shift (scalar or per channel; shift < 0 is a left shift).
Attributes: rounding (half_even | half_up | half_away | floor | toward_zero),
overflow (saturate to [lo, hi], default the output type's range | wrap to the
type's bits).  With a minifloat output type, x*mult/2^shift is in units of the
type's scale and is rounded to the minifloat grid (always saturating).  HAWQ-V3
dyadic requantization is mult = b, shift = c (M = b / 2^c).
"""
from __future__ import annotations

import numpy as np

from ..arith import as_compute, max_abs_bits, minifloat_round, narrow, saturate_or_wrap, shift_round
from ..bounds import Bounds, bits_of_range
from ..network import OVERFLOW_MODES, ROUNDING_MODES, NetworkError, Op
from ..spec import OpSpec, attr, register
from ..types import IntType, MinifloatType, TensorType


def golden(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    mult = op.arrays["mult"]
    shift = op.arrays["shift"].astype(np.int64)
    in_t = types[0]
    bits = bits_of_range(in_t.lo, in_t.hi) + max_abs_bits(mult) + max(0, -int(shift.min())) + 2
    n = as_compute(xs[0], bits) * as_compute(mult, bits)
    rounding = attr(op, "rounding")
    if isinstance(op.type, MinifloatType):
        y = minifloat_round(n, shift, op.type, rounding)
    else:
        y = shift_round(n, shift, rounding)
        y = saturate_or_wrap(y, int(attr(op, "lo")), int(attr(op, "hi")), attr(op, "overflow"),
                             op.type.bits, op.type.signed)
    return narrow(y)


def bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    if attr(op, "overflow") == "wrap" and not isinstance(op.type, MinifloatType):
        # wrapping is not monotonic: bounds are exact only where nothing wraps
        mult = op.arrays["mult"].astype(object)
        shift = op.arrays["shift"].astype(np.int64)
        rounding = attr(op, "rounding")
        plo = shift_round(ins[0].lo[None] * mult, shift, rounding)[0]
        phi = shift_round(ins[0].hi[None] * mult, shift, rounding)[0]
        fits = np.vectorize(lambda a, b: a >= op.type.lo and b <= op.type.hi, otypes=[bool])(plo, phi)
        return Bounds(np.where(fits, plo, op.type.lo).astype(object), np.where(fits, phi, op.type.hi).astype(object))
    return Bounds(np.asarray(golden(op, [ins[0].lo[None]], types))[0].astype(object),
                  np.asarray(golden(op, [ins[0].hi[None]], types))[0].astype(object))


def check(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    where = op.where()
    if attr(op, "rounding") not in ROUNDING_MODES:
        raise NetworkError(f"{where}: rounding must be one of {ROUNDING_MODES}")
    if attr(op, "overflow") not in OVERFLOW_MODES:
        raise NetworkError(f"{where}: overflow must be one of {OVERFLOW_MODES}")
    if np.any(op.arrays["mult"].astype(object) <= 0):
        raise NetworkError(f"{where}: requantization multipliers must be positive")
    if not isinstance(op.type, (IntType, MinifloatType)):
        raise NetworkError(f"{where}: requant output must be an integer or minifloat type")


register(OpSpec("requant", "y = sat(round(x*mult / 2^shift))", golden=golden, bounds=bounds, check=check,
                arrays=("mult", "shift"),
                attrs={"rounding": "half_even", "overflow": "saturate",
                       "lo": lambda op: op.type.lo, "hi": lambda op: op.type.hi},
                minifloat_out=True))
