"""The integer network: the one interface between qrtl's stages.

A network is plain data: named inputs with shapes and types, and a list of
ops in execution order.  Each op's output tensor carries the op's name.
Shapes exclude the batch axis and are channels-last.

Each op kind's meaning, inputs, arrays, attributes (with defaults), exact
golden execution, interval bounds, checks and window geometry live in one
spec per kind: see qat.ir.ops (the table of kinds) and qat.ir.spec.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qat.ir.spec import attr as spec_attr
from qat.ir.types import TensorType

FORMAT_NAME = "qrtl-integer-network"
FORMAT_VERSION = 1

ROUNDING_MODES = ("half_even", "half_up", "half_away", "floor", "toward_zero")
OVERFLOW_MODES = ("saturate", "wrap")


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

    def attr(self, name: str) -> Any:
        """Attribute ``name``, or the default its op spec declares (qat.ir.spec)."""
        return spec_attr(self, name)


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
