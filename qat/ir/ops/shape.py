"""reshape, concat: wiring only (no arithmetic).

reshape: the same elements in C order with the op's shape (flatten).
concat: inputs joined along the last axis (two or more inputs).
"""
from __future__ import annotations

import numpy as np

from ..bounds import Bounds
from ..network import Op
from ..spec import OpSpec, register
from ..types import BinaryType, TensorType


def golden_reshape(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    return xs[0].reshape((xs[0].shape[0],) + tuple(op.shape))


def bounds_reshape(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    return Bounds(ins[0].lo.reshape(tuple(op.shape)), ins[0].hi.reshape(tuple(op.shape)))


def golden_concat(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    if any(x.dtype == object for x in xs):
        xs = [x.astype(object) for x in xs]
    return np.concatenate(xs, axis=-1)


def bounds_concat(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    return Bounds(np.concatenate([b.lo for b in ins], -1), np.concatenate([b.hi for b in ins], -1))


def zero_unless_binary(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    return not all(isinstance(t, BinaryType) for t in in_types)


register(OpSpec("reshape", "same elements, new shape (C order)", golden=golden_reshape, bounds=bounds_reshape,
                can_be_zero=zero_unless_binary, attrs={"shape": None}, wiring=True, minifloat_out=True))
register(OpSpec("concat", "join along the last axis", golden=golden_concat, bounds=bounds_concat, n_inputs=None,
                can_be_zero=zero_unless_binary, wiring=True, minifloat_out=True))
