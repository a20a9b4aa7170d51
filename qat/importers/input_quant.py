"""Real-valued inputs -> raw integers of the network's input type.

Two cases:

* The input has a ``real_quantizer`` (the framework model starts with a
  quantizer): real values are cast to float32, as the framework does, and
  quantized exactly as that quantizer does (the float32 scaling by a power of
  two is exact, so the rule below is bit-exact with TensorFlow/PyTorch).
  Specs: ``{"kind": "fixed", "shift": k, "rounding": r, "lo": a, "hi": b}``
  -> clamp(round(x * 2^k)); ``{"kind": "scaled", "scale": s, "zero_point": z, ...}`` ->
  clamp(round(fl32(x / s) + z)) (Brevitas; float32 division is correctly rounded in
  numpy and PyTorch alike); ``{"kind": "float_scaled", "scale": s, "rounding": r}`` ->
  fl32(x / s) rounded to the minifloat grid; ``{"kind": "binary"}`` -> +1 if x >= 0 else -1;
  ``{"kind": "ternary", "threshold": t}`` -> sign(x) if |x| >= t else 0.
* Otherwise real inputs must be exactly representable in the input type
  (``{"kind": "exact"}`` says so explicitly).

An *input conversion* ``spec["pre"] = {"shape": [...], "steps": [...]}`` (QONNX graphs with float
pre-processing before their first quantizer, see qat.importers.float_steps) is applied first: real
inputs of ``pre["shape"]`` in the framework's (ONNX) layout are cast to float32, the steps run in
float32 as ONNX does, the result is brought to the network's channels-last layout and quantized.
"""
from __future__ import annotations

import numpy as np

from qat.ir.network import Input, NetworkError
from qat.ir.types import BinaryType, MinifloatType, unit_scale
from qat.importers.scales import minifloat_from_real, round_float_exact


def quantize_real(inp: Input, x: np.ndarray) -> np.ndarray:
    """Raw integers (int64) for real values ``x`` of shape (N,) + inp.shape."""
    x = np.asarray(x)
    spec = inp.real_quantizer
    pre = (spec or {}).get("pre")
    want = tuple(pre["shape"]) if pre else tuple(inp.shape)
    if tuple(x.shape[1:]) != want:
        raise NetworkError(f"input '{inp.name}': expected shape (N, {', '.join(map(str, want))}), "
                           f"got {x.shape}")
    if x.dtype.kind not in "fiub":
        raise NetworkError(f"input '{inp.name}': values must be numbers, got dtype {x.dtype}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        raise NetworkError(f"input '{inp.name}': NaN or infinite values")
    if pre:
        x = _convert_input(inp, x, pre)
    if spec is None or spec["kind"] == "exact":
        return _exact_raw(inp, x)
    x32 = x.astype(np.float32).astype(np.float64)
    kind = spec["kind"]
    if kind in ("fixed", "scaled"):
        if kind == "fixed":
            v = np.ldexp(x32, int(spec["shift"]))  # exact: x32 has 24 significant bits
        else:  # Brevitas: fl32(x / s) + z, float32 division as PyTorch
            v = (x32.astype(np.float32) / np.float32(spec["scale"])).astype(np.float64) + float(spec.get("zero_point", 0))
        r = round_float_exact(np.clip(v, -2.0 ** 62, 2.0 ** 62), spec["rounding"])
        return check_raw(inp, np.clip(r, float(spec["lo"]), float(spec["hi"])).astype(np.int64))
    if kind == "float_scaled":  # Brevitas minifloat: fl32(x / s) rounded to the format's grid, saturating

        v = x32.astype(np.float32) / np.float32(spec["scale"])
        return check_raw(inp, np.asarray(minifloat_from_real(v, inp.type, spec["rounding"]), dtype=np.int64))
    if kind == "binary":
        return np.where(x32 >= 0, 1, -1).astype(np.int64)
    if kind == "ternary":
        t = float(np.float32(spec["threshold"]))
        return (np.where(np.abs(x32) >= t, 1, 0) * np.sign(x32)).astype(np.int64)
    raise NetworkError(f"input '{inp.name}': unknown real-input quantizer {kind!r}")


def _convert_input(inp: Input, x: np.ndarray, pre: dict) -> np.ndarray:
    """The input conversion: float32 steps in the framework's layout, then channels-last."""
    from qat.importers.float_steps import apply_steps

    y = apply_steps(x.astype(np.float32), pre["steps"])
    if y.ndim >= 3:
        y = np.moveaxis(y, 1, -1)
    if tuple(y.shape[1:]) != tuple(inp.shape):
        raise NetworkError(f"input '{inp.name}': the input conversion gives shape {y.shape[1:]}, the network "
                           f"takes {tuple(inp.shape)}")
    if not np.all(np.isfinite(y)):
        raise NetworkError(f"input '{inp.name}': the input conversion gives NaN or infinite values")
    return y


def framework_to_network_layout(net, x: np.ndarray, real: bool = True) -> np.ndarray:
    """Inputs in the source framework's layout -> the network's channels-last layout.

    Networks imported from QONNX/PyTorch (``meta['onnx_input_layout']``) take
    (N, C, ...) inputs like PyTorch; others are channels-last already.  Real inputs
    of a network with an input conversion stay as they are (the conversion works in
    the framework's layout); ``real=False`` for raw integers."""
    x = np.asarray(x)
    if real and net.inputs and (net.inputs[0].real_quantizer or {}).get("pre"):
        return x
    if net.meta.get("onnx_input_layout") and x.ndim >= 3:
        return np.moveaxis(x, 1, -1)
    return x


def _exact_raw(inp: Input, x: np.ndarray) -> np.ndarray:
    t = inp.type
    if isinstance(t, BinaryType):
        if not np.isin(x, (-1, 1)).all():
            raise NetworkError(f"input '{inp.name}': binary input values must be -1 or +1")
        return x.astype(np.int64)
    scale = unit_scale(t)
    if x.dtype.kind == "f" or not np.all(scale == 1.0):  # integer *real* values still need scaling
        raw = x.astype(np.float64) / scale
        bad = raw != np.round(raw)
        if bad.any():
            i = np.argwhere(bad)[0]
            raise NetworkError(f"input '{inp.name}': value {x[tuple(i)]!r} at index {tuple(int(v) for v in i)} is "
                               f"not representable in {t.describe()} (step {scale.min():g}); quantize it first "
                               f"or pass raw integers with --integers")
        raw = np.round(raw)
    else:
        raw = x
    return check_raw(inp, raw)


def check_raw(inp: Input, raw: np.ndarray) -> np.ndarray:
    """Validate raw integers against the input type's range."""
    raw = np.asarray(raw)
    if tuple(raw.shape[1:]) != tuple(inp.shape):
        raise NetworkError(f"input '{inp.name}': expected shape (N, {', '.join(map(str, inp.shape))}), "
                           f"got {raw.shape}")
    if raw.dtype.kind == "f":
        if not np.all(raw == np.round(raw)):
            raise NetworkError(f"input '{inp.name}': raw integer input has non-integer values")
    t = inp.type
    out = raw.astype(np.int64)
    if isinstance(t, BinaryType):
        if not np.isin(out, (-1, 1)).all():
            raise NetworkError(f"input '{inp.name}': binary raw values must be -1 or +1")
        return out
    if out.size and (out.min() < t.lo or out.max() > t.hi):
        raise NetworkError(f"input '{inp.name}': values [{out.min()}, {out.max()}] outside the input type "
                           f"{t.describe()} range [{t.lo}, {t.hi}]")
    if isinstance(t, MinifloatType) and out.size:
        # raw minifloat units: only M+1 significant bits are representable
        mag = np.abs(out)
        ok = np.array([m < (2 << t.man_bits) or m % (1 << (int(m).bit_length() - t.man_bits - 1)) == 0
                       for m in mag.ravel().tolist()], dtype=bool).reshape(out.shape)
        if not ok.all():
            i = np.argwhere(~ok)[0]
            raise NetworkError(f"input '{inp.name}': raw value {out[tuple(i)]} at index {tuple(int(v) for v in i)} "
                               f"is not a {t.describe()} value")
    return out


