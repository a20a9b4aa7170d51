"""Exact interval analysis and validation of an integer network.

Every tensor gets element-wise integer bounds [lo, hi] (Python ints, full
tensor shape).  Linear ops bound their outputs exactly from the actual
weights: hi = W+ . hi_in + W- . lo_in + b, lo likewise.  ``validate`` rejects
any op whose result can leave its declared type without saturating.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qat.ir import golden
from qat.ir.network import OP_KINDS, OVERFLOW_MODES, ROUNDING_MODES, Network, NetworkError, Op
from qat.ir.types import BinaryType, IntType, MinifloatType, TensorType, signed_bits_for, unit_scale, unsigned_bits_for

# ops whose golden result is clamped; validate() still checks their exact range against the type
SATURATING = {"requant", "threshold", "lut", "argmax", "clip"}


@dataclass
class Bounds:
    lo: np.ndarray  # object array, tensor shape
    hi: np.ndarray

    @property
    def min(self) -> int:
        return int(self.lo.min())

    @property
    def max(self) -> int:
        return int(self.hi.max())


def _full(shape, value) -> np.ndarray:
    a = np.empty(shape, dtype=object)
    a.fill(int(value))
    return a


def type_bounds(t: TensorType, shape: tuple[int, ...]) -> Bounds:
    return Bounds(_full(shape, t.lo), _full(shape, t.hi))


def _linear_bounds(op: Op, b: Bounds) -> Bounds:
    w = op.arrays["weight"].astype(object)
    bias = op.arrays["bias"].astype(object)
    zero = np.zeros_like(bias)
    wp = np.where(w > 0, w, 0)
    wn = np.where(w < 0, w, 0)
    lo, hi = b.lo[None], b.hi[None]
    new_hi = golden.linear(hi, wp, bias, op) + golden.linear(lo, wn, zero, op)
    new_lo = golden.linear(lo, wp, bias, op) + golden.linear(hi, wn, zero, op)
    return Bounds(new_lo[0], new_hi[0])


def _apply(op: Op, arrays: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    return np.asarray(golden.OP_FUNCS[op.kind](op, [a[None] for a in arrays], types))[0].astype(object)


def op_bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    k = op.kind
    if k in ("dense", "conv1d", "conv2d"):
        return _linear_bounds(op, ins[0])
    if k in ("bdense", "bconv2d"):
        shape = _apply(op, [ins[0].lo], types).shape  # the shape the op really computes
        if "threshold" in op.arrays:
            return Bounds(_full(shape, -1), _full(shape, 1))
        n = int(np.prod(op.arrays["weight"].shape[:-1]))
        return Bounds(_full(shape, -n), _full(shape, n))
    if k == "add":
        return Bounds(sum(b.lo for b in ins), sum(b.hi for b in ins))
    if k == "concat":
        return Bounds(np.concatenate([b.lo for b in ins], -1), np.concatenate([b.hi for b in ins], -1))
    if k == "requant" and op.attrs.get("overflow", "saturate") == "wrap" and not isinstance(op.type, MinifloatType):
        # wrapping is not monotonic: bounds are exact only where nothing wraps
        mult = op.arrays["mult"].astype(object)
        shift = op.arrays["shift"].astype(np.int64)
        rounding = op.attrs.get("rounding", "half_even")
        plo = golden.shift_round(ins[0].lo[None] * mult, shift, rounding)[0]
        phi = golden.shift_round(ins[0].hi[None] * mult, shift, rounding)[0]
        fits = np.vectorize(lambda a, b: a >= op.type.lo and b <= op.type.hi, otypes=[bool])(plo, phi)
        return Bounds(np.where(fits, plo, op.type.lo).astype(object), np.where(fits, phi, op.type.hi).astype(object))
    if k in ("maxpool", "avgpool", "reshape", "clip", "requant"):
        return Bounds(_apply(op, [ins[0].lo], types), _apply(op, [ins[0].hi], types))
    if k == "threshold":
        a, b = _apply(op, [ins[0].lo], types), _apply(op, [ins[0].hi], types)
        return Bounds(np.minimum(a, b), np.maximum(a, b))
    if k == "lut":
        t = op.arrays["table"]
        first, last = ins[0].min - int(op.attrs["in_lo"]), ins[0].max - int(op.attrs["in_lo"])
        if first < 0 or last >= t.size:
            raise NetworkError(f"{op.where()}: table of {t.size} entries does not cover input range "
                               f"[{ins[0].min}, {ins[0].max}]")
        reach = t[first:last + 1]  # entries the input can index
        shape = ins[0].lo.shape
        return Bounds(_full(shape, reach.min()), _full(shape, reach.max()))
    if k == "argmax":
        shape = ins[0].lo.shape[:-1] + (1,)  # golden keeps a last axis of size 1
        return Bounds(_full(shape, 0), _full(shape, ins[0].lo.shape[-1] - 1))
    raise NetworkError(f"{op.where()}: unknown op kind (supported: {', '.join(OP_KINDS)})")


def _same_scale(a: TensorType, b: TensorType) -> bool:
    # compare what one raw unit is worth (a minifloat's unit is scale * 2^(1-bias-M))
    ua, ub = unit_scale(a), unit_scale(b)
    return ua.shape == ub.shape and bool(np.all(ua == ub))


def _uniform_scale(t: TensorType) -> bool:
    return len(set(t.scale)) == 1


def _can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    """Whether ``op`` can produce 0, which a binary (-1/+1) tensor cannot hold."""
    k = op.kind
    if k in ("bdense", "bconv2d"):  # thresholded: -1/+1; else 2*popcount - N is never 0 when N is odd
        return "threshold" not in op.arrays and int(np.prod(op.arrays["weight"].shape[:-1])) % 2 == 0
    if k in ("maxpool", "reshape", "concat"):
        return not all(isinstance(t, BinaryType) for t in in_types)
    if k == "clip" and isinstance(in_types[0], BinaryType):
        lo, hi = int(op.attrs["lo"]), int(op.attrs["hi"])
        return 0 in (min(max(-1, lo), hi), min(max(1, lo), hi))
    if k == "lut":
        in_lo = int(op.attrs["in_lo"])
        return bool(np.any(op.arrays["table"][ins[0].min - in_lo:ins[0].max - in_lo + 1] == 0))
    if k == "threshold":
        # the output is a level base + direction*step*count; 0 is reachable when it is a level within the bounds
        c = b.lo.shape[-1] if b.lo.ndim else 1
        n_lv = op.arrays["thresholds"].shape[1]
        base = np.broadcast_to(op.arrays["base"].astype(np.int64), (c,))
        dirn = np.broadcast_to(op.arrays["direction"].astype(np.int64), (c,))
        step = int(op.attrs.get("step", 1))
        lv = base[:, None] + dirn[:, None] * step * np.arange(n_lv + 1)[None, :]
        zero_level = np.any(lv == 0, axis=1)
        spans = np.vectorize(lambda a, z: a <= 0 <= z, otypes=[bool])(b.lo, b.hi)
        return bool(np.any(spans & zero_level))
    return bool(np.any(np.vectorize(lambda a, z: a <= 0 <= z, otypes=[bool])(b.lo, b.hi)))


def _check_padding(op: Op, where: str, dims: int) -> None:
    """'same', 'valid', or one non-negative [before, after] pair per spatial axis."""
    p = op.attrs.get("padding")
    if p in ("same", "valid"):
        return
    ok = isinstance(p, (list, tuple)) and len(p) == dims and all(
        isinstance(q, (list, tuple)) and len(q) == 2 and all(isinstance(v, (int, np.integer)) and v >= 0 for v in q)
        for q in p)
    if not ok:
        raise NetworkError(f"{where}: padding must be 'same', 'valid' or {dims} [before, after] pair(s), got {p!r}")


def _check_op_static(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    k = op.kind
    where = op.where()
    need_arrays = {"dense": ("weight", "bias"), "conv1d": ("weight", "bias"), "conv2d": ("weight", "bias"),
                   "bdense": ("weight",), "bconv2d": ("weight",), "requant": ("mult", "shift"),
                   "threshold": ("thresholds", "base", "direction"), "lut": ("table",)}.get(k, ())
    for a in need_arrays:
        if a not in op.arrays:
            raise NetworkError(f"{where}: missing array '{a}'")
    n_in = {"add": None, "concat": None}.get(k, 1)
    if n_in is not None and len(op.inputs) != n_in:
        raise NetworkError(f"{where}: expects {n_in} input, got {len(op.inputs)}")
    if k in ("add", "concat") and len(op.inputs) < 2:
        raise NetworkError(f"{where}: needs at least 2 inputs")
    if k in ("dense", "conv1d", "conv2d"):
        if isinstance(types[0], BinaryType) or not _uniform_scale(types[0]):
            if not _uniform_scale(types[0]):
                raise NetworkError(f"{where}: input has per-channel scales; requantize to one scale first")
        w = op.arrays["weight"]
        cin = shapes[0][-1]
        rank = {"dense": 2, "conv1d": 3, "conv2d": 4}[k]
        if w.ndim != rank or w.shape[-2] != cin:
            raise NetworkError(f"{where}: weight shape {w.shape} does not fit input shape {shapes[0]}")
        if op.arrays["bias"].shape != (w.shape[-1],):
            raise NetworkError(f"{where}: bias shape {op.arrays['bias'].shape} != ({w.shape[-1]},)")
        if k != "dense":
            _check_padding(op, where, 2 if k == "conv2d" else 1)
    if k in ("bdense", "bconv2d"):
        if not isinstance(types[0], BinaryType):
            raise NetworkError(f"{where}: binary op needs a binary input, got {types[0].describe()}")
        w = op.arrays["weight"]
        if not np.isin(w, (0, 1)).all():
            raise NetworkError(f"{where}: binary weights must be bits 0/1")
        if "threshold" in op.arrays and not isinstance(op.type, BinaryType):
            raise NetworkError(f"{where}: thresholded binary op must output a binary type")
    if k == "add":
        for t in types[1:]:
            if not _same_scale(types[0], t):
                raise NetworkError(f"{where}: inputs have different scales; requantize them to one scale first")
    if k == "requant":
        if op.attrs.get("rounding", "half_even") not in ROUNDING_MODES:
            raise NetworkError(f"{where}: rounding must be one of {ROUNDING_MODES}")
        if op.attrs.get("overflow", "saturate") not in OVERFLOW_MODES:
            raise NetworkError(f"{where}: overflow must be one of {OVERFLOW_MODES}")
        if np.any(op.arrays["mult"].astype(object) <= 0):
            raise NetworkError(f"{where}: requantization multipliers must be positive")
        if not isinstance(op.type, (IntType, MinifloatType)):
            raise NetworkError(f"{where}: requant output must be an integer or minifloat type")
    if k == "threshold":
        t = op.arrays["thresholds"]
        c = shapes[0][-1]
        if t.ndim != 2 or t.shape[0] not in (1, c):
            raise NetworkError(f"{where}: thresholds shape {t.shape} does not fit {c} channels")
        if t.shape[1] > 1 and np.any(np.diff(t.astype(object), axis=1) < 0):
            raise NetworkError(f"{where}: thresholds must be sorted ascending per channel")
    if k == "lut":
        lo = int(op.attrs["in_lo"])
        if types[0].lo < lo or types[0].hi - lo >= op.arrays["table"].size:
            raise NetworkError(f"{where}: table of {op.arrays['table'].size} entries does not cover input "
                               f"range [{types[0].lo}, {types[0].hi}]")


def analyze(net: Network) -> dict[str, Bounds]:
    """Bounds of every tensor; raises NetworkError on a malformed network."""
    names = [i.name for i in net.inputs] + [op.name for op in net.ops]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise NetworkError(f"network '{net.name}': duplicate tensor names {dup}")
    bounds: dict[str, Bounds] = {i.name: type_bounds(i.type, tuple(i.shape)) for i in net.inputs}
    types: dict[str, TensorType] = {i.name: i.type for i in net.inputs}
    shapes: dict[str, tuple[int, ...]] = {i.name: tuple(i.shape) for i in net.inputs}
    for op in net.ops:
        if op.kind not in OP_KINDS:
            raise NetworkError(f"{op.where()}: unknown op kind (supported: {', '.join(OP_KINDS)})")
        missing = [i for i in op.inputs if i not in bounds]
        if missing:
            raise NetworkError(f"{op.where()}: input(s) {missing} are not defined before it")
        in_types = [types[i] for i in op.inputs]
        _check_op_static(op, in_types, [shapes[i] for i in op.inputs])
        try:
            b = op_bounds(op, [bounds[i] for i in op.inputs], in_types)
        except NetworkError:
            raise
        except (ValueError, IndexError, KeyError, TypeError, OverflowError) as exc:
            raise NetworkError(f"{op.where()}: does not fit its inputs ({exc})") from None
        if tuple(b.lo.shape) != tuple(op.shape):
            raise NetworkError(f"{op.where()}: declared shape {tuple(op.shape)} but computes {tuple(b.lo.shape)}")
        # every op is checked, saturating ones included: their proven range is exact (a clip/requant
        # whose lo/hi lie outside the type, a threshold or lut whose levels exceed it, would overflow)
        if b.min < op.type.lo or b.max > op.type.hi:
            need = signed_bits_for(b.min, b.max) if b.min < 0 else unsigned_bits_for(b.max)
            raise NetworkError(f"{op.where()}: result range [{b.min}, {b.max}] needs {need} bits but its type "
                               f"{op.type.describe()} has {op.type.bits}: it could overflow")
        if isinstance(op.type, BinaryType) and _can_be_zero(op, b, [bounds[i] for i in op.inputs], in_types):
            raise NetworkError(f"{op.where()}: can produce 0, which its binary type {op.type.describe()} "
                               f"(values -1/+1) cannot hold")
        bounds[op.name], types[op.name], shapes[op.name] = b, op.type, tuple(op.shape)
    for o in net.outputs:
        if o not in bounds:
            raise NetworkError(f"network '{net.name}': output '{o}' is not a tensor of the network")
    return bounds


def validate(net: Network) -> dict[str, Bounds]:
    return analyze(net)


def accumulator_bits(net: Network, bounds: dict[str, Bounds] | None = None) -> dict[str, int]:
    """Bits proven necessary for each op's result (signed when it can be negative)."""
    bounds = bounds or analyze(net)
    out = {}
    for op in net.ops:
        b = bounds[op.name]
        out[op.name] = signed_bits_for(b.min, b.max) if b.min < 0 else unsigned_bits_for(b.max)
    return out
