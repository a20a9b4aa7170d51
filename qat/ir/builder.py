"""Incremental construction of an integer network with proven bounds.

Importers append ops one at a time; each op's exact element-wise bounds are
computed from its inputs' (qat.ir.intervals), and an accumulator op gets the
narrowest signed integer type that holds its proven range.
"""
from __future__ import annotations

from qat.ir.intervals import Bounds, op_bounds, type_bounds
from qat.ir.network import Input, Network, Op, unique_name
from qat.ir.types import IntType, TensorType, signed_bits_for


class Builder:
    """A network under construction: ops, their bounds, types and shapes, and used names."""

    def __init__(self, name: str):
        self.net = Network(name, [], [], [])
        self.bounds: dict[str, Bounds] = {}
        self.types: dict[str, TensorType] = {}
        self.shapes: dict[str, tuple[int, ...]] = {}
        self._used: set[str] = set()

    def unique(self, base: str) -> str:
        return unique_name(base, self._used)

    def add_input(self, inp: Input, bounds: Bounds | None = None) -> str:
        """Append an input; ``bounds`` narrower than its type (e.g. a narrow-range quantizer) optional."""
        self._used.add(inp.name)
        self.net.inputs.append(inp)
        self.bounds[inp.name] = bounds if bounds is not None else type_bounds(inp.type, inp.shape)
        self.types[inp.name], self.shapes[inp.name] = inp.type, tuple(inp.shape)
        return inp.name

    def add(self, op: Op, acc_scale=None) -> str:
        """Append ``op``; when ``acc_scale`` is given the op's type is the
        narrowest signed integer holding its proven range."""
        ins = [self.bounds[i] for i in op.inputs]
        if acc_scale is not None:
            op.type = IntType(64, True, acc_scale)
        b = op_bounds(op, ins, [self.types[i] for i in op.inputs])
        op.shape = tuple(b.lo.shape)
        if acc_scale is not None:
            op.type = IntType(signed_bits_for(b.min, b.max), True, acc_scale)
            op.attrs["acc_bits"] = op.type.bits
        self.net.ops.append(op)
        self.bounds[op.name], self.types[op.name], self.shapes[op.name] = b, op.type, op.shape
        return op.name

    def pop_last(self) -> Op:
        """Remove and return the last op (to rebuild it, e.g. with a bias folded in)."""
        op = self.net.ops.pop()
        for d in (self.bounds, self.types, self.shapes):
            d.pop(op.name)
        self._used.discard(op.name)
        return op
