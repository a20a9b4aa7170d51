"""QKeras quantized_po2 weights and quantized_po2 / quantized_relu_po2 activations: imported exactly.

Golden integer model vs QKeras itself (TensorFlow, no mocks) on >= 10,000 random inputs per model
plus exhaustive sweeps that contain every rounding boundary of the log2 rounding; refusals are one
line; the RTL of a po2 dense has a single shift per product (no adder) and co-simulates bit-exactly."""
from __future__ import annotations

import math
import re

import numpy as np
import pytest

from qat.importers.from_qkeras import ImportError_, import_qkeras
from qat.importers.input_quant import quantize_real
from qat.ir import golden

N_RANDOM = 10_000


def _q():
    import qkeras

    return qkeras


def _real(net, x: np.ndarray) -> np.ndarray:
    out = net.outputs[0]
    t = next(op.type for op in net.ops if op.name == out)
    y = golden.run(net, quantize_real(net.inputs[0], x))[out]
    return np.asarray(y, dtype=np.float64) * np.asarray(t.scale, dtype=np.float64)


def _keras(model, x: np.ndarray) -> np.ndarray:
    return model.predict(x.astype(np.float32), verbose=0, batch_size=4096).astype(np.float64)


def _set_random(model, rng, scale=0.5):
    for layer in model.layers:
        if layer.get_weights():
            layer.set_weights([rng.normal(0, scale, w.shape).astype(np.float32) if w.ndim <= 2 else w
                               for w in layer.get_weights()])


def mlp(act, kernel="quantized_po2(4,1)", bias="quantized_po2(4,1)", bn=False, n_in=16, hidden=24, seed=0,
        in_q="quantized_bits(8,3,alpha=1)"):
    """in_q -> QDense(po2 kernel) [-> BatchNorm] -> QActivation(act) -> QDense(po2 kernel) (logits)."""
    import tensorflow as tf

    q = _q()
    rng = np.random.default_rng(seed)
    inp = tf.keras.Input((n_in,), name="x")
    x = q.QActivation(in_q, name="in_q")(inp)
    x = q.QDense(hidden, kernel_quantizer=kernel, bias_quantizer=bias, name="fc1")(x)
    if bn:
        x = tf.keras.layers.BatchNormalization(name="bn")(x)
    x = q.QActivation(act, name="act")(x)
    x = q.QDense(10, kernel_quantizer="quantized_po2(4,1)", bias_quantizer="quantized_bits(8,3,alpha=1)",
                 name="fc2")(x)
    model = tf.keras.Model(inp, x, name="po2_mlp")
    _set_random(model, rng)
    if bn:
        g, b, m, v = model.get_layer("bn").get_weights()
        model.get_layer("bn").set_weights([rng.uniform(-1.5, 1.5, g.shape).astype(np.float32),
                                           rng.normal(0, 0.3, b.shape).astype(np.float32),
                                           rng.normal(0, 0.3, m.shape).astype(np.float32),
                                           rng.uniform(0.2, 2, v.shape).astype(np.float32)])
    # a few kernel weights exactly 0 (QKeras maps them to +2^min_exp) and at po2 rounding boundaries
    w, b = model.get_layer("fc1").get_weights()
    w.flat[:3] = 0.0
    w.flat[3:9] = np.float32(2 ** -0.5) * np.array([1, -1, 0.5, -0.5, 0.25, 2], np.float32)
    model.get_layer("fc1").set_weights([w, b])
    return model


ACTS = ["quantized_relu_po2(3,4)", "quantized_relu_po2(4)", "quantized_relu_po2(4,2,negative_slope=0.25)",
        "quantized_po2(4,4)", "quantized_relu_po2(3,4,log2_rounding='floor')"]


@pytest.mark.parametrize("act", ACTS)
def test_po2_mlp_matches_qkeras(act):
    model = mlp(act)
    net = import_qkeras(model)
    kinds = [op.kind for op in net.ops]
    assert kinds == ["dense", "threshold", "lut", "dense"], kinds
    rng = np.random.default_rng(1)
    x = rng.normal(0, 2.5, (N_RANDOM, 16)).astype(np.float32)
    x[:500] = np.round(x[:500] * 16) / 16 + 1 / 32  # ties of the input quantizer
    want, got = _keras(model, x), _real(net, x)
    equal = int(np.sum(np.all(got == want, axis=1)))
    assert equal == N_RANDOM, f"{act}: {equal}/{N_RANDOM} outputs equal"
    # the activation's levels are really used: several powers of two occur
    env = golden.run(net, quantize_real(net.inputs[0], x), keep_all=True)
    assert len(np.unique(env["act"])) >= 4


def test_po2_weights_are_powers_of_two_including_zero():
    """quantized_po2 kernels: integers +-2^k; a zero weight is +2^min_exp (QKeras' sign(0) = +1)."""
    model = mlp("quantized_relu_po2(3,4)")
    net = import_qkeras(model)
    w = net.ops[0].arrays["weight"]
    step = net.ops[0].attrs["weight_scale"][0]
    assert np.all(w != 0)
    assert np.all(np.frexp(np.abs(w).astype(np.float64))[0] == 0.5)  # every |w| a power of two
    qk = _q().quantized_po2(4, 1)
    kernel = model.get_layer("fc1").get_weights()[0]
    assert np.array_equal(w * step, qk(kernel).numpy().astype(np.float64))
    assert w.flat[0] * step == 2.0 ** qk._min_exp  # the zero weight


def test_batchnorm_before_po2_activation_per_channel():
    model = mlp("quantized_relu_po2(4,4)", bn=True, seed=3)
    net = import_qkeras(model)
    rng = np.random.default_rng(4)
    x = rng.normal(0, 2.5, (N_RANDOM, 16)).astype(np.float32)
    assert np.array_equal(_real(net, x), _keras(model, x))


def test_exhaustive_single_input_hits_every_rounding_boundary():
    """One input feature on a 10-bit grid: all 1024 grid values (and the midpoints, ties of the input
    quantizer) reach every accumulator value of the first layer, so every log2 rounding boundary
    inside the range is tested on both sides; plus 10,000 random inputs."""
    model = mlp("quantized_relu_po2(4,4)", n_in=1, hidden=8, seed=5, in_q="quantized_bits(10,5,alpha=1)")
    net = import_qkeras(model)
    step = 2.0 ** (5 - 9)
    grid = np.arange(-512, 512) * step
    x = np.concatenate([grid, grid + step / 2, np.random.default_rng(6).normal(0, 12, N_RANDOM)])[:, None]
    assert np.array_equal(_real(net, x), _keras(model, x))
    # the sweep does straddle the boundaries: the activation's input x, float64 reference of the rule
    env = golden.run(net, quantize_real(net.inputs[0], x.astype(np.float32)), keep_all=True)
    acc = np.asarray(env["fc1"], dtype=np.float64) * net.ops[0].type.scale[0]
    lvl = np.asarray(env["act"], dtype=np.float64) * next(o for o in net.ops if o.name == "act").type.scale[0]
    qa = _q().quantized_relu_po2(4, 4)
    pos = acc > 1e-7
    e = np.clip(np.round(np.log2(np.where(pos, np.minimum(acc, 4), 1.0))), qa._min_exp, qa._max_exp)
    ref = np.where(pos, 2.0 ** e, 2.0 ** qa._min_exp)
    assert np.array_equal(lvl, ref)
    ratio = acc[pos] / 2.0 ** np.floor(np.log2(acc[pos]))
    assert np.any(np.abs(ratio - math.sqrt(2)) < 0.01), "no accumulator next to a rounding boundary 2^(k+1/2)"
    assert np.any(acc <= 0) and np.any(lvl == 2.0 ** qa._min_exp)  # the zero case


@pytest.mark.parametrize("act", ["quantized_po2(4,8)", "quantized_relu_po2(3,4,quadratic_approximation=True)"])
def test_narrow_input_becomes_one_table(act):
    """A po2 activation on an 8-bit input: one lut over all 256 input values (every entry from TF).
    quadratic_approximation is not monotonic (0 -> 2^min_exp, small x -> 2^(2k) below it): a table
    matches it too."""
    import tensorflow as tf

    q = _q()
    inp = tf.keras.Input((6,), name="x")
    x = q.QActivation("quantized_bits(8,4,alpha=1)", name="in_q")(inp)
    x = q.QActivation(act, name="act")(x)
    model = tf.keras.Model(inp, x)
    net = import_qkeras(model)
    assert [op.kind for op in net.ops] == ["lut"]
    g = np.arange(-128, 128) * 2.0 ** -3
    x = np.concatenate([np.repeat(g[:, None], 6, 1), np.random.default_rng(7).normal(0, 6, (N_RANDOM, 6))])
    assert np.array_equal(_real(net, x), _keras(model, x))


@pytest.mark.parametrize("act, needle", [
    ("quantized_relu_po2(4,4,use_stochastic_rounding=True)", "stochastic"),
    ("quantized_relu_po2(4,4,qnoise_factor=0.5)", "qnoise_factor"),
    ("quantized_relu_po2(3,4,quadratic_approximation=True)", "not monotonic"),
])
def test_unmatchable_activation_configs_are_refused(act, needle):
    with pytest.raises(ImportError_, match=needle) as e:
        import_qkeras(mlp(act))
    assert "layer 'act'" in str(e.value) and "\n" not in str(e.value)


def test_unmatchable_weight_and_input_configs_are_refused():
    with pytest.raises(ImportError_, match=r"layer 'fc1'.*spans 2\^-64") as e:  # zero -> 2^-64 next to 2^0
        import_qkeras(mlp("quantized_relu_po2(3,4)", kernel="quantized_po2(8)"))
    assert "\n" not in str(e.value)
    with pytest.raises(ImportError_, match=r"layer 'in_q'.*cannot be the input quantizer"):
        import_qkeras(mlp("quantized_relu_po2(3,4)", in_q="quantized_relu_po2(4,4)"))


def test_cli_refusal_is_one_line(tmp_path, capsys):
    from qrtl.cli import main

    mlp("quantized_relu_po2(4,4,use_stochastic_rounding=True)").save(tmp_path / "stoch.h5")
    assert main(["convert", str(tmp_path / "stoch.h5"), "-o", str(tmp_path / "n")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "stoch" in err[0] and "layer 'act'" in err[0] and "stochastic" in err[0], err


# ---- RTL -------------------------------------------------------------------------------

def small_po2(seed=8):
    return mlp("quantized_relu_po2(3,4)", n_in=6, hidden=5, seed=seed)


def _module(design, op_name: str) -> str:
    return next(text for name, text in design.files.items() if name.endswith(f"_{op_name}.v"))


def test_rtl_po2_products_are_single_shifts():
    """Every po2 weight is one CSD digit: the dense module holds shifts and only the adders of the sums
    (at most sum over outputs of (terms - 1) + biases); a quantized_bits kernel with odd weights needs more."""
    from hls.rtl.text import csd
    from hls.rtl.verilog import generate

    def adders(text: str) -> int:
        return len(re.findall(r"^\s*wire signed \[\d+:0\] (ad|ng)_\d+ =", text, re.M))

    def sum_only_bound(op) -> int:
        w, b = op.arrays["weight"], op.arrays["bias"]
        return int(sum(max(int(np.count_nonzero(w[:, o])) - 1, 0) + int(b[o] != 0) for o in range(w.shape[1])))

    net = import_qkeras(small_po2())
    dense = net.ops[0]
    assert all(len(csd(int(v))) == 1 for v in dense.arrays["weight"].ravel())
    text = _module(generate(net), dense.name)
    assert re.search(r"\{x0_\d+, \d+'b0\}", text)  # products are wiring: {x, k'b0}
    assert adders(text) <= sum_only_bound(dense), text
    # the same check fails for a non-power-of-two kernel (the check can tell)
    other = import_qkeras(mlp("quantized_relu_po2(3,4)", kernel="quantized_bits(6,2,alpha=1)",
                              bias="quantized_bits(8,3,alpha=1)", n_in=6, hidden=5, seed=8))
    assert any(len(csd(int(v))) > 1 for v in other.ops[0].arrays["weight"].ravel())
    assert adders(_module(generate(other), other.ops[0].name)) > sum_only_bound(other.ops[0])


def test_cosim_po2_model(tmp_path):
    """Verilator co-simulation of a small po2 model (po2 dense, threshold + lut activation, po2 dense)."""
    from rtl_sim.cosim import run_cosim

    net = import_qkeras(small_po2())
    rng = np.random.default_rng(9)
    x = quantize_real(net.inputs[0], rng.normal(0, 2.5, (300, 6)).astype(np.float32))
    res = run_cosim(net, x, tmp_path, "verilator", trace_layers=True, seed=2)
    assert res.vectors == 300 and res.exact_vectors == 300 and res.mismatches == 0, res
    assert res.ok
