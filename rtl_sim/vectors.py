"""Test vectors for co-simulation and C-simulation: edge vectors, then uniform random values.

Edge vectors come first (all minimum, all maximum, zero, alternating minimum/maximum; binary
inputs: all -1, all +1, alternating; minifloat inputs also alternating +-1 unit), then values
drawn uniformly over the input type's raw range (binary: +-1; minifloat: every representable
value, both signs).  Raw integers, batch-first; int64 unless the type is wider than 62 bits.
"""
from __future__ import annotations

import numpy as np

from qat.ir.arith import narrow
from qat.ir.network import Input, Network, NetworkError
from qat.ir.types import BinaryType, MinifloatType, minifloat_magnitudes


def input_vectors(inp: Input, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` raw vectors of shape ``inp.shape`` for one input."""
    t, shape = inp.type, tuple(inp.shape)
    size = (max(n, 0),) + shape
    if isinstance(t, BinaryType):
        body = rng.choice(np.array([-1, 1]), size=size)
        edges = [np.full(shape, -1), np.full(shape, 1), np.resize([-1, 1], shape)]
    elif isinstance(t, MinifloatType):  # uniform over the format's values (codes), both signs
        body = rng.choice(minifloat_magnitudes(t), size=size) * rng.choice(np.array([-1, 1]), size=size)
        edges = [np.full(shape, t.lo), np.full(shape, t.hi), np.zeros(shape, np.int64),
                 np.resize([t.lo, t.hi], shape), np.resize([1, -1], shape)]
    elif t.bits <= 62:
        body = rng.integers(t.lo, t.hi + 1, size=size)
        edges = [np.full(shape, t.lo), np.full(shape, t.hi), np.zeros(shape, np.int64), np.resize([t.lo, t.hi], shape)]
    else:  # wide inputs: uniform over the range from random bytes, Python integers
        k = int(np.prod(size))
        body = np.array([t.lo + int.from_bytes(rng.bytes((t.bits + 7) // 8), "little") % (t.hi - t.lo + 1)
                         for _ in range(k)], dtype=object).reshape(size)
        edges = [np.full(shape, v, dtype=object) for v in (t.lo, t.hi, 0)] + \
            [np.resize(np.array([t.lo, t.hi], dtype=object), shape)]
    both = np.concatenate([np.stack(edges).astype(object), np.asarray(body).astype(object)])[:n]
    return narrow(both)


def random_inputs(net: Network, n: int, seed: int = 0) -> list[np.ndarray]:
    """``n`` vectors per network input (one generator, inputs in order)."""
    rng = np.random.default_rng(seed)
    return [input_vectors(inp, n, rng) for inp in net.inputs]


def random_vectors(net: Network, n: int, seed: int = 0) -> np.ndarray:
    """``n`` vectors for a single-input network (the input's raw integers)."""
    if len(net.inputs) != 1:
        raise NetworkError(f"network '{net.name}' has {len(net.inputs)} inputs; use random_inputs")
    return random_inputs(net, n, seed)[0]
