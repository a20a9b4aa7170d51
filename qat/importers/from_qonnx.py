"""QONNX graph (e.g. from ``brevitas.export.export_qonnx``) -> integer network.

Supported nodes: ``Quant`` / ``FloatQuant`` (on weights, biases, the graph
input and activations), ``Gemm``, ``MatMul`` (+ ``Add`` of a quantized bias),
``Conv`` (1D/2D, group 1, no dilation), ``Relu``, ``MaxPool``,
``AveragePool`` / ``GlobalAveragePool`` (+ ``Trunc``, Brevitas TruncAvgPool),
``BatchNormalization`` before a quantizer (-> integer thresholds),
``Flatten`` / ``Reshape``, ``Add`` of two quantized tensors with one scale,
``Concat`` along channels, ``Identity`` / ``Dropout``, a final ``Softmax``
(dropped: the outputs are the logits); constant
subgraphs of standard ONNX ops are evaluated.  Anything else stops the import
with a one-line error naming the node.

Arithmetic (what Brevitas computes in float32, made exact in integers):

* weights and biases: q = clamp(round(fl32(w / s) + z)) as Brevitas does;
  biases (Int32Bias) lie on the accumulator grid s_x*s_w;
* a quantizer after an integer tensor is a ``requant``: the rescale ratio
  r = s_in / s_out (per channel) is an exact dyadic b/2^c when it is one with
  b < 2^mult_bits (power-of-two scales, qrtl's dyadic recipes), else the
  nearest b/2^c with b < 2^mult_bits (``mult_bits`` default 31, as HAWQ-V3),
  which matches PyTorch except where its float32 arithmetic rounds
  differently (measured, see the README); ``exact_scales=True`` refuses;
* ``Relu`` before a quantizer is the requant's lower clamp (round(relu(x))
  = max(round(x), 0)); before a minifloat quantizer it is a ``clip``.

Layout: ONNX tensors are channels-first; the integer network is
channels-last.  Convolution weights are transposed, and a ``Gemm`` after a
``Flatten`` of a channels-first tensor has its rows permuted, so the network
computes the same numbers in its own order.  Conv network inputs are
(H, W, C) / (L, C) in the integer network (``meta['onnx_input_layout']``).
"""
from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from qat.ir.builder import Builder
from qat.ir.geometry import pad_amounts
from qat.ir.intervals import Bounds, validate
from qat.ir.network import Input, Network, NetworkError, Op
from qat.ir.passes import run_passes
from qat.importers.scales import DEFAULT_MULT_BITS, dyadic_ratio, minifloat_from_real, round_float_exact
from qat.importers.float_steps import ARITH, apply_steps, bn_step, const_step, describe
from qat.importers.thresholds import check_thresholds, fit_thresholds
from qat.ir.types import BinaryType, IntType, MinifloatType, TensorType, signed_bits_for, unit_scale

MAX_THRESHOLD_LEVELS = 4096  # most output steps a BatchNorm + quantizer may have (one comparator each)
MAX_BIAS_REFINE_BITS = 8  # extra accumulator bits allowed to hold an unquantized (float) bias
ROUNDING = {"ROUND": "half_even", "HALF_EVEN": "half_even", "FLOOR": "floor", "ROUND_TO_ZERO": "toward_zero",
            "HALF_UP": "half_up"}  # QONNX rounding_mode (any case) -> qrtl rounding
PASS_THROUGH = ("Identity", "Dropout")
QUANTIZERS = ("Quant", "FloatQuant", "BipolarQuant", "Trunc")
# ops that may take the unquantized graph input: float steps of the input conversion, then a quantizer
# (or, with --input-type, a layer)
FLOAT_IN_OPS = ("Reshape", "Flatten", "Add", "Sub", "Mul", "Div", "Quant", "FloatQuant", "BipolarQuant",
                "MatMul", "Gemm", "Conv")
MAX_RANK_LEVELS = 4096  # most distinct output values an exact argmax after a float output conversion may rank


class QONNXImportError(NetworkError):
    """A QONNX graph qrtl cannot turn into an exact integer network."""


# ---- values flowing through the graph ------------------------------------------

@dataclass
class QConst:
    """A quantized constant: raw integers ``q`` and the real value of one raw unit ``scale``."""

    q: np.ndarray
    scale: np.ndarray
    type: TensorType


@dataclass
class Tensor:
    """An integer (or minifloat) tensor of the network.  ``perm`` (flattened channels-first
    tensors only) maps the network's flat index to ONNX's flat index."""

    name: str
    perm: np.ndarray | None = None


@dataclass
class Pending:
    """An integer tensor with float elementwise ops applied, awaiting a quantizer.

    ``chain``: ("relu",), ("bn", gamma, beta, mean, var, eps, where) and
    ("arith", op, c, reversed, where) steps in order (c: float32 per channel, network order)."""

    src: Tensor
    chain: tuple = (("relu",),)
    onnx_name: str = ""  # the ONNX tensor that ``src`` holds

    @property
    def relu_only(self) -> bool:
        return all(step[0] == "relu" for step in self.chain)

    def steps(self) -> list[dict]:
        """The chain as float conversion steps (qat.importers.float_steps)."""
        out = []
        for st in self.chain:
            if st[0] == "relu":
                out.append({"op": "relu"})
            elif st[0] == "bn":
                out.append(bn_step(*st[1:6]))
            else:
                out.append(const_step(st[1], st[2], st[3]))
        return out

    def first_float(self) -> str:
        """Where the first non-ReLU float step came from."""
        return next(st[-1] for st in self.chain if st[0] != "relu")


@dataclass
class FloatIn:
    """The unquantized graph input with float steps applied (the future input conversion).
    ``shape``: ONNX layout without the batch axis."""

    name: str
    real_shape: tuple[int, ...]
    shape: tuple[int, ...]
    steps: list


def qonnx_clean(model):
    """qonnx's own clean-up (cleanup_model's transformations, names kept): shape inference, constant
    folding (Shape of a static tensor included, quantizers kept), Transpose folded into quantized
    initializers, unused tensors and static graph inputs removed.  Skipped (the importer folds
    constant subgraphs itself) when the graph holds custom ops qonnx 0.4 does not know (FloatQuant)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.custom_op.registry import getCustomOp
    from qonnx.transformation.fold_constants import FoldConstants
    from qonnx.transformation.general import (GiveUniqueParameterTensors, RemoveStaticGraphInputs,
                                              RemoveUnusedTensors)
    from qonnx.transformation.infer_shapes import InferShapes
    from qonnx.transformation.quant_constant_folding import FoldTransposeIntoQuantInit
    from qonnx.util.basic import is_finn_op

    import copy

    model = copy.deepcopy(model)
    for node in model.graph.node:
        if node.op_type in ("Quant", "BipolarQuant", "Trunc"):
            node.domain = "qonnx.custom_op.general"  # as cleanup_model does, so qonnx finds its ops
        elif is_finn_op(node.domain) or node.op_type == "FloatQuant":
            try:
                getCustomOp(node)
            except Exception:  # noqa: BLE001 - an op qonnx cannot run or infer
                return model
    m = ModelWrapper(model)
    try:
        for t in (InferShapes(), GiveUniqueParameterTensors(),
                  FoldConstants(exclude_op_types=list(QUANTIZERS) + ["QuantizeLinear", "DequantizeLinear"]),
                  FoldTransposeIntoQuantInit(), RemoveUnusedTensors(), RemoveStaticGraphInputs()):
            m = m.transform(t)
    except Exception as exc:  # noqa: BLE001 - qonnx's own error, one line
        raise QONNXImportError(f"qonnx clean-up failed: {type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''}") from None
    return m.model


# ---- quantizer attributes ---------------------------------------------------------

def _attrs(node) -> dict[str, Any]:
    import onnx

    out = {}
    for a in node.attribute:
        v = onnx.helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _rounding(node, attrs: dict) -> str:
    mode = str(attrs.get("rounding_mode", "ROUND")).upper()
    if mode not in ROUNDING:
        raise QONNXImportError(f"node '{node.name}' ({node.op_type}): rounding mode {mode} is not supported "
                               f"({', '.join(ROUNDING)})")
    return ROUNDING[mode]


def int_quant_type(node, attrs: dict, bits: float, scale: np.ndarray) -> IntType:
    """IntType of a QONNX ``Quant`` (bits, signed, narrow)."""
    if bits != int(bits) or not 2 <= bits <= 32:
        raise QONNXImportError(f"node '{node.name}' (Quant): bit width {bits} is not an integer in 2..32")
    return IntType(int(bits), bool(attrs.get("signed", 1)), scale)


def int_quant_range(t: IntType, narrow: bool) -> tuple[int, int]:
    lo, hi = t.lo, t.hi
    if narrow:
        lo, hi = (lo + 1, hi) if t.signed else (lo, hi - 1)
    return lo, hi


def float_quant_type(node, e_bits: float, m_bits: float, bias: float, max_val: float, attrs: dict,
                     scale) -> MinifloatType:
    """MinifloatType of a QONNX ``FloatQuant``; the variant is the one whose largest value is ``max_val``."""
    where = f"node '{node.name}' (FloatQuant)"
    if not int(attrs.get("has_subnormal", 1)):
        raise QONNXImportError(f"{where}: minifloats without subnormals are not supported")
    if not int(attrs.get("saturation", 1)):
        raise QONNXImportError(f"{where}: non-saturating minifloats (overflow to inf/NaN) are not supported")
    for v, what in ((e_bits, "exponent"), (m_bits, "mantissa"), (bias, "exponent bias")):
        if v != int(v):
            raise QONNXImportError(f"{where}: {what} {v} is not an integer")
    found = []
    for variant in ("plain", "ocp", "fnuz"):
        try:
            t = MinifloatType(int(e_bits), int(m_bits), int(bias), variant, scale)
        except ValueError as exc:
            raise QONNXImportError(f"{where}: {exc}") from None
        if t.max_value == float(max_val):
            found.append(t)
    found.sort(key=lambda t: t.bias != MinifloatType(t.exp_bits, t.man_bits, None, t.variant).bias)
    if not found:
        raise QONNXImportError(f"{where}: largest value {max_val:g} matches no minifloat variant of "
                               f"E{int(e_bits)}M{int(m_bits)} bias {int(bias)} (plain, OCP, FNUZ)")
    return found[0]


def real_input_spec(node, t: TensorType, zero_point: float, narrow: bool, rounding: str) -> dict:
    """How real inputs become raw integers, exactly as the graph's first quantizer (float32 x / s)."""
    s = np.asarray(t.scale, dtype=np.float64)
    if s.size != 1:
        raise QONNXImportError(f"node '{node.name}': per-channel scales on the input quantizer are not supported")
    if isinstance(t, MinifloatType):
        return {"kind": "float_scaled", "scale": float(np.float32(s[0])), "rounding": rounding}
    lo, hi = int_quant_range(t, narrow)
    return {"kind": "scaled", "scale": float(np.float32(s[0])), "zero_point": float(zero_point),
            "rounding": rounding, "lo": lo, "hi": hi}


# ---- dyadic rescaling ------------------------------------------------------------

# ---- the importer -----------------------------------------------------------------

class QONNXImporter:
    def __init__(self, model, name: str, mult_bits: int, exact_scales: bool, input_type: IntType | None = None):
        self.model = model
        self.input_type = input_type
        self.graph = model.graph
        self.mult_bits = int(mult_bits)
        self.exact_scales = exact_scales
        if not 2 <= self.mult_bits <= 62:
            raise QONNXImportError(f"--mult-bits must be in 2..62, got {mult_bits}")
        self.b = Builder(name)
        self.net, self.bounds, self.types, self.shapes = self.b.net, self.b.bounds, self.b.types, self.b.shapes
        self.values: dict[str, Any] = {}
        self.consts: dict[str, np.ndarray] = {}
        self.inexact: list[str] = []
        self.graph_inputs = {i.name: i for i in self.graph.input}

    # ---- building blocks
    def add(self, op: Op, acc_scale=None) -> Tensor:
        """Append ``op`` under a unique name (see qat.ir.builder.Builder.add)."""
        op.name = self.b.unique(op.name)
        return Tensor(self.b.add(op, acc_scale))

    def where(self, node) -> str:
        mod = module_scope(node)
        return f"node '{node.name or node.output[0]}' ({node.op_type}{', module ' + mod if mod else ''})"

    def src(self, node) -> str:
        """Where an op came from, for tables and messages: 'module (node)'."""
        mod = module_scope(node)
        return f"{mod} ({node.name})" if mod else node.name

    def label(self, node, default: str) -> str:
        """Op name: the PyTorch module the node came from (e.g. 'fc1'), else the node name."""
        return (module_scope(node) or node.name or default).replace(".", "_")

    def const(self, name: str, node) -> np.ndarray:
        v = self.values.get(name)
        if isinstance(v, np.ndarray):
            return v
        raise QONNXImportError(f"{self.where(node)}: input '{name}' must be a constant")

    def tensor(self, name: str, node) -> Tensor:
        v = self.values.get(name)
        if isinstance(v, Pending):
            return self.close_relu(v, node)
        if isinstance(v, Tensor):
            return v
        if isinstance(v, FloatIn):
            return self._typed_input(v, node)
        raise QONNXImportError(f"{self.where(node)}: input '{name}' is not a quantized tensor "
                               f"(put a QuantIdentity/quantizer before this layer)")

    def close_relu(self, p: Pending, node) -> Tensor:
        if not p.relu_only:
            raise QONNXImportError(f"{p.first_float()}: float op between quantized layers: its result reaches "
                                   f"{self.where(node)} unquantized (quantize it first: QuantReLU/QuantIdentity)")
        t = self.types[p.src.name]
        return Tensor(self.add(Op(f"{p.src.name}_relu", "clip", [p.src.name], (), t,
                                  {"lo": 0, "hi": int(t.hi)}, source=self.src(node))).name, p.src.perm)

    # ---- run
    def run(self) -> Network:
        import onnx

        for init in self.graph.initializer:
            self.values[init.name] = onnx.numpy_helper.to_array(init)
        for gi in self.graph.input:
            if gi.name not in self.values:
                dims = [d.dim_value for d in gi.type.tensor_type.shape.dim]
                if len(dims) < 2 or any(d <= 0 for d in dims[1:]):
                    raise QONNXImportError(f"graph input '{gi.name}': needs a static shape (batch, ...), got {dims}")
                self.values[gi.name] = FloatIn(gi.name, tuple(dims[1:]), tuple(dims[1:]), [])
        for node in self.graph.node:
            handler = getattr(self, f"_n_{node.op_type}", None)
            ins = [self.values.get(i) if i else None for i in node.input]
            if node.op_type not in QUANTIZERS and ins and all(
                    isinstance(self.values.get(i), np.ndarray) for i in node.input if i):
                self._fold_constant(node)
                continue
            if node.op_type in PASS_THROUGH:
                self.values[node.output[0]] = ins[0]
                continue
            if any(isinstance(v, FloatIn) for v in ins) and node.op_type not in FLOAT_IN_OPS:
                raise QONNXImportError(f"{self.where(node)}: op {node.op_type} on the unquantized input is not part "
                                       f"of an input conversion (supported before the first quantizer: "
                                       f"{', '.join(FLOAT_IN_OPS)})")
            if handler is None:
                raise QONNXImportError(f"{self.where(node)}: op {node.op_type} is not supported by qrtl "
                                       f"(supported: {', '.join(supported_ops())})")
            self.values[node.output[0]] = handler(node, ins)
        outs = []
        for o in self.graph.output:
            v = self.values.get(o.name)
            if isinstance(v, Pending) and not v.relu_only:
                v = self._output_conversion(o.name, v)
            if isinstance(v, Pending):
                v = self.close_relu(v, self.graph.node[-1])
            if not isinstance(v, Tensor):
                raise QONNXImportError(f"graph output '{o.name}' is not an integer tensor")
            if v.perm is not None and not np.array_equal(v.perm, np.arange(v.perm.size)):
                raise QONNXImportError(f"graph output '{o.name}' is a flattened channels-first tensor; "
                                       f"end the network with a Linear layer")
            outs.append(v.name)
        self.net.outputs = outs
        if not self.net.inputs:
            raise QONNXImportError("the graph input is not quantized: start the model with a QuantIdentity "
                                   "(QONNX Quant) so real inputs are quantized as in Brevitas")
        if self.input_type is not None and self.net.inputs[0].type is not self.input_type:
            raise QONNXImportError(f"--input-type applies to QONNX graphs whose input is unquantized; this graph "
                                   f"quantizes input '{self.net.inputs[0].name}' itself")
        if self.inexact:
            self.net.notes.append(f"rescale ratios that are not b/2^c with b < 2^{self.mult_bits} were rounded "
                                  f"to the nearest such dyadic number in: {', '.join(self.inexact)}; PyTorch's "
                                  f"float32 arithmetic may round some outputs differently")
        return self.net

    def _fold_constant(self, node) -> None:
        from onnx.reference import ReferenceEvaluator
        import onnx

        inputs = [n for n in node.input if n]
        g = onnx.helper.make_graph(
            [node], "fold", [onnx.helper.make_tensor_value_info(n, onnx.TensorProto.UNDEFINED, None)
                             for n in inputs],
            [onnx.helper.make_tensor_value_info(o, onnx.TensorProto.UNDEFINED, None) for o in node.output])
        m = onnx.helper.make_model(g, opset_imports=list(self.model.opset_import))
        try:
            res = ReferenceEvaluator(m).run(None, {n: self.values[n] for n in inputs})
        except Exception as exc:  # noqa: BLE001 - reported with the node name
            raise QONNXImportError(f"{self.where(node)}: cannot evaluate constant op: "
                                   f"{str(exc).splitlines()[0][:160]}") from None
        for o, r in zip(node.output, res):
            self.values[o] = np.asarray(r)

    # ---- quantizers
    def _scale(self, node) -> np.ndarray:
        """A quantizer's scale input (float64), checked positive and finite."""
        scale = self.const(node.input[1], node).astype(np.float64)
        if not np.all(scale > 0) or not np.all(np.isfinite(scale)):
            raise QONNXImportError(f"{self.where(node)}: scales must be positive and finite")
        return scale

    def _requant(self, node, src: str, perm, t: TensorType, s_in: np.ndarray, attrs: dict) -> Tensor:
        """A requant op of ``src`` (real step ``s_in``, per tensor or channel) to type ``t``:
        ratio s_in / t.scale as b/2^c (see :func:`dyadic_ratio`); ``attrs`` add rounding and bounds."""
        mult, shift, exact = dyadic_ratio(s_in, np.asarray(t.scale, dtype=np.float64), self.mult_bits,
                                          self.exact_scales, self.where(node), QONNXImportError)
        if not exact:
            self.inexact.append(self.label(node, "quant"))
        if np.all(mult == mult[0]) and np.all(shift == shift[0]):
            mult, shift = mult[:1], shift[:1]
        attrs = dict(attrs, mult_bits=int(max(int(m).bit_length() for m in mult)))
        op = Op(self.label(node, "quant"), "requant", [src], (), t, attrs, {"mult": mult, "shift": shift},
                source=self.src(node))
        return Tensor(self.add(op).name, perm)

    def _quant_params(self, node, ins) -> tuple[TensorType, dict, np.ndarray, bool, str]:
        attrs = _attrs(node)
        rounding = _rounding(node, attrs)
        scale = self._scale(node)
        if node.op_type == "Quant":
            zp = self.const(node.input[2], node)
            if np.any(zp != 0):
                raise QONNXImportError(f"{self.where(node)}: non-zero zero point (asymmetric quantization) is not "
                                       f"supported; use symmetric quantizers")
            bits = float(self.const(node.input[3], node).reshape(-1)[0])
            t = int_quant_type(node, attrs, bits, scale.ravel())
            return t, attrs, scale, bool(attrs.get("narrow", 0)), rounding
        if node.op_type == "FloatQuant":
            e, m, bias, mx = (float(self.const(node.input[i], node).reshape(-1)[0]) for i in (2, 3, 4, 5))
            t = float_quant_type(node, e, m, bias, mx, attrs, scale.ravel())
            return t, attrs, scale, False, rounding
        raise QONNXImportError(f"{self.where(node)}: not a quantizer")

    def _n_Quant(self, node, ins):
        return self._quantizer(node, ins)

    def _n_FloatQuant(self, node, ins):
        return self._quantizer(node, ins)

    def _n_Trunc(self, node, ins):
        """QONNX Trunc (Brevitas TruncAvgPool): the integer window sum / 2^(in_bits - out_bits), rounded."""
        attrs = _attrs(node)
        rounding = _rounding(node, attrs)
        src = self.tensor(node.input[0], node)
        in_scale = float(self.const(node.input[1], node).reshape(-1)[0])
        if np.any(self.const(node.input[2], node) != 0):
            raise QONNXImportError(f"{self.where(node)}: non-zero zero point is not supported")
        out_scale = float(self.const(node.input[4], node).reshape(-1)[0])
        out_bits = float(self.const(node.input[5], node).reshape(-1)[0])
        t_in = self.types[src.name]
        if abs(float(unit_scale(t_in)[0]) / in_scale - 1.0) > 2.0 ** -20:
            raise QONNXImportError(f"{self.where(node)}: input scale {in_scale:g} is not the pooled tensor's step "
                                   f"{float(unit_scale(t_in)[0]):g}")
        t = int_quant_type(node, attrs, out_bits, np.array([out_scale]))
        lo, hi = int_quant_range(t, bool(attrs.get("narrow", 0)))
        return self._requant(node, src.name, src.perm, t, np.asarray([in_scale], dtype=np.float64),
                             {"rounding": rounding, "overflow": "saturate", "lo": lo, "hi": hi})

    def _n_Transpose(self, node, ins):
        """Transpose of a quantized constant (weights exported as Quant -> Transpose -> MatMul)."""
        x = ins[0]
        if not isinstance(x, QConst):
            raise QONNXImportError(f"{self.where(node)}: only transposes of quantized weights are supported")
        perm = _attrs(node).get("perm")
        perm = tuple(perm) if perm is not None else tuple(reversed(range(x.q.ndim)))
        scale = np.broadcast_to(x.scale, x.q.shape)
        return QConst(np.transpose(x.q, perm), np.transpose(scale, perm), x.type)

    def _n_Concat(self, node, ins):
        """Concatenation along the channel axis (ONNX axis 1; the network's last axis)."""
        srcs = [self.tensor(n, node) for n in node.input]
        rank = len(self.shapes[srcs[0].name]) + 1  # with the batch axis
        axis = int(_attrs(node).get("axis", 1))
        if axis % rank != 1:
            raise QONNXImportError(f"{self.where(node)}: only concatenation along the channel axis (1) is supported")
        if any(s.perm is not None for s in srcs):
            raise QONNXImportError(f"{self.where(node)}: concatenating flattened channels-first tensors")
        ts = [self.types[s.name] for s in srcs]
        if not all(isinstance(t, IntType) for t in ts):
            raise QONNXImportError(f"{self.where(node)}: only integer tensors can be concatenated")
        scales = np.concatenate([np.broadcast_to(t.scale, self.shapes[s.name][-1:]) for t, s in zip(ts, srcs)])
        lo, hi = min(t.lo for t in ts), max(t.hi for t in ts)
        nt = IntType(signed_bits_for(lo, hi) if lo < 0 else max(t.bits for t in ts), lo < 0,
                     scales if len(set(scales)) > 1 else scales[:1])
        return self.add(Op(self.label(node, "concat"), "concat", [s.name for s in srcs], (), nt, {"axis": -1},
                           source=self.src(node)))

    def _n_Softmax(self, node, ins):
        """A final softmax is not integer arithmetic: dropped, the outputs are the logits (as for QKeras)."""
        if node.output[0] not in {o.name for o in self.graph.output}:
            raise QONNXImportError(f"{self.where(node)}: Softmax is only supported as the last op (it is dropped)")
        self.net.notes.append(f"{self.where(node)}: final softmax dropped; outputs are the logits "
                              f"(--output argmax gives the class index)")
        return ins[0]

    def _n_BatchNormalization(self, node, ins):
        """Inference BatchNorm: kept as a float step; the next quantizer turns it into integer thresholds."""
        if len(node.output) > 1 and any(node.output[1:]):
            raise QONNXImportError(f"{self.where(node)}: training-mode BatchNormalization (export in eval mode)")
        src = ins[0].src if isinstance(ins[0], Pending) else ins[0]
        if not isinstance(src, Tensor):
            raise QONNXImportError(f"{self.where(node)}: BatchNormalization input is not an integer tensor")
        c = self.shapes[src.name][-1]
        params = [self.const(n, node).astype(np.float32).reshape(-1) for n in node.input[1:5]]
        if any(v.size != c for v in params):
            raise QONNXImportError(f"{self.where(node)}: BatchNormalization parameters do not match {c} channels")
        eps = float(_attrs(node).get("epsilon", 1e-5))
        return self._elementwise(node, ins[0], ("bn", *params, eps, self.where(node)))

    def _n_BipolarQuant(self, node, ins):
        """Binary quantizer: +scale where x >= 0, else -scale (Brevitas binary_sign)."""
        scale = self._scale(node)
        t = BinaryType(scale.ravel())
        x = ins[0]
        if isinstance(x, np.ndarray):  # binary weights
            q = np.where(x.astype(np.float32) >= 0, 1, -1).astype(np.int64)
            return QConst(q, np.broadcast_to(scale, x.shape), t)
        if isinstance(x, FloatIn):
            if scale.size != 1:
                raise QONNXImportError(f"{self.where(node)}: per-channel scales on the input quantizer")
            return self._add_graph_input(node, x, t, {"kind": "binary"}, None)
        if scale.size != 1:
            raise QONNXImportError(f"{self.where(node)}: per-channel activation scales are not supported")
        p = x if isinstance(x, Pending) else Pending(x, ()) if isinstance(x, Tensor) else None
        if p is None:
            raise QONNXImportError(f"{self.where(node)}: quantizer input '{node.input[0]}' is not supported")
        return self._threshold(node, p, t, False, "half_even")

    def _quantizer(self, node, ins):
        t, attrs, scale, narrow, rounding = self._quant_params(node, ins)
        x = ins[0]
        if isinstance(x, np.ndarray):
            return self._quantize_const(node, x, t, scale, narrow, rounding)
        if isinstance(x, FloatIn):
            return self._graph_input(node, x, t, narrow, rounding)
        src = x.src if isinstance(x, Pending) else x
        if not isinstance(src, Tensor):
            raise QONNXImportError(f"{self.where(node)}: quantizer input '{node.input[0]}' is not supported")
        if scale.size != 1:
            raise QONNXImportError(f"{self.where(node)}: per-channel activation scales are not supported")
        if isinstance(x, Pending) and not x.relu_only:  # BatchNorm before the quantizer
            return self._threshold(node, x, t, narrow, rounding)
        in_t = self.types[src.name]
        c = self.shapes[src.name][-1] if self.shapes[src.name] else 1
        s_in = np.broadcast_to(unit_scale(in_t), (c,)) if len(in_t.scale) > 1 else unit_scale(in_t)
        relu = isinstance(x, Pending)
        attrs_rq: dict[str, Any] = {"rounding": rounding}
        name = src.name
        if isinstance(t, MinifloatType):
            if relu:
                name = self.close_relu(x, node).name
        else:
            lo, hi = int_quant_range(t, narrow)
            attrs_rq.update({"overflow": "saturate", "lo": max(lo, 0) if relu else lo, "hi": hi})
        return self._requant(node, name, src.perm, t, s_in, attrs_rq)

    def _threshold(self, node, p: Pending, t: TensorType, narrow: bool, rounding: str) -> Tensor:
        """BatchNorm (and ReLU) then a quantizer: integer thresholds found on the float32 function itself."""
        where = self.where(node)
        if isinstance(t, MinifloatType):
            raise QONNXImportError(f"{where}: BatchNormalization before a minifloat quantizer is not supported; "
                                   f"fold it into the preceding layer")
        src = p.src.name
        binary = isinstance(t, BinaryType)
        lo_q, hi_q = (-1, 1) if binary else int_quant_range(t, narrow)
        if hi_q - lo_q > MAX_THRESHOLD_LEVELS:
            raise QONNXImportError(f"{where}: {hi_q - lo_q + 1} output levels after BatchNormalization need too "
                                   f"many thresholds (max {MAX_THRESHOLD_LEVELS + 1}); fold the BatchNorm instead")
        b = self.bounds[src]
        c = self.shapes[src][-1]
        lo = b.lo.reshape(-1, c).min(axis=0).astype(np.int64)
        hi = b.hi.reshape(-1, c).max(axis=0).astype(np.int64)
        if max(abs(int(lo.min())), abs(int(hi.max()))) >= 1 << 24:
            raise QONNXImportError(f"{where}: accumulator range exceeds 24 bits, so the float32 BatchNormalization "
                                   f"input is not exact and no integer threshold can match it; fold the BatchNorm")
        s_in = np.broadcast_to(unit_scale(self.types[src]), (c,)).astype(np.float32)
        s_out = np.float32(t.scale[0])
        steps = p.steps()

        def f(acc: np.ndarray) -> np.ndarray:
            """Output levels, computed as ONNX defines the chain, in float32."""
            y = apply_steps(acc.astype(np.float32) * s_in, steps)
            if binary:  # Brevitas binary_sign: +1 where y >= 0
                return np.where(y.astype(np.float32) >= 0, 1, -1).astype(np.int64)
            v = (y.astype(np.float32) / s_out).astype(np.float64)
            return np.clip(round_float_exact(v, rounding), lo_q, hi_q).astype(np.int64)

        step = 2 if binary else 1
        arrays = fit_thresholds(f, lo, hi, (hi_q - lo_q) // step, step)
        op = Op(self.label(node, "quant"), "threshold", [src], (), t, {"step": step}, arrays, source=self.src(node))
        if not check_thresholds(op, f, lo, hi, self.types[src]):
            raise QONNXImportError(f"{where}: BatchNormalization followed by this quantizer is not monotonic per "
                                   f"channel; no threshold form exists")
        if p.chain:
            self.net.notes.append(f"{where}: float ops ({describe(steps)}) + quantizer as per-channel integer "
                                  f"thresholds, found on float32 arithmetic as ONNX defines it (PyTorch's kernel "
                                  f"may round ties differently)")
        return Tensor(self.add(op).name, p.src.perm)

    def _quantize_const(self, node, x, t, scale, narrow, rounding) -> QConst:
        """Quantize a constant as Brevitas does: fl32(x / s), round, clamp."""
        s32 = scale.astype(np.float32)
        v = (x.astype(np.float32) / s32).astype(np.float64)
        q = round_float_exact(v, rounding)
        if isinstance(t, MinifloatType):
            raw = minifloat_from_real(v.astype(np.float32), t, rounding)
            return QConst(np.asarray(raw, dtype=np.int64), np.broadcast_to(np.ldexp(scale, t.unit_exp), x.shape), t)
        lo, hi = int_quant_range(t, narrow)
        return QConst(np.clip(q, lo, hi).astype(np.int64), np.broadcast_to(scale, x.shape), t)

    def _input_shape(self, x: FloatIn) -> tuple[int, ...]:
        """The network input's shape (``x`` after its input conversion) channels-last, batch axis dropped."""
        shape = tuple(x.shape)
        if len(shape) >= 2:
            shape = shape[1:] + shape[:1]  # channels-first -> channels-last
            self.net.meta["onnx_input_layout"] = "NCHW" if len(shape) == 3 else "NCL"
        return shape

    def _graph_input(self, node, x: FloatIn, t, narrow, rounding) -> Tensor:
        zp = float(self.const(node.input[2], node).reshape(-1)[0]) if node.op_type == "Quant" else 0.0
        # bounds: the input type's whole range (not the narrow range), as validate() and the hardware assume
        return self._add_graph_input(node, x, t, real_input_spec(node, t, zp, narrow, rounding), None)

    def _add_graph_input(self, node, x: FloatIn, t: TensorType, spec: dict | None,
                         bounds: Bounds | None) -> Tensor:
        """The network's input: ``x`` after its float steps (the input conversion), quantized by ``spec``."""
        if self.net.inputs:
            raise QONNXImportError(f"{self.where(node)}: the graph input is used a second time; qrtl networks "
                                   f"quantize their input once (share one input quantizer)")
        shape = self._input_shape(x)
        if x.steps:
            spec = dict(spec or {"kind": "exact"}, pre={"shape": list(x.real_shape), "steps": list(x.steps)})
            self.net.notes.append(f"input '{x.name}': input conversion {describe(x.steps)} in float32 as ONNX "
                                  f"computes it, then quantized by {self.where(node)}; predict/cosim apply it to "
                                  f"real inputs of shape {tuple(x.real_shape)}, the hardware takes the quantized "
                                  f"integers {shape}")
        inp = Input(self.b.unique(x.name.replace(".", "_") or "input"), shape, t, spec)
        return Tensor(self.b.add_input(inp, bounds))

    def _typed_input(self, x: FloatIn, node) -> Tensor:
        """An unquantized graph input read by a layer: the --input-type declares its integer format
        (real inputs, after any input conversion, must then be exact values of it, as for QKeras)."""
        if self.input_type is None:
            raise QONNXImportError(f"input '{x.name}' is not a quantized tensor ({self.where(node)} reads it "
                                   f"unquantized): pass --input-type fixed<W,I> or ufixed<W,I> for its format")
        t = self.input_type
        out = self._add_graph_input(node, x, t, None, None)
        self.net.notes.append(f"input '{x.name}': unquantized in the graph; --input-type {t.describe()}: real "
                              f"inputs must be exact values of it (as for QKeras models)")
        return out

    # ---- linear layers
    def _bias(self, node) -> QConst | np.ndarray | None:
        """The layer's bias: quantized (QConst), float (ndarray, no quantizer) or None."""
        if len(node.input) < 3 or not node.input[2]:
            return None
        v = self.values.get(node.input[2])
        if isinstance(v, np.ndarray) and v.dtype.kind == "f":
            return v
        return self._weights(node, node.input[2], "bias")

    def _weights(self, node, name: str, what: str) -> QConst:
        v = self.values.get(name)
        if not isinstance(v, QConst):
            raise QONNXImportError(f"{self.where(node)}: {what} '{name}' is not quantized (use a Brevitas weight "
                                   f"quantizer{' and bias_quant=Int32Bias' if what == 'bias' else ''})")
        return v

    def _linear(self, node, src: Tensor, w_int: np.ndarray, w_scale: np.ndarray, wq: QConst,
                bias: QConst | np.ndarray | None, kind: str, attrs: dict) -> Tensor:
        """Add a dense/conv op: ``w_int`` in the network's layout, ``w_scale`` (Co,) real step per channel."""
        in_t = self.types[src.name]
        where = self.where(node)
        if len(set(in_t.scale)) != 1:
            raise QONNXImportError(f"{where}: input has per-channel scales; requantize it first")
        cout = w_int.shape[-1]
        acc_scale = unit_scale(in_t)[0] * w_scale
        if bias is None:
            b_acc = np.zeros(cout, dtype=np.int64)
        elif isinstance(bias, np.ndarray) and self._float_bias_stays_float(node, bias, acc_scale, cout):
            # a float bias that float steps carry to a quantizer: a float32 add inside its thresholds, as
            # ONNX computes it (the accumulator here is the sum without it)
            b32 = bias.astype(np.float32).reshape(-1)
            op = Op(self.label(node, kind), kind, [src.name], (), None,
                    dict(attrs, weight_bits=2 if isinstance(wq.type, BinaryType) else int(wq.type.bits)),
                    {"weight": w_int, "bias": np.zeros(cout, dtype=np.int64)}, source=self.src(node))
            t = self.add(op, acc_scale=acc_scale[:1] if np.all(acc_scale == acc_scale[0]) else acc_scale)
            return Pending(t, (("arith", "add", b32, False, f"{where} (float bias)"),), "")
        elif isinstance(bias, np.ndarray):  # a float bias (no bias quantizer): round it onto the accumulator grid
            bf = bias.astype(np.float64).reshape(-1)
            if bf.size != cout:
                raise QONNXImportError(f"{where}: bias has {bf.size} values for {cout} channels")
            # refine the grid (weights << k) until the rounding is below the bias's own float32 precision
            k, tol = 0, 2.0 ** -24 * float(np.max(np.abs(bf), initial=0.0))
            while True:
                step = np.broadcast_to(acc_scale, (cout,)) / 2.0 ** k
                b_acc = np.round(bf / step).astype(np.int64)
                err = float(np.max(np.abs(b_acc * step - bf)))
                if err <= tol or k >= MAX_BIAS_REFINE_BITS:
                    break
                k += 1
            if k:
                w_int, acc_scale = w_int * (1 << k), acc_scale / 2.0 ** k
                attrs = dict(attrs, weight_shift=k)
            self.net.notes.append(f"{where}: float bias (no bias quantizer) put on the accumulator grid refined by "
                                  f"2^{k} (largest error {err:.3g}); PyTorch adds it in float32")
        else:
            bq = bias.q.reshape(-1)
            bs = np.broadcast_to(bias.scale, bias.q.shape).reshape(-1).astype(np.float64)
            if bq.size != cout:
                raise QONNXImportError(f"{where}: bias has {bq.size} values for {cout} channels")
            # Brevitas's Int32Bias uses scale fl32(s_x * s_w): equal to the accumulator step up to float32 rounding
            if not isinstance(bias.type, IntType):
                raise QONNXImportError(f"{where}: minifloat biases are not supported; use Int32Bias")
            rel = np.abs(bs / np.broadcast_to(acc_scale, (cout,)) - 1.0)
            if np.all(rel <= 2.0 ** -22):
                b_acc = bq.astype(np.int64)
            else:  # a coarser bias grid (QKeras-converted graphs): an exact integer multiple of the step
                ratio = [Fraction(float(x)) / Fraction(float(y)) for x, y in zip(bs, np.broadcast_to(acc_scale, (cout,)))]
                if any(r.denominator != 1 for r in ratio):
                    raise QONNXImportError(f"{where}: bias scale is neither the accumulator scale s_x*s_w nor an "
                                           f"integer multiple of it (use bias_quant=Int32Bias)")
                b_acc = np.array([int(q) * int(r) for q, r in zip(bq.tolist(), ratio)], dtype=object)
                if max(abs(int(v)) for v in b_acc) >= 1 << 62:
                    raise QONNXImportError(f"{where}: bias does not fit 62 bits on the accumulator grid")
                b_acc = b_acc.astype(np.int64)
        if np.all(acc_scale == acc_scale[0]):
            acc_scale = acc_scale[:1]
        if isinstance(in_t, BinaryType) and isinstance(wq.type, BinaryType) and bias is None \
                and kind in ("dense", "conv2d") and attrs.get("padding", "valid") == "valid":
            # binary x binary: XNOR-popcount (2*popcount - N is exactly the +-1 dot product)
            op_kind = "bdense" if kind == "dense" else "bconv2d"
            bits = (w_int > 0).astype(np.uint8)
            return self.add(Op(self.label(node, op_kind), op_kind, [src.name], (), None,
                               {k: v for k, v in attrs.items() if k in ("strides", "padding")}, {"weight": bits},
                               source=self.src(node)), acc_scale=acc_scale)
        attrs = dict(attrs)
        attrs["weight_bits"] = 2 if isinstance(wq.type, BinaryType) else int(wq.type.bits)  # +-1 needs 2 bits
        if isinstance(bias, QConst):
            attrs["bias_bits"] = int(bias.type.bits)
        op = Op(self.label(node, kind), kind, [src.name], (), None, attrs, {"weight": w_int, "bias": b_acc},
                source=self.src(node))
        return self.add(op, acc_scale=acc_scale)

    def _float_bias_stays_float(self, node, bias: np.ndarray, acc_scale: np.ndarray, cout: int) -> bool:
        """A float (unquantized) layer bias stays a float32 add when it is not exactly on the accumulator
        grid and the layer's output reaches, through float elementwise ops only (BatchNormalization, Relu,
        Add/Sub/Mul/Div by a float constant), a sign (BipolarQuant), or a quantizer of at most
        MAX_THRESHOLD_LEVELS steps after a BatchNorm or a constant (which make it thresholds anyway): the add
        is then part of exact per-channel thresholds.  Otherwise (the graph output: the hardware's logits
        keep their bias; ReLU + quantizer: a requantizer is cheaper than thresholds; a shape op first) it is
        rounded onto a refined accumulator grid."""
        bf = bias.astype(np.float64).reshape(-1)
        if bf.size != cout:
            raise QONNXImportError(f"{self.where(node)}: bias has {bf.size} values for {cout} channels")
        step = np.broadcast_to(acc_scale, (cout,)).astype(np.float64)
        if np.array_equal(np.round(bf / step) * step, bf):
            return False  # exactly on the grid: an integer bias
        outs = {o.name for o in self.graph.output}
        name, float_step = node.output[0], False
        while name not in outs:
            users = [n for n in self.graph.node if name in n.input]
            if len(users) != 1:
                return False
            u = users[0]
            if u.op_type == "BipolarQuant":
                return True
            if u.op_type == "Quant":
                bits = self.values.get(u.input[3]) if len(u.input) > 3 else None
                return float_step and isinstance(bits, np.ndarray) and bits.size == 1 and \
                    2.0 ** float(bits.reshape(-1)[0]) <= MAX_THRESHOLD_LEVELS
            consts = [i for i in u.input if i != name and isinstance(self.values.get(i), np.ndarray)]
            if not (u.op_type in ("BatchNormalization", "Relu") or
                    (u.op_type in ARITH and len(u.input) == 2 and len(consts) == 1)):
                return False
            float_step = float_step or u.op_type != "Relu"
            name = u.output[0]
        return False

    def _per_channel(self, node, wq: QConst, axis: int) -> np.ndarray:
        """(Co,) real step of a weight quantizer whose scale varies along ``axis`` at most."""
        s = np.asarray(wq.scale, dtype=np.float64)
        other = tuple(i for i in range(s.ndim) if i != axis)
        if not np.all(np.max(s, axis=other, keepdims=True) == np.min(s, axis=other, keepdims=True)):
            raise QONNXImportError(f"{self.where(node)}: weight scales vary other than per output channel")
        return np.max(s, axis=other).reshape(-1).astype(np.float64)

    def _n_Gemm(self, node, ins):
        a = _attrs(node)
        if a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0 or a.get("transA", 0):
            raise QONNXImportError(f"{self.where(node)}: only alpha=1, beta=1, transA=0 are supported")
        src = self.tensor(node.input[0], node)
        wq = self._weights(node, node.input[1], "weight")
        w = wq.q if a.get("transB", 0) == 0 else wq.q.T  # (Ci, Co)
        sc = self._per_channel(node, QConst(wq.q, np.broadcast_to(wq.scale, wq.q.shape), wq.type),
                               0 if a.get("transB", 0) else 1)
        bias = self._bias(node)
        return self._dense(node, src, w, sc, wq, bias)

    def _n_MatMul(self, node, ins):
        src = self.tensor(node.input[0], node)
        wq = self._weights(node, node.input[1], "weight")
        if wq.q.ndim != 2:
            raise QONNXImportError(f"{self.where(node)}: only 2-D weight matrices are supported")
        sc = self._per_channel(node, QConst(wq.q, np.broadcast_to(wq.scale, wq.q.shape), wq.type), 1)
        return self._dense(node, src, wq.q, sc, wq, None)

    def _dense(self, node, src: Tensor, w: np.ndarray, sc: np.ndarray, wq: QConst, bias) -> Tensor:
        n_in = int(np.prod(self.shapes[src.name]))
        if len(self.shapes[src.name]) != 1:
            raise QONNXImportError(f"{self.where(node)}: input of shape {self.shapes[src.name]} must be flattened")
        if w.shape[0] != n_in:
            raise QONNXImportError(f"{self.where(node)}: weight has {w.shape[0]} inputs, tensor has {n_in}")
        if src.perm is not None:
            w = w[src.perm]
        return self._linear(node, Tensor(src.name), np.ascontiguousarray(w).astype(np.int64),
                            np.broadcast_to(sc, (w.shape[1],)).astype(np.float64), wq, bias, "dense", {})

    def _n_Conv(self, node, ins):
        a = _attrs(node)
        where = self.where(node)
        src = self.tensor(node.input[0], node)
        wq = self._weights(node, node.input[1], "weight")
        dims = wq.q.ndim - 2
        if dims not in (1, 2):
            raise QONNXImportError(f"{where}: only 1-D and 2-D convolutions are supported")
        if a.get("group", 1) != 1:
            raise QONNXImportError(f"{where}: grouped/depthwise convolutions are not supported")
        if any(d != 1 for d in a.get("dilations", [1] * dims)):
            raise QONNXImportError(f"{where}: dilation is not supported")
        kernel = list(wq.q.shape[2:])
        strides = list(a.get("strides", [1] * dims))
        padding = self._padding(node, a, self.shapes[src.name][:dims], kernel, strides)
        sc = self._per_channel(node, QConst(wq.q, np.broadcast_to(wq.scale, wq.q.shape), wq.type), 0)
        w = np.transpose(wq.q, (2, 3, 1, 0) if dims == 2 else (2, 1, 0))  # (K.., Ci, Co)
        bias = self._bias(node)
        kind = "conv2d" if dims == 2 else "conv1d"
        return self._linear(node, src, np.ascontiguousarray(w).astype(np.int64), sc, wq, bias, kind,
                            {"strides": strides, "padding": padding})

    def _padding(self, node, a: dict, sizes, kernel, strides):
        if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
            raise QONNXImportError(f"{self.where(node)}: auto_pad {a['auto_pad']} is not supported; use explicit pads")
        if a.get("ceil_mode", 0):
            raise QONNXImportError(f"{self.where(node)}: ceil_mode=1 is not supported")
        dims = len(kernel)
        pads = list(a.get("pads", [0] * (2 * dims)))
        before, after = pads[:dims], pads[dims:]
        if not any(pads):
            return "valid"
        same = [pad_amounts(n, k, s, "same") for n, k, s in zip(sizes, kernel, strides)]
        if all((pb, pa) == (b, e) for (pb, pa, _), b, e in zip(same, before, after)):
            return "same"
        for n, k, b, e in zip(sizes, kernel, before, after):
            if min(b, e) < 0 or n + b + e < k:
                raise QONNXImportError(f"{self.where(node)}: pads {pads} do not fit kernel {kernel} on input "
                                       f"{list(sizes)}")
        return [[int(b), int(e)] for b, e in zip(before, after)]  # explicit (PyTorch) padding

    # ---- elementwise and shape ops
    def _n_Relu(self, node, ins):
        return self._elementwise(node, ins[0], ("relu",))

    def _elementwise(self, node, x, step: tuple) -> Pending:
        if isinstance(x, Pending):
            if step[0] == "relu" and x.chain[-1][0] == "relu":
                return x
            return Pending(x.src, x.chain + (step,), x.onnx_name)
        if not isinstance(x, Tensor):
            raise QONNXImportError(f"{self.where(node)}: {node.op_type} input is not an integer tensor")
        return Pending(x, (step,), next((i for i in node.input if self.values.get(i) is x), ""))

    def _n_Add(self, node, ins):
        a, b = ins
        if isinstance(a, (QConst, np.ndarray)) and not isinstance(b, (QConst, np.ndarray)):
            a, b = b, a  # c + x
        if isinstance(b, np.ndarray) and (isinstance(a, (FloatIn, Pending))
                                          or (isinstance(a, Tensor) and not self._is_bias_of(a))):
            return self._arith(node, ins)
        if isinstance(b, (QConst, np.ndarray)) and isinstance(a, Tensor):
            op = self.net.ops[-1] if self.net.ops else None
            if op is not None and op.name == a.name and op.kind in ("dense", "conv1d", "conv2d") \
                    and not np.any(op.arrays["bias"]):
                # MatMul + Add(bias): fold into the dense op
                self.b.pop_last()
                src = Tensor(op.inputs[0])
                w = op.arrays["weight"]
                sc = np.broadcast_to(unit_scale(op.type) / unit_scale(self.types[src.name])[0], (w.shape[-1],))
                wq = QConst(w, sc, IntType(op.attrs.get("weight_bits", 32), True))
                return self._linear(node, src, w, sc, wq, b, op.kind,
                                    {k: v for k, v in op.attrs.items() if k in ("strides", "padding")})
            raise QONNXImportError(f"{self.where(node)}: adding a quantized constant is only supported as a "
                                   f"layer bias")
        ta, tb = self.tensor(node.input[0], node), self.tensor(node.input[1], node)
        sa, sb = self.types[ta.name].scale, self.types[tb.name].scale
        if tuple(sa) != tuple(sb):
            raise QONNXImportError(f"{self.where(node)}: adding tensors with different scales ({sa[0]:g} vs "
                                   f"{sb[0]:g}); share one quantizer between the residual branches")
        if not all(isinstance(self.types[t.name], IntType) for t in (ta, tb)):
            raise QONNXImportError(f"{self.where(node)}: adding minifloat tensors is not supported")
        return self.add(Op(self.label(node, "add"), "add", [ta.name, tb.name], (), None, {}, source=self.src(node)),
                        acc_scale=np.asarray(sa))

    def _is_bias_of(self, a: Tensor) -> bool:
        """``a`` is the output of the last op, a linear layer without bias (MatMul/Conv + Add(bias))."""
        op = self.net.ops[-1] if self.net.ops else None
        return op is not None and op.name == a.name and op.kind in ("dense", "conv1d", "conv2d") \
            and not np.any(op.arrays["bias"])

    def _n_Sub(self, node, ins):
        return self._arith(node, ins)

    def _n_Mul(self, node, ins):
        return self._arith(node, ins)

    def _n_Div(self, node, ins):
        return self._arith(node, ins)

    def _arith(self, node, ins):
        """x op c (or c op x) with a float constant c: a step of the input conversion (on the unquantized
        input), or a float step after an integer tensor (per tensor or per channel) that a quantizer turns
        into thresholds or that ends the graph (output conversion)."""
        where = self.where(node)
        op = ARITH[node.op_type]
        a, b = ins
        rev = isinstance(a, np.ndarray) and not isinstance(b, np.ndarray)
        x, c = (b, a) if rev else (a, b)
        if isinstance(c, QConst) or not isinstance(c, np.ndarray) or c.dtype.kind != "f":
            raise QONNXImportError(f"{where}: {node.op_type} of two tensors (or of a quantized/integer constant) "
                                   f"has no integer meaning here (supported: a float constant)")
        if rev and op == "div":
            raise QONNXImportError(f"{where}: dividing a constant by a tensor has no integer meaning")
        if op == "div" and np.any(c == 0):
            raise QONNXImportError(f"{where}: division by zero")
        if not np.all(np.isfinite(c)):
            raise QONNXImportError(f"{where}: constant is not finite")
        c32 = c.astype(np.float32)
        if isinstance(x, FloatIn):
            full = (1,) + tuple(x.shape)
            try:
                if np.broadcast_shapes(c32.shape, full) != full:
                    raise ValueError
            except ValueError:
                raise QONNXImportError(f"{where}: constant of shape {c32.shape} does not broadcast to the input "
                                       f"{full}") from None
            return FloatIn(x.name, x.real_shape, x.shape, x.steps + [const_step(op, c32, rev)])
        src = x.src if isinstance(x, Pending) else x
        if not isinstance(src, Tensor):
            raise QONNXImportError(f"{where}: {node.op_type} input is not an integer tensor")
        vec = self._per_channel_const(node, src, c32)
        return self._elementwise(node, x, ("arith", op, vec, rev, where))

    def _per_channel_const(self, node, src: Tensor, c: np.ndarray) -> np.ndarray:
        """A float constant applied to the ONNX tensor of ``src`` as a (C,) vector in network order
        (per element for flattened tensors); refused when it varies other than per channel."""
        shape = self.shapes[src.name]
        onnx_shape = (1,) + ((shape[-1],) + tuple(shape[:-1]) if len(shape) >= 2 else tuple(shape))
        try:
            full = np.broadcast_to(c, onnx_shape) if np.broadcast_shapes(c.shape, onnx_shape) == onnx_shape \
                else None
        except ValueError:
            full = None
        if full is None:
            raise QONNXImportError(f"{self.where(node)}: constant of shape {c.shape} does not broadcast to the "
                                   f"tensor {onnx_shape}")
        if len(shape) >= 2:
            per = full.reshape(full.shape[1], -1)
            if not np.all(per == per[:, :1]):
                raise QONNXImportError(f"{self.where(node)}: constant varies within a channel (only per-tensor "
                                       f"or per-channel constants)")
            vec = per[:, 0].astype(np.float32)
        else:
            vec = full.reshape(-1).astype(np.float32)
            if src.perm is not None:
                vec = vec[src.perm]
        return vec[:1] if np.all(vec == vec[0]) else vec  # per tensor: one value

    def _output_conversion(self, name: str, p: Pending) -> Tensor:
        """Float steps that end the graph: the network outputs the integer tensor before them, ``predict``
        applies them (Network.meta['output_conversion']) with a printed notice."""
        if "output_conversion" in self.net.meta:
            raise QONNXImportError(f"graph output '{name}': only one output may end with float ops")
        steps = p.steps()
        self.net.meta["output_conversion"] = {"steps": steps, "output": name, "onnx_input": p.onnx_name}
        self.net.notes.append(f"output conversion (float32, not in hardware): {describe(steps)} from "
                              f"{p.first_float()} on; predict applies it to the network's outputs")
        return p.src

    def _pool(self, node, ins, kind: str):
        a = _attrs(node)
        x = ins[0]
        relu = isinstance(x, Pending)
        if relu and not x.relu_only:
            x = self.close_relu(x, node)  # raises: BatchNorm output must be quantized first
        src = x.src if relu else self.tensor(node.input[0], node)
        dims = len(self.shapes[src.name]) - 1
        if node.op_type == "GlobalAveragePool":
            kernel, strides, padding = list(self.shapes[src.name][:dims]), list(self.shapes[src.name][:dims]), "valid"
        else:
            kernel = list(a["kernel_shape"])
            strides = list(a.get("strides", kernel))
            padding = self._padding(node, a, self.shapes[src.name][:dims], kernel, strides)
        attrs = {"pool": kernel, "strides": strides, "padding": padding, "dims": dims}
        t = self.types[src.name]
        if kind == "maxpool":
            out = self.add(Op(self.label(node, "maxpool"), "maxpool", [src.name], (), t, attrs, source=self.src(node)))
            return Pending(out) if relu else out  # max commutes with relu
        if relu:
            src = self.close_relu(x, node)
        if padding != "valid":
            raise QONNXImportError(f"{self.where(node)}: padded average pooling is not supported")
        if not isinstance(t, IntType):
            raise QONNXImportError(f"{self.where(node)}: average pooling of minifloat tensors is not supported")
        count = int(np.prod(kernel))
        return self.add(Op(self.label(node, "avgpool"), "avgpool", [src.name], (), None, attrs, source=self.src(node)),
                        acc_scale=np.asarray(t.scale) / count)

    def _n_MaxPool(self, node, ins):
        return self._pool(node, ins, "maxpool")

    def _n_AveragePool(self, node, ins):
        return self._pool(node, ins, "avgpool")

    def _n_GlobalAveragePool(self, node, ins):
        return self._pool(node, ins, "avgpool")

    def _flatten_to(self, node, x, shape: tuple[int, ...]):
        relu = isinstance(x, Pending)
        if relu and not x.relu_only:
            x = self.close_relu(x, node)
        src = x.src if relu else self.tensor(node.input[0], node)
        old = self.shapes[src.name]
        if int(np.prod(old)) != int(np.prod(shape)):
            raise QONNXImportError(f"{self.where(node)}: cannot reshape {old} to {shape}")
        if len(shape) != 1:
            raise QONNXImportError(f"{self.where(node)}: only flattening reshapes are supported (to {shape})")
        perm = src.perm
        if len(old) >= 2:  # channels-last (.., C) holds ONNX (C, ..)
            onnx_shape = (old[-1],) + old[:-1]
            perm = np.transpose(np.arange(int(np.prod(old))).reshape(onnx_shape),
                                tuple(range(1, len(old))) + (0,)).reshape(-1)
        t = self.types[src.name]
        if len(t.scale) > 1:
            raise QONNXImportError(f"{self.where(node)}: flattening a tensor with per-channel scales")
        out = self.add(Op(self.label(node, "flatten"), "reshape", [src.name], shape, t, {"shape": list(shape)},
                          source=self.src(node)))
        out.perm = perm
        return Pending(out) if relu else out

    def _float_reshape(self, x: FloatIn, shape: tuple[int, ...]) -> FloatIn:
        return FloatIn(x.name, x.real_shape, shape, x.steps + [{"op": "reshape", "shape": list(shape)}])

    def _n_Flatten(self, node, ins):
        if _attrs(node).get("axis", 1) != 1:
            raise QONNXImportError(f"{self.where(node)}: only Flatten with axis=1 is supported")
        if isinstance(ins[0], FloatIn):
            return self._float_reshape(ins[0], (int(np.prod(ins[0].shape)),))
        src = ins[0].src if isinstance(ins[0], Pending) else ins[0]
        if not isinstance(src, Tensor):
            raise QONNXImportError(f"{self.where(node)}: Flatten input is not an integer tensor")
        return self._flatten_to(node, ins[0], (int(np.prod(self.shapes[src.name])),))

    def _n_Reshape(self, node, ins):
        shape = [int(v) for v in self.const(node.input[1], node).reshape(-1)]
        if isinstance(ins[0], FloatIn):
            x = ins[0]
            if not shape or shape[0] not in (1, -1, 0):
                raise QONNXImportError(f"{self.where(node)}: reshape to {shape} changes the batch axis")
            rest = [d if d != 0 else (x.shape[i] if i < len(x.shape) else 0) for i, d in enumerate(shape[1:])]
            n = int(np.prod(x.shape))
            if rest.count(-1) == 1:
                known = int(np.prod([d for d in rest if d != -1]))
                rest = [n // known if d == -1 else d for d in rest] if known and n % known == 0 else rest
            if int(np.prod(rest)) != n or min(rest, default=1) < 1:
                raise QONNXImportError(f"{self.where(node)}: cannot reshape {x.shape} to {shape}")
            return self._float_reshape(x, tuple(rest))
        src = ins[0].src if isinstance(ins[0], Pending) else ins[0]
        if not isinstance(src, Tensor):
            raise QONNXImportError(f"{self.where(node)}: Reshape input is not an integer tensor")
        n = int(np.prod(self.shapes[src.name]))
        rest = shape[1:]
        if len(rest) == 1 and rest[0] in (-1, n) and shape[0] in (1, -1, 0):
            return self._flatten_to(node, ins[0], (n,))
        raise QONNXImportError(f"{self.where(node)}: reshape to {shape} is not supported (only flatten)")


def _rank_for_argmax(imp: QONNXImporter, last: str) -> str:
    """The argmax of the output conversion's float32 values, exactly, in integers.

    Every reachable integer output value of every channel is converted (float32, as ONNX); when the
    conversion is the same strictly increasing function for all channels, the integers order as the
    floats do and ``last`` is returned.  Otherwise (per-channel constants, a negative scale that
    reverses the order, float32 ties) a threshold op maps each channel's integer to the rank of its
    float among all reachable floats (equal floats, equal ranks): the argmax of the ranks is the
    argmax of the floats, first index on ties included.  Needs monotonic per-channel conversions."""
    steps = imp.net.meta["output_conversion"]["steps"]
    b = imp.bounds[last]
    c = imp.shapes[last][-1]
    lo = b.lo.reshape(-1, c).min(axis=0).astype(np.int64)
    hi = b.hi.reshape(-1, c).max(axis=0).astype(np.int64)
    span = int((hi - lo).max()) + 1
    where = f"--output argmax after the output conversion ({describe(steps)})"
    if span * c > 1 << 22:
        raise QONNXImportError(f"{where}: {span} integer values per channel are too many to rank exactly")
    t = imp.types[last]
    s = np.broadcast_to(unit_scale(t), (c,)).astype(np.float64)
    ks = lo[None, :] + np.arange(span)[:, None]  # (span, C), clipped per channel below
    ks = np.minimum(ks, hi[None, :])

    def conv(k: np.ndarray) -> np.ndarray:
        return apply_steps((k.astype(np.float64) * s).astype(np.float32), steps)

    vals = conv(ks)
    same = np.all(lo == lo[0]) and np.all(hi == hi[0]) and np.all(vals == vals[:, :1])
    if same and np.all(np.diff(vals[:, 0]) > 0) and len(set(t.scale)) == 1:
        imp.net.notes.append(f"{where}: strictly increasing and the same for every channel on the reachable "
                             f"outputs; the argmax of the integers is the argmax of the converted values")
        return last
    levels = np.unique(vals)
    if levels.size > MAX_RANK_LEVELS:
        raise QONNXImportError(f"{where}: {levels.size} distinct values are too many to rank exactly "
                               f"(max {MAX_RANK_LEVELS})")

    def f(acc: np.ndarray) -> np.ndarray:
        return np.searchsorted(levels, conv(acc)).astype(np.int64)

    rank_t = IntType(max(1, int(levels.size - 1).bit_length()), False)
    arrays = fit_thresholds(f, lo, hi, int(levels.size) - 1, 1)
    op = Op("rank", "threshold", [last], (), rank_t, {"step": 1}, arrays, source="--output argmax")
    if not check_thresholds(op, f, lo, hi, t):
        raise QONNXImportError(f"{where}: the conversion is not monotonic per channel; no exact integer argmax")
    imp.net.notes.append(f"{where}: each channel's integer output mapped to the rank of its converted float32 "
                         f"value among all {levels.size} reachable values (threshold op 'rank'); the argmax of "
                         f"the ranks is the argmax of the converted outputs, ties included")
    return imp.add(op).name


def supported_ops() -> list[str]:
    """The ONNX/QONNX op types the importer reads (its ``_n_<op>`` handlers and pass-through ops)."""
    return sorted([n[3:] for n in dir(QONNXImporter) if n.startswith("_n_")] + list(PASS_THROUGH))


def module_scope(node) -> str:
    """The PyTorch module path a node came from (torch.onnx metadata ``name_scopes``), or ''."""
    import ast

    for prop in node.metadata_props:
        if prop.key == "pkg.torch.onnx.name_scopes":
            try:
                scopes = ast.literal_eval(prop.value)
            except (ValueError, SyntaxError):
                return ""
            return str(scopes[1]) if len(scopes) > 2 and scopes[1] else ""
    return ""


def import_qonnx(model_or_path, name: str | None = None, mult_bits: int = DEFAULT_MULT_BITS,
                 exact_scales: bool = False, output: str = "logits", input_type: IntType | None = None) -> Network:
    """Convert a QONNX model (onnx.ModelProto or file path) into a validated integer network.

    The graph is first cleaned by qonnx itself (:func:`qonnx_clean`).  ``output='argmax'`` appends
    the class index (first of equal maxima), of the outputs after any output conversion.
    ``input_type``: the integer format of an unquantized graph input (``--input-type``)."""
    import onnx

    if output not in ("logits", "argmax"):
        raise QONNXImportError(f"--output must be 'logits' or 'argmax', got {output!r}")
    if isinstance(model_or_path, (str, Path)):
        path = Path(model_or_path)
        from qat.importers.safe_load import UnsafeModelError, load_onnx

        try:
            model = load_onnx(path)  # external data must stay inside the model's folder
        except UnsafeModelError as exc:
            raise QONNXImportError(str(exc)) from None
        except Exception as exc:  # noqa: BLE001
            raise QONNXImportError(f"{path}: not a readable ONNX file ({str(exc).splitlines()[0][:120]})") from None
        name = name or path.stem
    else:
        model = model_or_path
    model = qonnx_clean(model)
    imp = QONNXImporter(model, name or model.graph.name or "qonnx", mult_bits, exact_scales, input_type)
    net = imp.run()
    if output == "argmax":
        last = net.outputs[0]
        if net.meta.get("output_conversion"):
            last = _rank_for_argmax(imp, last)
        n = imp.shapes[last][-1]
        net.outputs = [imp.add(Op("argmax", "argmax", [last], (), IntType(max(1, (n - 1).bit_length()), False),
                                  source="--output argmax")).name]
        if net.meta.pop("output_conversion", None):  # folded into the exact argmax (see its note)
            net.notes = [n for n in net.notes if not n.startswith("output conversion")]
    net.meta.update({"source": "qonnx", "mult_bits": int(mult_bits)})
    validate(net)
    return run_passes(net)
