"""QKeras (TensorFlow 2.15 / Keras 2) model -> integer network.

How each layer becomes integers (TF computes in float32; every step below is
exact while an accumulator fits 24 significant bits, which ``qrtl info``
flags):

* QDense / QConv1D / QConv2D: the kernel and bias quantizers are *called*
  (the real QKeras code) and the quantized values are split into integers and
  a scale: ``quantized_bits`` with alpha None/1 -> one power-of-two step;
  ``alpha='auto_po2'`` -> per-channel powers of two; ``alpha='auto'`` ->
  per-channel float scales (handled by dyadic requantization; TF rounds the
  scaled float32 weights, so such layers are not bit-exact: measured; the
  power-of-two bias cannot lie on that grid either and is rounded on a grid
  refined until its error is <= 2^-17 bias steps).
  The accumulator width is proven by interval analysis.  An input with
  per-channel power-of-two scales (a Concatenate of differently quantized
  branches, an auto_po2 accumulator) is first left-shifted to its finest
  scale (exact).
* Elementwise layers after an accumulator (BatchNormalization,
  QBatchNormalization, Activation('relu'), Dropout, and a QActivation or the
  layer's own quantized activation) form one *segment*, closed by the
  quantizer:
    - power-of-two scales and quantized_bits/quantized_relu -> ``requant``
      (shift, round half to even as ``tf.round``, saturate);
    - anything with BatchNormalization, binary or ternary -> ``threshold``:
      the real Keras layers are evaluated in TensorFlow on accumulator values
      and the exact switching points are found by bisection, so the integer
      op reproduces TF's float32 arithmetic bit for bit (monotonicity is
      checked);
    - non-power-of-two scales without BatchNormalization -> dyadic
      ``requant`` (multiplier b < 2^31, shift c: M ~ b/2^c).
* HAWQ-V3 dyadic layers (qat.recipes.qkeras_recipes: ``dyadic_quantized_bits`` kernels with
  per-channel scales b/2^c, b < 2^W, ``dyadic_bias`` 32-bit biases in units of s_x*s_w, in
  ``QDenseDyadic`` / ``QConv2DDyadic``; or a plain QDense/QConv2D without bias) import
  *exactly*: integer weights, the bias on the accumulator grid, and a ``requant`` whose
  multiplier is the reduced (odd) mantissa b < 2^W (attr ``mult_bits`` = W).  A scale not
  representable in W bits is an ImportError_ naming the layer.  QKeras' float32 forward
  equals the integers while (max|x|*sum|w| + |bias|)*b <= 2^24 per output channel; the bound
  is recorded in ``net.meta["dyadic"]`` and a note (plus a warning) says when it is exceeded.
  ``import_qkeras(..., mult_bits=W)`` declares the multiplier width for every
  non-power-of-two requantization (alpha='auto' layers then fail unless their float32
  scales happen to fit).
* ``quantized_po2`` weights (kernel, bias): the quantizer's outputs +-2^e become integers
  +-2^(e - e_min) on the grid 2^e_min, so in RTL each product is a single shift.
  ``quantized_po2`` / ``quantized_relu_po2`` activations (levels +-2^e, never 0: QKeras maps
  0 to 2^min_exp): the float segment is evaluated in TensorFlow and becomes a ``threshold``
  (level index, exact switching points) plus a ``lut`` (index -> integer level), or one ``lut``
  over a narrow (<= 8-bit) input.  Refused: stochastic rounding, qnoise_factor != 1, a po2
  input quantizer, ranges wider than 2^30 (see :func:`check_po2_quantizer`).
* MaxPooling1D/2D, AveragePooling1D/2D (power-of-two windows, valid),
  Flatten, Reshape, Dropout (no-op), Add, Concatenate.
* A final softmax is dropped with a notice: the outputs are the logits.

QKeras quantizers return ``x + (q - x)`` (straight-through estimator)
computed in float32.  That equals ``q`` while |x| < 2^24 steps of the finer of
the two grids; beyond (huge real inputs of a first-layer quantized_bits, or a
quantized_bits finer than its accumulator with a wide saturating input)
QKeras returns values off its own grid.  qrtl keeps the exact saturated value
and writes a note.

Not supported (clear ImportError_): several inputs or outputs, layers called
more than once (shared layers), an input that feeds its first quantizer and
also unquantized layers, nested models.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from qat.ir.builder import Builder
from qat.ir.network import Input, Network, Op
from qat.ir.passes import run_passes
from qat.importers.scales import DEFAULT_MULT_BITS, exact_dyadic, nearest_dyadic
from qat.importers.thresholds import check_thresholds, fit_thresholds
from qat.ir.types import (BinaryType, IntType, TensorType, is_po2, log2_exact, parse_fixed, signed_bits_for,
                    type_for_range, unit_scale, unsigned_bits_for)

SUPPORTED_LAYERS = ("InputLayer", "QDense", "QConv1D", "QConv2D", "Dense", "Conv1D", "Conv2D", "QActivation",
                    "Activation", "ReLU", "BatchNormalization", "QBatchNormalization", "MaxPooling1D",
                    "MaxPooling2D", "AveragePooling1D", "AveragePooling2D", "Flatten", "Reshape", "Dropout",
                    "Add", "Concatenate", "QDenseDyadic", "QConv2DDyadic")
SUPPORTED_QUANTIZERS = ("quantized_bits", "quantized_relu", "binary", "ternary", "quantized_po2",
                        "quantized_relu_po2")
PO2_QUANTIZERS = ("quantized_po2", "quantized_relu_po2")
PO2_MAX_SPAN = 30  # widest power-of-two range (bits of the integer grid) of po2 weights/activations
PO2_LUT_INPUT_BITS = 8  # po2 activation of an input this narrow: one table over its whole range
MAX_THRESHOLD_LEVELS = 4096
AUTO_BIAS_EXTRA_BITS = 16
F32_EXACT_BITS = 24  # float32 significand: integer grid values up to 2^24 are exact


class ImportError_(ValueError):
    """A model qrtl cannot turn into an exact integer network."""


# ---- loading ---------------------------------------------------------------

def _custom_objects() -> dict:
    from qkeras.utils import _add_supported_quantized_objects

    objs: dict = {}
    _add_supported_quantized_objects(objs)
    objs["QActivation"] = _qactivation_compat()
    from qat.recipes.qkeras_dyadic import CUSTOM_OBJECTS_OWN

    objs.update(CUSTOM_OBJECTS_OWN)
    return objs


_QACTIVATION_COMPAT = None


def _qactivation_compat():
    """QKeras 0.9's QActivation cannot be read back from Keras 2.15's JSON (``model.to_json()``) when its
    quantizer is an object: the config holds the quantizer as a dict, which ``QActivation.__init__`` keeps
    as is (only strings are parsed).  This subclass (same class name, so the importer treats it as
    QActivation) turns such a dict back into the quantizer."""
    global _QACTIVATION_COMPAT
    if _QACTIVATION_COMPAT is None:
        from qkeras import QActivation as _QActivation
        from qkeras.quantizers import get_quantizer

        class QActivation(_QActivation):
            @classmethod
            def from_config(cls, config):
                act = config.get("activation")
                if isinstance(act, dict):
                    config = dict(config, activation=get_quantizer(act))
                return cls(**config)

        _QACTIVATION_COMPAT = QActivation
    return _QACTIVATION_COMPAT


def load_model(model_path: str | Path, weights_path: str | Path | None = None):
    """Load a saved ``.h5`` model, or a JSON architecture plus weights ``.h5``."""
    import tensorflow as tf

    model_path = Path(model_path)
    if not model_path.is_file():
        raise ImportError_(f"{model_path}: no such model file")
    from qat.importers.safe_load import UnsafeModelError, check_keras_file

    try:  # the configuration is read and checked as plain data before Keras deserializes anything
        check_keras_file(model_path)
    except UnsafeModelError as exc:
        raise ImportError_(str(exc)) from None
    co = _custom_objects()
    if model_path.suffix.lower() == ".json":
        if weights_path is None:
            raise ImportError_(f"{model_path}: a JSON architecture needs --weights WEIGHTS.h5")
        weights_path = Path(weights_path)
        if not weights_path.is_file():
            raise ImportError_(f"{weights_path}: no such weights file")
        try:
            model = tf.keras.models.model_from_json(model_path.read_text(), custom_objects=co)
        except Exception as exc:  # Keras raises many types for bad JSON
            raise ImportError_(f"{model_path}: not a readable Keras JSON architecture ({_short(exc)})") from None
        try:
            model.load_weights(str(weights_path))
        except Exception as exc:
            raise ImportError_(f"{weights_path}: weights do not fit the architecture in {model_path.name} "
                               f"({_short(exc)})") from None
        return model
    try:
        model = tf.keras.models.load_model(str(model_path), custom_objects=co, compile=False)
    except Exception as exc:
        raise ImportError_(f"{model_path}: not a readable Keras model ({_short(exc)})") from None
    if weights_path is not None:
        try:
            model.load_weights(str(weights_path))
        except Exception as exc:
            raise ImportError_(f"{weights_path}: weights do not fit the model ({_short(exc)})") from None
    return model


def _short(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return (text[:200] + "...") if len(text) > 200 else text


# ---- quantizer descriptions -------------------------------------------------

@dataclass
class QSpec:
    """An elementwise quantizer's integer grid: out = level * step."""

    type: TensorType
    lo: int
    hi: int
    step: float  # real value of one level (scalar)
    kind: str  # quantized_bits | quantized_relu | binary | ternary
    relu: bool = False  # clips negatives before rounding
    rounding: str = "half_even"


def _qname(q) -> str:
    return type(q).__name__


def _int_attr(v) -> int:
    return int(v.numpy()) if hasattr(v, "numpy") else int(v)


def quantizer_spec(q, where: str) -> QSpec:
    """Integer grid of a QKeras activation quantizer (raises if unsupported)."""
    name = _qname(q)
    if name in PO2_QUANTIZERS:
        raise ImportError_(f"{where}: {q}: a power-of-two quantizer has non-uniform levels and cannot be the "
                           f"input quantizer (quantize the input with quantized_bits, or pass --input-type)")
    if name == "quantized_bits":
        alpha = q.alpha
        if isinstance(alpha, str) or (alpha is not None and float(alpha) != 1.0):
            raise ImportError_(f"{where}: activation quantizer {q} has a data-dependent or non-unit alpha; "
                               f"only alpha=None/1 is exact for activations")
        if q.use_stochastic_rounding:
            raise ImportError_(f"{where}: stochastic rounding is not deterministic hardware")
        bits, integer, keep = int(q.bits), _int_attr(q.integer), int(bool(q.keep_negative))
        unsigned = bits - keep
        if unsigned <= 0:
            raise ImportError_(f"{where}: {q}: 1-bit signed quantized_bits (sign function) is not supported; "
                               f"use binary()")
        m = 1 << unsigned
        lo = keep * (-m + int(bool(q.symmetric)))
        hi = m - 1
        step = math.ldexp(1.0, integer - unsigned)
        t = IntType(bits, bool(keep), (step,))
        return QSpec(t, lo, hi, step, name)
    if name == "quantized_relu":
        if q.use_sigmoid or q.negative_slope or q.use_stochastic_rounding or (
                not q.is_quantized_clip and q.relu_upper_bound is not None):
            raise ImportError_(f"{where}: {q}: only plain quantized_relu(bits, integer) is supported "
                               f"(no sigmoid, negative_slope, stochastic rounding or relu_upper_bound)")
        bits, integer = int(q.bits), _int_attr(q.integer)
        step = math.ldexp(1.0, integer - bits)
        return QSpec(IntType(bits, False, (step,)), 0, (1 << bits) - 1, step, name, relu=True)
    if name == "binary":
        if q.use_stochastic_rounding or isinstance(q.alpha, str):
            raise ImportError_(f"{where}: {q}: only binary() with alpha=None or a number is supported for "
                               f"activations")
        scale = 1.0 if q.alpha is None else float(q.alpha)
        if q.use_01:
            return QSpec(IntType(1, False, (scale,)), 0, 1, scale, name)
        return QSpec(BinaryType((scale,)), -1, 1, scale, name)
    if name == "ternary":
        if isinstance(q.alpha, str) or q.use_stochastic_rounding:
            raise ImportError_(f"{where}: {q}: only ternary() with alpha=None or a number is supported for "
                               f"activations")
        scale = 1.0 if q.alpha is None else float(q.alpha)
        return QSpec(IntType(2, True, (scale,)), -1, 1, scale, name)
    raise ImportError_(f"{where}: quantizer {name} is not supported (supported: {', '.join(SUPPORTED_QUANTIZERS)})")


def real_input_spec(spec: QSpec, q) -> dict[str, Any]:
    """How a first-layer quantizer turns real inputs into integers."""
    if spec.kind in ("quantized_bits", "quantized_relu"):
        return {"kind": "fixed", "shift": int(-log2_exact(spec.step)[0]), "rounding": spec.rounding,
                "lo": spec.lo, "hi": spec.hi, "framework": f"QKeras {q}"}
    if spec.kind == "binary" and isinstance(spec.type, BinaryType):
        return {"kind": "binary", "framework": f"QKeras {q}"}
    if spec.kind == "ternary":
        thr = q.default_threshold if q.threshold is None else float(q.threshold)
        return {"kind": "ternary", "threshold": float(np.float32(thr)), "framework": f"QKeras {q}"}
    raise ImportError_(f"first-layer quantizer {q} cannot quantize real inputs exactly")


def quantize_weights(values: np.ndarray, q, where: str, what: str,
                     default_type: IntType | None) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """(integers, per-output-channel step, notes) for a kernel or bias.

    Calls the QKeras quantizer itself, then splits the result into integers
    times a step taken from the quantizer's definition.
    """
    import tensorflow as tf

    notes: list[str] = []
    values = np.asarray(values, dtype=np.float32)
    if q is None:
        step = _exact_po2_step(values)
        if step is not None:
            return np.round(values / step).astype(np.int64), np.array([step]), notes
        if default_type is None:
            raise ImportError_(f"{where}: {what} has no quantizer and its float values are not exact "
                               f"integers on a power-of-two grid; add a quantizer or pass --default-type")
        s = unit_scale(default_type)[0]
        ints = np.clip(np.round(values.astype(np.float64) / s), default_type.lo, default_type.hi).astype(np.int64)
        notes.append(f"{where}: unquantized {what} rounded to {default_type.describe()} (--default-type); "
                     f"not bit-exact with the float model")
        return ints, np.array([s]), notes
    name = _qname(q)
    if name in PO2_QUANTIZERS:
        return _po2_weights(values, q, where, what)
    if name not in ("quantized_bits", "binary", "ternary"):
        raise ImportError_(f"{where}: {what} quantizer {name} is not supported (supported: quantized_bits, "
                           f"binary, ternary, quantized_po2)")
    if getattr(q, "use_stochastic_rounding", False):
        raise ImportError_(f"{where}: {what} quantizer uses stochastic rounding")
    qv = np.asarray(q(tf.constant(values)).numpy(), dtype=np.float64)
    alpha = getattr(q, "alpha", None)
    if name == "quantized_bits":
        unsigned = int(q.bits) - int(bool(q.keep_negative))
        base = math.ldexp(1.0, _int_attr(q.integer) - unsigned) if unsigned > 0 else 1.0
    else:
        base = 1.0
    if isinstance(alpha, str):
        sc = np.asarray(q.scale.numpy() if hasattr(q.scale, "numpy") else q.scale, dtype=np.float64)
        sc = np.broadcast_to(sc.reshape(-1), (values.shape[-1],)) if sc.size in (1, values.shape[-1]) else None
        if sc is None:
            raise ImportError_(f"{where}: {what} alpha={alpha!r} scale shape is not per output channel")
        if name == "quantized_bits":
            # QKeras stores scale * 2^unsigned_bits and outputs scale * 2^integer * z / 2^unsigned_bits, so
            # one integer level z is worth scale * 2^integer (not scale * base, which is 2^unsigned_bits finer
            # and made every integer weight 2^unsigned_bits too large)
            step = sc / (1 << unsigned) * math.ldexp(1.0, _int_attr(q.integer))
        else:
            step = sc * base
    elif alpha is None:
        step = np.array([base])
    else:
        step = np.array([base * float(alpha)])
    ints_f = qv / step
    ints = np.round(ints_f)
    if not np.all(np.abs(ints_f - ints) <= 1e-3):
        raise ImportError_(f"{where}: {what} quantized values are not integer multiples of the quantizer step")
    if not np.array_equal(ints_f, ints):
        notes.append(f"{where}: {what} with alpha={alpha!r}: TF multiplies with float32-rounded scaled values; "
                     f"qrtl uses exact integers x scale (small mismatches expected)")
    return ints.astype(np.int64), np.asarray(step, dtype=np.float64), notes


def check_po2_quantizer(q, where: str) -> None:
    """The quantized_po2 / quantized_relu_po2 settings qrtl reproduces exactly (one-line refusal otherwise).

    QKeras (0.9): s = sign(x) (+1 at 0); e = round(log2|x|) (tf.round, half to even, on float32
    log(x)/log(2); 'floor' with log2_rounding='floor'), or 2*round(log2(sqrt|x|)) with
    quadratic_approximation; |x| < 1e-7 (Keras epsilon, zero included) gives e = min_exp, so the output
    is never 0; |x| is first clipped to max_value; e is clipped to [min_exp, max_exp]; y = s * 2^e
    (quantized_relu_po2: relu first, negatives -2^e only with negative_slope).  qrtl evaluates that
    function itself in TensorFlow, so every deterministic setting is matched; refused: stochastic
    rounding (random), qnoise_factor != 1 (outputs mix x and q: not powers of two)."""
    if getattr(q, "use_stochastic_rounding", False):
        raise ImportError_(f"{where}: {q}: use_stochastic_rounding=True is random, not deterministic hardware")
    if getattr(q, "log2_rounding", "rnd") not in ("rnd", "floor"):
        raise ImportError_(f"{where}: {q}: log2_rounding={q.log2_rounding!r} is not supported (rnd, floor)")
    qn = q.qnoise_factor
    qn = float(qn.numpy()) if hasattr(qn, "numpy") else float(qn)
    if qn != 1.0:
        raise ImportError_(f"{where}: {q}: qnoise_factor={qn:g} mixes unquantized values into the output; only "
                           f"qnoise_factor=1 (fully quantized) is exact")


def _po2_exponents(v: np.ndarray) -> np.ndarray | None:
    """Exponents e with |v| = 2^e (v nonzero), or None when some value is not a power of two."""
    m, e = np.frexp(np.abs(v))
    return (e - 1).astype(np.int64) if np.all(m == 0.5) else None


def _po2_weights(values: np.ndarray, q, where: str, what: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """quantized_po2 weights: the quantizer's own outputs +-2^e as integers +-2^(e - e_min) x 2^e_min."""
    import tensorflow as tf

    check_po2_quantizer(q, where)
    qv = np.asarray(q(tf.constant(np.asarray(values, np.float32))).numpy(), dtype=np.float64)
    nz = qv[qv != 0]
    if nz.size == 0:
        return np.zeros(qv.shape, np.int64), np.array([1.0]), []
    e = _po2_exponents(nz)
    if e is None or not np.all(np.isfinite(nz)):
        bad = nz[np.argmax(np.frexp(np.abs(nz))[0] != 0.5)]
        raise ImportError_(f"{where}: {what} quantized by {q} gives {bad!r}, not a power of two (QKeras's "
                           f"float32 straight-through output x + (q - x) left the grid); cannot be exact")
    lo, hi = int(e.min()), int(e.max())
    if hi - lo > PO2_MAX_SPAN:
        raise ImportError_(f"{where}: {what} quantized by {q} spans 2^{lo}..2^{hi} ({hi - lo + 1} exponents, "
                           f"more than {PO2_MAX_SPAN + 1}); set max_value or fewer bits")
    step = math.ldexp(1.0, lo)
    ints = np.round(qv / step)
    assert np.array_equal(ints * step, qv)
    notes = [f"{where}: {what} {q}: powers of two 2^{lo}..2^{hi} as integers +-2^k x 2^{lo}"
             + (" (each product is one shift, no adder)" if what == "kernel" else "")]
    return ints.astype(np.int64), np.array([step]), notes


def po2_levels(q) -> np.ndarray:
    """Every value a quantized_po2 / quantized_relu_po2 can output, ascending (float64; 0 for float32
    underflow of 2^e)."""
    exps = np.arange(int(q._min_exp), int(q._max_exp) + 1)
    if q.quadratic_approximation:  # 2*clip(round(log2 sqrt|x|)); but |x| < 1e-7 gives 2^min_exp itself
        exps = np.append(2 * exps, int(q._min_exp))
    pos = np.ldexp(1.0, exps)
    signed = _qname(q) == "quantized_po2" or float(getattr(q, "negative_slope", 0) or 0) != 0
    vals = np.concatenate([-pos if signed else [], [0.0], pos])
    return np.unique(vals)


def _exact_po2_step(values: np.ndarray) -> float | None:
    """Largest power-of-two step making every value an integer below 2^16."""
    v = values.astype(np.float64)
    if not np.all(np.isfinite(v)):
        return None
    if not np.any(v):
        return 1.0
    for k in range(-24, 17):
        s = math.ldexp(1.0, -k)
        r = v / s
        if np.all(r == np.round(r)):
            return s if np.max(np.abs(r)) < 2 ** 16 else None
    return None


# ---- graph building ------------------------------------------------------------

@dataclass
class IntT:
    """A Keras tensor that exists as an integer tensor of the network."""

    name: str


@dataclass
class Pending:
    """Float elementwise layers applied to an integer tensor, awaiting a quantizer."""

    src: str
    layers: list = field(default_factory=list)  # callables applied in TF (layer or activation fn)
    names: list = field(default_factory=list)
    has_bn: bool = False
    relu: bool = False


def _layer_inputs(layer) -> list:
    nodes = layer._inbound_nodes
    if not nodes:
        return []
    node = nodes[0]
    return [t for t in (node.keras_inputs if hasattr(node, "keras_inputs") else node.input_tensors)]


def _tensor_key(t) -> int:
    return id(t)


class QKerasImporter:
    def __init__(self, model, input_type: IntType | None, default_type: IntType | None, output: str,
                 model_name: str, mult_bits: int | None = None):
        self.model = model
        self.mult_bits = mult_bits
        self.dyadic_ops: dict[str, int] = {}  # accumulator op -> multiplier width W
        self.dyadic_meta: dict[str, dict] = {}  # keras layer -> {op, mult_bits, max_mult, f32_bits, f32_exact}
        self.input_type = input_type
        self.default_type = default_type
        self.output = output
        self.b = Builder(model_name)
        self.state: dict[int, Any] = {}
        self.notes: list[str] = []

    # -- helpers --
    def where(self, layer) -> str:
        return f"{self.b.net.name}: layer '{layer.name}' ({type(layer).__name__})"

    def need_int(self, st, layer) -> str:
        """Integer tensor for a consumer that needs one (closes relu-only segments)."""
        if isinstance(st, IntT):
            return st.name
        if st.has_bn:
            raise ImportError_(f"{self.where(layer)}: input comes from {', '.join(st.names)} without a quantizer; "
                               f"the float result cannot be represented exactly; add a QActivation")
        if st.relu:
            t = self.b.types[st.src]
            return self.b.add(Op(self.b.unique(st.names[-1]), "clip", [st.src], (), t,
                                 {"lo": max(0, t.lo), "hi": t.hi}, source=", ".join(st.names)))
        return st.src

    # -- main --
    def run(self) -> Network:
        model = self.model
        if len(model.inputs) != 1:
            raise ImportError_(f"{self.b.net.name}: models with {len(model.inputs)} inputs are not supported")
        if len(model.outputs) != 1:
            raise ImportError_(f"{self.b.net.name}: models with {len(model.outputs)} outputs are not supported "
                               f"(outputs: {', '.join(t.name.split('/')[0] for t in model.outputs)})")
        layers = model.layers
        first_consumers = self._first_quantizer_layer()
        self._input(model.inputs[0], first_consumers)
        for layer in layers:
            cls = type(layer).__name__
            if cls == "InputLayer":
                continue
            if cls == "Sequential" or cls == "Functional":
                raise ImportError_(f"{self.where(layer)}: nested models are not supported; flatten the model")
            if len(layer._inbound_nodes) > 1:
                raise ImportError_(f"{self.where(layer)}: the layer is called {len(layer._inbound_nodes)} times "
                                   f"(shared layers are not supported); use a separate layer for each call")
            handler = getattr(self, f"_l_{cls}", None)
            if handler is None:
                raise ImportError_(f"{self.where(layer)}: layer class {cls} is not supported (supported: "
                                   f"{', '.join(SUPPORTED_LAYERS)})")
            ins = [self.state[_tensor_key(t)] for t in _layer_inputs(layer)]
            out = handler(layer, ins)
            self.state[_tensor_key(layer.output)] = out
        final = self.state[_tensor_key(model.outputs[0])]
        final_layer = model.layers[-1]
        out_name = self.need_int(final, final_layer)
        if self.output == "argmax":
            n = self.b.shapes[out_name][-1]
            out_name = self.b.add(Op(self.b.unique("argmax"), "argmax", [out_name], (),
                                     IntType(max(1, (n - 1).bit_length()), False), source="--output argmax"))
        self.b.net.outputs = [out_name]
        if self.dyadic_meta:
            self.b.net.meta["dyadic"] = self.dyadic_meta
            widths = sorted({v["mult_bits"] for v in self.dyadic_meta.values()})
            self.notes.append(f"dyadic (HAWQ-V3) layers {', '.join(self.dyadic_meta)}: exact integer requantization "
                              f"with multipliers < 2^{'/'.join(str(w) for w in widths)}")
        self.b.net.notes = self.notes
        return self.b.net

    def _first_quantizer_layer(self):
        """The QActivation directly after the input, if any."""
        inp = self.model.inputs[0]
        for layer in self.model.layers:
            if type(layer).__name__ == "QActivation" and any(t is inp for t in _layer_inputs(layer)):
                return layer
        return None

    def _input(self, tensor, first_q) -> None:
        dims = list(tensor.shape[1:])
        if any(d is None for d in dims):
            raise ImportError_(f"{self.b.net.name}: input shape {tuple(tensor.shape)} must be fully defined")
        shape = tuple(int(d) for d in dims)
        name = self.b.unique(tensor.name.split(":")[0].split("/")[0] or "input")
        if self.input_type is not None:
            self.b.add_input(Input(name, shape, self.input_type))
            self.state[_tensor_key(tensor)] = IntT(name)
            return
        if first_q is None:
            raise ImportError_(f"{self.b.net.name}: the input type is unknown: the first layer is not a quantizer; "
                               f"pass --input-type fixed<W,I> or ufixed<W,I>")
        others = [layer.name for layer in self.model.layers if layer is not first_q
                  and type(layer).__name__ != "InputLayer" and any(t is tensor for t in _layer_inputs(layer))]
        if others:
            raise ImportError_(f"{self.b.net.name}: the input feeds the quantizer '{first_q.name}' and also "
                               f"unquantized layer(s) {', '.join(repr(n) for n in others)}, which see the real "
                               f"values; quantize every use of the input or pass --input-type")
        spec = quantizer_spec(first_q.quantizer, self.where(first_q))
        self.b.add_input(Input(name, shape, spec.type, real_input_spec(spec, first_q.quantizer)))
        self.state[_tensor_key(tensor)] = IntT(name)
        self.first_q = first_q
        self.notes.append(f"input '{name}': real inputs are quantized by {first_q.name} ({first_q.quantizer}) "
                          f"exactly as QKeras does (float32 cast, then {spec.rounding} rounding)")
        if spec.kind == "quantized_bits":
            limit = math.ldexp(spec.step, 24)
            self.notes.append(f"input '{name}': exact for |x| < {limit:g} (2^24 steps); beyond that QKeras's "
                              f"straight-through output x + (q - x), computed in float32, is no longer q "
                              f"(e.g. 0 instead of the saturated value), so qrtl and QKeras differ")

    # -- layers --
    def _linear(self, layer, ins, kind: str):
        where = self.where(layer)
        src = self.need_int(ins[0], layer)
        if len(set(self.b.types[src].scale)) != 1:
            src = self._align_channels(src, layer)
        in_t = self.b.types[src]
        if kind != "dense":
            if getattr(layer, "data_format", "channels_last") != "channels_last":
                raise ImportError_(f"{where}: only channels_last is supported")
            if any(int(d) != 1 for d in layer.dilation_rate):
                raise ImportError_(f"{where}: dilation_rate {layer.dilation_rate} is not supported")
            if getattr(layer, "groups", 1) != 1:
                raise ImportError_(f"{where}: grouped convolutions are not supported")
            if layer.padding not in ("same", "valid"):
                raise ImportError_(f"{where}: padding '{layer.padding}' is not supported (same, valid)")
        kernel = layer.kernel.numpy()
        kq = getattr(layer, "kernel_quantizer_internal", None) if getattr(layer, "kernel_quantizer", None) else None
        if kq is not None and _qname(kq) == "dyadic_quantized_bits":
            return self._dyadic_linear(layer, src, kind, kq)
        w_int, w_step, notes = quantize_weights(kernel, kq, where, "kernel", self.default_type)
        self.notes += notes
        cout = kernel.shape[-1]
        acc_scale = unit_scale(in_t)[0] * np.broadcast_to(w_step, (cout,)) if w_step.size > 1 else \
            np.array([unit_scale(in_t)[0] * w_step[0]])
        if layer.use_bias:
            bq = getattr(layer, "bias_quantizer_internal", None) if getattr(layer, "bias_quantizer", None) else None
            b_int, b_step, notes = quantize_weights(layer.bias.numpy(), bq, where, "bias", self.default_type)
            self.notes += notes
            bias_real_step = np.broadcast_to(b_step, (cout,))
        else:
            b_int, bias_real_step = np.zeros(cout, np.int64), np.broadcast_to(acc_scale, (cout,))
        # express the bias on the accumulator grid; refine the grid if the bias is finer
        acc_c = np.broadcast_to(acc_scale, (cout,)).astype(np.float64)
        ratio = acc_c / bias_real_step  # acc step / bias step
        shift = 0
        exact_bias = True
        if is_po2(ratio):
            if np.any(ratio > 1):
                shift = int(log2_exact(ratio.max())[0])
        elif not is_po2(acc_c) and is_po2(bias_real_step):
            # alpha='auto': the accumulator step (input step x float kernel scale) is not a power of two, so
            # a power-of-two-step bias cannot lie on its grid.  Refine the grid until the bias rounding error
            # is at most 2^-(AUTO_BIAS_EXTRA_BITS+1) bias steps (TF's float32 arithmetic is inexact here too).
            exact_bias = False
            shift = max(0, int(math.ceil(math.log2(float(ratio.max())))) + AUTO_BIAS_EXTRA_BITS)
        else:
            raise ImportError_(f"{where}: bias step is not a power-of-two fraction of the accumulator step")
        if shift:
            w_int = w_int * (1 << shift)
            acc_c = acc_c / (1 << shift)
            acc_scale = acc_scale / (1 << shift)
        bias_acc = np.broadcast_to(b_int, (cout,)) * (bias_real_step / acc_c)
        if exact_bias and not np.all(bias_acc == np.round(bias_acc)):
            raise ImportError_(f"{where}: bias does not lie on the accumulator grid")
        if not exact_bias and np.any(bias_acc != np.round(bias_acc)):
            self.notes.append(f"{where}: bias rounded to the non-power-of-two accumulator grid refined by "
                              f"2^{shift} (error <= 2^-{AUTO_BIAS_EXTRA_BITS + 1} bias steps); not bit-exact")
        bias_acc = np.round(bias_acc).astype(np.int64)
        if isinstance(in_t, BinaryType) and kq is not None and _qname(kq) == "binary" and not np.any(bias_acc) \
                and kind != "conv1d" and (kind == "dense" or layer.padding == "valid"):
            op_kind = "bdense" if kind == "dense" else "bconv2d"
            bits = (w_int > 0).astype(np.uint8)
            attrs = {} if kind == "dense" else {"strides": [int(s) for s in layer.strides], "padding": "valid"}
            name = self.b.add(Op(self.b.unique(layer.name), op_kind, [src], (), None, attrs,
                                 {"weight": bits}, source=layer.name), acc_scale=acc_scale)
        else:
            attrs = {"weight_scale": [float(v) for v in np.atleast_1d(w_step)]}
            if shift:
                attrs["weight_shift"] = shift
            attrs.update(_register_widths(kq, bq if layer.use_bias else None, shift, bias_real_step / acc_c,
                                          exact_bias))
            if kind != "dense":
                attrs.update({"strides": [int(s) for s in layer.strides], "padding": layer.padding})
            if isinstance(in_t, BinaryType):
                self.notes.append(f"{where}: binary input used as +-1 integers in an integer {kind}")
            name = self.b.add(Op(self.b.unique(layer.name), kind, [src], (), None, attrs,
                                 {"weight": w_int, "bias": bias_acc}, source=layer.name), acc_scale=acc_scale)
        act = getattr(layer, "activation", None)
        return self._activation(layer, IntT(name), act)

    def _dyadic_linear(self, layer, src: str, kind: str, kq):
        """A HAWQ-V3 dense/conv: kernel z * s_w with s_w = b/2^c (b < 2^W), bias n * s_x * s_w."""
        import tensorflow as tf

        where = self.where(layer)
        in_t = self.b.types[src]
        s_x = unit_scale(in_t)
        if isinstance(in_t, BinaryType) or s_x.size != 1 or not is_po2(s_x):
            raise ImportError_(f"{where}: a dyadic layer needs an integer input with one power-of-two scale "
                               f"(put a quantized_bits/quantized_relu quantizer with alpha=1 before it)")
        width = int(kq.mult_bits) if self.mult_bits is None else int(self.mult_bits)
        kernel = layer.kernel.numpy()
        cout = kernel.shape[-1]
        qv = np.asarray(kq(tf.constant(kernel)).numpy(), dtype=np.float64)
        step = np.asarray(kq.step.numpy(), dtype=np.float64).reshape(-1)
        step = np.broadcast_to(step, (cout,)).copy()
        b, _ = exact_dyadic(step, width, f"{where}: kernel scale", "mult_bits", ImportError_)
        z = qv / step
        if not np.array_equal(z, np.round(z)) or np.max(np.abs(z)) > kq.qmax:
            raise ImportError_(f"{where}: quantized kernel is not an integer multiple of its dyadic scale")
        w_int = z.astype(np.int64)
        acc_scale = float(s_x[0]) * step  # exact: power-of-two times dyadic
        bq = getattr(layer, "bias_quantizer_internal", None) if layer.use_bias else None
        if layer.use_bias:
            if bq is None or _qname(bq) != "dyadic_bias":
                raise ImportError_(f"{where}: a dyadic_quantized_bits kernel needs a dyadic_bias bias quantizer "
                                   f"(QDenseDyadic / QConv2DDyadic) or use_bias=False")
            qb = np.asarray(bq.quantize(tf.constant(layer.bias.numpy()), kq.step).numpy(), dtype=np.float64)
            n = qb / acc_scale
            if not np.array_equal(n, np.round(n)):
                raise ImportError_(f"{where}: bias is not on the accumulator grid s_x*s_w (dyadic_bias was built for "
                                   f"input scale 2^{bq.input_scale_log2}, the input has {float(s_x[0]):g})")
            bias_acc = n.astype(np.int64)
            if np.max(np.abs(bias_acc)) >= 1 << (int(bq.bits) - 1):
                raise ImportError_(f"{where}: bias exceeds {bq.bits} bits")
        else:
            bias_acc = np.zeros(cout, np.int64)
        attrs: dict[str, Any] = {"weight_scale": [float(v) for v in step], "weight_bits": int(kq.bits)}
        if layer.use_bias:
            attrs["bias_bits"] = int(bq.bits)
        if kind != "dense":
            attrs.update({"strides": [int(s) for s in layer.strides], "padding": layer.padding})
        name = self.b.add(Op(self.b.unique(layer.name), kind, [src], (), None, attrs,
                             {"weight": w_int, "bias": bias_acc}, source=layer.name), acc_scale=acc_scale)
        # float32 exactness of QKeras' forward: every partial sum, in grid units 2^(k_x - c), is at most
        # (max|x| * sum|w| + |bias|) * b  (b odd); float32 holds integers up to 2^24 exactly.
        bnd = self.b.bounds[src]
        xmax = max(abs(int(bnd.min)), abs(int(bnd.max)))
        wsum = np.abs(w_int).reshape(-1, cout).sum(axis=0)
        worst = max(int((xmax * int(ws) + abs(int(bi))) * int(bb)) for ws, bi, bb in zip(wsum, bias_acc, b))
        f32_bits = max(worst - 1, 0).bit_length()  # worst <= 2^f32_bits
        exact = worst <= 1 << F32_EXACT_BITS
        self.dyadic_ops[name] = width
        self.dyadic_meta[layer.name] = {"op": name, "mult_bits": width, "max_mult": int(b.max()),
                                        "f32_bits": int(f32_bits), "f32_exact": bool(exact)}
        if not exact:
            msg = (f"{where}: QKeras' float32 sum may be inexact: (max|x|*sum|w| + |bias|)*b reaches 2^{f32_bits} > "
                   f"2^{F32_EXACT_BITS}; the golden model is exact, QKeras may differ (measure it)")
            self.notes.append(msg)
            import warnings

            warnings.warn(msg, stacklevel=2)
        return self._activation(layer, IntT(name), getattr(layer, "activation", None))

    def _dyadic_origin(self, src: str) -> int | None:
        """Multiplier width W of the dyadic layer whose accumulator ``src`` is (through scale-keeping ops)."""
        seen = src
        while True:
            if seen in self.dyadic_ops:
                return self.dyadic_ops[seen]
            try:
                op = self.b.net.op(seen)
            except KeyError:
                return None
            if op.kind not in ("maxpool", "reshape", "clip") or len(op.inputs) != 1:
                return None
            seen = op.inputs[0]

    def _align_channels(self, src: str, layer) -> str:
        """Bring an integer tensor with per-channel power-of-two scales (e.g. a
        Concatenate of differently quantized branches) to its finest scale by
        exact left shifts, so that a dense/conv sees one input scale."""
        where = self.where(layer)
        t = self.b.types[src]
        scale = np.broadcast_to(unit_scale(t), self.b.shapes[src][-1:])
        if not isinstance(t, IntType) or not is_po2(scale):
            raise ImportError_(f"{where}: its input has per-channel scales that are not all powers of two "
                               f"(or are binary); put a quantizer before this layer")
        finest = float(scale.min())
        sh = log2_exact(scale / finest)
        b = self.b.bounds[src]
        lo, hi = min(b.min << int(sh.max()), 0), max(b.max << int(sh.max()), 0)
        nt = type_for_range(lo, hi, (finest,))
        return self.b.add(Op(self.b.unique(f"{layer.name}_align"), "requant", [src], (), nt,
                             {"rounding": "half_even", "overflow": "saturate", "lo": int(lo), "hi": int(hi)},
                             {"mult": np.ones(1, np.int64), "shift": -sh.astype(np.int64)}, source=layer.name))

    def _activation(self, layer, st, act):
        """Apply a layer's built-in activation (function or quantizer)."""
        if act is None:
            return st
        aname = getattr(act, "__name__", _qname(act))
        if aname == "linear":
            return st
        if aname == "softmax":
            return self._softmax(layer, st)
        if aname == "relu":
            return self._extend(st, layer.name, act, relu=True)
        if _qname(act) in SUPPORTED_QUANTIZERS:
            return self._close(self._extend(st, layer.name, act), act, layer)
        raise ImportError_(f"{self.where(layer)}: activation {aname} is not supported (linear, relu, softmax "
                           f"(final), or a quantizer: {', '.join(SUPPORTED_QUANTIZERS)})")

    def _softmax(self, layer, st):
        if layer is not self.model.layers[-1]:
            raise ImportError_(f"{self.where(layer)}: softmax is only supported as the final activation")
        msg = (f"final softmax of layer '{layer.name}' dropped: outputs are the pre-softmax logits"
               + (" (--output argmax gives the class index)" if self.output != "argmax" else ""))
        self.notes.append(msg)
        return st

    def _extend(self, st, name: str, fn, relu=False, bn=False) -> Pending:
        if isinstance(st, IntT):
            st = Pending(st.name)
        return Pending(st.src, st.layers + [fn], st.names + [name], st.has_bn or bn, st.relu or relu)

    def _l_QDense(self, layer, ins):
        return self._linear(layer, ins, "dense")

    def _l_QConv1D(self, layer, ins):
        return self._linear(layer, ins, "conv1d")

    def _l_QConv2D(self, layer, ins):
        return self._linear(layer, ins, "conv2d")

    _l_Dense, _l_Conv1D, _l_Conv2D = _l_QDense, _l_QConv1D, _l_QConv2D
    _l_QDenseDyadic, _l_QConv2DDyadic = _l_QDense, _l_QConv2D

    def _l_QActivation(self, layer, ins):
        if getattr(self, "first_q", None) is layer:
            return ins[0]
        q = layer.quantizer
        if _qname(q) not in SUPPORTED_QUANTIZERS:
            name = getattr(q, "__name__", _qname(q))
            if name == "relu":
                return self._extend(ins[0], layer.name, layer, relu=True)
            raise ImportError_(f"{self.where(layer)}: quantizer {_qname(q)} is not supported (supported: "
                               f"{', '.join(SUPPORTED_QUANTIZERS)})")
        return self._close(self._extend(ins[0], layer.name, layer), q, layer)

    def _l_Activation(self, layer, ins):
        return self._activation(layer, ins[0], layer.activation)

    def _l_ReLU(self, layer, ins):
        if layer.max_value is not None or float(layer.negative_slope) != 0 or float(layer.threshold) != 0:
            raise ImportError_(f"{self.where(layer)}: only plain ReLU() is supported")
        return self._extend(ins[0], layer.name, layer, relu=True)

    def _l_Dropout(self, layer, ins):
        return ins[0]

    def _l_BatchNormalization(self, layer, ins):
        axis = layer.axis if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        rank = len(layer.input.shape)
        if [a % rank for a in axis] != [rank - 1]:
            raise ImportError_(f"{self.where(layer)}: only normalization over the last (channel) axis is supported")
        return self._extend(ins[0], layer.name, layer, bn=True)

    _l_QBatchNormalization = _l_BatchNormalization

    def _pool(self, layer, ins, kind: str, dims: int):
        where = self.where(layer)
        src = self.need_int(ins[0], layer)
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise ImportError_(f"{where}: only channels_last is supported")
        pool = [int(p) for p in np.atleast_1d(layer.pool_size)]
        strides = [int(s) for s in np.atleast_1d(layer.strides)]
        attrs = {"pool": pool, "strides": strides, "padding": layer.padding, "dims": dims}
        t = self.b.types[src]
        if kind == "maxpool":
            return IntT(self.b.add(Op(self.b.unique(layer.name), "maxpool", [src], (), t, attrs, source=layer.name)))
        count = int(np.prod(pool))
        if layer.padding != "valid":
            out_ok = all((n - p) % s == 0 for n, p, s in zip(self.b.shapes[src][:dims], pool, strides))
            if not out_ok:
                raise ImportError_(f"{where}: 'same' padding averages over fewer elements at the border; "
                                   f"only windows that need no padding are supported")
            attrs["padding"] = "valid"
        if count & (count - 1):
            raise ImportError_(f"{where}: averaging over {count} elements is a division that is not exact in "
                               f"integers; use a power-of-two pool size")
        scale = np.asarray(t.scale) / count
        return IntT(self.b.add(Op(self.b.unique(layer.name), "avgpool", [src], (), None, attrs, source=layer.name),
                               acc_scale=scale))

    def _l_MaxPooling1D(self, layer, ins):
        return self._pool(layer, ins, "maxpool", 1)

    def _l_MaxPooling2D(self, layer, ins):
        return self._pool(layer, ins, "maxpool", 2)

    def _l_AveragePooling1D(self, layer, ins):
        return self._pool(layer, ins, "avgpool", 1)

    def _l_AveragePooling2D(self, layer, ins):
        return self._pool(layer, ins, "avgpool", 2)

    def _reshape(self, layer, ins, shape):
        src = self.need_int(ins[0], layer)
        t = self.b.types[src]
        old_shape = self.b.shapes[src]
        if len(t.scale) > 1:
            full = np.broadcast_to(np.asarray(t.scale), old_shape).reshape(shape)
            flat = full.reshape(-1, full.shape[-1])
            if not np.all(flat == flat[0]):
                raise ImportError_(f"{self.where(layer)}: per-channel scales do not survive this reshape")
            t = _with_scale(t, flat[0])
        return IntT(self.b.add(Op(self.b.unique(layer.name), "reshape", [src], tuple(shape), t,
                                  {"shape": [int(d) for d in shape]}, source=layer.name)))

    def _l_Flatten(self, layer, ins):
        shape = (int(np.prod(layer.input.shape[1:])),)
        return self._reshape(layer, ins, shape)

    def _l_Reshape(self, layer, ins):
        shape = tuple(int(d) for d in layer.output.shape[1:])
        return self._reshape(layer, ins, shape)

    def _l_Add(self, layer, ins):
        srcs = [self.need_int(s, layer) for s in ins]
        c = self.b.shapes[srcs[0]][-1]
        scales = [np.broadcast_to(unit_scale(self.b.types[s]), (c,)) for s in srcs]
        if not all(is_po2(s) for s in scales):
            raise ImportError_(f"{self.where(layer)}: adding tensors with non-power-of-two scales is not exact")
        finest = np.min(np.stack(scales), axis=0)  # (C,)
        target = finest[:1] if np.all(finest == finest[0]) else finest
        aligned = []
        for s, sc in zip(srcs, scales):
            sh = log2_exact(sc / finest)
            if np.any(sh) or tuple(self.b.types[s].scale) != tuple(float(v) for v in target):
                b = self.b.bounds[s]
                lo, hi = min(b.min << int(sh.max()), 0), max(b.max << int(sh.max()), 0)
                nt = type_for_range(lo, hi, target)
                shift = -sh if np.any(sh != sh[0]) else -sh[:1]
                s = self.b.add(Op(self.b.unique(f"{layer.name}_align"), "requant", [s], (), nt,
                                  {"rounding": "half_even", "overflow": "saturate", "lo": int(lo), "hi": int(hi)},
                                  {"mult": np.ones(1, np.int64), "shift": shift.astype(np.int64)},
                                  source=layer.name))
            aligned.append(s)
        op = Op(self.b.unique(layer.name), "add", aligned, (), None, {}, source=layer.name)
        return IntT(self.b.add(op, acc_scale=target))

    def _l_Concatenate(self, layer, ins):
        srcs = [self.need_int(s, layer) for s in ins]
        rank = len(layer.output.shape)
        if layer.axis % rank != rank - 1:
            raise ImportError_(f"{self.where(layer)}: only concatenation along the channel (last) axis is supported")
        ts = [self.b.types[s] for s in srcs]
        scales = np.concatenate([np.broadcast_to(t.scale, self.b.shapes[s][-1:]) for t, s in zip(ts, srcs)])
        lo = min(t.lo for t in ts)
        hi = max(t.hi for t in ts)
        if any(isinstance(t, BinaryType) for t in ts) and not all(isinstance(t, BinaryType) for t in ts):
            raise ImportError_(f"{self.where(layer)}: cannot concatenate binary and integer tensors")
        if all(isinstance(t, BinaryType) for t in ts):
            nt = BinaryType(scales if len(set(scales)) > 1 else scales[:1])
        else:
            nt = IntType(signed_bits_for(lo, hi) if lo < 0 else max(t.bits for t in ts), lo < 0,
                         scales if len(set(scales)) > 1 else scales[:1])
        return IntT(self.b.add(Op(self.b.unique(layer.name), "concat", srcs, (), nt, {"axis": -1},
                                  source=layer.name)))

    # -- closing a segment with its quantizer --
    def _close(self, pend: Pending, q, layer) -> IntT:
        where = self.where(layer)
        if _qname(q) in PO2_QUANTIZERS:
            return IntT(self._po2_close(pend, q, layer))
        spec = quantizer_spec(q, where)
        src = pend.src
        in_t = self.b.types[src]
        in_scale = unit_scale(in_t)
        name = self.b.unique(layer.name)
        source = ", ".join(pend.names)
        po2 = is_po2(in_scale)
        if not pend.has_bn and spec.kind in ("quantized_bits", "quantized_relu") and po2:
            shift = (log2_exact(spec.step)[0] - log2_exact(in_scale)).astype(np.int64)
            lo = max(spec.lo, 0) if (pend.relu or spec.relu) else spec.lo
            attrs = {"rounding": "half_even", "overflow": "saturate", "lo": int(lo), "hi": int(spec.hi)}
            if spec.kind == "quantized_bits" and np.any(shift < 0):
                self._note_straight_through(src, shift, where)
            return IntT(self.b.add(Op(name, "requant", [src], (), spec.type, attrs,
                                      {"mult": np.ones(1, np.int64), "shift": shift}, source=source)))
        levels = spec.hi - spec.lo
        if po2 and (pend.has_bn or spec.kind in ("binary", "ternary")):
            if levels > MAX_THRESHOLD_LEVELS:
                raise ImportError_(f"{where}: {levels + 1} output levels after BatchNormalization is too many "
                                   f"thresholds (max {MAX_THRESHOLD_LEVELS + 1}); quantize to fewer bits")
            return IntT(self._threshold_op(pend, spec, name, source, where))
        origin = self._dyadic_origin(src)
        width = int(self.mult_bits) if self.mult_bits is not None else origin
        if origin is not None and pend.has_bn:
            raise ImportError_(f"{where}: BatchNormalization after a dyadic layer: fold it into the kernel and bias "
                               f"first (qat.recipes.qkeras_recipes.fold_batchnorm)")
        if width is not None and spec.kind in ("quantized_bits", "quantized_relu"):
            after = self.b.net.op(src).source if src in {op.name for op in self.b.net.ops} else src
            mult, shift = exact_dyadic(in_scale / spec.step, width,
                                       f"{where}: requantization multiplier (after '{after}')", "mult_bits",
                                       ImportError_)
            lo = max(spec.lo, 0) if (pend.relu or spec.relu) else spec.lo
            attrs = {"rounding": "half_even", "overflow": "saturate", "lo": int(lo), "hi": int(spec.hi),
                     "mult_bits": width}
            return IntT(self.b.add(Op(name, "requant", [src], (), spec.type, attrs,
                                      {"mult": mult, "shift": shift}, source=source)))
        if not pend.has_bn and spec.kind in ("quantized_bits", "quantized_relu"):
            mult, shift = nearest_dyadic(in_scale / spec.step, where, ImportError_)
            lo = max(spec.lo, 0) if (pend.relu or spec.relu) else spec.lo
            self.notes.append(f"{where}: non-power-of-two scale requantized dyadically (multiplier < 2^"
                              f"{DEFAULT_MULT_BITS}); TF's float32 product may round differently")
            attrs = {"rounding": "half_even", "overflow": "saturate", "lo": int(lo), "hi": int(spec.hi)}
            return IntT(self.b.add(Op(name, "requant", [src], (), spec.type, attrs,
                                      {"mult": mult, "shift": shift}, source=source)))
        raise ImportError_(f"{where}: cannot express {source} on a non-power-of-two scaled input exactly")

    def _segment_outputs(self, pend: Pending, acc: np.ndarray) -> np.ndarray:
        """The float segment (Keras layers and quantizer, run in TensorFlow) on integer values (K, C) of
        ``pend.src``: float64 copies of TF's float32 outputs, shape (K, C)."""
        import tensorflow as tf

        shape = self.b.shapes[pend.src]
        c = shape[-1]
        in_scale = np.broadcast_to(unit_scale(self.b.types[pend.src]), (c,)).astype(np.float32)
        x = (acc.astype(np.float32) * in_scale).reshape((acc.shape[0],) + (1,) * (len(shape) - 1) + (c,))
        y = tf.constant(x)
        for fn in pend.layers:
            y = fn(y, training=False) if isinstance(fn, tf.keras.layers.Layer) else fn(y)
        return np.asarray(y.numpy(), dtype=np.float64).reshape(acc.shape)

    def _po2_close(self, pend: Pending, q, layer) -> str:
        """A quantized_po2 / quantized_relu_po2 activation: its output levels +-2^e are not uniform, so the
        segment becomes integer ops that reproduce TensorFlow's float32 function exactly:

        * input of at most PO2_LUT_INPUT_BITS bits and the same function in every channel: one ``lut``
          over the input type's whole range (every entry evaluated in TF);
        * otherwise a ``threshold`` op giving the level index (switching points found by bisection on the
          TF function, verified on every accumulator value or both sides of every threshold), then a
          ``lut`` from level index to the integer 2^(e - e_min) (scale 2^e_min).
        The output never is 0 unless 2^min_exp underflows float32 (QKeras maps 0 to 2^min_exp)."""
        where = self.where(layer)
        check_po2_quantizer(q, where)
        src = pend.src
        in_t = self.b.types[src]
        source = ", ".join(pend.names)
        if isinstance(in_t, BinaryType) or not is_po2(unit_scale(in_t)):
            raise ImportError_(f"{where}: {q} after an input with non-power-of-two or binary scale cannot be "
                               f"matched exactly (TensorFlow's float32 input is not the integer times a power of two)")
        b = self.b.bounds[src]
        c = self.b.shapes[src][-1]
        flat_lo = b.lo.reshape(-1, c).min(axis=0).astype(np.int64)
        flat_hi = b.hi.reshape(-1, c).max(axis=0).astype(np.int64)
        if max(abs(int(flat_lo.min())), abs(int(flat_hi.max()))) >= 1 << F32_EXACT_BITS:
            raise ImportError_(f"{where}: accumulator range exceeds 24 bits: TensorFlow's float32 input to "
                               f"{source} is not exact, so no integer function can match it")
        vals = po2_levels(q)

        def level(acc: np.ndarray) -> np.ndarray:
            y = self._segment_outputs(pend, acc)
            k = np.clip(np.searchsorted(vals, y), 0, vals.size - 1)
            off = vals[k] != y
            if np.any(off):
                i = np.argwhere(off)[0]
                raise ImportError_(f"{where}: {source} outputs {y[tuple(i)]!r} for accumulator {int(acc[tuple(i)])} "
                                   f"(channel {int(i[-1])}), not a level of {q} (float32 straight-through "
                                   f"x + (q - x) off the grid); cannot be matched exactly")
            return k.astype(np.int64)

        small = in_t.bits <= PO2_LUT_INPUT_BITS
        if small:
            grid = np.arange(in_t.lo, in_t.hi + 1, dtype=np.int64)
            direct = level(np.repeat(grid[:, None], c, axis=1))
            small = bool(np.all(direct == direct[:, :1]))
        if small:
            kidx = direct[:, 0]
            reach = kidx[(grid >= int(flat_lo.min())) & (grid <= int(flat_hi.max()))]
        else:
            k_lo, k_hi = level(flat_lo[None])[0], level(flat_hi[None])[0]
            reach = np.concatenate([k_lo, k_hi])
        kmin, kmax = int(reach.min()), int(reach.max())
        rv = vals[kmin:kmax + 1]
        nz = rv[rv != 0]
        emin = int(_po2_exponents(nz).min()) if nz.size else 0
        emax = int(_po2_exponents(nz).max()) if nz.size else 0
        if emax - emin > PO2_MAX_SPAN:
            raise ImportError_(f"{where}: {source} reaches 2^{emin}..2^{emax} ({emax - emin + 1} exponents, more "
                               f"than {PO2_MAX_SPAN + 1}); set max_value or fewer bits")
        step = math.ldexp(1.0, emin)
        ints = np.round(vals / step)  # levels outside the reachable range only fill unreachable entries
        ints = np.clip(ints, ints[kmin], ints[kmax]).astype(np.int64)
        out_t = type_for_range(int(ints[kmin]), int(ints[kmax]), (step,))
        self.notes.append(f"{where}: {q} levels 2^{emin}..2^{emax} as integers x 2^{emin} "
                          f"({'one table over the input' if small else 'threshold on the accumulator, then a table'}; "
                          f"reproduces TensorFlow's float32 function exactly, 0 maps to 2^min_exp as in QKeras)")
        if small:
            table = ints[np.clip(kidx, kmin, kmax)]
            return self.b.add(Op(self.b.unique(layer.name), "lut", [src], (), out_t, {"in_lo": int(in_t.lo)},
                                 {"table": table.astype(np.int64)}, source=source))
        levels = int(np.max(np.abs(k_hi - k_lo)))
        arrays = fit_thresholds(level, flat_lo, flat_hi, max(levels, 1), 1)
        idx_t = IntType(unsigned_bits_for(kmax), False, (1.0,))
        th = Op(self.b.unique(f"{layer.name}_level"), "threshold", [src], (), idx_t, {"step": 1}, arrays,
                source=source)
        if not check_thresholds(th, level, flat_lo, flat_hi, in_t):
            why = (f"{q} with quadratic_approximation maps 0 to 2^min_exp but small nonzero inputs to lower "
                   f"levels 2^(2k), " if q.quadratic_approximation else "")
            raise ImportError_(f"{where}: {source} is not monotonic in its input ({why}no threshold form exists; "
                               f"exact only on an input of <= {PO2_LUT_INPUT_BITS} bits, as one table)")
        idx = self.b.add(th)
        table = ints[np.clip(np.arange(0, 1 << idx_t.bits), kmin, kmax)]
        return self.b.add(Op(self.b.unique(layer.name), "lut", [idx], (), out_t, {"in_lo": 0},
                             {"table": table.astype(np.int64)}, source=source))

    def _note_straight_through(self, src: str, shift: np.ndarray, where: str) -> None:
        """quantized_bits returns x + (q - x) in float32.  When its grid is finer than its input's (a left
        shift) and a saturating input x has a float32 ulp coarser than the output step, that sum is not q
        (QKeras then outputs a value off its own grid, e.g. 4.0 for quantized_bits(16,2)): say so."""
        b = self.b.bounds[src]
        c = self.b.shapes[src][-1]
        mx = np.maximum(np.abs(b.lo.reshape(-1, c).min(axis=0).astype(np.float64)),
                        np.abs(b.hi.reshape(-1, c).max(axis=0).astype(np.float64)))
        limit = np.ldexp(1.0, 24 + np.minimum(np.broadcast_to(shift, (c,)), 0))
        if np.any(mx >= limit):
            self.notes.append(f"{where}: saturating inputs of magnitude >= 2^24 output steps reach this finer "
                              f"quantizer; there QKeras's float32 straight-through x + (q - x) is not q, so qrtl's "
                              f"saturated value and QKeras differ (not bit-exact for such inputs)")

    def _threshold_op(self, pend: Pending, spec: QSpec, name: str, source: str, where: str) -> str:
        import tensorflow as tf

        src = pend.src
        b = self.b.bounds[src]
        shape = self.b.shapes[src]
        c = shape[-1]
        flat_lo = b.lo.reshape(-1, c).min(axis=0).astype(np.int64)
        flat_hi = b.hi.reshape(-1, c).max(axis=0).astype(np.int64)
        if max(abs(int(flat_lo.min())), abs(int(flat_hi.max()))) >= 1 << 24:
            raise ImportError_(f"{where}: accumulator range exceeds 24 bits: TensorFlow's float32 input to "
                               f"{source} is not exact, so no integer threshold can match it")
        in_scale = np.broadcast_to(unit_scale(self.b.types[src]), (c,)).astype(np.float32)
        rank = len(shape)

        def f(acc: np.ndarray) -> np.ndarray:
            """Output levels of the float segment for accumulator values (K, C)."""
            x = (acc.astype(np.float32) * in_scale).reshape((acc.shape[0],) + (1,) * (rank - 1) + (c,))
            y = tf.constant(x)
            for fn in pend.layers:
                y = fn(y, training=False) if isinstance(fn, tf.keras.layers.Layer) else fn(y)
            y = np.asarray(y.numpy(), dtype=np.float64).reshape(acc.shape)
            lev = y / spec.step
            r = np.round(lev)
            if np.any(np.abs(lev - r) > 1e-3):
                raise ImportError_(f"{where}: output of {source} is not on the quantizer grid")
            return r.astype(np.int64)

        step = 2 if isinstance(spec.type, BinaryType) else 1
        arrays = fit_thresholds(f, flat_lo, flat_hi, (spec.hi - spec.lo) // step, step)
        op = Op(name, "threshold", [src], (), spec.type, {"step": step}, arrays, source=source)
        if not check_thresholds(op, f, flat_lo, flat_hi, self.b.types[src]):
            raise ImportError_(f"{where}: {op.source} is not monotonic in its input; no threshold form exists")
        return self.b.add(op)  # a binary layer + sign is fused by qat.ir.passes


def _register_widths(kq, bq, shift: int, bias_factor: np.ndarray, exact_bias: bool) -> dict[str, int]:
    """Widths any weight set of these quantizers needs (for reconfigurable-weight hardware)."""
    out: dict[str, int] = {}
    if kq is not None and _qname(kq) == "quantized_bits":
        out["weight_bits"] = int(kq.bits) + (0 if kq.keep_negative else 1) + shift
    if bq is not None and _qname(bq) == "quantized_bits" and exact_bias and is_po2(bias_factor):
        out["bias_bits"] = int(bq.bits) + (0 if bq.keep_negative else 1) + int(log2_exact(bias_factor).max())
    return out


def _with_scale(t: TensorType, scale) -> TensorType:
    from qat.ir.types import with_scale

    return with_scale(t, scale)


def import_qkeras(model, input_type: IntType | None = None, default_type: IntType | None = None,
                  output: str = "logits", name: str | None = None, mult_bits: int | None = None) -> Network:
    """Convert a loaded QKeras/Keras model into a validated integer network.

    ``mult_bits``: declared width W of every non-power-of-two requantization multiplier; each
    must then be exactly b/2^c with b < 2^W (ImportError_ naming the layer otherwise).  None:
    dyadic layers use their quantizer's ``mult_bits``, alpha='auto' layers 31-bit approximations.
    """
    from qat.ir.intervals import validate

    if output not in ("logits", "argmax"):
        raise ImportError_(f"--output must be 'logits' or 'argmax', got {output!r}")
    if mult_bits is not None and not 1 <= int(mult_bits) <= 62:
        raise ImportError_(f"mult_bits must be 1..62, got {mult_bits}")
    net = QKerasImporter(model, input_type, default_type, output, name or model.name, mult_bits).run()
    net.meta.update({"source": "qkeras", "keras_model": model.name})
    validate(net)
    return run_passes(net)


def convert_file(model_path, weights_path=None, input_type: str | None = None, default_type: str | None = None,
                 output: str = "logits", mult_bits: int | None = None) -> Network:
    it = parse_fixed(input_type) if input_type else None
    dt = parse_fixed(default_type) if default_type else None
    model = load_model(model_path, weights_path)
    return import_qkeras(model, it, dt, output, Path(model_path).stem, mult_bits)
