"""add, clip: element-wise integer arithmetic.

add: y = a + b (+ ...), two or more inputs of one shape and one scale.
clip: y = min(max(x, lo), hi) (a ReLU is lo = 0); attributes lo, hi.
"""
from __future__ import annotations

import numpy as np

from ..arith import as_compute, saturate_or_wrap
from ..bounds import Bounds, bits_of_range, spans_zero
from ..network import NetworkError, Op
from ..spec import REQUIRED, OpSpec, attr, register
from ..types import BinaryType, TensorType, unit_scale


def golden_add(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    bits = max(bits_of_range(t.lo, t.hi) for t in types) + len(xs)
    acc = as_compute(xs[0], bits)
    for x in xs[1:]:
        acc = acc + as_compute(x, bits)
    return acc


def bounds_add(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    return Bounds(sum(b.lo for b in ins), sum(b.hi for b in ins))


def check_add(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    ua = unit_scale(types[0])
    for t in types[1:]:
        ub = unit_scale(t)  # what one raw unit is worth (a minifloat's unit is scale * 2^(1-bias-M))
        if ua.shape != ub.shape or not bool(np.all(ua == ub)):
            raise NetworkError(f"{op.where()}: inputs have different scales; requantize them to one scale first")


def golden_clip(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    return saturate_or_wrap(xs[0], int(attr(op, "lo")), int(attr(op, "hi")), "saturate", 0, True)


def bounds_clip(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    return Bounds(np.asarray(golden_clip(op, [ins[0].lo[None]], types))[0].astype(object),
                  np.asarray(golden_clip(op, [ins[0].hi[None]], types))[0].astype(object))


def clip_can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    if isinstance(in_types[0], BinaryType):
        lo, hi = int(attr(op, "lo")), int(attr(op, "hi"))
        return 0 in (min(max(-1, lo), hi), min(max(1, lo), hi))
    return spans_zero(b)


register(OpSpec("add", "y = a + b (+ ...), inputs share one scale", golden=golden_add, bounds=bounds_add,
                check=check_add, n_inputs=None, sums=True))
register(OpSpec("clip", "y = min(max(x, lo), hi)", golden=golden_clip, bounds=bounds_clip,
                can_be_zero=clip_can_be_zero, attrs={"lo": REQUIRED, "hi": REQUIRED}, minifloat_out=True))
