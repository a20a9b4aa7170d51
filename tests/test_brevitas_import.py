"""Brevitas modules and QONNX files -> integer network, golden vs Brevitas on >= 10,000 inputs."""
from __future__ import annotations

import warnings
from pathlib import Path
from fractions import Fraction

import numpy as np
import pytest

import brevitas.nn as qnn  # required dependencies: a broken install fails loudly, never skips
import torch
import torch.nn as nn  # noqa: E402
from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat, Int8WeightPerChannelFloat,  # noqa: E402
                            Int8WeightPerTensorFixedPoint, Int8WeightPerTensorFloat, Int32Bias,
                            Uint8ActPerTensorFixedPoint, Uint8ActPerTensorFloat)
from brevitas.quant.float import Fp8e4m3ActPerTensorFloat, Fp8e4m3WeightPerTensorFloat  # noqa: E402
from brevitas.quant.float_quant_fnuz import (Fp8e4m3FNUZActPerTensorFloat,  # noqa: E402
                                                          Fp8e4m3FNUZWeightPerTensorFloat)
from brevitas.quant.float_quant_ocp import (Fp8e4m3OCPActPerTensorFloat,  # noqa: E402
                                                         Fp8e4m3OCPWeightPerTensorFloat)

from qat.ir import golden  # noqa: E402
from qat.importers.from_brevitas import BrevitasImportError, agreement, export_qonnx_model, import_brevitas  # noqa: E402
from qat.importers.input_quant import quantize_real  # noqa: E402
from qat.ir.network import NetworkError, Op  # noqa: E402
from qat.importers.from_qonnx import QONNXImportError, import_qonnx  # noqa: E402
from qat.ir.types import MinifloatType, minifloat_magnitudes, unit_scale  # noqa: E402

warnings.filterwarnings("ignore")
N = 10_000


class MLP(nn.Module):
    def __init__(self, wq, aq, rq, wbits=4, abits=8, rbits=4, n_in=16, hidden=32, n_out=5, bias=True):
        super().__init__()
        bq = Int32Bias if bias else None
        self.inp = qnn.QuantIdentity(act_quant=aq, bit_width=abits, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(n_in, hidden, bias=bias, weight_quant=wq, weight_bit_width=wbits,
                                   bias_quant=bq, return_quant_tensor=True)
        self.relu = qnn.QuantReLU(act_quant=rq, bit_width=rbits, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(hidden, n_out, bias=bias, weight_quant=wq, weight_bit_width=wbits, bias_quant=bq)

    def forward(self, x):
        return self.fc2(self.relu(self.fc1(self.inp(x))))


class CNN(nn.Module):
    """conv(same) -> relu -> maxpool -> conv(valid) -> relu -> flatten -> linear, per-channel weights."""

    def __init__(self, wq, aq, rq):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True)
        self.c1 = qnn.QuantConv2d(2, 4, 3, padding=1, weight_quant=wq, weight_bit_width=4, bias_quant=Int32Bias,
                                  return_quant_tensor=True)
        self.r1 = qnn.QuantReLU(act_quant=rq, bit_width=4, return_quant_tensor=True)
        self.pool = nn.MaxPool2d(2)
        self.c2 = qnn.QuantConv2d(4, 6, 3, weight_quant=wq, weight_bit_width=4, bias_quant=Int32Bias,
                                  return_quant_tensor=True)
        self.r2 = qnn.QuantReLU(act_quant=rq, bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(6 * 2 * 3, 3, weight_quant=wq, weight_bit_width=4, bias_quant=Int32Bias)

    def forward(self, x):
        y = self.r2(self.c2(self.pool(self.r1(self.c1(self.inp(x))))))
        return self.fc(torch.flatten(y, 1))


class Residual(nn.Module):
    """x -> q -> fc1 -> q(shared) ; add with the shared-quantized input -> fc2."""

    def __init__(self):
        super().__init__()
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(16, 16, weight_bit_width=4, bias_quant=Int32Bias, return_quant_tensor=True)
        self.shared = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(16, 4, weight_bit_width=4, bias_quant=Int32Bias)

    def forward(self, x):
        a = self.shared(self.inp(x))
        return self.fc2(a + self.shared(self.fc1(a)))


class MinifloatMLP(nn.Module):
    def __init__(self, wq, aq, bias=False):
        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=aq, return_quant_tensor=True)
        self.fc1 = qnn.QuantLinear(16, 12, bias=bias, weight_quant=wq)
        self.relu = qnn.QuantReLU(act_quant=aq, return_quant_tensor=True)
        self.fc2 = qnn.QuantLinear(12, 4, bias=bias, weight_quant=wq)
        self.out = qnn.QuantIdentity(act_quant=aq)

    def forward(self, x):
        return self.out(self.fc2(self.relu(self.fc1(self.inp(x)))))


def calibrated(model, shape, seed=0):
    """A few training-mode passes so statistics-based scales settle, then eval."""
    torch.manual_seed(seed)
    model.train()
    with torch.no_grad():
        for _ in range(8):
            model(torch.randn((64,) + shape) * 2)
    return model.eval()


def inputs(net, shape, n=N, seed=1) -> np.ndarray:
    """Random reals plus edge cases: zeros, +-max of the input quantizer, exact rounding ties."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=(n,) + shape) * 2).astype(np.float32)
    s = float(net.inputs[0].real_quantizer.get("scale", 1.0))
    t = net.inputs[0].type
    x[0] = 0
    x[1] = s * t.hi * 1.5  # saturates
    x[2] = s * t.lo * 1.5
    x[3] = s * t.hi
    k = rng.integers(-20, 20, size=(200,) + shape)
    x[4:204] = ((k + 0.5) * s).astype(np.float32)  # ties of the input quantizer
    return x


def check_exact(model, net, shape):
    rep = agreement(model, net, inputs(net, shape))
    assert rep["vectors"] >= N
    assert rep["mismatch_rate"] == 0.0, rep
    return rep


# ---- integer networks: golden == Brevitas bit for bit -------------------------------

def test_po2_mlp_exact_and_requant_is_shift():
    m = calibrated(MLP(Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint),
                   (16,))
    net = import_brevitas(m, (16,))
    rq = [op for op in net.ops if op.kind == "requant"]
    assert rq and all(int(op.arrays["mult"].max()) == 1 for op in rq)
    assert net.notes == []
    rep = check_exact(m, net, (16,))
    assert rep["max_float_residual_steps"] == 0.0  # PyTorch float32 is exact with power-of-two scales


def test_float_scale_mlp_int8_int4_match_brevitas():
    for wbits, rbits in ((8, 8), (4, 4)):
        m = calibrated(MLP(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat,
                           wbits=wbits, rbits=rbits), (16,), seed=wbits)
        net = import_brevitas(m, (16,))
        assert any("rounded to the nearest such dyadic" in n for n in net.notes)
        rq = [op for op in net.ops if op.kind == "requant"][-1]
        assert int(rq.arrays["mult"].max()) < 2 ** 31
        check_exact(m, net, (16,))


def test_cnn_per_channel_conv_pool_flatten_exact():
    for q in ((Int8WeightPerChannelFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat),
              (Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint)):
        m = calibrated(CNN(*q), (2, 8, 10))
        net = import_brevitas(m, (2, 8, 10))
        assert net.inputs[0].shape == (8, 10, 2) and net.meta["onnx_input_layout"] == "NCHW"
        assert [op.kind for op in net.ops] == ["conv2d", "requant", "maxpool", "conv2d", "requant",
                                               "reshape", "dense"]
        assert net.op("c1").attrs["padding"] == "same" and net.op("c2").attrs["padding"] == "valid"
        check_exact(m, net, (2, 8, 10))


def test_residual_add_exact():
    m = calibrated(Residual(), (16,))
    net = import_brevitas(m, (16,))
    assert "add" in [op.kind for op in net.ops]
    check_exact(m, net, (16,))


def test_argmax_output():
    m = calibrated(MLP(Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint),
                   (16,))
    net = import_brevitas(m, (16,), output="argmax")
    x = inputs(net, (16,), n=2000)
    got = golden.run(net, quantize_real(net.inputs[0], x))[net.outputs[0]][:, 0]
    with torch.no_grad():
        want = m(torch.from_numpy(x)).argmax(dim=1).numpy()
    assert np.array_equal(got.astype(np.int64), want)


# ---- minifloat networks ------------------------------------------------------------

MF_QUANTS = {
    "plain": (Fp8e4m3WeightPerTensorFloat, Fp8e4m3ActPerTensorFloat, 480.0),
    "ocp": (Fp8e4m3OCPWeightPerTensorFloat, Fp8e4m3OCPActPerTensorFloat, 448.0),
    "fnuz": (Fp8e4m3FNUZWeightPerTensorFloat, Fp8e4m3FNUZActPerTensorFloat, 240.0),
}


@pytest.mark.parametrize("variant", sorted(MF_QUANTS))
def test_minifloat_mlp_matches_brevitas(variant):
    wq, aq, mx = MF_QUANTS[variant]
    m = calibrated(MinifloatMLP(wq, aq), (16,))
    net = import_brevitas(m, (16,))
    t = net.inputs[0].type
    assert isinstance(t, MinifloatType) and t.variant == variant and t.max_value == mx
    assert isinstance(net.op("out").type, MinifloatType)
    rep = agreement(m, net, inputs(net, (16,)))
    # PyTorch accumulates the (exact) minifloat products in float32: 16 and 12 terms stay exact here
    assert rep["mismatch_rate"] == 0.0, rep


def _round_minifloat_exact(v: Fraction, t: MinifloatType) -> int:
    """Independent reference: v (format units) to the minifloat grid, half to even, saturating -> raw units."""
    if v == 0:
        return 0
    e = 0
    while Fraction(2) ** (e + 1) <= abs(v):
        e += 1
    while Fraction(2) ** e > abs(v):
        e -= 1
    e = max(e, 1 - t.bias) - t.man_bits
    q = round(v / Fraction(2) ** e) * Fraction(2) ** e  # Python rounds Fractions half to even
    raw = q / Fraction(2) ** t.unit_exp
    assert raw.denominator == 1
    return max(-t.max_units, min(t.max_units, raw.numerator))


def test_minifloat_golden_is_exact_arithmetic():
    """Golden holds Brevitas's quantized values and rounds exact sums as exact arithmetic does."""
    wq, aq, _ = MF_QUANTS["ocp"]
    m = calibrated(MinifloatMLP(wq, aq), (16,))
    net = import_brevitas(m, (16,))
    x = inputs(net, (16,), n=400)
    g = golden.run(net, quantize_real(net.inputs[0], x), keep_all=True)
    with torch.no_grad():
        xv = m.inp(torch.from_numpy(x)).value.double().numpy()
        wv = m.fc1.quant_weight().value.double().numpy()
    # same values as Brevitas up to its float32 product q*s (2^-24 relative; the grid is 2^-3 apart)
    t_in = net.inputs[0].type
    mine_x = np.asarray(g[net.inputs[0].name], dtype=np.float64) * unit_scale(t_in)[0]
    assert np.allclose(mine_x, xv, rtol=2.0 ** -23, atol=0)
    fc1 = net.op("fc1")
    mine_w = fc1.arrays["weight"].T * unit_scale(net.op("fc1").type)[0] / unit_scale(t_in)[0]
    assert np.allclose(mine_w, wv, rtol=2.0 ** -23, atol=0)
    # the requant to the hidden minifloat: independent exact rounding of acc * mult / 2^shift
    r = net.op("relu")
    mult, shift = int(r.arrays["mult"][0]), int(r.arrays["shift"][0])
    src = r.inputs[0]
    for i in range(0, 400, 3):
        for o in range(12):
            v = Fraction(int(g[src][i, o]) * mult, 1) / Fraction(2) ** shift
            assert int(g["relu"][i, o]) == _round_minifloat_exact(v, r.type)


def test_minifloat_fp4_custom_and_magnitudes():
    class E2M1W(Fp8e4m3WeightPerTensorFloat):
        bit_width = 4
        exponent_bit_width = 2
        mantissa_bit_width = 1
        exponent_bias = 1

    class E2M1A(Fp8e4m3ActPerTensorFloat):
        bit_width = 4
        exponent_bit_width = 2
        mantissa_bit_width = 1
        exponent_bias = 1

    m = calibrated(MinifloatMLP(E2M1W, E2M1A), (16,))
    net = import_brevitas(m, (16,))
    t = net.inputs[0].type
    assert (t.exp_bits, t.man_bits, t.bias, t.max_value) == (2, 1, 1, 6.0)
    assert list(minifloat_magnitudes(t)) == [0, 1, 2, 3, 4, 6, 8, 12]  # 0, 0.5, 1, 1.5, 2, 3, 4, 6
    rep = agreement(m, net, inputs(net, (16,)))
    assert rep["mismatch_rate"] == 0.0, rep


# ---- QONNX files and the command line -------------------------------------------------

def test_qonnx_file_convert_predict_cli(tmp_path):
    from qrtl.cli import main

    m = calibrated(CNN(Int8WeightPerChannelFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat), (2, 8, 10))
    path = tmp_path / "cnn.onnx"
    from brevitas.export import export_qonnx

    export_qonnx(m, torch.zeros(1, 2, 8, 10), export_path=str(path))
    assert main(["convert", str(path), "-o", str(tmp_path / "net")]) == 0
    x = inputs(import_qonnx(path), (2, 8, 10), n=3000)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(tmp_path / "net"), "--input", str(tmp_path / "x.npy"),
                 "-o", str(tmp_path / "y.npy")]) == 0
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy().astype(np.float64)
    got = np.load(tmp_path / "y.npy")
    step = unit_scale(import_qonnx(path).tensor_types()["fc"])
    assert np.array_equal(np.round(want / step), np.round(got / step))


def test_convert_is_deterministic(tmp_path):
    m = calibrated(MLP(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat), (16,))
    from qat.ir import netfile

    for d in ("a", "b"):
        netfile.save(import_brevitas(m, (16,)), tmp_path / d)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*") if p.is_file())
    for f in files:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


# ---- bad input: one line naming the node ---------------------------------------------

def test_unsupported_layer_names_node():
    class Sig(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8, 4, weight_bit_width=4, bias_quant=Int32Bias)

        def forward(self, x):
            return torch.sigmoid(self.fc(self.inp(x)))

    with pytest.raises(QONNXImportError, match=r"node '.*' \(Sigmoid.*not supported"):
        import_brevitas(calibrated(Sig(), (8,)), (8,))


def test_unquantized_input_and_weights_are_refused():
    class NoInputQuant(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = qnn.QuantLinear(8, 4, weight_bit_width=4, bias=False)

        def forward(self, x):
            return self.fc(x)

    with pytest.raises(QONNXImportError, match="not a quantized tensor|not quantized"):
        import_brevitas(calibrated(NoInputQuant(), (8,)), (8,))

    class FloatWeights(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8)
            self.fc = nn.Linear(8, 4)

        def forward(self, x):
            return self.fc(self.inp(x))

    with pytest.raises(QONNXImportError, match=r"weight .* is not quantized"):
        import_brevitas(calibrated(FloatWeights(), (8,)), (8,))


def test_exact_scales_refuses_float_ratio_and_accepts_po2():
    m = calibrated(MLP(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat), (16,))
    with pytest.raises(QONNXImportError, match=r"node '.*' \(Quant, module relu\): rescale ratio .* is not b/2\^c "
                                                r"with b < 2\^31"):
        import_brevitas(m, (16,), exact_scales=True)
    m2 = calibrated(MLP(Int8WeightPerTensorFixedPoint, Int8ActPerTensorFixedPoint, Uint8ActPerTensorFixedPoint),
                    (16,))
    import_brevitas(m2, (16,), exact_scales=True)
    with pytest.raises(QONNXImportError, match="--mult-bits must be in 2..62"):
        import_brevitas(m2, (16,), mult_bits=99)


def test_malformed_onnx_file(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a protobuf at all")
    with pytest.raises(QONNXImportError, match=r"bad.onnx: not a readable ONNX file"):
        import_qonnx(bad)


def test_cli_errors_are_one_line(tmp_path, capsys):
    from qrtl.cli import main

    m = calibrated(MLP(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat), (16,))
    path = tmp_path / "mlp.onnx"
    import onnx

    onnx.save(export_qonnx_model(m, (16,)), str(path))
    assert main(["convert", str(path), "--exact-scales", "-o", str(tmp_path / "n")]) != 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "rescale ratio" in err[0] and "module relu" in err[0]
    assert main(["convert", str(path), "--input-type", "fixed<8,3>", "-o", str(tmp_path / "n")]) != 0
    assert "--input-type applies to QONNX graphs whose input is unquantized" in capsys.readouterr().err


def test_export_error_is_clear():
    class Broken(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8)

        def forward(self, x):
            return self.inp(x)[:, :2] @ torch.ones(3, 3)  # shape error at export

    with pytest.raises((BrevitasImportError, NetworkError), match="export failed"):
        import_brevitas(Broken().eval(), (8,))


# ---- the held-out path: .onnx -> qrtl convert -> qrtl cosim (Verilator, bit-exact vs golden) ----------

def _export(model, shape, path):
    import onnx

    onnx.save(export_qonnx_model(model, shape), str(path))
    return path


@pytest.mark.parametrize("kind", ["strided_cnn_float_scales", "dyadic_mlp", "minifloat_e4m3", "minifloat_e2m1_recipe"])
def test_cli_convert_and_cosim(kind, tmp_path):
    import json

    from qrtl.cli import main

    if kind == "strided_cnn_float_scales":
        m, shape, extra = calibrated(StridedPadded(), (2, 10, 11)), (2, 10, 11), []
    elif kind == "minifloat_e4m3":
        wq, aq, _ = MF_QUANTS["ocp"]
        m, shape, extra = calibrated(MinifloatMLP(wq, aq), (16,)), (16,), []
    else:
        import qat.recipes.brevitas_recipes as R

        preset = "dyadic_int4" if kind == "dyadic_mlp" else "fp4_e2m1"
        m, shape = calibrated(R.mlp(16, [12], 4, preset, seed=0), (16,)), (16,)
        extra = ["--exact-scales"] if kind == "dyadic_mlp" else []
    onnx_path = _export(m, shape, tmp_path / f"{kind}.onnx")
    assert main(["convert", str(onnx_path), "-o", str(tmp_path / "net"), *extra]) == 0
    x = (np.random.default_rng(3).normal(size=(300,) + shape) * 2).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    assert main(["cosim", str(tmp_path / "net"), "--vectors", str(tmp_path / "x.npy"), "--trace-layers", "-o",
                 str(tmp_path / "sim")]) == 0
    rep = json.loads((tmp_path / "sim" / "cosim.json").read_text())
    assert rep["vectors"] == 300 and rep["exact_vectors"] == 300 and rep["ok"], rep


# ---- BatchNorm between a layer and its quantizer: integer thresholds -------------------

class LinearBN(nn.Module):
    def __init__(self, conv=False):
        super().__init__()
        self.conv = conv
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        if conv:
            self.layer = qnn.QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias=False)
            self.bn = nn.BatchNorm2d(4)
        else:
            self.layer = qnn.QuantLinear(16, 24, weight_bit_width=4, bias_quant=Int32Bias)
            self.bn = nn.BatchNorm1d(24)
        self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(4 * 8 * 8 if conv else 24, 3, weight_bit_width=4, bias_quant=Int32Bias)

    def forward(self, x):
        y = self.relu(self.bn(self.layer(self.inp(x))))
        return self.fc(torch.flatten(y, 1) if self.conv else y)


@pytest.mark.parametrize("conv", [False, True])
def test_batchnorm_becomes_thresholds_and_matches(conv):
    shape = (1, 8, 8) if conv else (16,)
    m = LinearBN(conv)
    calibrated(m, shape)
    with torch.no_grad():  # negative gammas flip the threshold direction
        m.bn.weight.copy_(torch.linspace(-1.5, 1.5, m.bn.weight.numel()))
        m.bn.bias.uniform_(-0.5, 0.5, generator=torch.Generator().manual_seed(0))
    net = import_brevitas(m.eval(), shape)
    th = net.op("relu")
    assert th.kind == "threshold" and set(th.arrays["direction"].tolist()) == {-1, 1}
    check_exact(m, net, shape)
    # thresholds use no rescale ratio, so --exact-scales has nothing to refuse here
    import_brevitas(m, shape, exact_scales=True)


def test_batchnorm_output_must_be_quantized():
    """An unquantized BatchNorm ending the graph is the float output conversion (issue 16); between two
    layers it is refused in one line."""
    class BNOut(nn.Module):
        def __init__(self, between: bool):
            super().__init__()
            self.between = between
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc = qnn.QuantLinear(8, 4, weight_bit_width=4, bias_quant=Int32Bias)
            self.bn = nn.BatchNorm1d(4)
            self.fc2 = qnn.QuantLinear(4, 2, weight_bit_width=4, bias=False)

        def forward(self, x):
            y = self.bn(self.fc(self.inp(x)))
            return self.fc2(y) if self.between else y

    net = import_brevitas(calibrated(BNOut(False), (8,)), (8,))
    assert [s["op"] for s in net.meta["output_conversion"]["steps"]] == ["bn"]
    assert net.ops[-1].kind == "dense"
    with pytest.raises(QONNXImportError, match="float op between quantized layers"):
        import_brevitas(calibrated(BNOut(True), (8,)), (8,))


class PoolZoo(nn.Module):
    """QuantConv1d -> QuantHardTanh -> AvgPool1d -> QuantIdentity, and QuantConv2d -> ReLU -> TruncAvgPool2d."""

    def __init__(self, two_d: bool):
        super().__init__()
        self.two_d = two_d
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        if two_d:
            self.conv = qnn.QuantConv2d(1, 4, 3, padding=1, weight_bit_width=4, bias_quant=Int32Bias,
                                        return_quant_tensor=True)
            self.act = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.pool = qnn.TruncAvgPool2d(2, bit_width=4, return_quant_tensor=True)
            self.q = nn.Identity()
            n = 4 * 4 * 4
        else:
            self.conv = qnn.QuantConv1d(3, 4, 3, padding=1, weight_bit_width=4, bias_quant=Int32Bias,
                                        return_quant_tensor=True)
            self.act = qnn.QuantHardTanh(bit_width=4, max_val=1.0, min_val=-1.0, return_quant_tensor=True)
            self.pool = nn.AvgPool1d(2)
            self.q = qnn.QuantIdentity(bit_width=6, return_quant_tensor=True)
            n = 4 * 4
        self.fc = qnn.QuantLinear(n, 3, weight_bit_width=4, bias_quant=Int32Bias)

    def forward(self, x):
        return self.fc(torch.flatten(self.q(self.pool(self.act(self.conv(self.inp(x))))), 1))


@pytest.mark.parametrize("two_d", [False, True])
def test_hardtanh_conv1d_avgpool_truncavgpool(two_d):
    shape = (1, 8, 8) if two_d else (3, 8)
    m = calibrated(PoolZoo(two_d), shape)
    net = import_brevitas(m, shape)
    kinds = [op.kind for op in net.ops]
    assert "avgpool" in kinds and ("conv2d" if two_d else "conv1d") in kinds
    check_exact(m, net, shape)


def test_cli_convert_torch_module_file_and_pt(tmp_path, capsys):
    """Modules passed to the command line as file.py:NAME (a state_dict loaded inside), then predict == Brevitas."""
    from qrtl.cli import main

    m = calibrated(MLP(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat), (16,))
    torch.save(m.state_dict(), tmp_path / "weights.pt")
    (tmp_path / "build_model.py").write_text(
        "import sys, torch\n"
        "import qat.recipes.brevitas_recipes as R\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_brevitas_import import MLP\n"
        "from brevitas.quant import Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat\n"
        "def trained():\n"
        "    m = MLP(Int8WeightPerTensorFloat, Int8ActPerTensorFloat, Uint8ActPerTensorFloat)\n"
        f"    m.load_state_dict(torch.load({str(tmp_path / 'weights.pt')!r}, weights_only=True))\n"
        "    return m.eval()\n"
        "not_a_module = 3\n"
        "def broken():\n"
        "    raise RuntimeError('no weights here')\n"
        "def model():\n"
        "    m = R.mlp(16, [8], 3, 'po2_int4', seed=1)\n"
        "    m.train()\n"
        "    with torch.no_grad():\n"
        "        for _ in range(4):\n"
        "            m(torch.rand(32, 16))\n"
        "    return m.eval()\n")
    assert main(["convert", f"{tmp_path / 'build_model.py'}:trained", "--input-shape", "16",
                 "-o", str(tmp_path / "a")]) == 0
    assert main(["convert", f"{tmp_path / 'build_model.py'}:model", "--input-shape", "16", "--exact-scales",
                 "-o", str(tmp_path / "b")]) == 0
    x = inputs(import_brevitas(m, (16,)), (16,), n=2000)
    np.save(tmp_path / "x.npy", x)
    assert main(["predict", str(tmp_path / "a"), "--input", str(tmp_path / "x.npy"), "-o", str(tmp_path / "y.npy")]) == 0
    with torch.no_grad():
        want = m(torch.from_numpy(x)).numpy().astype(np.float64)
    from qat.ir import netfile

    step = unit_scale(netfile.load(tmp_path / "a").tensor_types()["fc2"])
    assert np.array_equal(np.round(want / step), np.round(np.load(tmp_path / "y.npy") / step))
    capsys.readouterr()
    # bad inputs: one line each
    spec = f"{tmp_path / 'build_model.py'}:trained"
    for argv, msg in (([spec, "-o", str(tmp_path / "c")], "needs --input-shape"),
                      ([f"{tmp_path / 'build_model.py'}:not_a_module", "--input-shape", "16", "-o", str(tmp_path / "c")],
                       "not a torch.nn.Module"),
                      ([f"{tmp_path / 'build_model.py'}:nothing", "--input-shape", "16", "-o", str(tmp_path / "c")],
                       "defines no 'nothing'"),
                      ([f"{tmp_path / 'build_model.py'}:broken", "--input-shape", "16", "-o", str(tmp_path / "c")],
                       "calling it failed: RuntimeError: no weights here"),
                      ([spec, "--input-shape", "1,x", "-o", str(tmp_path / "c")],
                       "--input-shape must be")):
        assert main(["convert", *argv]) == 1
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and msg in err[0], err


@pytest.mark.parametrize("preset", ["fp8_e4m3", "dyadic_int4"])
def test_hls_csim_of_brevitas_networks(preset, tmp_path):
    """The HLS C++ generator (g++ + ap_types C-simulation) on imported minifloat and dyadic networks."""
    import qat.recipes.brevitas_recipes as R
    from qat.ir import netfile
    from qrtl.cli import main

    m = calibrated(R.mlp(16, [12], 4, preset, seed=0), (16,))
    netfile.save(import_brevitas(m, (16,)), tmp_path / "net")
    assert main(["hls", str(tmp_path / "net"), "-o", str(tmp_path / "hls"), "--csim", "--random", "300"]) == 0


def test_concat_and_final_softmax():
    class CatSoft(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.a = qnn.QuantLinear(16, 6, weight_bit_width=4, bias_quant=Int32Bias, return_quant_tensor=True)
            self.b = qnn.QuantLinear(16, 5, weight_bit_width=4, bias_quant=Int32Bias, return_quant_tensor=True)
            self.q = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)  # one scale for both branches
            self.fc = qnn.QuantLinear(11, 3, weight_bit_width=4, bias_quant=Int32Bias)

        def forward(self, x):
            x = self.inp(x)
            return torch.softmax(self.fc(torch.cat([self.q(self.a(x)), self.q(self.b(x))], dim=1)), dim=1)

    m = calibrated(CatSoft(), (16,))
    net = import_brevitas(m, (16,))
    assert "concat" in [op.kind for op in net.ops] and any("softmax dropped" in n for n in net.notes)
    x = inputs(net, (16,), n=N)
    got = golden.run(net, quantize_real(net.inputs[0], x))[net.outputs[0]]
    with torch.no_grad():
        xq = m.inp(torch.from_numpy(x))
        logits = m.fc(torch.cat([m.q(m.a(xq)), m.q(m.b(xq))], 1))
    step = unit_scale(net.tensor_types()[net.outputs[0]])
    assert np.array_equal(np.asarray(got, dtype=np.float64), np.round(logits.numpy().astype(np.float64) / step))


class StridedPadded(nn.Module):
    """PyTorch-style padding that is not TensorFlow 'same': stride-2 conv with padding 1, padded maxpool, conv1d."""

    def __init__(self, one_d=False):
        super().__init__()
        conv, pool = (qnn.QuantConv1d, nn.MaxPool1d) if one_d else (qnn.QuantConv2d, nn.MaxPool2d)
        self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
        self.c1 = conv(2, 4, 3, stride=2, padding=1, weight_bit_width=4, bias_quant=Int32Bias,
                       return_quant_tensor=True)
        self.r1 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.pool = pool(3, stride=2, padding=1)
        self.c2 = conv(4, 3, 2, padding=(1 if one_d else (0, 1)), weight_bit_width=4, bias_quant=Int32Bias,
                       return_quant_tensor=True)
        self.r2 = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(3 * (4 if one_d else 2 * 4), 3, weight_bit_width=4, bias_quant=Int32Bias)

    def forward(self, x):
        return self.fc(torch.flatten(self.r2(self.c2(self.pool(self.r1(self.c1(self.inp(x)))))), 1))


@pytest.mark.parametrize("one_d", [False, True])
def test_explicit_pytorch_padding_golden_rtl_hls(one_d, tmp_path):
    from qat.ir import netfile
    from qrtl.cli import main

    shape = (2, 10) if one_d else (2, 10, 11)
    m = calibrated(StridedPadded(one_d), shape)
    net = import_brevitas(m, shape)
    assert isinstance(net.op("c1").attrs["padding"], list)
    check_exact(m, net, shape)
    netfile.save(net, tmp_path / "net")
    if one_d:  # the 2-D model is co-simulated through the command line in test_cli_convert_and_cosim
        assert main(["cosim", str(tmp_path / "net"), "--random", "200", "--trace-layers", "-o", str(tmp_path / "sim")]) == 0
    assert main(["hls", str(tmp_path / "net"), "-o", str(tmp_path / "hls"), "--csim", "--random", "200"]) == 0


@pytest.mark.parametrize("preset", ["fp8_e5m2", "fp8_e5m2_ocp", "fp8_e5m2_fnuz", "fp6_e3m2", "fp6_e2m3",
                                    "fp4_e2m1_ocp"])
def test_minifloat_families_match_brevitas(preset):
    """Brevitas's FP8 E5M2 / FP6 / FP4 families (plain, OCP, FNUZ) through the importer.

    FP6/FP4 are bit-equal.  E5M2 products span 2^-32..2^32 of the scales, so PyTorch's float32 sums
    are not exact and a few outputs differ by one minifloat step; on those inputs every golden
    rounding is checked against exact rational arithmetic with the exact (not dyadic) scale ratio."""
    import qat.recipes.brevitas_recipes as R

    p = R.get_preset(preset)
    m = calibrated(MinifloatMLP(p.weight, p.act), (16,))
    net = import_brevitas(m, (16,))
    t = net.inputs[0].type
    assert isinstance(t, MinifloatType) and 1 + t.exp_bits + t.man_bits == int(preset[2])
    x = inputs(net, (16,))
    rep = agreement(m, net, x)
    print(f"{preset}: golden vs Brevitas mismatch {rep['mismatch_rate']:.4%} of outputs, "
          f"largest {rep['max_diff_steps']:g} raw units")
    if t.exp_bits < 5:
        assert rep["mismatch_rate"] == 0.0, rep
        return
    assert rep["argmax_agreement"] == 1.0
    # where Brevitas differs, golden is exact arithmetic: every minifloat rounding on those rows
    g = golden.run(net, quantize_real(net.inputs[0], x), keep_all=True)
    bad = np.asarray(rep["mismatch_inputs"])
    assert 0 < bad.size <= len(x) // 100
    types = net.tensor_types()
    for op in (o for o in net.ops if o.kind == "requant"):
        ratio = Fraction(float(unit_scale(types[op.inputs[0]])[0])) / Fraction(float(op.type.scale[0]))
        for i in bad[:20]:
            for c in range(op.shape[-1]):
                exact = _round_minifloat_exact(int(g[op.inputs[0]][i, c]) * ratio, op.type)
                assert int(g[op.name][i, c]) == exact


def test_hand_built_qonnx_graph_matmul_transposed_weights(tmp_path):
    """A QONNX graph written by hand (not by Brevitas): Quant -> Transpose -> MatMul + Add bias, Relu, Quant."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.normal(size=(4, 6)).astype(np.float32)  # (out, in): transposed in the graph
    b = rng.normal(size=(4,)).astype(np.float32) * 0.1
    inits = [numpy_helper.from_array(v, n) for n, v in (
        ("w", w), ("b", b), ("s_in", np.float32(0.125)), ("s_w", np.float32(0.0625)), ("zero", np.float32(0)),
        ("b8", np.float32(8)), ("b4", np.float32(4)), ("s_b", np.float32(0.125 * 0.0625)), ("b32", np.float32(32)),
        ("s_out", np.float32(0.25)))]
    q = "qonnx.custom_op.general"
    nodes = [
        helper.make_node("Quant", ["x", "s_in", "zero", "b8"], ["xq"], domain=q, signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("Quant", ["w", "s_w", "zero", "b4"], ["wq"], domain=q, signed=1, narrow=1, rounding_mode="ROUND"),
        helper.make_node("Transpose", ["wq"], ["wt"], perm=[1, 0]),
        helper.make_node("Quant", ["b", "s_b", "zero", "b32"], ["bq"], domain=q, signed=1, narrow=0, rounding_mode="ROUND"),
        helper.make_node("MatMul", ["xq", "wt"], ["mm"]),
        helper.make_node("Add", ["mm", "bq"], ["acc"]),
        helper.make_node("Relu", ["acc"], ["r"]),
        helper.make_node("Quant", ["r", "s_out", "zero", "b4"], ["y"], domain=q, signed=0, narrow=0, rounding_mode="ROUND"),
    ]
    graph = helper.make_graph(nodes, "hand", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid(q, 1)])
    onnx.save(model, str(tmp_path / "hand.onnx"))
    net = import_qonnx(tmp_path / "hand.onnx")
    assert [op.kind for op in net.ops] == ["dense", "requant"]
    x = rng.normal(size=(5000, 6)).astype(np.float32) * 4
    got = golden.run(net, quantize_real(net.inputs[0], x))[net.outputs[0]]
    # independent float64 reference of the same quantized arithmetic (all values exact in float64)
    xq = np.clip(np.round(x.astype(np.float32) / np.float32(0.125)), -128, 127)
    wq = np.clip(np.round(w / np.float32(0.0625)), -7, 7)
    bq = np.round(b / np.float32(0.125 * 0.0625))
    acc = xq @ wq.T + bq  # units of 1/128
    want = np.clip(np.round(np.maximum(acc, 0) * (0.125 * 0.0625) / 0.25), 0, 15)
    assert np.array_equal(np.asarray(got, dtype=np.float64), want)


class BinaryNet(nn.Module):
    """FINN-style binary network: sign inputs, binary weights, BatchNorm + sign, binary conv, logits."""

    def __init__(self, conv: bool, weight_scale: float = 1.0):
        from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

        super().__init__()
        self.conv = conv
        wq = SignedBinaryWeightPerTensorConst.let(scaling_const=weight_scale)
        bw = dict(weight_quant=wq, bias=False)
        self.inp = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        if conv:
            self.l1 = qnn.QuantConv2d(1, 6, 3, **bw)
            self.bn1 = nn.BatchNorm2d(6)
        else:
            self.l1 = qnn.QuantLinear(16, 24, **bw)
            self.bn1 = nn.BatchNorm1d(24)
        self.a1 = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)
        self.l2 = qnn.QuantLinear(6 * 6 * 6 if conv else 24, 12, **bw)
        self.a2 = qnn.QuantIdentity(act_quant=SignedBinaryActPerTensorConst, return_quant_tensor=True)  # sign, no BN
        self.out = qnn.QuantLinear(12, 4, **bw)

    def forward(self, x):
        y = self.a1(self.bn1(self.l1(self.inp(x))))
        return self.out(self.a2(self.l2(torch.flatten(y, 1) if self.conv else y)))


@pytest.mark.parametrize("conv", [False, True])
def test_binary_network_xnor_popcount(conv, tmp_path):
    from qat.ir import netfile
    from qrtl.cli import main

    shape = (1, 8, 8) if conv else (16,)
    m = BinaryNet(conv)
    calibrated(m, shape)
    with torch.no_grad():
        m.bn1.weight.copy_(torch.linspace(-1.0, 1.0, m.bn1.weight.numel()))
    net = import_brevitas(m.eval(), shape)
    kinds = [op.kind for op in net.ops]
    assert kinds[0] == ("bconv2d" if conv else "bdense") and "bdense" in kinds[1:]
    # BatchNorm + sign and the plain sign are fused into the binary layers (qat.ir.passes): per-channel compares
    assert sum(op.kind in ("bdense", "bconv2d") and "threshold" in op.arrays for op in net.ops) == 2
    assert not any(op.kind == "threshold" for op in net.ops)
    check_exact(m, net, shape)
    netfile.save(net, tmp_path / "net")
    assert main(["cosim", str(tmp_path / "net"), "--random", "200", "--trace-layers", "-o", str(tmp_path / "sim")]) == 0


def test_binary_default_weight_scale_float32_zero_sums():
    """Brevitas's default binary weight scale 0.1: PyTorch sums +-0.1 terms in float32, so an exact
    zero accumulator comes out as a tiny +-value and the next sign() is a coin toss.  Golden follows
    the exact integer (0 -> +1); the difference is measured, and vanishes with a power-of-two scale."""
    m = calibrated(BinaryNet(False, weight_scale=0.1), (16,))
    net = import_brevitas(m, (16,))
    rep = agreement(m, net, inputs(net, (16,)))
    print(f"binary MLP, weight scale 0.1: golden vs Brevitas differ on {rep['mismatch_rate']:.2%} of outputs")
    g = golden.run(net, quantize_real(net.inputs[0], inputs(net, (16,), n=2000)), keep_all=True)
    l2 = net.op("l2")  # its sign is fused into it: the popcount sums themselves, without the compare
    plain = Op(l2.name, l2.kind, l2.inputs, l2.shape, l2.type, l2.attrs, {"weight": l2.arrays["weight"]})
    sums = golden.run_op(plain, [g[l2.inputs[0]]], [net.tensor_types()[l2.inputs[0]]])
    zero_sums = float(np.mean(np.asarray(sums) == 0))
    assert zero_sums > 0.05 and rep["mismatch_rate"] > 0  # exact zero sums occur and PyTorch mis-signs some
    m1 = calibrated(BinaryNet(False, weight_scale=1.0), (16,))
    assert agreement(m1, import_brevitas(m1, (16,)), inputs(net, (16,)))["mismatch_rate"] == 0.0


def test_default_float_bias_refined_grid():
    """QuantLinear's default (unquantized, float32) bias: put on a refined accumulator grid, measured."""
    class FloatBias(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = qnn.QuantIdentity(bit_width=8, return_quant_tensor=True)
            self.fc1 = qnn.QuantLinear(16, 32, weight_bit_width=4)
            self.relu = qnn.QuantReLU(bit_width=4, return_quant_tensor=True)
            self.fc2 = qnn.QuantLinear(32, 5, weight_bit_width=4)

        def forward(self, x):
            return self.fc2(self.relu(self.fc1(self.inp(x))))

    m = calibrated(FloatBias(), (16,))
    net = import_brevitas(m, (16,))
    assert sum("float bias" in n for n in net.notes) == 2 and net.op("fc1").attrs.get("weight_shift", 0) > 0
    rep = agreement(m, net, inputs(net, (16,)))
    print(f"float-bias MLP: golden vs Brevitas mismatch {rep['mismatch_rate']:.4%}")
    assert rep["mismatch_rate"] == 0.0 and rep["argmax_agreement"] == 1.0
