"""Export a qrtl integer network for bench/da4ml_helper.py (spec.json + arrays.npz)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from qat.ir.network import Network


class NotExpressible(ValueError):
    pass


def export_for_da4ml(net: Network, work: Path, test_inputs: np.ndarray, test_expected: np.ndarray) -> dict:
    """Write WORK/spec.json and WORK/arrays.npz; returns the spec."""
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise NotExpressible("one input and one output only")
    inp = net.inputs[0]
    spec = {"network": net.name, "input": {"name": inp.name, "shape": list(inp.shape), "bits": inp.type.bits,
                                           "signed": bool(inp.type.signed)},
            "ops": [], "output": net.outputs[0]}
    arrays: dict[str, np.ndarray] = {}
    for op in net.ops:
        if len(op.inputs) != 1:
            raise NotExpressible(f"{op.where()}: multi-input op")
        d = {"name": op.name, "kind": op.kind, "input": op.inputs[0]}
        if op.kind in ("dense", "conv2d"):
            arrays[f"{op.name}.weight"] = np.asarray(op.arrays["weight"], np.int64)
            arrays[f"{op.name}.bias"] = np.asarray(op.arrays["bias"], np.int64)
            d.update(weight=f"{op.name}.weight", bias=f"{op.name}.bias")
            if op.kind == "conv2d":
                d.update(strides=[int(s) for s in op.attrs["strides"]], padding=op.attrs.get("padding", "valid"))
        elif op.kind == "requant":
            mult = np.atleast_1d(np.asarray(op.arrays["mult"]))
            if np.any(mult != 1):
                raise NotExpressible(f"{op.where()}: requant multiplier != 1")
            if op.attrs.get("overflow", "saturate") != "saturate":
                raise NotExpressible(f"{op.where()}: wrapping requant")
            shift = np.atleast_1d(np.asarray(op.arrays["shift"], np.int64))
            d.update(shift=[int(s) for s in shift], channels=len(shift), rounding=op.attrs.get("rounding"),
                     lo=int(op.attrs.get("lo", op.type.lo)), hi=int(op.attrs.get("hi", op.type.hi)))
            if d["rounding"] != "half_even":
                raise NotExpressible(f"{op.where()}: rounding {d['rounding']}")
        elif op.kind == "reshape":
            d.update(shape=[int(s) for s in op.attrs["shape"]])
        else:
            raise NotExpressible(f"{op.where()}: op kind {op.kind}")
        spec["ops"].append(d)
    arrays["test_inputs"] = np.asarray(test_inputs, np.int64)
    arrays["test_expected"] = np.asarray(test_expected, np.int64)
    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.json").write_text(json.dumps(spec, indent=1) + "\n")
    np.savez(work / "arrays.npz", **arrays)
    return spec
