"""argmax: index of the largest *real* value along the last axis; the first wins ties.

With per-channel scales the raw integers are compared as exact rationals
(raw * scale), so the index is that of the largest real value.  The result
keeps a last axis of size 1.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np

from ..bounds import Bounds, full
from ..network import Op
from ..spec import OpSpec, register
from ..types import TensorType


def golden(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    x = xs[0]
    scale = np.asarray(types[0].scale, dtype=np.float64)
    if scale.size == 1:
        return np.argmax(x, axis=-1).astype(np.int64)[..., None]
    fr = np.array([Fraction(float(s)) for s in np.broadcast_to(scale, x.shape[-1:])], dtype=object)
    vals = x.astype(object) * fr
    return np.argmax(vals, axis=-1).astype(np.int64)[..., None]


def bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    shape = ins[0].lo.shape[:-1] + (1,)
    return Bounds(full(shape, 0), full(shape, ins[0].lo.shape[-1] - 1))


register(OpSpec("argmax", "index of the largest real value along the last axis (first wins)", golden=golden,
                bounds=bounds))
