"""Reconfigurable weights: dense/conv weights and biases held in registers.

In ``registers`` (and ``tmr``) designs every dense/conv op keeps its weights
and biases in a shadow shift register loaded one bit per clock through the
top-level serial port (``cfg_en``, ``cfg_sdi``; ``cfg_sdo`` is the end of the
chain) and copied to the active registers by one ``cfg_commit`` pulse, so a
new weight set never disturbs inferences mid-stream.  ``tmr`` triplicates the
active registers and votes bit by bit (radiation tolerance).

Bitstream order: the chain runs through the ops in network order
(``cfg_sdi`` -> first op -> ... -> last op -> ``cfg_sdo``), so the first
bits sent travel furthest: ops in *reverse* network order; within an op the
weights in the IR array's C order, then the biases; each word most
significant bit first.  Requantization multipliers,
shifts and thresholds stay constants: they belong to the architecture.

Accumulators are sized for the worst case over *all* weight sets of the
declared widths, so any loaded set is computed exactly.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np

from qat.ir.ops.linear import linear
from qat.ir.spec import spec_of
from qat.ir.intervals import Bounds, analyze, op_bounds, type_bounds
from qat.ir.network import Network, NetworkError
from qat.ir.types import IntType, signed_bits_for

WEIGHT_MODES = ("fixed", "registers", "tmr")
EXACT_OPS = ("reshape", "concat", "maxpool", "add")  # values passed on (or summed) unclipped


@dataclass(frozen=True)
class ParamBlock:
    """The registers of one op: ``n_w`` weights of ``w_bits`` then ``n_b`` biases of ``b_bits``."""

    op: str
    n_w: int
    w_bits: int
    n_b: int
    b_bits: int

    @property
    def bits(self) -> int:
        return self.n_w * self.w_bits + self.n_b * self.b_bits


def _bits_of(arr: np.ndarray) -> int:
    return signed_bits_for(int(arr.min()), int(arr.max())) if arr.size else 2


def param_layout(net: Network, weight_bits: int | None = None, bias_bits: int | None = None) -> list[ParamBlock]:
    """Register widths per op: the given widths, else the op's recorded
    ``weight_bits``/``bias_bits`` attrs, else what its current values need."""
    blocks = []
    for op in net.ops:
        if not spec_of(op.kind).params:
            continue
        w, b = op.arrays["weight"], op.arrays["bias"]
        wb = weight_bits or int(op.attr("weight_bits")) or _bits_of(w)
        bb = bias_bits or int(op.attr("bias_bits")) or _bits_of(b)
        if _bits_of(w) > wb or _bits_of(b) > bb:
            raise NetworkError(f"{op.where()}: weights need {_bits_of(w)} bits and biases {_bits_of(b)} bits, "
                               f"more than the {wb}/{bb} register bits")
        blocks.append(ParamBlock(op.name, int(w.size), wb, int(b.size), bb))
    if not blocks:
        raise NetworkError(f"network '{net.name}': no dense/conv weights to make reconfigurable")
    return blocks


def worst_case_bounds(net: Network, layout: list[ParamBlock]) -> dict[str, Bounds]:
    """Element bounds of every tensor over *all* weight sets of the layout's widths.

    A dense/conv output element's extreme is the sum, over the inputs in its
    window, of each input's extreme product with any register value (the
    corners of [x_lo, x_hi] x [w_min, w_max]), plus the extreme bias; every
    later op's bounds follow from those (so requantizers are sized for them).
    """
    by_op = {b.op: b for b in layout}
    bounds: dict[str, Bounds] = {i.name: type_bounds(i.type, tuple(i.shape)) for i in net.inputs}
    types = net.tensor_types()
    for op in net.ops:
        ins = [bounds[i] for i in op.inputs]
        if op.name in by_op:
            blk = by_op[op.name]
            wmin, wmax = -(1 << (blk.w_bits - 1)), (1 << (blk.w_bits - 1)) - 1
            bmin, bmax = -(1 << (blk.b_bits - 1)), (1 << (blk.b_bits - 1)) - 1
            src = ins[0]
            corners = [src.lo * wmin, src.lo * wmax, src.hi * wmin, src.hi * wmax]
            ones = np.ones(op.arrays["weight"].shape, dtype=object)
            zeros = np.zeros(op.arrays["weight"].shape[-1], dtype=object)
            hi = linear(np.maximum.reduce(corners)[None], ones, zeros, op)[0] + bmax
            lo = linear(np.minimum.reduce(corners)[None], ones, zeros, op)[0] + bmin
            bounds[op.name] = Bounds(lo, hi)
        else:
            bounds[op.name] = op_bounds(op, ins, [types[i] for i in op.inputs])
    return bounds


def worst_case_network(net: Network, layout: list[ParamBlock]) -> Network:
    """A copy of ``net`` whose dense/conv accumulators hold any weight set of the layout's widths."""
    wide = copy.deepcopy(net)
    by_op = {b.op: b for b in layout}
    bounds = worst_case_bounds(net, layout)
    for op in wide.ops:
        b = bounds[op.name]
        if op.name in by_op:
            op.type = IntType(max(signed_bits_for(b.min, b.max), op.type.bits), True, op.type.scale)
            op.attrs["acc_bits"] = op.type.bits
        elif op.kind in EXACT_OPS and isinstance(op.type, IntType) and (b.min < op.type.lo or b.max > op.type.hi):
            # ops that pass values on exactly (no saturation, wrap or table) widen with them
            op.type = IntType(max(signed_bits_for(b.min, b.max), op.type.bits), True, op.type.scale)
    analyze(wide)
    return wide


def config_words(net: Network, layout: list[ParamBlock]) -> list[tuple[int, int]]:
    """(value, bits) words of ``net``'s weights in bitstream order (last op first)."""
    ops = {op.name: op for op in net.ops}
    words = []
    for blk in reversed(layout):
        if blk.op not in ops:
            raise NetworkError(f"network '{net.name}' has no op '{blk.op}' of the reconfigurable layout")
        op = ops[blk.op]
        w, b = op.arrays["weight"].ravel(), op.arrays["bias"].ravel()
        if w.size != blk.n_w or b.size != blk.n_b:
            raise NetworkError(f"{op.where()}: {w.size} weights/{b.size} biases do not fit the layout "
                               f"({blk.n_w}/{blk.n_b})")
        for arr, bits in ((w, blk.w_bits), (b, blk.b_bits)):
            lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
            if arr.size and (int(arr.min()) < lo or int(arr.max()) > hi):
                raise NetworkError(f"{op.where()}: a value does not fit {bits}-bit registers")
            words += [(int(v), bits) for v in arr]
    return words


def config_bitstream(net: Network, layout: list[ParamBlock]) -> tuple[int, int]:
    """(bitstream as an integer whose most significant bit is sent first, number of bits)."""
    value, n = 0, 0
    for v, bits in config_words(net, layout):
        value = (value << bits) | (v & ((1 << bits) - 1))
        n += bits
    return value, n


def same_architecture(a: Network, b: Network) -> None:
    """Raise unless ``b`` differs from ``a`` only in dense/conv weights and biases."""
    if [(o.name, o.kind, tuple(o.shape), tuple(o.inputs)) for o in a.ops] != \
            [(o.name, o.kind, tuple(o.shape), tuple(o.inputs)) for o in b.ops]:
        raise NetworkError(f"networks '{a.name}' and '{b.name}' differ in ops or shapes")
    for oa, ob in zip(a.ops, b.ops):
        for key in oa.arrays:
            if spec_of(oa.kind).params and key in ("weight", "bias"):
                continue
            if key not in ob.arrays or not np.array_equal(oa.arrays[key], ob.arrays[key]):
                raise NetworkError(f"{ob.where()}: '{key}' differs; only weights and biases are reconfigurable")
        if not spec_of(oa.kind).params and (oa.type != ob.type or oa.attrs != ob.attrs):
            raise NetworkError(f"{ob.where()}: type or attributes differ; only weights and biases are "
                               f"reconfigurable")
