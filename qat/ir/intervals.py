"""Exact interval analysis and validation of an integer network.

Every tensor gets element-wise integer bounds [lo, hi] (Python ints, full
tensor shape), from each op kind's spec (qat.ir.ops): linear ops bound their
outputs exactly from the actual weights (hi = W+ . hi_in + W- . lo_in + b, lo
likewise).  ``validate`` rejects any op whose result can leave its declared
type, and any op that is malformed (generic checks here, op-specific ones in
its spec).
"""
from __future__ import annotations


from .bounds import Bounds, spans_zero, type_bounds  # noqa: F401  (Bounds, type_bounds: part of this API)
from .network import Network, NetworkError, Op
from .spec import REQUIRED, OpSpec, op_kinds, spec_of
from .types import BinaryType, TensorType, signed_bits_for, unsigned_bits_for


def _spec(op: Op) -> OpSpec:
    spec = spec_of(op.kind)
    if spec is None:
        raise NetworkError(f"{op.where()}: unknown op kind (supported: {', '.join(op_kinds())})")
    return spec


def op_bounds(op: Op, ins: list[Bounds], types: list[TensorType]) -> Bounds:
    """Exact element-wise bounds of ``op``'s result from its inputs' bounds."""
    return _spec(op).bounds(op, ins, types)


def check_op(op: Op, types: list[TensorType], shapes: list[tuple[int, ...]]) -> None:
    """Raise NetworkError when ``op`` is malformed: inputs, arrays and attributes its
    spec requires, then the spec's own checks."""
    spec = _spec(op)
    where = op.where()
    for a in spec.arrays:
        if a not in op.arrays:
            raise NetworkError(f"{where}: missing array '{a}'")
    for name, default in spec.attrs.items():
        if default is REQUIRED and name not in op.attrs:
            raise NetworkError(f"{where}: missing attribute '{name}'")
    if spec.n_inputs is not None and len(op.inputs) != spec.n_inputs:
        raise NetworkError(f"{where}: expects {spec.n_inputs} input, got {len(op.inputs)}")
    if spec.n_inputs is None and len(op.inputs) < 2:
        raise NetworkError(f"{where}: needs at least 2 inputs")
    if spec.check is not None:
        spec.check(op, types, shapes)


def _can_be_zero(op: Op, b: Bounds, ins: list[Bounds], in_types: list[TensorType]) -> bool:
    """Whether ``op`` can produce 0, which a binary (-1/+1) tensor cannot hold."""
    spec = _spec(op)
    if spec.can_be_zero is not None:
        return spec.can_be_zero(op, b, ins, in_types)
    return spans_zero(b)


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
        _spec(op)
        missing = [i for i in op.inputs if i not in bounds]
        if missing:
            raise NetworkError(f"{op.where()}: input(s) {missing} are not defined before it")
        in_types = [types[i] for i in op.inputs]
        try:
            check_op(op, in_types, [shapes[i] for i in op.inputs])
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
