"""Per-op summary of an integer network (shapes, types, proven accumulator
widths, parameter counts, bit operations), as plain dicts for JSON."""
from __future__ import annotations

import numpy as np

from qat.ir.intervals import accumulator_bits, analyze
from qat.ir.network import Network
from qat.ir.spec import spec_of
from qat.ir.types import BinaryType, signed_bits_for

# TensorFlow/PyTorch accumulate in float32: exact while |value| < 2^24.
FLOAT32_EXACT_BITS = 25


def _weight_bits(w: np.ndarray) -> int:
    return signed_bits_for(int(w.min()), int(w.max())) if w.size else 0


def op_rows(net: Network) -> list[dict]:
    bounds = analyze(net)
    acc = accumulator_bits(net, bounds)
    types = net.tensor_types()
    shapes = net.tensor_shapes()
    rows = []
    for inp in net.inputs:
        rows.append({"name": inp.name, "kind": "input", "inputs": [], "shape": list(inp.shape),
                     "type": inp.type.describe(), "bits": inp.type.bits, "params": 0, "bops": 0,
                     "real_input": (inp.real_quantizer or {}).get("framework", "exact values of the type"),
                     "source": ""})
    for op in net.ops:
        params = sum(int(a.size) for k, a in op.arrays.items() if k in ("weight", "bias"))
        bops = 0
        spec = spec_of(op.kind)
        if "weight" in spec.arrays:
            w = op.arrays["weight"]
            out_elems = int(np.prod(op.shape))
            macs = out_elems * int(np.prod(w.shape[:-1]))
            in_t = types[op.inputs[0]]
            if not spec.linear:  # binary XNOR-popcount
                bops = macs
            else:
                in_bits = 1 if isinstance(in_t, BinaryType) else in_t.bits
                bops = macs * in_bits * _weight_bits(w)
        row = {"name": op.name, "kind": op.kind, "inputs": list(op.inputs), "shape": list(shapes[op.name]),
               "type": op.type.describe(), "bits": op.type.bits, "proven_bits": acc[op.name],
               "range": [bounds[op.name].min, bounds[op.name].max], "params": params, "bops": bops,
               "source": op.source}
        if spec.sums:
            row["float32_exact"] = acc[op.name] <= FLOAT32_EXACT_BITS
        rows.append(row)
    return rows


def summary(net: Network) -> dict:
    rows = op_rows(net)
    return {"network": net.name, "inputs": [i.name for i in net.inputs], "outputs": list(net.outputs),
            "ops": rows, "total_params": sum(r["params"] for r in rows),
            "total_bops": sum(r["bops"] for r in rows), "notes": list(net.notes)}
