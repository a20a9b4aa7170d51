"""maxpool, avgpool: window reductions over 1-D or 2-D tensors.

Attributes: pool, strides (one per spatial axis), dims (1 | 2), padding.
maxpool: the window maximum; padding ('same' or explicit) never wins.
avgpool: the window *sum* over 'valid' windows; the 1/count lives in the
output type's scale, so the op stays exact.
"""
from __future__ import annotations

import numpy as np

from ..arith import as_compute
from ..bounds import Bounds, bits_of_range
from ..geometry import Window, check_padding
from ..network import NetworkError, Op
from ..spec import REQUIRED, OpSpec, attr, register
from ..types import BinaryType, TensorType


def pool_geometry(op: Op) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(dims, pool, strides) of a pooling op as 2-D windows (1-D pools get height 1)."""
    dims = int(attr(op, "dims"))
    pool = tuple(int(p) for p in attr(op, "pool"))
    strides = tuple(int(s) for s in attr(op, "strides"))
    if dims == 1:
        pool, strides = (1, pool[0]), (1, strides[0])
    return dims, pool, strides


def geometry(op: Op, in_shape: tuple[int, ...]) -> Window:
    dims, pool, strides = pool_geometry(op)
    return Window.of(in_shape, pool, strides, attr(op, "padding"), dims)


def golden_max(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    low = types[0].lo - 1  # padding never wins
    win = geometry(op, xs[0].shape[1:])
    x = as_compute(win.to4d(xs[0]), bits_of_range(low, types[0].hi))  # the pad value fits the dtype
    return win.from4d(win.patches(x, pad_value=low).max(axis=(3, 4)))


def golden_sum(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    win = geometry(op, xs[0].shape[1:])
    bits = bits_of_range(types[0].lo, types[0].hi) + (win.kh * win.kw).bit_length() + 1
    x = as_compute(win.to4d(xs[0]), bits)
    return win.from4d(win.patches(x).sum(axis=(3, 4)))


def _monotone_bounds(fn):
    def bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
        lo = np.asarray(fn(op, [ins[0].lo[None]], types))[0].astype(object)
        hi = np.asarray(fn(op, [ins[0].hi[None]], types))[0].astype(object)
        return Bounds(lo, hi)
    return bounds


def check(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    where = op.where()
    dims = attr(op, "dims")
    if dims not in (1, 2) or len(attr(op, "pool")) != dims or len(attr(op, "strides")) != dims:
        raise NetworkError(f"{where}: dims must be 1 or 2 with one pool size and stride per spatial axis")
    if len(shapes[0]) != dims + 1:
        raise NetworkError(f"{where}: a {dims}-D pool needs a (spatial..., channels) input, got {shapes[0]}")
    if op.kind == "avgpool" and attr(op, "padding") != "valid":
        raise NetworkError(f"{where}: average pooling takes 'valid' windows only")
    check_padding(attr(op, "padding"), where, dims)
    pad = attr(op, "padding")
    if op.kind == "maxpool" and isinstance(pad, (list, tuple)):
        _, pool, _ = pool_geometry(op)
        for axis, (k, pair) in enumerate(zip(pool[2 - dims:], pad)):
            if max(pair) >= k:  # a window of pads only would have no maximum (PyTorch allows pad <= pool/2)
                raise NetworkError(f"{where}: padding {list(pair)} on spatial axis {axis} must be smaller than "
                                   f"the pool size {k}")


def max_can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    return not all(isinstance(t, BinaryType) for t in in_types)


_ATTRS = {"pool": REQUIRED, "strides": REQUIRED, "dims": REQUIRED, "padding": "valid"}
register(OpSpec("maxpool", "window maximum (pads never win)", golden=golden_max, bounds=_monotone_bounds(golden_max),
                check=check, can_be_zero=max_can_be_zero, geometry=geometry, attrs=dict(_ATTRS),
                minifloat_out=True))
register(OpSpec("avgpool", "window sum over 'valid' windows (1/count in the scale)", golden=golden_sum,
                bounds=_monotone_bounds(golden_sum), check=check, geometry=geometry, attrs=dict(_ATTRS),
                sums=True))
