"""Element-wise integer bounds of a tensor (the interval analysis's values)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .types import TensorType


@dataclass
class Bounds:
    """Exact bounds: ``lo``/``hi`` are object arrays (Python ints) of the tensor's shape."""

    lo: np.ndarray
    hi: np.ndarray

    @property
    def min(self) -> int:
        return int(self.lo.min())

    @property
    def max(self) -> int:
        return int(self.hi.max())


def full(shape, value) -> np.ndarray:
    """An object array of ``shape`` filled with the Python int ``value``."""
    a = np.empty(shape, dtype=object)
    a.fill(int(value))
    return a


def type_bounds(t: TensorType, shape: tuple[int, ...]) -> Bounds:
    """The whole range of type ``t`` for every element."""
    return Bounds(full(shape, t.lo), full(shape, t.hi))


def spans_zero(b: Bounds) -> bool:
    """Whether some element's range contains 0."""
    return bool(np.any(np.vectorize(lambda a, z: a <= 0 <= z, otypes=[bool])(b.lo, b.hi)))


def bits_of_range(lo: int, hi: int) -> int:
    """Bits of the larger magnitude of [lo, hi]."""
    return max(abs(int(lo)), abs(int(hi))).bit_length()
