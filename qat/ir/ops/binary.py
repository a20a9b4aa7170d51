"""bdense, bconv2d: binary (+-1) inputs and weights, XNOR-popcount.

Weights are bits (1 <-> +1); y = 2*popcount(XNOR(x, w)) - N over the fan-in N.
With arrays threshold/direction (BatchNorm + sign fused) the output is binary:
+1 when y >= T (direction +1) or y <= T (direction -1), else -1.
bconv2d slides a 'valid' window (weight (KH, KW, Ci, Co); attribute strides).
"""
from __future__ import annotations

import numpy as np

from ..bounds import Bounds, full
from ..geometry import Window
from ..network import NetworkError, Op
from ..spec import REQUIRED, OpSpec, attr, register
from ..types import BinaryType, TensorType


def geometry(op: Op, in_shape: tuple[int, ...]) -> Window:
    w = op.arrays["weight"]
    return Window.of(in_shape, (w.shape[0], w.shape[1]), tuple(int(s) for s in attr(op, "strides")), "valid", 2)


def binary_dot_bits(xbits: np.ndarray, wbits: np.ndarray) -> np.ndarray:
    """2*popcount(XNOR(x, w)) - N over the last axis of xbits (bits 0/1)."""
    x = xbits.astype(np.int64)
    w = wbits.astype(np.int64)
    matches = np.matmul(x, w) + np.matmul(1 - x, 1 - w)  # popcount of XNOR
    return 2 * matches - x.shape[-1]


def golden(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    xbits = (xs[0] > 0).astype(np.int64)
    wbits = op.arrays["weight"].astype(np.int64)
    if op.kind == "bdense":
        y = binary_dot_bits(xbits, wbits)
    else:
        pat = geometry(op, xbits.shape[1:]).patches(xbits)
        n, oh, ow = pat.shape[:3]
        y = binary_dot_bits(pat.reshape(n, oh, ow, -1), wbits.reshape(-1, wbits.shape[-1]))
    if "threshold" in op.arrays:
        t = op.arrays["threshold"].astype(np.int64)
        d = op.arrays["direction"].astype(np.int64)
        on = np.where(d > 0, y >= t, y <= t)
        return np.where(on, 1, -1).astype(np.int64)
    return y


def bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    shape = np.asarray(golden(op, [ins[0].lo[None]], types))[0].shape  # the shape the op really computes
    if "threshold" in op.arrays:
        return Bounds(full(shape, -1), full(shape, 1))
    n = int(np.prod(op.arrays["weight"].shape[:-1]))
    return Bounds(full(shape, -n), full(shape, n))


def can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    """Thresholded: -1/+1; else 2*popcount - N is never 0 when N is odd."""
    return "threshold" not in op.arrays and int(np.prod(op.arrays["weight"].shape[:-1])) % 2 == 0


def check(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    where = op.where()
    if not isinstance(types[0], BinaryType):
        raise NetworkError(f"{where}: binary op needs a binary input, got {types[0].describe()}")
    if not np.isin(op.arrays["weight"], (0, 1)).all():
        raise NetworkError(f"{where}: binary weights must be bits 0/1")
    if "threshold" in op.arrays and not isinstance(op.type, BinaryType):
        raise NetworkError(f"{where}: thresholded binary op must output a binary type")
    if ("threshold" in op.arrays) != ("direction" in op.arrays):
        raise NetworkError(f"{where}: arrays 'threshold' and 'direction' go together")
    if op.kind == "bconv2d" and attr(op, "padding") != "valid":
        raise NetworkError(f"{where}: binary convolutions take 'valid' windows only (pad with +-1 first)")


_COMMON = dict(golden=golden, bounds=bounds, check=check, can_be_zero=can_be_zero, arrays=("weight",),
               optional_arrays=("threshold", "direction"))
register(OpSpec("bdense", "y = 2*popcount(XNOR(x, w)) - N (binary with a fused threshold)", **_COMMON))
register(OpSpec("bconv2d", "bdense per 'valid' window; weight (KH, KW, Ci, Co) bits", geometry=geometry,
                attrs={"strides": REQUIRED, "padding": "valid"}, **_COMMON))
