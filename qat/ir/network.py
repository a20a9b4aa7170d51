"""The integer network: the one interface between qrtl's stages.

A network is plain data: named inputs with shapes and types, and a list of
ops in execution order.  Each op's output tensor carries the op's name.
Shapes exclude the batch axis and are channels-last.

Op kinds and their integer semantics (all arithmetic exact, see golden.py):

==========  ===================================================================
dense       y[o] = sum_i x[i]*W[i,o] + b[o]            arrays: weight, bias
conv1d      same per window; attrs: strides (s,), padding  arrays: weight (K,Ci,Co), bias
conv2d      attrs: strides (sh,sw), padding               arrays: weight (KH,KW,Ci,Co), bias
            (padding: 'same' | 'valid' as TensorFlow, or explicit [[top, bottom], [left, right]];
            conv1d / 1-D pools: [[left, right]])
bdense      binary x, binary W (bits, 1<->+1): y = 2*popcount(xnor) - N;
            with arrays threshold/direction the output is binary:
            +1 when y >= T (direction +1) or y <= T (direction -1)
bconv2d     as bdense per window (padding must be 'valid')
maxpool     attrs: pool, strides, padding (pads never win), dims 1|2
avgpool     window *sum* (the 1/count lives in the output scale); valid only
reshape     attrs: shape (flatten is a reshape)
add         y = a + b (inputs share one scale)
concat      along the last axis
clip        y = min(max(x, lo), hi)                    attrs: lo, hi (ReLU: lo=0)
requant     y = sat(round(x*mult / 2^shift))           arrays: mult, shift (scalar
            or per channel; shift < 0 is a left shift); attrs: rounding, overflow,
            lo, hi (saturate only; wrap wraps to the type's bits).  With a
            minifloat output type, x*mult/2^shift is in units of the type's
            scale and is rounded to the minifloat grid (always saturating).
threshold   y = base + direction*step*count(x >= T[c,:])  arrays: thresholds,
            base, direction; attrs: step
lut         y = table[x - attrs.in_lo]                 arrays: table
argmax      index of the largest real value along the last axis (first wins)
==========  ===================================================================
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qat.ir.types import TensorType

FORMAT_NAME = "qrtl-integer-network"
FORMAT_VERSION = 1

ROUNDING_MODES = ("half_even", "half_up", "half_away", "floor", "toward_zero")
OVERFLOW_MODES = ("saturate", "wrap")

OP_KINDS = ("dense", "conv1d", "conv2d", "bdense", "bconv2d", "maxpool", "avgpool", "reshape", "add",
            "concat", "clip", "requant", "threshold", "lut", "argmax")


@dataclass
class Op:
    """One operation; its output tensor is named after the op."""

    name: str
    kind: str
    inputs: list[str]
    shape: tuple[int, ...]
    type: TensorType
    attrs: dict[str, Any] = field(default_factory=dict)
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""  # framework layer(s) this op came from, for messages

    def where(self) -> str:
        return f"op '{self.name}' ({self.kind}{', from ' + self.source if self.source else ''})"


@dataclass
class Input:
    """A network input.  ``real_quantizer`` (optional) says how real-valued
    inputs become raw integers, exactly as the framework's first quantizer
    does (see qat.importers.input_quant)."""

    name: str
    shape: tuple[int, ...]
    type: TensorType
    real_quantizer: dict[str, Any] | None = None


@dataclass
class Network:
    name: str
    inputs: list[Input]
    ops: list[Op]
    outputs: list[str]
    notes: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def tensor_types(self) -> dict[str, TensorType]:
        out: dict[str, TensorType] = {i.name: i.type for i in self.inputs}
        out.update({op.name: op.type for op in self.ops})
        return out

    def tensor_shapes(self) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {i.name: tuple(i.shape) for i in self.inputs}
        out.update({op.name: tuple(op.shape) for op in self.ops})
        return out

    def op(self, name: str) -> Op:
        for op in self.ops:
            if op.name == name:
                return op
        raise KeyError(name)


def unique_name(base: str, used: set[str]) -> str:
    """``base``, or ``base_2``, ``base_3``, ... : the first not in ``used`` (which it joins)."""
    name, k = base, 2
    while name in used:
        name, k = f"{base}_{k}", k + 1
    used.add(name)
    return name


class NetworkError(ValueError):
    """A network that is malformed or whose arithmetic could overflow."""
