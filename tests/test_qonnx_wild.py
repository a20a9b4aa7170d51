"""QONNX graphs as found in the wild (issue 16), against qonnx's own executor.

Graphs of each shape are built here with onnx.helper: float pre-processing before the first
quantizer (FINN TFC: Reshape, x*2-1; per-channel Sub/Div), float tails after the last integer
layer (TensorNorm-like per-channel affine with a negative scale; a quantizer on the logits; a final
sign), an unquantized input (--input-type, the QKeras-converted jet tagger).  Reference:
``qonnx.core.onnx_exec.execute_onnx``; integer outputs are compared on their step grid, the
output conversion in float32, argmax exactly; small nets are co-simulated.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from qat.importers.float_steps import apply_output_conversion
from qat.importers.from_qonnx import QONNXImportError, import_qonnx, qonnx_clean
from qat.importers.input_quant import framework_to_network_layout, quantize_real
from qat.ir import golden, netfile
from qat.ir.types import parse_fixed, unit_scale

ROOT = Path(__file__).resolve().parents[1]
QDOM = "qonnx.custom_op.general"


class G:
    """A tiny graph builder: constants, QONNX quantizers, standard nodes."""

    def __init__(self):
        self.nodes, self.inits, self.k = [], [], 0

    def name(self, p):
        self.k += 1
        return f"{p}{self.k}"

    def c(self, v, dtype=np.float32):
        n = self.name("c")
        self.inits.append(numpy_helper.from_array(np.asarray(v, dtype=dtype), n))
        return n

    def op(self, t, ins, domain="", **attrs):
        out = self.name(t.lower() + "_o")
        self.nodes.append(helper.make_node(t, ins, [out], name=self.name(t + "_"), domain=domain, **attrs))
        return out

    def quant(self, x, scale, bits, signed=1, narrow=0):
        return self.op("Quant", [x, self.c(scale), self.c(0.0), self.c(float(bits))], QDOM, signed=signed,
                       narrow=narrow, rounding_mode="ROUND")

    def bipolar(self, x, scale=1.0):
        return self.op("BipolarQuant", [x, self.c(scale)], QDOM)

    def model(self, in_shape, out, out_shape):
        g = helper.make_graph(self.nodes, "wild", [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)], self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(QDOM, 1)])
        m.ir_version = 8
        return m


def tfc_like(neg_scale=True, seed=0):
    """FINN TFC shape: Reshape, x*2-1, sign; binary dense + BatchNorm + sign; binary dense; TensorNorm tail."""
    r = np.random.default_rng(seed)
    g = G()
    x = g.op("Reshape", ["x", g.c([1, -1], np.int64)])
    x = g.op("Sub", [g.op("Mul", [x, g.c(2.0)]), g.c([1.0])])
    x = g.bipolar(x)
    w1 = g.bipolar(g.c(r.normal(size=(16, 12))))
    h = g.op("MatMul", [x, w1])
    h = g.op("BatchNormalization", [h, g.c(r.uniform(0.5, 2, 12)), g.c(r.normal(size=12)), g.c(r.normal(0, 2, 12)),
                                    g.c(r.uniform(5, 20, 12))], epsilon=1e-5)
    h = g.bipolar(h)
    w2 = g.bipolar(g.c(r.normal(size=(12, 6))))
    y = g.op("MatMul", [h, w2])
    if neg_scale:  # per channel, some negative
        scale, shift, off = r.uniform(0.3, 1.5, 6) * np.where(np.arange(6) % 3 == 0, -1, 1), r.normal(size=6) * 0.3, \
            r.normal(size=6)
    else:  # per tensor, positive (FINN's TensorNorm as exported for TFC)
        scale, shift, off = [0.7341181], [0.4488643], [-1.1436615]
    y = g.op("Sub", [y, g.c(shift)])
    y = g.op("Div", [y, g.c([3.4641016])])
    y = g.op("Mul", [y, g.c(scale)])
    y = g.op("Add", [y, g.c(off)])
    return g.model([1, 1, 4, 4], y, [1, 6])


def quant_pre_tail(seed=1):
    """Per-channel Sub/Div pre-processing, 6-bit input quantizer, dense+relu+quant, dense, per-channel
    Mul then a 4-bit quantizer on the logits (a requant-like threshold)."""
    r = np.random.default_rng(seed)
    g = G()
    x = g.op("Div", [g.op("Sub", ["x", g.c([[0.5, -1.0, 2.0]])]), g.c([[1.5, 0.75, 3.0]])])
    x = g.quant(x, 2.0 ** -3, 6)
    w = g.quant(g.c(r.normal(0, 0.5, (3, 8))), 2.0 ** -4, 5)
    b = g.quant(g.c(r.normal(0, 0.5, 8)), 2.0 ** -7, 16)
    h = g.op("Gemm", [x, w, b])
    h = g.quant(g.op("Relu", [h]), 2.0 ** -2, 4, signed=0)
    w2 = g.quant(g.c(r.normal(0, 0.5, (8, 4))), 2.0 ** -4, 5)
    y = g.op("MatMul", [h, w2])
    y = g.op("Mul", [y, g.c(r.uniform(0.2, 2.0, 4))])
    y = g.quant(y, 0.25, 4)
    return g.model([1, 3], y, [1, 4])


def unquantized_input(seed=2):
    """QKeras->QONNX shape: float input, Quant weights, Quant bias on a coarser grid, relu+quant, final sign."""
    r = np.random.default_rng(seed)
    g = G()
    w = g.quant(g.c(r.normal(0, 0.5, (4, 6))), 2.0 ** -5, 6)
    b = g.quant(g.c(r.normal(0, 0.5, 6)), 2.0 ** -5, 6)
    h = g.op("Add", [g.op("MatMul", ["x", w]), b])
    h = g.quant(g.op("Relu", [h]), 2.0 ** -4, 6, signed=0)
    w2 = g.quant(g.c(r.normal(0, 0.5, (6, 3))), 2.0 ** -5, 6)
    b2 = g.quant(g.c(r.normal(0, 0.5, 3)), 2.0 ** -5, 6)
    y = g.bipolar(g.op("Add", [g.op("MatMul", [h, w2]), b2]))
    return g.model([1, 4], y, [1, 3])


def float_bias_mlp(seed=8, tail="sign"):
    """UNSW-NB15 shape: unquantized {-1,+1} input mapped by (x+1)/2, Gemm layers with float (unquantized)
    biases and float weight scales, BatchNorm (some channels with a denormal variance and the mean equal to
    the bias, as Brevitas exports a dead channel) + ReLU + narrow quantizers; the last Gemm ends in a sign
    (``tail='sign'``) or ends the graph (``tail='logits'``: the hardware's logits keep that bias)."""
    r = np.random.default_rng(seed)
    g = G()
    x = g.op("Div", [g.op("Add", ["x", g.c([1.0])]), g.c(2.0)])
    sizes = [20, 12, 10, 1 if tail == "sign" else 3]
    for i, (ci, co) in enumerate(zip(sizes[:-1], sizes[1:])):
        w = g.quant(g.c(r.normal(0, 1, (co, ci)).astype(np.float32)), np.float32(r.uniform(0.3, 30)), 2, narrow=1)
        b = r.normal(0, 0.5, co).astype(np.float32)
        if i == len(sizes) - 2:  # a small bias under a coarse weight scale: off any refined accumulator grid
            w = g.quant(g.c(r.normal(0, 1, (co, ci)).astype(np.float32)), np.float32(25.0), 2, narrow=1)
            b = np.float32(-0.013) + np.arange(co, dtype=np.float32)
        h = g.op("Gemm", [x, w, g.c(b)], transB=1)
        if i == len(sizes) - 2:
            y = g.bipolar(h) if tail == "sign" else h
            return g.model([1, 20], y, [1, co])
        mean, var = r.normal(0, 5, co).astype(np.float32), r.uniform(1, 100, co).astype(np.float32)
        dead = np.arange(co) % 3 == 0
        mean[dead] = b[dead] + np.float32(3e-8)
        var[dead] = np.float32(6e-45)
        h = g.op("BatchNormalization", [h, g.c(r.uniform(0.2, 3, co)), g.c(r.normal(0, 1, co)), g.c(mean), g.c(var)],
                 epsilon=1e-5)
        x = g.quant(g.op("Relu", [h]), np.float32(r.uniform(0.05, 1.5)), 3 if i == 0 else 2, signed=0)


def reference(model, x: np.ndarray, tap: str | None = None):
    """qonnx's executor, one input at a time (the graphs have batch 1); (outputs, tapped tensor)."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx

    m = ModelWrapper(qonnx_clean(model))
    iname, oname = m.graph.input[0].name, m.graph.output[0].name
    outs, taps = [], []
    for xi in x:
        res = execute_onnx(m, {iname: xi[None].astype(np.float32)}, return_full_exec_context=True)
        outs.append(res[oname][0]), taps.append(res[tap or oname][0])
    return np.array(outs), np.array(taps)


def compare(model, x, input_type=None, cosim_dir=None):
    """Golden (+ conversions) vs qonnx: grid-equal integers, float32-equal final outputs, equal argmax."""
    net = import_qonnx(model, "wild", input_type=input_type)
    net_am = import_qonnx(model, "wild", output="argmax", input_type=input_type)
    raw = quantize_real(net.inputs[0], framework_to_network_layout(net, x))
    y_int = np.asarray(golden.run(net, raw)[net.outputs[0]], dtype=np.int64)
    conv = net.meta.get("output_conversion")
    r_out, r_tap = reference(model, x, conv["onnx_input"] if conv else None)
    grid = r_tap.astype(np.float64) / unit_scale(net.tensor_types()[net.outputs[0]])
    assert np.all(grid == np.round(grid)), "reference not on the integer grid"
    assert np.array_equal(np.round(grid).astype(np.int64), y_int)
    fin = apply_output_conversion(net, golden.dequantize(net.tensor_types()[net.outputs[0]], y_int))
    assert np.array_equal(np.asarray(fin, dtype=np.float32), r_out.astype(np.float32))
    am = np.asarray(golden.run(net_am, raw)[net_am.outputs[0]], dtype=np.int64)[:, 0]
    assert np.array_equal(am, np.argmax(r_out, axis=-1))
    if cosim_dir is not None:
        from rtl_sim.cosim import run_cosim

        for n, tag in ((net, "logits"), (net_am, "argmax")):
            res = run_cosim(n, raw[:200], Path(cosim_dir) / tag)
            assert res.ok, res.describe()
    return net, net_am


def test_tfc_shape_pre_processing_and_negative_scale_tail(tmp_path):
    x = np.concatenate([np.random.default_rng(0).integers(0, 256, size=(150, 1, 4, 4)) / 255.0,
                        np.full((1, 1, 4, 4), 0.5), np.zeros((1, 1, 4, 4))]).astype(np.float32)
    net, net_am = compare(tfc_like(), x, cosim_dir=tmp_path)
    pre = net.inputs[0].real_quantizer["pre"]
    assert [s["op"] for s in pre["steps"]] == ["reshape", "mul", "sub"] and pre["shape"] == [1, 4, 4]
    assert net.inputs[0].shape == (16,)
    assert [s["op"] for s in net.meta["output_conversion"]["steps"]] == ["sub", "div", "mul", "add"]
    # a negative per-channel scale reverses the order: argmax needs the rank op, not the raw integers
    assert any(op.name == "rank" and op.kind == "threshold" for op in net_am.ops)
    # x*2-1 at exactly 0.5 is 0 -> +1 (BipolarQuant: x >= 0); the conversion is in float32
    raw = quantize_real(net.inputs[0], np.full((1, 1, 4, 4), 0.5, np.float32))
    assert raw.tolist() == [[1] * 16]


def test_positive_per_tensor_tail_keeps_integer_argmax():
    x = (np.random.default_rng(3).integers(0, 256, size=(100, 1, 4, 4)) / 255.0).astype(np.float32)
    _, net_am = compare(tfc_like(neg_scale=False), x)
    # the same strictly increasing map on every channel: the argmax reads the integers directly
    assert [op.kind for op in net_am.ops][-2:] == ["bdense", "argmax"]


def test_per_channel_pre_processing_and_quantizer_on_logits(tmp_path):
    r = np.random.default_rng(4)
    x = np.concatenate([r.normal(0, 3, size=(200, 3)), [[0.5, -1.0, 2.0]]]).astype(np.float32)
    net, _ = compare(quant_pre_tail(), x, cosim_dir=tmp_path)
    assert "output_conversion" not in net.meta  # the quantizer on the logits is integer hardware
    assert net.ops[-1].kind == "threshold"


def test_unquantized_input_needs_input_type(tmp_path):
    with pytest.raises(QONNXImportError, match=r"input 'x' is not a quantized tensor .*--input-type"):
        import_qonnx(unquantized_input(), "wild")
    t = parse_fixed("fixed<10,4>")
    r = np.random.default_rng(5)
    x = (np.round(r.normal(0, 2, size=(200, 4)) * 64) / 64).clip(-8, 8 - 1 / 64).astype(np.float32)
    net, _ = compare(unquantized_input(), x, input_type=t, cosim_dir=tmp_path)
    assert net.ops[-1].kind == "threshold"  # the final sign
    # same rule as QKeras --input-type: real inputs must be exact values of the type
    with pytest.raises(Exception, match="not representable"):
        quantize_real(net.inputs[0], np.array([[0.001, 0, 0, 0]]))
    with pytest.raises(QONNXImportError, match="--input-type applies to QONNX graphs whose input is unquantized"):
        import_qonnx(quant_pre_tail(), "wild", input_type=t)


def test_float_gemm_bias_stays_a_float_add(tmp_path):
    """Float (unquantized) Gemm biases before BatchNorm + quantizer or a sign are float32 adds inside the
    thresholds (not rounded onto a refined accumulator grid: with a denormal BatchNorm variance that rounding
    flipped 11 % of UNSW-NB15's outputs); a bias on the logits stays in the hardware (refined grid, noted)."""
    r = np.random.default_rng(9)
    x = np.concatenate([r.choice([-1.0, 1.0], size=(120, 20)), -np.ones((1, 20)), np.ones((1, 20))])
    x = x.astype(np.float32)
    t = parse_fixed("ufixed<1,1>")
    net, _ = compare(float_bias_mlp(), x, input_type=t, cosim_dir=tmp_path)
    assert [op.kind for op in net.ops] == ["dense", "threshold"] * 3
    assert all(not np.any(op.arrays["bias"]) and "weight_shift" not in op.attrs for op in net.ops if op.kind == "dense")
    assert not any("refined" in n for n in net.notes)
    net = import_qonnx(float_bias_mlp(tail="logits"), "wild", input_type=t)
    assert "output_conversion" not in net.meta and net.ops[-1].kind == "dense"
    assert net.ops[-1].attrs.get("weight_shift", 0) > 0 and sum("refined" in n for n in net.notes) == 1


def test_netfile_cli_predict_and_info(tmp_path):
    m = tfc_like()
    onnx.save(m, str(tmp_path / "tfc.onnx"))
    cli = [sys.executable, "-m", "qrtl.cli"]
    subprocess.run(cli + ["convert", str(tmp_path / "tfc.onnx"), "-o", str(tmp_path / "net")], check=True,
                   cwd=ROOT, capture_output=True)
    net = netfile.load(tmp_path / "net")
    assert net.inputs[0].real_quantizer["pre"]["steps"][0] == {"op": "reshape", "shape": [16]}
    x = (np.random.default_rng(6).integers(0, 256, size=(50, 1, 4, 4)) / 255.0).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    p = subprocess.run(cli + ["predict", str(tmp_path / "net"), "--input", str(tmp_path / "x.npy"), "-o",
                              str(tmp_path / "y.npy")], cwd=ROOT, capture_output=True, text=True, check=True)
    assert "output conversion applied" in p.stdout
    r_out, _ = reference(m, x)
    assert np.array_equal(np.load(tmp_path / "y.npy").astype(np.float32), r_out.astype(np.float32))
    info = subprocess.run(cli + ["info", str(tmp_path / "net")], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout
    assert "input conversion reshape to (16,), x*2, x-1" in info and "output conversion" in info


def _one_line(model, match):
    with pytest.raises(QONNXImportError) as e:
        import_qonnx(model, "bad")
    msg = str(e.value)
    assert "\n" not in msg
    assert all(m in msg for m in match), msg


def test_bad_input_is_one_line():
    r = np.random.default_rng(7)
    # a float op between two quantized layers
    g = G()
    x = g.quant("x", 0.125, 6)
    h = g.op("MatMul", [x, g.quant(g.c(r.normal(size=(3, 4))), 0.25, 4)])
    h = g.op("Mul", [h, g.c([1.5])])
    y = g.op("MatMul", [h, g.quant(g.c(r.normal(size=(4, 2))), 0.25, 4)])
    _one_line(g.model([1, 3], y, [1, 2]), ["(Mul)", "float op between quantized layers", "MatMul"])
    # an op with no integer meaning on an integer tensor
    g = G()
    x = g.quant("x", 0.125, 6)
    h = g.op("Exp", [g.op("MatMul", [x, g.quant(g.c(r.normal(size=(3, 4))), 0.25, 4)])])
    _one_line(g.model([1, 3], h, [1, 4]), ["(Exp)", "op Exp is not supported"])
    # a float op on the unquantized input that is no input conversion
    g = G()
    x = g.quant(g.op("Exp", ["x"]), 0.125, 6)
    _one_line(g.model([1, 3], x, [1, 3]), ["(Exp)", "not part of an input conversion"])
    # two tensors subtracted
    g = G()
    x = g.quant("x", 0.125, 6)
    a = g.op("MatMul", [x, g.quant(g.c(r.normal(size=(3, 4))), 0.25, 4)])
    y = g.op("Sub", [a, a])
    _one_line(g.model([1, 3], y, [1, 4]), ["(Sub)", "no integer meaning"])
