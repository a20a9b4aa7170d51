"""Golden integer model: exact execution of the integer network.

No floating point is used on the integer path.  Each op runs on int64 when a
bound on every intermediate value proves that 62 bits suffice, and on Python
integers (numpy ``object`` arrays, arbitrary precision) otherwise.  All
arrays are batch-first and channels-last.
"""
from __future__ import annotations

from fractions import Fraction
from typing import Callable

import numpy as np

from qat.ir.network import Network, NetworkError, Op
from qat.ir.types import BinaryType, MinifloatType, TensorType, unit_scale

SAFE_BITS = 62


# ---- integer helpers ---------------------------------------------------------

def as_compute(arr: np.ndarray, bound_bits: int) -> np.ndarray:
    """int64 when values up to 2^bound_bits are safe, else Python ints."""
    if bound_bits <= SAFE_BITS and arr.dtype != object:
        return arr.astype(np.int64, copy=False)
    return np.asarray(arr).astype(object)


def max_abs_bits(arr: np.ndarray) -> int:
    """Bit length of the largest magnitude in ``arr``."""
    if arr.size == 0:
        return 0
    return int(max(abs(int(np.max(arr))), abs(int(np.min(arr))))).bit_length()


def shift_round(n: np.ndarray, shift, rounding: str) -> np.ndarray:
    """round(n / 2^shift) with an explicit rounding mode (exact).

    ``shift`` may be an array broadcast against ``n``; shift <= 0 is an exact
    left shift.  Modes: half_even, half_up (toward +inf on ties), half_away
    (away from zero on ties), floor, toward_zero.
    """
    n = np.asarray(n)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), n.shape)
    if n.dtype != object:
        if n.dtype.kind == "u" and n.dtype.itemsize >= 8:
            n = n.astype(object)
        else:
            n = n.astype(np.int64)
            # int64 shifts by >= 63 bits, and left shifts that overflow, are not exact: use Python ints
            if n.size and (int(shift.max()) > SAFE_BITS
                           or max_abs_bits(n) + max(0, -int(shift.min())) > SAFE_BITS):
                n = n.astype(object)
    if n.dtype == object:
        flat_n, flat_s = n.ravel(), shift.ravel()
        out = np.empty(flat_n.shape, dtype=object)
        for i in range(flat_n.size):
            out[i] = _shift_round_int(int(flat_n[i]), int(flat_s[i]), rounding)
        return out.reshape(n.shape)
    left = shift <= 0
    s = np.where(left, 0, shift)
    up = np.left_shift(n, np.where(left, -shift, 0))
    one = np.ones_like(n)
    half = np.where(s > 0, np.left_shift(one, np.maximum(s - 1, 0)), 0)
    q = np.right_shift(n, s)  # floor
    r = n - np.left_shift(q, s)
    if rounding == "floor":
        res = q
    elif rounding == "half_up":
        res = q + (r >= half) * (s > 0)
    elif rounding == "half_even":
        res = q + ((r > half) | ((r == half) & (q & 1 == 1))) * (s > 0)
    elif rounding == "half_away":
        res = np.where(n >= 0, q + (r >= half) * (s > 0), q + (r > half) * (s > 0))
    elif rounding == "toward_zero":
        res = np.where((n < 0) & (r != 0), q + 1, q)
    else:
        raise ValueError(f"unknown rounding mode {rounding!r}")
    return np.where(left, up, res)


def _shift_round_int(n: int, s: int, rounding: str) -> int:
    if s <= 0:
        return n << -s
    q = n >> s
    r = n - (q << s)
    half = 1 << (s - 1)
    if rounding == "floor":
        return q
    if rounding == "half_up":
        return q + (r >= half)
    if rounding == "half_even":
        return q + (r > half or (r == half and q & 1))
    if rounding == "half_away":
        return q + (r >= half) if n >= 0 else q + (r > half)
    if rounding == "toward_zero":
        return q + 1 if (n < 0 and r != 0) else q
    raise ValueError(f"unknown rounding mode {rounding!r}")


def saturate_or_wrap(y: np.ndarray, lo: int, hi: int, overflow: str, bits: int, signed: bool) -> np.ndarray:
    if overflow == "saturate":
        if y.dtype == object:
            return np.array([min(max(int(v), lo), hi) for v in y.ravel()], dtype=object).reshape(y.shape)
        return np.clip(y, lo, hi)
    if overflow == "wrap":
        if y.dtype != object and (bits >= SAFE_BITS or max_abs_bits(y) >= SAFE_BITS):
            y = y.astype(object)  # int64 arithmetic would overflow (or turn float) here
        mod = 1 << bits
        off = (1 << (bits - 1)) if signed else 0
        return (y + off) % mod - off
    raise ValueError(f"unknown overflow mode {overflow!r}")


def minifloat_round(n: np.ndarray, shift, t: MinifloatType, rounding: str) -> np.ndarray:
    """Round n/2^shift to the minifloat grid of ``t`` (QONNX FloatQuant rule:
    e = max(floor(log2|v|) - M, 1-bias-M), q = 2^e*round(v/2^e), saturate to
    +-max).  Returns raw units of 2^(1-bias-M)."""
    n = np.asarray(n)
    shift = np.broadcast_to(np.asarray(shift, dtype=np.int64), n.shape)
    flat_n, flat_s = n.ravel(), shift.ravel()
    out = np.empty(flat_n.shape, dtype=object)
    emin, mx = t.unit_exp, t.max_units
    for i in range(flat_n.size):
        v, s = int(flat_n[i]), int(flat_s[i])
        if v == 0:
            out[i] = 0
            continue
        fl = abs(v).bit_length() - 1 - s  # floor(log2|v/2^s|)
        e = max(fl - t.man_bits, emin)
        q = _shift_round_int(v, s + e, rounding)  # v/2^s/2^e rounded
        u = q << (e - emin)
        out[i] = min(max(u, -mx), mx)
    return out.reshape(n.shape)


# ---- ops ------------------------------------------------------------------------

def pad_amounts(size: int, kernel: int, stride: int, padding) -> tuple[int, int, int]:
    """(pad_before, pad_after, out_size) along one axis: TensorFlow's 'same'/'valid' rule,
    or explicit (before, after) amounts (ONNX/PyTorch pads)."""
    if isinstance(padding, (list, tuple)):
        before, after = (int(v) for v in padding)
        if before < 0 or after < 0 or size + before + after < kernel:
            raise NetworkError(f"padding {list(padding)} does not fit window {kernel} on input {size}")
        return before, after, (size + before + after - kernel) // stride + 1
    if padding == "valid":
        if size < kernel:
            raise NetworkError(f"window {kernel} larger than input {size} with 'valid' padding")
        return 0, 0, (size - kernel) // stride + 1
    if padding == "same":
        out = -(-size // stride)
        total = max((out - 1) * stride + kernel - size, 0)
        return total // 2, total - total // 2, out
    raise NetworkError(f"unknown padding {padding!r}")


def split_padding(padding) -> tuple:
    """Per-axis padding (height, width) of an op's ``padding`` attribute: 'same' | 'valid' for
    both axes, or explicit [[top, bottom], [left, right]] (2-D) / [[left, right]] (1-D, width)."""
    if isinstance(padding, str):
        return padding, padding
    pairs = [tuple(int(v) for v in p) for p in padding]
    if len(pairs) == 1:
        return (0, 0), pairs[0]
    if len(pairs) == 2:
        return pairs[0], pairs[1]
    raise NetworkError(f"explicit padding needs one [before, after] pair per spatial axis, got {padding!r}")


def pad_2d(h: int, w: int, kernel: tuple[int, int], strides: tuple[int, int], padding
           ) -> tuple[int, int, int, int, int, int]:
    """(pad_top, pad_bottom, out_h, pad_left, pad_right, out_w) of a 2-D window (1-D: h = 1)."""
    ph, pw = split_padding(padding)
    pt, pb, oh = pad_amounts(h, kernel[0], strides[0], ph)
    pl, pr, ow = pad_amounts(w, kernel[1], strides[1], pw)
    return pt, pb, oh, pl, pr, ow


def windows(x: np.ndarray, kernel: tuple[int, int], strides: tuple[int, int], padding,
            pad_value=0) -> np.ndarray:
    """(N,H,W,C) -> (N,OH,OW,KH,KW,C) patches, padding as :func:`pad_2d`."""
    _, h, w, _ = x.shape
    pt, pb, oh, pl, pr, ow = pad_2d(h, w, kernel, strides, padding)
    if pt or pb or pl or pr:
        xp = np.full((x.shape[0], h + pt + pb, w + pl + pr, x.shape[3]), pad_value, dtype=x.dtype)
        xp[:, pt:pt + h, pl:pl + w, :] = x
    else:
        xp = x
    v = np.lib.stride_tricks.sliding_window_view(xp, kernel, axis=(1, 2))  # N,H',W',C,KH,KW
    v = v[:, ::strides[0], ::strides[1]][:, :oh, :ow]
    return np.moveaxis(v, 3, 5)  # N,OH,OW,KH,KW,C


def _to4d(x: np.ndarray, dims: int) -> np.ndarray:
    return x[:, None] if dims == 1 else x


def _from4d(y: np.ndarray, dims: int) -> np.ndarray:
    return y[:, 0] if dims == 1 else y


def _conv_geometry(op: Op) -> tuple[tuple[int, int], tuple[int, int], int]:
    w = op.arrays["weight"]
    if op.kind in ("conv1d",):
        return (1, w.shape[0]), (1, int(op.attrs["strides"][0])), 1
    return (w.shape[0], w.shape[1]), tuple(int(s) for s in op.attrs["strides"]), 2


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, op: Op) -> np.ndarray:
    """Dense/conv with given (possibly object) weight and bias arrays."""
    if op.kind == "dense":
        return np.matmul(x, weight) + bias
    kernel, strides, dims = _conv_geometry(op)
    pat = windows(_to4d(x, dims), kernel, strides, op.attrs["padding"])
    n, oh, ow = pat.shape[:3]
    y = np.matmul(pat.reshape(n, oh, ow, -1), weight.reshape(-1, weight.shape[-1])) + bias
    return _from4d(y, dims)


def _linear_bound_bits(op: Op, in_type: TensorType) -> int:
    w_bits = max_abs_bits(op.arrays["weight"])
    fan_in = int(np.prod(op.arrays["weight"].shape[:-1]))
    in_bits = max(abs(in_type.lo), abs(in_type.hi)).bit_length()
    b_bits = max_abs_bits(op.arrays["bias"])
    return max(in_bits + w_bits + fan_in.bit_length(), b_bits) + 1


def op_linear(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    bits = _linear_bound_bits(op, types[0])
    x = as_compute(xs[0], bits)
    w = as_compute(op.arrays["weight"], bits)
    b = as_compute(op.arrays["bias"], bits)
    return linear(x, w, b, op)


def binary_dot_bits(xbits: np.ndarray, wbits: np.ndarray) -> np.ndarray:
    """2*popcount(XNOR(x, w)) - N over the last axis of xbits (bits 0/1)."""
    x = xbits.astype(np.int64)
    w = wbits.astype(np.int64)
    matches = np.matmul(x, w) + np.matmul(1 - x, 1 - w)  # popcount of XNOR
    return 2 * matches - x.shape[-1]


def op_binary(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    xbits = (xs[0] > 0).astype(np.int64)
    wbits = op.arrays["weight"].astype(np.int64)
    if op.kind == "bdense":
        y = binary_dot_bits(xbits, wbits)
    else:
        kernel, strides, _ = _conv_geometry(op)
        pat = windows(xbits, kernel, strides, "valid")
        n, oh, ow = pat.shape[:3]
        y = binary_dot_bits(pat.reshape(n, oh, ow, -1), wbits.reshape(-1, wbits.shape[-1]))
    if "threshold" in op.arrays:
        t = op.arrays["threshold"].astype(np.int64)
        d = op.arrays["direction"].astype(np.int64)
        on = np.where(d > 0, y >= t, y <= t)
        return np.where(on, 1, -1).astype(np.int64)
    return y


def pool_geometry(op: Op) -> tuple[int, tuple[int, int], tuple[int, int]]:
    """(dims, pool, strides) of a pooling op as 2-D windows (1-D pools get height 1)."""
    dims = int(op.attrs["dims"])
    pool = tuple(int(p) for p in op.attrs["pool"])
    strides = tuple(int(s) for s in op.attrs["strides"])
    if dims == 1:
        pool, strides = (1, pool[0]), (1, strides[0])
    return dims, pool, strides


def op_maxpool(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    dims, pool, strides = pool_geometry(op)
    low = types[0].lo - 1  # padding never wins
    x = as_compute(_to4d(xs[0], dims), max(abs(low), abs(types[0].hi)).bit_length())  # pad fits the dtype
    pat = windows(x, pool, strides, op.attrs["padding"], pad_value=low)
    y = pat.max(axis=(3, 4))
    return _from4d(y, dims)


def op_avgpool(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    dims, pool, strides = pool_geometry(op)
    bits = max(abs(types[0].lo), abs(types[0].hi)).bit_length() + int(np.prod(pool)).bit_length() + 1
    x = as_compute(_to4d(xs[0], dims), bits)
    pat = windows(x, pool, strides, "valid")
    return _from4d(pat.sum(axis=(3, 4)), dims)


def op_reshape(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    return xs[0].reshape((xs[0].shape[0],) + tuple(op.shape))


def op_add(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    bits = max(max(abs(t.lo), abs(t.hi)).bit_length() for t in types) + len(xs)
    acc = as_compute(xs[0], bits)
    for x in xs[1:]:
        acc = acc + as_compute(x, bits)
    return acc


def op_concat(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    if any(x.dtype == object for x in xs):
        xs = [x.astype(object) for x in xs]
    return np.concatenate(xs, axis=-1)


def op_clip(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    return saturate_or_wrap(xs[0], int(op.attrs["lo"]), int(op.attrs["hi"]), "saturate", 0, True)


def op_requant(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    mult = op.arrays["mult"]
    shift = op.arrays["shift"].astype(np.int64)
    in_t = types[0]
    bits = max(abs(in_t.lo), abs(in_t.hi)).bit_length() + max_abs_bits(mult) + max(0, -int(shift.min())) + 2
    n = as_compute(xs[0], bits) * as_compute(mult, bits)
    rounding = op.attrs.get("rounding", "half_even")
    if isinstance(op.type, MinifloatType):
        y = minifloat_round(n, shift, op.type, rounding)
    else:
        y = shift_round(n, shift, rounding)
        lo, hi = int(op.attrs.get("lo", op.type.lo)), int(op.attrs.get("hi", op.type.hi))
        y = saturate_or_wrap(y, lo, hi, op.attrs.get("overflow", "saturate"), op.type.bits, op.type.signed)
    return _narrow(y)


def op_threshold(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    t = op.arrays["thresholds"]  # (C, L)
    x = xs[0]
    bits = max(max_abs_bits(t), max(abs(types[0].lo), abs(types[0].hi)).bit_length()) + 1
    x = as_compute(x, bits)
    t = as_compute(t, bits)
    count = (x[..., None] >= t).sum(axis=-1)
    step = int(op.attrs.get("step", 1))
    y = op.arrays["base"].astype(np.int64) + op.arrays["direction"].astype(np.int64) * step * count.astype(np.int64)
    return y.astype(np.int64)


def op_lut(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    idx = xs[0].astype(np.int64) - int(op.attrs["in_lo"])
    return op.arrays["table"].astype(np.int64)[idx]


def op_argmax(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    x = xs[0]
    scale = np.asarray(types[0].scale, dtype=np.float64)
    if scale.size == 1:
        return np.argmax(x, axis=-1).astype(np.int64)[..., None]
    fr = np.array([Fraction(float(s)) for s in np.broadcast_to(scale, x.shape[-1:])], dtype=object)
    vals = x.astype(object) * fr
    return np.argmax(vals, axis=-1).astype(np.int64)[..., None]


OP_FUNCS: dict[str, Callable[[Op, list[np.ndarray], list[TensorType]], np.ndarray]] = {
    "dense": op_linear, "conv1d": op_linear, "conv2d": op_linear,
    "bdense": op_binary, "bconv2d": op_binary,
    "maxpool": op_maxpool, "avgpool": op_avgpool, "reshape": op_reshape, "add": op_add,
    "concat": op_concat, "clip": op_clip, "requant": op_requant, "threshold": op_threshold,
    "lut": op_lut, "argmax": op_argmax,
}


def _narrow(y: np.ndarray) -> np.ndarray:
    """Store small Python-int arrays as int64 again."""
    if y.dtype == object and y.size and max_abs_bits(y) <= SAFE_BITS:
        return y.astype(np.int64)
    return y


def run_op(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    try:
        fn = OP_FUNCS[op.kind]
    except KeyError:
        raise NetworkError(f"{op.where()}: unknown op kind") from None
    return _narrow(np.asarray(fn(op, xs, types)))


def run(net: Network, inputs: dict[str, np.ndarray] | np.ndarray, keep_all: bool = False) -> dict[str, np.ndarray]:
    """Execute ``net`` on raw integer inputs (batch-first).

    Returns raw integers of the outputs (and of every tensor if ``keep_all``).
    """
    if not isinstance(inputs, dict):
        if len(net.inputs) != 1:
            raise NetworkError(f"network '{net.name}' has {len(net.inputs)} inputs; pass a dict")
        inputs = {net.inputs[0].name: inputs}
    env: dict[str, np.ndarray] = {}
    types = net.tensor_types()
    for inp in net.inputs:
        arr = np.asarray(inputs[inp.name])
        if arr.dtype != object:
            if arr.dtype.kind not in "iub":
                raise NetworkError(f"input '{inp.name}': raw inputs must be integers, got dtype {arr.dtype}")
            arr = arr.astype(object) if arr.dtype.kind == "u" and arr.dtype.itemsize >= 8 else arr.astype(np.int64)
        env[inp.name] = arr
    for op in net.ops:
        env[op.name] = run_op(op, [env[i] for i in op.inputs], [types[i] for i in op.inputs])
    if keep_all:
        return env
    return {name: env[name] for name in net.outputs}


def dequantize(t: TensorType, raw: np.ndarray) -> np.ndarray:
    """Real values (float64) of raw integers of type ``t``; exact while the
    product fits float64's 53-bit significand."""
    return np.asarray(raw).astype(np.float64) * unit_scale(t)


def is_binary(t: TensorType) -> bool:
    return isinstance(t, BinaryType)
