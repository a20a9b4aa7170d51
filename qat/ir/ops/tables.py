"""threshold, lut: per-element functions given by tables.

threshold: y = base + direction * step * count(x >= T[c, :]) with T (C or 1, L)
sorted ascending per channel (FINN's MultiThreshold; BatchNorm + activation
folded into integer compares).  Arrays thresholds, base, direction; attribute step.
lut: y = table[x - in_lo] (arrays table; attribute in_lo); the table must
cover the input's range.
"""
from __future__ import annotations

import numpy as np

from ..arith import as_compute, max_abs_bits
from ..bounds import Bounds, bits_of_range, full
from ..network import NetworkError, Op
from ..spec import REQUIRED, OpSpec, attr, register
from ..types import TensorType


def golden_threshold(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    t = op.arrays["thresholds"]  # (C, L)
    bits = max(max_abs_bits(t), bits_of_range(types[0].lo, types[0].hi)) + 1
    x = as_compute(xs[0], bits)
    t = as_compute(t, bits)
    count = (x[..., None] >= t).sum(axis=-1)
    step = int(attr(op, "step"))
    y = op.arrays["base"].astype(np.int64) + op.arrays["direction"].astype(np.int64) * step * count.astype(np.int64)
    return y.astype(np.int64)


def bounds_threshold(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    a = np.asarray(golden_threshold(op, [ins[0].lo[None]], types))[0].astype(object)
    b = np.asarray(golden_threshold(op, [ins[0].hi[None]], types))[0].astype(object)
    return Bounds(np.minimum(a, b), np.maximum(a, b))


def check_threshold(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    t = op.arrays["thresholds"]
    c = shapes[0][-1]
    if t.ndim != 2 or t.shape[0] not in (1, c):
        raise NetworkError(f"{op.where()}: thresholds shape {t.shape} does not fit {c} channels")
    if t.shape[1] > 1 and np.any(np.diff(t.astype(object), axis=1) < 0):
        raise NetworkError(f"{op.where()}: thresholds must be sorted ascending per channel")


def threshold_can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    """The output is a level base + direction*step*count; 0 is reachable when it is a level within the bounds."""
    c = b.lo.shape[-1] if b.lo.ndim else 1
    n_lv = op.arrays["thresholds"].shape[1]
    base = np.broadcast_to(op.arrays["base"].astype(np.int64), (c,))
    dirn = np.broadcast_to(op.arrays["direction"].astype(np.int64), (c,))
    step = int(attr(op, "step"))
    lv = base[:, None] + dirn[:, None] * step * np.arange(n_lv + 1)[None, :]
    zero_level = np.any(lv == 0, axis=1)
    spans = np.vectorize(lambda a, z: a <= 0 <= z, otypes=[bool])(b.lo, b.hi)
    return bool(np.any(spans & zero_level))


def golden_lut(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    idx = xs[0].astype(np.int64) - int(attr(op, "in_lo"))
    return op.arrays["table"].astype(np.int64)[idx]


def bounds_lut(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    t = op.arrays["table"]
    in_lo = int(attr(op, "in_lo"))
    first, last = ins[0].min - in_lo, ins[0].max - in_lo
    if first < 0 or last >= t.size:
        raise NetworkError(f"{op.where()}: table of {t.size} entries does not cover input range "
                           f"[{ins[0].min}, {ins[0].max}]")
    reach = t[first:last + 1]  # entries the input can index
    shape = ins[0].lo.shape
    return Bounds(full(shape, reach.min()), full(shape, reach.max()))


def check_lut(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    lo = int(attr(op, "in_lo"))
    if types[0].lo < lo or types[0].hi - lo >= op.arrays["table"].size:
        raise NetworkError(f"{op.where()}: table of {op.arrays['table'].size} entries does not cover input "
                           f"range [{types[0].lo}, {types[0].hi}]")


def lut_can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    in_lo = int(attr(op, "in_lo"))
    return bool(np.any(op.arrays["table"][ins[0].min - in_lo:ins[0].max - in_lo + 1] == 0))


register(OpSpec("threshold", "y = base + direction*step*count(x >= T[c,:])", golden=golden_threshold,
                bounds=bounds_threshold, check=check_threshold, can_be_zero=threshold_can_be_zero,
                arrays=("thresholds", "base", "direction"), attrs={"step": 1}))
register(OpSpec("lut", "y = table[x - in_lo]", golden=golden_lut, bounds=bounds_lut, check=check_lut,
                can_be_zero=lut_can_be_zero, arrays=("table",), attrs={"in_lo": REQUIRED}))
