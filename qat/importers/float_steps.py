"""Float steps around an integer network: input and output conversions, in float32 as ONNX computes.

QONNX graphs found in the wild do float work that is not integer arithmetic:

* before the first quantizer (*input conversion*): FINN's TFC reshapes the image, multiplies by 2
  and subtracts 1; other graphs scale or shift their features per channel;
* after the last integer layer (*output conversion*): FINN's TensorNorm (Sub, Div, Mul, Add),
  a BatchNormalization without a quantizer after it, a ReLU.

Each step is a JSON-able dict, stored in the network file (``Input.real_quantizer['pre']`` and
``Network.meta['output_conversion']``) and applied with numpy float32 arithmetic, which rounds
every elementwise operation exactly as ONNX (IEEE single precision, round to nearest even):

* ``{"op": "reshape", "shape": [...]}``: ONNX Reshape/Flatten of the (batch, ...) tensor;
* ``{"op": "add"|"sub"|"mul"|"div", "value": [...], "shape": [...], "reversed": bool}``: x op c
  (``reversed``: c op x), c a float32 constant of that shape, broadcast as numpy/ONNX do;
* ``{"op": "relu"}``;
* ``{"op": "bn", "gamma", "beta", "mean", "var": [...], "eps": e}``: inference BatchNormalization
  along the last axis, (x - mean) / sqrt(var + eps) * gamma + beta as ONNX defines it.

Input conversions work in the framework's (ONNX, channels-first) layout; output conversions act
on the network's channels-last outputs (constants are per channel, along the last axis).
"""
from __future__ import annotations

import numpy as np

ARITH = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div"}


def const_step(op: str, value: np.ndarray, reversed_: bool = False) -> dict:
    v = np.asarray(value, dtype=np.float32)
    return {"op": op, "value": [float(x) for x in v.ravel()], "shape": list(v.shape), "reversed": bool(reversed_)}


def bn_step(gamma, beta, mean, var, eps: float) -> dict:
    return {"op": "bn", **{k: [float(x) for x in np.asarray(v, dtype=np.float32).ravel()]
                           for k, v in (("gamma", gamma), ("beta", beta), ("mean", mean), ("var", var))},
            "eps": float(eps)}


def apply_steps(x: np.ndarray, steps: list[dict]) -> np.ndarray:
    """Apply ``steps`` to float32 ``x`` (batch first); float32 result."""
    y = np.asarray(x, dtype=np.float32)
    for s in steps:
        op = s["op"]
        if op == "reshape":
            y = y.reshape((y.shape[0],) + tuple(int(d) for d in s["shape"]))
        elif op == "relu":
            y = np.maximum(y, np.float32(0))
        elif op == "bn":
            g, b, m, v = (np.asarray(s[k], dtype=np.float32) for k in ("gamma", "beta", "mean", "var"))
            y = (y - m) / np.sqrt(v + np.float32(s["eps"])) * g + b
        elif op in ("add", "sub", "mul", "div"):
            c = np.asarray(s["value"], dtype=np.float32).reshape(s["shape"])
            a, b = (c, y) if s.get("reversed") else (y, c)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                y = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide}[op](a, b)
        else:
            raise ValueError(f"unknown float conversion step {op!r}")
        y = np.asarray(y, dtype=np.float32)
    return y


def describe(steps: list[dict]) -> str:
    """One line: 'reshape to (784,), x*2, x-1'."""
    out = []
    for s in steps:
        op = s["op"]
        if op == "reshape":
            out.append(f"reshape to ({', '.join(map(str, s['shape']))}{',' if len(s['shape']) == 1 else ''})")
        elif op == "relu":
            out.append("relu")
        elif op == "bn":
            out.append(f"batchnorm ({len(s['gamma'])} channels)")
        else:
            v = s["value"]
            c = f"{v[0]:.8g}" if len(v) == 1 else f"c[{len(v)}]"
            sym = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[op]
            out.append(f"{c}{sym}x" if s.get("reversed") else f"x{sym}{c}")
    return ", ".join(out)


def apply_output_conversion(net, y: np.ndarray) -> np.ndarray:
    """The network's float output conversion applied to its dequantized outputs (float32 values as
    ONNX holds them), or ``y`` unchanged when the network has none."""
    conv = net.meta.get("output_conversion")
    if not conv:
        return y
    return apply_steps(np.asarray(y, dtype=np.float64).astype(np.float32), conv["steps"])
