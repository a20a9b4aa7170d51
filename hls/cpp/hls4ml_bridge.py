"""The hls4ml bridge: build hls4ml's project for a QKeras model with a configuration derived from
qrtl's integer network, compile it (hls4ml's ``compile()``), and measure how many of its outputs are
bit-equal to the golden integer model.

Configuration (``granularity='name'``, Vivado backend, ``io_parallel``, latency strategy):

* the input layer gets the integer network's input type, as ``ap_fixed``/``ap_ufixed`` with
  ``AP_RND_CONV`` (round half to even) and ``AP_SAT``, so real inputs are quantized the way QKeras's
  first quantizer does;
* every Dense/Conv layer: ``accum`` and ``result`` = the accumulator type of the integer network (the
  width proven by interval analysis at the accumulator's scale; ``AP_TRN``/``AP_WRAP``, which is exact:
  partial sums wrap modulo 2^W and the final sum is proven to fit);
* every activation (quantizer) layer: its integer-network type as ``ap_(u)fixed<W,I,AP_RND_CONV,AP_SAT>``,
  which reproduces QKeras's round-half-even saturating ``quantized_bits`` / ``quantized_relu``;
* pooling, reshape, merge layers: their integer-network types (exact).

What hls4ml cannot reproduce is named with the reason: a final softmax (removed; hls4ml uses exp and
inverse lookup tables, the logits are compared instead), BatchNormalization (hls4ml applies a
fixed-point scale and bias; TensorFlow computes in float32 and qrtl uses exact thresholds), tensors
with non-power-of-two or per-channel scales, binary/ternary tensors.  The agreement is measured,
never assumed.
"""
from __future__ import annotations

import io
import json
import math
import os
import time
from contextlib import redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from qat.ir import golden
from qat.importers.input_quant import quantize_real
from qat.ir.network import Network, NetworkError
from qat.ir.types import BinaryType, IntType, MinifloatType, TensorType, is_po2, log2_exact

SOFTMAX_REASON = ("hls4ml computes softmax with exp and 1/x lookup tables (table_t, TableSize) in fixed point, "
                  "QKeras with float32 exp: not integer arithmetic, cannot be bit-exact; removed, the pre-softmax "
                  "logits are compared")
BN_REASON = ("hls4ml applies BatchNormalization as x*scale + bias with fixed-point scale/bias, TensorFlow computes "
             "(x - mean)/sqrt(var + eps)*gamma + beta in float32 and qrtl uses the exact switching thresholds: "
             "values near a quantizer step can round differently")
ACTIVATION_CLASSES = ("Activation", "QActivation", "ReLU")


class BridgeError(NetworkError):
    """The model cannot go through hls4ml (conversion or compilation failed)."""


AP_ROUNDING = {"half_even": "AP_RND_CONV", "half_up": "AP_RND", "half_away": "AP_RND_INF", "floor": "AP_TRN",
               "toward_zero": "AP_TRN_ZERO"}


def precision_of(t: TensorType, quantize: bool = False, rounding: str = "half_even",
                 symmetric: bool = False) -> tuple[str, str | None]:
    """(hls4ml precision string, reason it is not exact or None) for an integer-network tensor type;
    ``quantize``: the layer rounds and saturates into the type (ap_fixed quantization/overflow modes)."""
    if isinstance(t, BinaryType):
        return "ap_int<2>", "binary (+-1) tensor: hls4ml's binary layers use their own XNOR encoding"
    if isinstance(t, MinifloatType):
        return "ap_fixed<32,16>", "minifloat tensor: hls4ml has no minifloat type"
    scale = np.asarray(t.scale, dtype=np.float64)
    reason = None
    if not is_po2(scale):
        reason = f"scale {t.describe()} is not a power of two: no ap_fixed type holds it exactly"
        e = int(math.floor(math.log2(float(scale.min()))))
        width = t.bits + 2
    else:
        exps = log2_exact(scale)
        e = int(exps.min())
        width = t.bits + int(exps.max() - exps.min())  # per-channel po2: widen to the finest step
        if exps.max() != exps.min():
            reason = (f"per-channel power-of-two scales ({t.describe()}): widened to the finest step; hls4ml "
                      f"quantizes the whole tensor to one type")
    integer = width + e
    kind = "ap_fixed" if t.signed else "ap_ufixed"
    modes = f",{AP_ROUNDING[rounding]},{'AP_SAT_SYM' if symmetric else 'AP_SAT'}" if quantize else ""
    return f"{kind}<{width},{integer}{modes}>", reason


@dataclass
class BridgeReport:
    model: str
    network: str
    output_dir: str
    inputs: int
    outputs_per_input: int
    equal_outputs: int
    equal_vectors: int
    max_abs_diff_lsb: float
    per_output_fraction: list[float]
    removed_layers: list[dict]
    inexact_layers: list[dict]
    layer_precisions: dict
    first_differing_layer: dict | None
    convert_seconds: float
    compile_seconds: float
    predict_seconds: float
    input_kind: str
    notes: list[str] = field(default_factory=list)
    hls4ml_version: str = ""
    baseline: dict | None = None  # hls4ml's default configuration on the same inputs, for comparison

    @property
    def fraction(self) -> float:
        total = self.inputs * self.outputs_per_input
        return self.equal_outputs / total if total else 0.0

    @property
    def vector_fraction(self) -> float:
        return self.equal_vectors / self.inputs if self.inputs else 0.0

    @property
    def exact(self) -> bool:
        return self.inputs > 0 and self.equal_vectors == self.inputs

    def as_dict(self) -> dict:
        d = dict(self.__dict__)
        d.update(fraction_equal_outputs=self.fraction, fraction_equal_vectors=self.vector_fraction, exact=self.exact)
        return d

    def text(self) -> str:
        total = self.inputs * self.outputs_per_input
        lines = [f"hls4ml {self.hls4ml_version} vs golden integer model for {self.model} ({self.network}): "
                 f"{self.equal_outputs}/{total} outputs bit-equal ({100 * self.fraction:.2f} %), "
                 f"{self.equal_vectors}/{self.inputs} inputs with every output equal "
                 f"({100 * self.vector_fraction:.2f} %); max |difference| {self.max_abs_diff_lsb:g} output LSB",
                 f"  inputs: {self.input_kind}",
                 f"  hls4ml project: {self.output_dir} (convert {self.convert_seconds:.1f} s, compile "
                 f"{self.compile_seconds:.1f} s, predict {self.predict_seconds:.2f} s)"]
        for r in self.removed_layers:
            lines.append(f"  removed layer '{r['layer']}' ({r['class']}): {r['reason']}")
        for r in self.inexact_layers:
            lines.append(f"  not exact: layer '{r['layer']}' ({r['class']}): {r['reason']}")
        if self.baseline:
            b = self.baseline
            lines.append(f"  for comparison, hls4ml's default configuration (config_from_keras_model, granularity "
                         f"'name', same inputs, softmax removed): {b['equal_outputs']}/{b['outputs']} outputs "
                         f"bit-equal ({100 * b['fraction_equal_outputs']:.2f} %)")
        if self.first_differing_layer:
            f = self.first_differing_layer
            lines.append(f"  first differing layer: '{f['layer']}' ({f['fraction_equal'] * 100:.2f} % of its values "
                         f"equal on {f['inputs']} traced inputs)")
        return "\n".join(lines)


# ---- model preparation --------------------------------------------------------------------

def _strip_softmax(model):
    """(model without a final softmax, removed-layer records)."""
    import tensorflow as tf

    last = model.layers[-1]
    act = getattr(last, "activation", None)
    name = getattr(act, "__name__", "")
    if type(last).__name__ == "Activation" and name == "softmax":
        pre = tf.keras.Model(model.inputs, model.layers[-2].output, name=model.name)
        return pre, [{"layer": last.name, "class": "Activation(softmax)", "reason": SOFTMAX_REASON}]
    if name == "softmax":
        from qat.importers.from_qkeras import _custom_objects

        cfg = model.get_config()
        for lc in cfg["layers"]:
            if lc["config"].get("name") == last.name:
                lc["config"]["activation"] = "linear"
        pre = tf.keras.Model.from_config(cfg, custom_objects=_custom_objects())
        pre.set_weights(model.get_weights())
        return pre, [{"layer": last.name, "class": f"{type(last).__name__}(activation=softmax)",
                      "reason": SOFTMAX_REASON + " (the layer's activation was set to linear)"}]
    return model, []


def _ops_by_keras_layer(net: Network) -> dict[str, list]:
    out: dict[str, list] = {}
    for op in net.ops:
        for src in (s.strip() for s in op.source.split(",")):
            if src:
                out.setdefault(src, []).append(op)
    return out


def derive_config(model, net: Network) -> tuple[dict, dict, list[dict]]:
    """(hls4ml config, {hls4ml layer: tensor name of the integer network}, inexact-layer records)."""
    import hls4ml

    with redirect_stdout(io.StringIO()):
        cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend="Vivado")
    keras_layers = {layer.name: layer for layer in model.layers}
    by_layer = _ops_by_keras_layer(net)
    types = net.tensor_types()
    inexact: list[dict] = []
    tensor_of: dict[str, str] = {}
    first_q = None
    for layer in model.layers:
        if type(layer).__name__ == "QActivation" and any(t is model.inputs[0] for t in _inbound(layer)):
            first_q = layer.name
    prev_tensor = net.inputs[0].name

    def main_op(kname: str, role: str):
        ops = by_layer.get(kname, [])
        if not ops:
            return None
        if role == "linear":
            lin = [o for o in ops if o.kind in ("dense", "conv1d", "conv2d", "bdense", "bconv2d")]
            return lin[0] if lin else ops[0]
        return ops[-1]

    for lname, lcfg in cfg["LayerName"].items():
        prec = lcfg.setdefault("Precision", {})
        lcfg["Trace"] = True
        layer = keras_layers.get(lname)
        cls = type(layer).__name__ if layer is not None else ""
        tensor, quantize, op = None, False, None
        if cls == "InputLayer":
            tensor, quantize = net.inputs[0].name, True
        elif lname == first_q:
            tensor, quantize = net.inputs[0].name, True
        elif layer is not None:
            role = "linear" if cls.startswith(("QDense", "QConv", "Dense", "Conv")) else "other"
            op = main_op(lname, role)
            if op is not None:
                tensor = op.name
                quantize = cls in ACTIVATION_CLASSES or op.kind in ("requant", "threshold")
            elif cls in ("Dropout",):
                tensor = prev_tensor
            if cls in ("BatchNormalization", "QBatchNormalization"):
                inexact.append({"layer": lname, "class": cls, "reason": BN_REASON})
                prec["result"] = "ap_fixed<40,20>"
                prev_tensor = tensor or prev_tensor
                continue
        else:
            # a layer hls4ml derived from a Keras layer's built-in activation: '<layer>_<activation>'
            base = max((k for k in keras_layers if lname.startswith(k + "_")), key=len, default=None)
            suffix = lname[len(base) + 1:] if base else ""
            if base is not None:
                if suffix == "linear":
                    op = main_op(base, "linear")
                else:
                    op = main_op(base, "other")
                    quantize = True
                tensor = op.name if op is not None else None
        if tensor is None:
            tensor = prev_tensor
        tensor_of[lname] = tensor
        prev_tensor = tensor
        t = types[tensor]
        rounding, symmetric = "half_even", False
        if op is not None and op.name == tensor and op.kind == "requant":
            rounding = op.attr("rounding")
            lo, hi = int(op.attr("lo")), int(op.attr("hi"))
            symmetric = bool(t.signed and lo == -hi and lo != t.lo)
            if (lo, hi) != (t.lo, t.hi) and not symmetric and lo != 0:
                inexact.append({"layer": lname, "class": cls, "reason": f"clamps to [{lo}, {hi}] steps, which no ap_fixed "
                                                                          f"saturation mode reproduces"})
        p, reason = precision_of(t, quantize, rounding, symmetric)
        if reason:
            inexact.append({"layer": lname, "class": cls or "derived activation", "reason": reason})
        prec["result"] = p
        if "accum" in prec:
            prec["accum"] = precision_of(t, False)[0]
        if "weight" in prec and layer is not None:
            op = main_op(lname, "linear")
            ws = (op.attrs.get("weight_scale") if op is not None else None) or [1.0]
            if not is_po2(ws) or len(set(ws)) > 1:
                inexact.append({"layer": lname, "class": cls, "reason": f"kernel scales {ws[:4]}... are per-channel or "
                                                                          f"not powers of two (alpha): hls4ml "
                                                                          f"factorizes them into ApplyAlpha layers"})
    cfg["Model"]["Precision"] = {"default": "ap_fixed<32,16>"} if isinstance(cfg["Model"].get("Precision"), dict) \
        else "ap_fixed<32,16>"
    cfg["Model"]["Strategy"] = "Latency"
    return cfg, tensor_of, inexact


def _inbound(layer) -> list:
    nodes = layer._inbound_nodes
    if not nodes:
        return []
    node = nodes[0]
    return list(node.keras_inputs if hasattr(node, "keras_inputs") else node.input_tensors)


# ---- inputs ----------------------------------------------------------------------------------

def real_test_inputs(net: Network, n: int, seed: int = 0) -> tuple[np.ndarray, str]:
    """float32 real inputs: exact grid values, exact rounding ties, values beyond both ends (saturation),
    random reals, all-min/all-max/zero rows.  Without a first-layer quantizer only grid values."""
    inp = net.inputs[0]
    t = inp.type
    if not isinstance(t, IntType) or len(set(t.scale)) != 1 or not is_po2(t.scale):
        raise BridgeError(f"input '{inp.name}': the hls4ml bridge needs an integer input with one power-of-two scale, "
                          f"got {t.describe()}")
    spec = inp.real_quantizer or {}
    lo, hi = int(spec.get("lo", t.lo)), int(spec.get("hi", t.hi))
    step = float(t.scale[0])
    rng = np.random.default_rng(seed)
    shape = tuple(inp.shape)
    size = int(np.prod(shape))
    if not spec:
        raw = rng.integers(lo, hi + 1, size=(n, size))
        raw[:3] = np.array([0, lo, hi])[:min(n, 3), None]
        return (raw * step).astype(np.float32).reshape((n,) + shape), "random exact values of the input type"
    kind = rng.integers(0, 4, size=(n, size))
    k = rng.integers(lo - 2, hi + 3, size=(n, size)).astype(np.float64)
    vals = np.where(kind == 0, k, 0.0)
    vals = np.where(kind == 1, k + 0.5, vals)  # exact ties (round half to even decides)
    vals = np.where(kind == 2, rng.uniform(lo - 3, hi + 3, size=(n, size)), vals)
    vals = np.where(kind == 3, rng.integers(lo, hi + 1, size=(n, size)), vals)
    for r, v in enumerate([0.0, lo, hi, lo - 7.5, hi + 7.5][:n]):
        vals[r] = v
    return ((vals * step).astype(np.float32).reshape((n,) + shape),
            "real values: grid points, exact rounding ties, random reals, values beyond both ends (saturation)")


# ---- the bridge ----------------------------------------------------------------------------

def run_bridge(model_path: str | Path, out_dir: str | Path, weights: str | None = None, input_type: str | None = None,
               n: int = 1000, vectors: str | None = None, seed: int = 0, part: str = "xc7z020clg400-1",
               clock_mhz: float = 100.0, trace: bool = True, baseline: bool = False) -> BridgeReport:
    import hls4ml

    from qat.ir import netfile
    from qat.importers.from_qkeras import import_qkeras, load_model
    from qat.ir.types import parse_fixed

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = load_model(model_path, weights)
    with redirect_stdout(io.StringIO()):
        net = import_qkeras(model, parse_fixed(input_type) if input_type else None, None, "logits",
                            Path(model_path).stem)
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise BridgeError(f"{model_path}: the hls4ml bridge supports single-input, single-output models")
    netfile.save(net, out / "qrtl_net")
    pre, removed = _strip_softmax(model)
    cfg, tensor_of, inexact = derive_config(pre, net)
    (out / "qrtl_hls4ml_config.json").write_text(json.dumps(cfg, indent=1, sort_keys=True, default=str) + "\n")
    # inputs and the golden model
    if vectors:
        x = np.asarray(np.load(vectors, allow_pickle=False), dtype=np.float32)
        kind = f"{vectors} ({len(x)} rows)"
    else:
        if n < 1:
            raise BridgeError("--random must be at least 1")
        x, kind = real_test_inputs(net, n, seed)
    raw = quantize_real(net.inputs[0], x)
    env = golden.run(net, raw, keep_all=True)
    out_t = net.tensor_types()[net.outputs[0]]
    want = golden.dequantize(out_t, env[net.outputs[0]]).reshape(len(x), -1)
    # hls4ml
    t0 = time.perf_counter()
    prj = out / "hls4ml_prj"
    try:
        with redirect_stdout(io.StringIO()):
            hm = hls4ml.converters.convert_from_keras_model(
                pre, hls_config=cfg, output_dir=str(prj), project_name="myproject", backend="Vivado",
                io_type="io_parallel", part=part, clock_period=round(1000.0 / clock_mhz, 3))
    except Exception as exc:  # hls4ml raises plain Exceptions for unsupported layers
        raise BridgeError(f"{model_path}: hls4ml cannot convert the model ({' '.join(str(exc).split())[:200]})") \
            from None
    t1 = time.perf_counter()
    try:
        with redirect_stdout(io.StringIO()):
            hm.compile()
    except Exception as exc:
        raise BridgeError(f"{prj}: hls4ml's compile() failed ({' '.join(str(exc).split())[:200]})") from None
    t2 = time.perf_counter()
    got = np.asarray(hm.predict(np.ascontiguousarray(x.astype(np.float64))), dtype=np.float64).reshape(len(x), -1)
    t3 = time.perf_counter()
    eq = got == want
    lsb = float(np.min(np.asarray(out_t.scale))) if not isinstance(out_t, BinaryType) else 1.0
    precisions = {}
    for layer in hm.get_layers():
        precisions[layer.name] = {k: str(v.precision) for k, v in sorted(layer.types.items())}
    first_bad = None
    if trace and not eq.all():
        bad_rows = np.flatnonzero(~eq.all(axis=1))
        rows = np.concatenate([bad_rows[:100], np.flatnonzero(eq.all(axis=1))[:100]])
        first_bad = _first_differing_layer(hm, x[rows], {k: v[rows] for k, v in env.items()}, tensor_of, net)
    base = None
    if baseline:
        base = _baseline(pre, out / "hls4ml_default_prj", x, want, part, clock_mhz)
    rep = BridgeReport(
        model=str(model_path), network=net.name, output_dir=str(prj), inputs=len(x), outputs_per_input=want.shape[1],
        equal_outputs=int(eq.sum()), equal_vectors=int(eq.all(axis=1).sum()),
        max_abs_diff_lsb=float(np.max(np.abs(got - want)) / lsb) if len(x) else 0.0,
        per_output_fraction=[float(v) for v in eq.mean(axis=0)], removed_layers=removed, inexact_layers=inexact,
        layer_precisions=precisions, first_differing_layer=first_bad, convert_seconds=round(t1 - t0, 2),
        compile_seconds=round(t2 - t1, 2), predict_seconds=round(t3 - t2, 3), input_kind=kind,
        notes=list(net.notes), hls4ml_version=hls4ml.__version__, baseline=base)
    np.save(out / "inputs.npy", x)
    np.save(out / "golden_outputs.npy", want)
    np.save(out / "hls4ml_outputs.npy", got)
    (out / "hls4ml_agreement.json").write_text(json.dumps(rep.as_dict(), indent=1, sort_keys=True) + "\n")
    (out / "hls4ml_agreement.txt").write_text(rep.text() + "\n")
    return rep


def _baseline(pre, prj: Path, x: np.ndarray, want: np.ndarray, part: str, clock_mhz: float) -> dict:
    """hls4ml with its own default configuration on the same inputs (what users get without qrtl)."""
    import hls4ml

    with redirect_stdout(io.StringIO()):
        cfg = hls4ml.utils.config_from_keras_model(pre, granularity="name", backend="Vivado")
        hm = hls4ml.converters.convert_from_keras_model(
            pre, hls_config=cfg, output_dir=str(prj), project_name="myproject", backend="Vivado",
            io_type="io_parallel", part=part, clock_period=round(1000.0 / clock_mhz, 3))
        hm.compile()
    got = np.asarray(hm.predict(np.ascontiguousarray(x.astype(np.float64))), dtype=np.float64).reshape(want.shape)
    eq = got == want
    return {"project": str(prj), "equal_outputs": int(eq.sum()), "outputs": int(eq.size),
            "fraction_equal_outputs": float(eq.mean()) if eq.size else 0.0,
            "equal_vectors": int(eq.all(axis=1).sum()), "config": "hls4ml.utils.config_from_keras_model(model, "
                                                                 "granularity='name'), unchanged"}


def _first_differing_layer(hm, x: np.ndarray, env: dict, tensor_of: dict, net: Network) -> dict | None:
    """Recompile with tracing and compare every mapped layer with the golden tensor."""
    try:
        with redirect_stdout(io.StringIO()):
            _, trace = hm.trace(np.ascontiguousarray(x.astype(np.float64)))
    except Exception:
        return None
    types = net.tensor_types()
    for layer in hm.get_layers():
        name = layer.name
        if name not in trace or name not in tensor_of:
            continue
        tname = tensor_of[name]
        want = golden.dequantize(types[tname], env[tname]).reshape(len(x), -1)
        got = np.asarray(trace[name], dtype=np.float64).reshape(len(x), -1)
        if got.shape != want.shape:
            continue
        eq = got == want
        if not eq.all():
            return {"layer": name, "tensor": tname, "fraction_equal": float(eq.mean()), "inputs": len(x),
                    "note": "traced on the differing inputs (up to 100) plus up to 100 equal ones"}
    return None
