"""Golden integer model: exact execution of the integer network.

No floating point is used on the integer path.  Each op runs on int64 when a
bound on every intermediate value proves that 62 bits suffice, and on Python
integers (numpy ``object`` arrays, arbitrary precision) otherwise.  All
arrays are batch-first and channels-last.  Each op kind's exact execution is
its spec's ``golden`` (qat.ir.ops); the rounding arithmetic is qat.ir.arith.
"""
from __future__ import annotations

import numpy as np

from .arith import minifloat_round, narrow, saturate_or_wrap, shift_round  # noqa: F401  (the golden arithmetic)
from .network import Network, NetworkError, Op
from .spec import spec_of
from .types import BinaryType, TensorType, unit_scale


def run_op(op: Op, xs: list[np.ndarray], types: list[TensorType]) -> np.ndarray:
    """One op on a batch of raw inputs (its spec's exact execution)."""
    spec = spec_of(op.kind)
    if spec is None:
        raise NetworkError(f"{op.where()}: unknown op kind")
    return narrow(np.asarray(spec.golden(op, xs, types)))


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
