"""Brevitas QAT recipes (qat/recipes/brevitas_recipes.py): presets, dyadic scales, BN folding,
training on scikit-learn digits, determinism, minifloat grids, QONNX export."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import brevitas  # noqa: F401  (required dependencies: a broken install fails loudly, never skips)
import sklearn  # noqa: F401
import torch

from qat.recipes import brevitas_recipes as R  # noqa: E402

warnings.filterwarnings("ignore", category=UserWarning)


@pytest.fixture(scope="module")
def digits():
    return R.digits_data(seed=0)


def _is_po2(t: "torch.Tensor") -> bool:
    m, _ = np.frexp(t.detach().double().cpu().numpy())
    return bool(np.all(m == 0.5))


# ------------------------------------------------------------------ presets / builders
@pytest.mark.parametrize("name", sorted(R.PRESETS))
def test_every_preset_builds_trains_and_runs(name):
    p = R.get_preset(name)
    torch.manual_seed(1)
    x = torch.rand(6, 16)
    for signed in (True, False):
        m = R.mlp(16, [8], 3, p, input_signed=signed, seed=0)
        m.train()
        out = m(x)
        out.sum().backward()
        assert m.fc0.weight.grad is not None and torch.isfinite(m.fc0.weight.grad).all()
        m.eval()
        with torch.no_grad():
            y = m(x)
        assert isinstance(y, torch.Tensor) and y.shape == (6, 3) and torch.isfinite(y).all()
    mo = R.mlp(16, [8], 3, p, output_quant=True, seed=0).eval()
    assert mo(x).shape == (6, 3)


@pytest.mark.parametrize("name", ["int8", "po2_int4", "dyadic_int4", "fp8_e4m3", "fp4_e2m1_fnuz"])
def test_cnn_builds_and_runs(name):
    m = R.cnn((1, 8, 8), [4], 10, name, batchnorm=True, seed=0)
    x = torch.rand(5, 1, 8, 8)
    m.train()
    m(x).sum().backward()
    m.eval()
    assert m(x).shape == (5, 10)


def test_preset_names_and_metadata():
    assert {"int8", "int4", "po2_int8", "po2_int4", "dyadic_int4", "fp8_e4m3", "fp8_e5m2",
            "fp6_e3m2", "fp6_e2m3", "fp4_e2m1", "fp8_e4m3_ocp", "fp8_e4m3_fnuz"} <= set(R.PRESETS)
    d = R.get_preset("dyadic_int4").describe()
    assert d["weight"]["dyadic_mantissa_bit_width"] == 8 and d["weight"]["bit_width"] == 4
    assert d["weight"]["narrow_range"] is True
    assert R.get_preset("dyadic_int4_m5").mult_bits == 5
    with pytest.raises(KeyError):
        R.get_preset("int7x")
    # Format maxima as BRIEF states them (plain 480, OCP 448, FNUZ 240 for E4M3).
    assert R.minifloat_max(4, 3) == 480.0
    assert R.minifloat_max(4, 3, variant="ocp") == 448.0
    assert R.minifloat_max(4, 3, variant="fnuz") == 240.0
    assert R.minifloat_max(5, 2, variant="ocp") == 57344.0
    assert R.minifloat_max(2, 1) == 6.0 and R.minifloat_max(2, 3) == 7.5 and R.minifloat_max(3, 2) == 28.0
    assert len(R.minifloat_values(2, 1)) == 15  # 16 codes, +0 and -0 coincide


# ------------------------------------------------------------------ dyadic scales
def test_dyadic_restrict_value_rounding_and_ste():
    r = R.DyadicMantissaRestrictValue(4, "ceil")
    x = torch.tensor([0.3, 0.29, 1.0, 0.999], requires_grad=True)
    y = r(x)
    # 0.3 = 0.6*2^-1, 0.6*16 = 9.6 -> 10 -> 10/32; 0.29 -> 9.28 -> 10; 0.999 -> 15.98 -> 16 = 2^0
    assert y.tolist() == [10 / 32, 10 / 32, 1.0, 1.0]
    y.sum().backward()
    assert x.grad.tolist() == [1.0] * 4  # straight-through
    rr = R.DyadicMantissaRestrictValue(4, "round")
    assert rr(torch.tensor([0.29])).item() == 9 / 32
    b, c = R.dyadic_decompose(torch.tensor([10 / 32, 1.0, 0.75]))
    assert b.tolist() == [5, 1, 3] and c.tolist() == [4, 0, 2]


@pytest.mark.parametrize("bits,mult_bits", [(4, 8), (4, 3), (8, 5)])
def test_dyadic_weight_scales_are_w_bit_dyadic(digits, bits, mult_bits):
    Xtr, _, ytr, _ = digits
    m = R.mlp(64, [32], 10, R.dyadic(bits, mult_bits), input_signed=False, seed=0)
    R.train(m, Xtr[:640], ytr[:640], epochs=1)
    for layer in (m.fc0, m.fc_out):
        qw = layer.quant_weight()
        assert qw.scale.shape == (layer.out_features, 1)  # per output channel
        b, c = R.dyadic_decompose(qw.scale)
        assert np.all(b > 0) and np.all(b < 2 ** mult_bits)
        assert torch.equal(qw.value, qw.int().double().float() * qw.scale)  # int * scale exactly
        lim = 2 ** (bits - 1) - 1
        w_int = qw.int().long()
        assert int(w_int.abs().max()) <= lim and int(w_int.min()) >= -lim  # narrow range
        # ceil rounding of the scale mantissa grows s by < 2^-(W-1): no weight saturates and
        # each channel's absmax lands at >= lim / (1 + 2^-(W-1)).
        ch_max = w_int.abs().amax(dim=1)
        assert int(ch_max.min()) >= math.floor(lim / (1 + 2.0 ** -(mult_bits - 1)))
        if mult_bits >= bits:
            assert int(ch_max.max()) == lim
    if mult_bits == 3:  # the restriction really bites: at most 4 mantissas 4..7 (odd-reduced 1,3,5,7)
        b, _ = R.dyadic_decompose(m.fc0.quant_weight().scale)
        assert set(np.unique(b)) <= {1, 3, 5, 7}


@pytest.mark.parametrize("name", ["po2_int8", "po2_int4", "dyadic_int4", "dyadic_int8"])
def test_activation_scales_are_powers_of_two(digits, name):
    Xtr, _, ytr, _ = digits
    m = R.mlp(64, [32, 16], 10, name, input_signed=False, seed=0)
    R.train(m, Xtr, ytr, epochs=2)  # 46 steps > collect_stats_steps (30): learned scales
    m.eval()
    for q in (m.input_quant, m.act0, m.act1):
        assert _is_po2(q.act_quant.scale())
    if name.startswith("po2"):
        assert _is_po2(m.fc0.quant_weight().scale)


def test_dyadic_forward_equals_integer_pipeline(digits):
    """Brevitas float32 forward == integer acc, dyadic requant b/2^c, round half even, clamp."""
    Xtr, Xte, ytr, _ = digits
    W = 8
    m = R.mlp(64, [32], 10, R.dyadic(4, W), input_signed=False, seed=0)
    R.train(m, Xtr, ytr, epochs=2)
    m.eval()
    x = torch.as_tensor(Xte)
    with torch.no_grad():
        qx = m.input_quant(x)
        fc0 = m.fc0(qx)
        qa = m.act0(fc0)
    x_int = qx.int().numpy().astype(np.int64)
    qw = m.fc0.quant_weight()
    w_int = qw.int().numpy().astype(np.int64)
    s_x = float(qx.scale)
    s_w = qw.scale.detach().double().numpy().reshape(-1)
    bias_int = np.round(m.fc0.bias.detach().double().numpy() / (s_x * s_w)).astype(np.int64)
    b, c = R.dyadic_decompose(s_w)
    assert np.all(b < 2 ** W)
    acc = x_int @ w_int.T + bias_int
    # Exactness condition of the float32 forward (documented in the module).
    bound = (np.abs(x_int) @ np.abs(w_int).T + np.abs(bias_int)) * b
    assert bound.max() < 2 ** 24
    # Linear output: acc * s_x * s_w, bit-exact in float32.
    expect = (acc * (s_x * s_w)).astype(np.float32)
    assert np.array_equal(fc0.numpy(), expect)
    # Requantization: y = clamp(round_half_even(acc * b / 2^shift), 0, 15).
    s_y = float(qa.scale)
    assert _is_po2(torch.tensor(s_x)) and _is_po2(torch.tensor(s_y))
    shift = c - int(round(math.log2(s_x))) + int(round(math.log2(s_y)))
    y = np.clip(np.round(np.ldexp((acc * b).astype(np.float64), -shift)), 0, 15).astype(np.int64)
    assert np.array_equal(qa.int().numpy().astype(np.int64), y)
    assert (y > 0).mean() > 0.1  # not a trivially all-zero layer


# ------------------------------------------------------------------ BatchNorm folding
@pytest.mark.parametrize("kind", ["mlp", "cnn"])
def test_fold_batchnorm_preserves_float_outputs(digits, kind):
    from brevitas.graph.calibrate import quantization_status_manager
    Xtr, Xte, ytr, _ = digits
    if kind == "mlp":
        m = R.mlp(64, [32, 16], 10, "dyadic_int4", batchnorm=True, input_signed=False, seed=0)
        X, Xt = Xtr, Xte[:64]
    else:
        m = R.cnn((1, 8, 8), [4, 8], 10, "int8", batchnorm=True, input_signed=False, seed=0)
        X, Xt = Xtr.reshape(-1, 1, 8, 8), Xte[:64].reshape(-1, 1, 8, 8)
    R.train(m, X, ytr, epochs=1)  # non-trivial running stats and affine parameters
    m.eval()
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(bns) == 2 and not torch.allclose(bns[0].running_var, torch.ones_like(bns[0].running_var))
    x = torch.as_tensor(Xt).double()
    m = m.double()
    with quantization_status_manager(m, disable_act_quant=True, disable_weight_quant=True,
                                     disable_bias_quant=True), torch.no_grad():
        ref = m(x)
        R.fold_batchnorm(m)
        out = m(x)
    assert not any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    # float64 reassociation only: (W x) * k + ... vs (W k) x; relative error ~ fan_in * 2^-52.
    assert torch.allclose(out, ref, rtol=0, atol=1e-12 * float(ref.abs().max()))
    # Still a working quantized model after folding.
    m = m.float()
    assert torch.isfinite(m(x.float())).all()


# ------------------------------------------------------------------ training
@pytest.mark.parametrize("name,floor", [
    ("int8", 0.85), ("dyadic_int4", 0.80), ("po2_int4", 0.80), ("fp8_e4m3", 0.80), ("fp4_e2m1", 0.80)])
def test_digits_accuracy(digits, name, floor):
    """3 epochs, MLP 64-32-10, Adam lr 1e-2, batch 64, seed 0.  Measured test accuracy:
    int8 0.911, dyadic_int4 0.881, po2_int4 0.914, fp8_e4m3 0.903, fp4_e2m1 0.908."""
    Xtr, Xte, ytr, yte = digits
    m = R.mlp(64, [32], 10, name, input_signed=False, seed=0)
    h = R.train(m, Xtr, ytr, epochs=3, lr=1e-2, seed=0)
    assert len(h) == 3 and h[-1]["loss"] < h[0]["loss"]
    assert R.evaluate(m, Xte, yte) > floor


def test_dyadic_recipe_hawq_flow(digits):
    Xtr, Xte, ytr, yte = digits
    m, info = R.dyadic_recipe(Xtr, ytr, hidden=[32], bits=4, mult_bits=8, epochs=3, finetune_epochs=2)
    assert not any(isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) for mod in m.modules())
    assert info["preset"] == "dyadic_int4" and len(info["train"]) == 3 and len(info["finetune"]) == 2
    assert R.evaluate(m, Xte, yte) > 0.90  # measured 0.969
    b, _ = R.dyadic_decompose(m.fc0.quant_weight().scale)
    assert np.all(b < 2 ** 8)


def test_training_is_deterministic(digits):
    Xtr, _, ytr, _ = digits

    def run(seed):
        m = R.mlp(64, [32], 10, "dyadic_int4", batchnorm=True, input_signed=False, seed=seed)
        R.train(m, Xtr, ytr, epochs=2, seed=seed)
        return m.state_dict()

    a, b, c = run(0), run(0), run(1)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_digits_data_on_input_grid(digits):
    Xtr, Xte, ytr, yte = digits
    assert Xtr.dtype == np.float32 and Xtr.shape == (1437, 64) and Xte.shape == (360, 64)
    allx = np.concatenate([Xtr, Xte])
    assert allx.min() == 0.0 and allx.max() == 255 / 256
    assert np.array_equal(allx * 256, np.round(allx * 256))
    again = R.digits_data(seed=0)
    assert np.array_equal(again[0], Xtr) and np.array_equal(again[3], yte)


# ------------------------------------------------------------------ minifloat grids
@pytest.mark.parametrize("name", sorted(n for n, p in R.PRESETS.items() if p.kind == "minifloat"))
def test_minifloat_weights_and_acts_on_format_grid(name):
    p = R.get_preset(name)
    grid = R.minifloat_values(p.exponent_bits, p.mantissa_bits, p.exponent_bias, p.variant)
    top = R.minifloat_max(p.exponent_bits, p.mantissa_bits, p.exponent_bias, p.variant)
    m = R.mlp(64, [32], 10, p, seed=0)
    qw = m.fc0.quant_weight()
    v = _on_grid(qw)
    assert np.abs(v).max() == top  # absmax weight maps onto the format max
    assert np.isin(v, grid).all()
    assert len(np.unique(v)) <= 2 ** p.bits
    # Activation quantizer (learned scale) output is on the grid too.
    m.train()
    m(torch.randn(32, 64))
    m.eval()
    with torch.no_grad():
        qx = m.input_quant(torch.randn(32, 64) * 3)
    a = _on_grid(qx)
    assert np.isin(a, grid).all() and np.abs(a).max() == top  # x*3 saturates


def _on_grid(qt) -> np.ndarray:
    """Format values of a FloatQuantTensor.  ``value`` is fp32(minifloat * scale): rounded
    when the scale's mantissa plus the format's does not fit 24 bits, so ``value / scale``
    is NOT on the grid in general -- use ``minifloat()`` (recomputes from the value)."""
    mf = qt.minifloat().detach().double()
    scale = qt.scale.detach().double()
    assert torch.equal((mf * scale).float(), qt.value.detach())  # value = fp32 round of mf*scale
    return mf.numpy().ravel()


def test_custom_minifloat_factory():
    p = R.minifloat(3, 1, bias=2)
    assert p.bits == 5 and p.exponent_bias == 2 and p.name == "fp5_e3m1_b2"
    assert R.minifloat_max(3, 1, 2) == 2.0 ** (7 - 2) * 1.5
    m = R.mlp(8, [4], 2, p, seed=0)
    v = _on_grid(m.fc0.quant_weight())
    assert np.isin(v, R.minifloat_values(3, 1, 2)).all() and np.abs(v).max() == 48.0


# ------------------------------------------------------------------ QONNX export
@pytest.mark.parametrize("name,op", [("int8", "Quant"), ("po2_int4", "Quant"), ("dyadic_int4", "Quant"),
                                     ("fp8_e4m3", "FloatQuant"), ("fp8_e5m2_ocp", "FloatQuant"),
                                     ("fp4_e2m1_fnuz", "FloatQuant")])
def test_export_qonnx(tmp_path, name, op):
    import onnx
    m = R.mlp(64, [16], 10, name, input_signed=False, seed=0)
    m.train()
    m(torch.rand(16, 64))
    ok, msg = R.qonnx_export_ok(m, torch.rand(1, 64), str(tmp_path / f"{name}.onnx"))
    assert ok, msg
    g = onnx.load(str(tmp_path / f"{name}.onnx")).graph
    assert op in {n.op_type for n in g.node}


def test_exported_dyadic_qonnx_executes_bit_exact(tmp_path, digits):
    """qonnx 0.4.0 runs the export; po2/dyadic scales make it equal to Brevitas exactly."""
    import onnx
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.core.onnx_exec import execute_onnx
    Xtr, Xte, ytr, _ = digits
    m = R.mlp(64, [32], 10, "dyadic_int4", input_signed=False, seed=0)
    R.train(m, Xtr, ytr, epochs=2)
    path = str(tmp_path / "d.onnx")
    assert R.qonnx_export_ok(m, torch.as_tensor(Xte[:1]), path)[0]
    om = onnx.load(path)
    # Brevitas lists the qonnx domain first; qonnx.execute_onnx takes opset_import[0] as the
    # ONNX opset for standard nodes (Gemm(1) then fails in onnxruntime): put "" first.
    imports = sorted(om.opset_import, key=lambda o: o.domain != "")
    del om.opset_import[:]
    om.opset_import.extend(imports)
    mw = ModelWrapper(om)
    iname, oname = mw.graph.input[0].name, mw.graph.output[0].name
    m.eval()
    with torch.no_grad():
        ref = m(torch.as_tensor(Xte[:8])).numpy()
    got = np.concatenate([execute_onnx(mw, {iname: Xte[i:i + 1]})[oname] for i in range(8)])
    assert np.array_equal(got, ref)
