"""dense, conv1d, conv2d: constant-weight multiply-accumulate.

y[..., o] = sum_i x[..., i] * W[i, o] + b[o] (a dense applies to the last axis);
convolutions apply it to every window (weights (K, Ci, Co) or (KH, KW, Ci, Co)).
Arrays: weight, bias (integers).  Attributes (convolutions): strides, padding
('same' | 'valid' as TensorFlow, or explicit pads).  Optional weight_bits /
bias_bits: register widths for reconfigurable weights (0: what the values need).
"""
from __future__ import annotations

import numpy as np

from ..arith import as_compute, max_abs_bits
from ..bounds import Bounds, bits_of_range
from ..geometry import Window, check_padding
from ..network import NetworkError, Op
from ..spec import REQUIRED, OpSpec, attr, register
from ..types import TensorType

RANK = {"dense": 2, "conv1d": 3, "conv2d": 4}


def geometry(op: Op, in_shape: tuple[int, ...]) -> Window:
    w = op.arrays["weight"]
    if op.kind == "conv1d":
        return Window.of(in_shape, (1, w.shape[0]), (1, int(attr(op, "strides")[0])), attr(op, "padding"), 1)
    return Window.of(in_shape, (w.shape[0], w.shape[1]), tuple(int(s) for s in attr(op, "strides")),
                     attr(op, "padding"), 2)


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, op: Op) -> np.ndarray:
    """Dense/conv of a batch ``x`` with given (possibly object) weight and bias arrays."""
    if op.kind == "dense":
        return np.matmul(x, weight) + bias
    win = geometry(op, x.shape[1:])
    pat = win.patches(win.to4d(x))
    n, oh, ow = pat.shape[:3]
    y = np.matmul(pat.reshape(n, oh, ow, -1), weight.reshape(-1, weight.shape[-1])) + bias
    return win.from4d(y)


def _bound_bits(op: Op, in_type: TensorType) -> int:
    w_bits = max_abs_bits(op.arrays["weight"])
    fan_in = int(np.prod(op.arrays["weight"].shape[:-1]))
    b_bits = max_abs_bits(op.arrays["bias"])
    return max(bits_of_range(in_type.lo, in_type.hi) + w_bits + fan_in.bit_length(), b_bits) + 1


def golden(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    bits = _bound_bits(op, types[0])
    return linear(as_compute(xs[0], bits), as_compute(op.arrays["weight"], bits),
                  as_compute(op.arrays["bias"], bits), op)


def bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    """Exact: hi = W+ . hi_in + W- . lo_in + b, lo likewise."""
    b = ins[0]
    w = op.arrays["weight"].astype(object)
    bias = op.arrays["bias"].astype(object)
    zero = np.zeros_like(bias)
    wp = np.where(w > 0, w, 0)
    wn = np.where(w < 0, w, 0)
    lo, hi = b.lo[None], b.hi[None]
    new_hi = linear(hi, wp, bias, op) + linear(lo, wn, zero, op)
    new_lo = linear(lo, wp, bias, op) + linear(hi, wn, zero, op)
    return Bounds(new_lo[0], new_hi[0])


def check(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    where = op.where()
    if len(set(types[0].scale)) != 1:
        raise NetworkError(f"{where}: input has per-channel scales; requantize to one scale first")
    w = op.arrays["weight"]
    if w.ndim != RANK[op.kind] or w.shape[-2] != shapes[0][-1]:
        raise NetworkError(f"{where}: weight shape {w.shape} does not fit input shape {shapes[0]}")
    if op.arrays["bias"].shape != (w.shape[-1],):
        raise NetworkError(f"{where}: bias shape {op.arrays['bias'].shape} != ({w.shape[-1]},)")
    if op.kind != "dense":
        check_padding(attr(op, "padding"), where, RANK[op.kind] - 2)


_COMMON = dict(golden=golden, bounds=bounds, check=check, arrays=("weight", "bias"), params=True, linear=True, sums=True)
_REG_ATTRS = {"weight_bits": 0, "bias_bits": 0}
register(OpSpec("dense", "y[o] = sum_i x[i]*W[i,o] + b[o]", attrs=dict(_REG_ATTRS), **_COMMON))
register(OpSpec("conv1d", "dense per window; weight (K, Ci, Co)", geometry=geometry,
                attrs={"strides": REQUIRED, "padding": "valid", **_REG_ATTRS}, **_COMMON))
register(OpSpec("conv2d", "dense per window; weight (KH, KW, Ci, Co)", geometry=geometry,
                attrs={"strides": REQUIRED, "padding": "valid", **_REG_ATTRS}, **_COMMON))
