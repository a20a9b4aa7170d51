"""HAWQ-V3 dyadic QKeras recipe (qat/recipes/qkeras_recipes.py) and its exact import.

A tiny MLP and a tiny CNN are trained on sklearn's digits (BN QAT, fold, fine-tune) and
imported; the golden integer model must equal QKeras bit for bit (``==``, no tolerance) on
>= 12,000 inputs over the whole input range (zeros, all-max, beyond both ends, exact ties of
the input quantizer, plus inputs constructed so that the first dyadic requant sees exact
rounding ties), at the output and at every quantized activation.  Also: multipliers < 2^W,
clear errors for a too-narrow multiplier width and unfolded BN, the float32-exactness bound
(warn / refuse), the BN fold in float, save/load, determinism, and a Verilator
co-simulation.  ``pytest -s`` prints the measured figures.
"""
from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

import qkeras  # noqa: F401  (required dependencies: a broken install fails loudly, never skips)
import sklearn  # noqa: F401
import tensorflow as tf

import qkeras_models as M  # noqa: E402
from qat.ir import golden  # noqa: E402
from qat.recipes import qkeras_recipes as R  # noqa: E402
from qat.importers.input_quant import quantize_real  # noqa: E402
from qat.ir.network import Network  # noqa: E402
from qat.importers.from_qkeras import ImportError_, convert_file, import_qkeras  # noqa: E402

N = M.N_INPUTS


# ---- helpers -------------------------------------------------------------------------------------

def predict(model, x: np.ndarray) -> np.ndarray:
    return model.predict(x.astype(np.float32), batch_size=4096, verbose=0).astype(np.float64)


def input_grid(net: Network) -> tuple[int, int, float]:
    spec = net.inputs[0].real_quantizer
    return int(spec["lo"]), int(spec["hi"]), 2.0 ** -int(spec["shift"])


def solve_acc(w: np.ndarray, bias: int, target: int, lo: int, hi: int, rng, tries: int = 20) -> np.ndarray | None:
    """Integer x in [lo, hi]^n with x @ w + bias == target (randomised coordinate walk)."""
    for _ in range(tries):
        x = rng.integers(lo, hi + 1, size=w.size)
        for _ in range(4000):
            d = int(target - (x @ w + bias))
            if d == 0:
                return x
            step = np.sign(d) * np.sign(w)
            ok = (w != 0) & (np.abs(w) <= abs(d)) & (x + step >= lo) & (x + step <= hi)
            if not ok.any():
                break
            i = rng.choice(np.flatnonzero(ok))
            x[i] += step[i]
    return None


def tie_inputs(net: Network, per_channel: int = 3, seed: int = 0) -> np.ndarray:
    """Raw inputs whose first-layer accumulators sit exactly on a rounding tie of the
    following dyadic requant (acc * b = (2k+1) * 2^(shift-1), result inside [lo, hi]),
    and one step either side of it.  Dense first layers only (conv: every window)."""
    rng = np.random.default_rng(seed)
    first, rq = net.ops[0], net.ops[1]
    lo_in, hi_in = net.inputs[0].type.lo, net.inputs[0].type.hi
    rows = []
    w = first.arrays["weight"].reshape(-1, first.arrays["weight"].shape[-1])
    mult = np.broadcast_to(rq.arrays["mult"], (w.shape[1],))
    shift = np.broadcast_to(rq.arrays["shift"], (w.shape[1],))
    for o in range(w.shape[1]):
        m, s = int(mult[o]), int(shift[o])
        if s <= 0:
            continue
        odd = [k for k in range(1, 64, 2) if (k * m + 1) // 2 <= rq.attrs["hi"]][:per_channel]
        for k in odd:
            t = k << (s - 1)  # acc * m == k*m * 2^(s-1), k*m odd: an exact tie (m is odd)
            for delta in (0, -1, 1):
                x = solve_acc(w[:, o], int(first.arrays["bias"][o]), t + delta, lo_in, hi_in, rng)
                if x is not None:
                    rows.append(x)
    shape = tuple(net.inputs[0].shape)
    if first.kind != "dense" or not rows:
        return np.zeros((0,) + shape, np.int64)
    return np.stack(rows).reshape((-1,) + shape).astype(np.int64)


def requant_ties(net: Network, env: dict) -> dict[str, tuple[int, int]]:
    """Per dyadic requant: (exact ties with an in-range result, all exact ties)."""
    out = {}
    for op in net.ops:
        if op.kind != "requant" or "mult_bits" not in op.attrs:
            continue
        x = np.asarray(env[op.inputs[0]]).astype(np.int64)
        c = x.shape[-1]
        m = np.broadcast_to(op.arrays["mult"], (c,)).astype(np.int64)
        s = np.broadcast_to(op.arrays["shift"], (c,)).astype(np.int64)
        n = x * m
        s1 = np.maximum(s, 1)
        tie = (np.mod(n, np.left_shift(1, s1)) == np.left_shift(1, s1 - 1)) & (s > 0)
        lo_r = np.right_shift(n, s1)  # floor: the tie is between lo_r and lo_r + 1
        inside = (lo_r >= op.attrs["lo"]) & (lo_r + 1 <= op.attrs["hi"])
        out[op.name] = (int(np.sum(tie & inside)), int(np.sum(tie)))
    return out


def check_exact(name: str, net: Network, model, extra_raw: np.ndarray | None = None) -> dict:
    """Golden == QKeras on >= 12,000 real inputs (+ ``extra_raw``), at the output and at
    every requant op that has a Keras layer of the same name."""
    lo, hi, step = input_grid(net)
    x = M.real_inputs(net.inputs[0].shape, lo, hi, step, N, seed=1)
    if extra_raw is not None and len(extra_raw):
        x = np.concatenate([x, (extra_raw * step).astype(np.float32)])
    raw = quantize_real(net.inputs[0], x)
    if extra_raw is not None and len(extra_raw):
        assert np.array_equal(raw[-len(extra_raw):], extra_raw)
    assert len(x) >= 10_000
    env = golden.run(net, raw, keep_all=True)
    names = {layer.name for layer in model.layers}
    checked = []
    for op in net.ops:
        if op.kind == "requant" and op.name in names:
            want = golden.dequantize(op.type, env[op.name])
            got = predict(tf.keras.Model(model.inputs, model.get_layer(op.name).output), x)
            bad = want != got
            assert not bad.any(), f"{name}: layer {op.name}: {int(bad.sum())} of {bad.size} values differ"
            checked.append(op.name)
    out = net.outputs[0]
    y = golden.dequantize(net.op(out).type, env[out])
    yt = predict(model, x)
    assert np.array_equal(y, yt), f"{name}: {int((y != yt).sum())} of {y.size} output values differ"
    assert len(np.unique(y)) > 10, f"{name}: output nearly constant"
    ties = requant_ties(net, env)
    print(f"\n{name}: {len(x)} inputs bit-exact at {checked + [out] if out not in checked else checked}; requant ties (in range, all): {ties}; "
          f"zero rows {int(np.sum(~raw.reshape(len(raw), -1).any(axis=1)))}, "
          f"all-max rows {int(np.sum((raw.reshape(len(raw), -1) == hi).all(axis=1)))}")
    return ties


# ---- trained models (once per module) ---------------------------------------------------------------

@pytest.fixture(scope="module")
def mlp():
    xtr, ytr, xte, yte = R.digits_data()
    res = R.train_dyadic(xtr, ytr, xte, yte, arch="mlp", hidden=(32,), epochs_bn=2, epochs_finetune=1, seed=0)
    print(f"\nMLP 64-32-10 dyadic_int4 W=8, digits accuracy {res.accuracy}, exactness {res.dyadic}")
    return res


@pytest.fixture(scope="module")
def mlp_net(mlp):
    return import_qkeras(mlp.model)


@pytest.fixture(scope="module")
def cnn():
    xtr, ytr, xte, yte = R.digits_data(image=True)
    res = R.train_dyadic(xtr, ytr, xte, yte, arch="cnn", filters=(8,), epochs_bn=3, epochs_finetune=2, seed=0)
    print(f"\nCNN conv3x3x8-pool-dense dyadic_int4 W=8, digits accuracy {res.accuracy}, exactness {res.dyadic}")
    return res


# ---- quantizer --------------------------------------------------------------------------------------

@pytest.mark.parametrize("mult_bits,rounding", [(8, "ceil"), (3, "ceil"), (5, "round")])
def test_dyadic_quantizer_matches_reference(mult_bits, rounding):
    """The quantizer is QKeras' alpha='auto' scale with its mantissa rounded to W bits, computed
    exactly (numpy float64 reference); values are z * b / 2^c with |z| <= 7, 0 < b < 2^W."""
    rng = np.random.default_rng(3)
    k = (rng.normal(size=(40, 12)) * np.exp2(rng.integers(-6, 3, size=12))).astype(np.float32)
    k[:, 3] = 0.0  # a dead channel
    k[:, 4] = np.resize(np.array([0.5, -0.25], np.float32), 40) * 7 / 4  # absmax/7 an exact power of two
    q = R.dyadic_quantized_bits(4, mult_bits=mult_bits, mantissa_rounding=rounding)
    got = q(tf.constant(k)).numpy()
    auto = tf.constant(k)
    qa = __import__("qkeras").quantized_bits(4, 0, alpha="auto")
    qa(auto)
    raw = (qa.scale.numpy().reshape(-1) / 8).astype(np.float32)  # QKeras' float32 'auto' step
    raw[3] = 1.0
    f, e = np.frexp(raw.astype(np.float64))
    mant = np.ldexp(f, mult_bits)
    mant = np.ceil(mant) if rounding == "ceil" else np.round(mant)
    step = np.ldexp(mant, e - mult_bits)
    z = np.clip(np.round((k / step.astype(np.float32)).astype(np.float32)), -7, 7)
    assert np.array_equal(got.astype(np.float64), z * step)
    assert np.array_equal(q.step.numpy().reshape(-1), step)
    from qat.importers.from_qkeras import exact_dyadic

    b, _ = exact_dyadic(step, mult_bits, "test")
    assert np.all((b > 0) & (b < 1 << mult_bits))
    if rounding == "ceil":  # the largest weight of each channel is not clipped
        assert np.all(np.abs(np.round(k / step)) <= 7)
    with pytest.raises(ValueError, match="mult_bits must be 1..21"):
        R.dyadic_quantized_bits(4, mult_bits=22)


# ---- exactness -------------------------------------------------------------------------------------

def test_mlp_bit_exact(mlp, mlp_net):
    net = mlp_net
    assert mlp.accuracy["final"] > 0.8
    ties = check_exact("dyadic MLP", net, mlp.model, tie_inputs(net))
    assert ties["act0"][0] > 0, "no exact in-range rounding tie reached the first requant"
    for op in net.ops:
        if op.kind == "requant":
            assert op.attrs["mult_bits"] == 8
            assert np.all((op.arrays["mult"] > 0) & (op.arrays["mult"] < 1 << 8))
            assert np.all(op.arrays["mult"] % 2 == 1)  # reduced form
    assert all(v["f32_exact"] for v in net.meta["dyadic"].values())
    assert [op.kind for op in net.ops] == ["dense", "requant", "dense", "requant"]


def test_cnn_bit_exact(cnn):
    net = import_qkeras(cnn.model)
    assert [op.kind for op in net.ops] == ["conv2d", "requant", "maxpool", "reshape", "dense", "requant"]
    check_exact("dyadic CNN", net, cnn.model)
    assert all(np.all(op.arrays["mult"] < 1 << 8) for op in net.ops if op.kind == "requant")


@pytest.mark.parametrize("mult_bits", [3, 5])
def test_narrow_multipliers(mult_bits):
    """W = 3 and 5: multipliers < 2^W, still bit-exact (1 + 1 epochs)."""
    xtr, ytr, xte, yte = R.digits_data()
    res = R.train_dyadic(xtr, ytr, xte, yte, hidden=(16,), mult_bits=mult_bits, epochs_bn=1, epochs_finetune=1,
                         seed=1)
    net = import_qkeras(res.model)
    mults = np.concatenate([op.arrays["mult"] for op in net.ops if op.kind == "requant"])
    assert mults.max() < 1 << mult_bits and mults.min() > 0
    print(f"\nW={mult_bits}: accuracy {res.accuracy}, multipliers used {sorted(set(mults.tolist()))}")
    check_exact(f"dyadic MLP W={mult_bits}", net, res.model, tie_inputs(net))


# ---- errors ----------------------------------------------------------------------------------------

def test_multiplier_wider_than_declared_is_a_clear_error(mlp):
    with pytest.raises(ImportError_) as exc:
        import_qkeras(mlp.model, mult_bits=4)
    msg = str(exc.value)
    print(f"\n{msg}")
    assert "\n" not in msg and "layer 'fc0'" in msg and "more than mult_bits=4" in msg
    # alpha='auto' float scales declared to fit 8 bits: refused, naming the layer
    with pytest.raises(ImportError_, match=r"layer 'out_q' \(QActivation\): requantization multiplier \(after 'fc_auto'\).*more than mult_bits=8") as exc:
        import_qkeras(M.auto_alpha(), mult_bits=8)
    assert "\n" not in str(exc.value)


def test_unfolded_batchnorm_is_a_clear_error(mlp):
    with pytest.raises(ImportError_, match=r"layer 'act0'.*fold it.*fold_batchnorm"):
        import_qkeras(mlp.bn_model)


def test_float32_bound_warns_and_recipe_refuses():
    """dyadic_int8 (8-bit activations and weights) on 64 inputs: (max|x|*sum|w| + |b|)*b can exceed
    2^24.  The importer warns and records it; train_dyadic refuses; the mismatch rate is measured."""
    xtr, ytr, _, _ = R.digits_data()
    with pytest.raises(ValueError, match="not provably exact for layer"):
        R.train_dyadic(xtr, ytr, preset="dyadic_int8", epochs_bn=0, epochs_finetune=0)
    tf.keras.utils.set_random_seed(5)
    model = R.build_mlp(64, (32,), 10, "dyadic_int8")
    with pytest.warns(UserWarning, match="float32 sum may be inexact"):
        net = import_qkeras(model)
    assert not net.meta["dyadic"]["fc0"]["f32_exact"] and net.meta["dyadic"]["fc0"]["f32_bits"] > 24
    assert any("may be inexact" in n for n in net.notes)
    lo, hi, step = input_grid(net)
    x = M.real_inputs(net.inputs[0].shape, lo, hi, step, N, seed=2)
    raw = quantize_real(net.inputs[0], x)
    env = golden.run(net, raw, keep_all=True)
    got = predict(tf.keras.Model(model.inputs, model.get_layer("act0").output), x)
    want = golden.dequantize(net.op("act0").type, env["act0"])
    print(f"\ndyadic_int8 beyond the bound ({net.meta['dyadic']}): act0 differs in {np.mean(got != want):.4%} of "
          f"values, output in {np.mean(predict(model, x) != golden.dequantize(net.op(net.outputs[0]).type, env[net.outputs[0]])):.4%}")


# ---- BN folding, save/load, determinism --------------------------------------------------------------

@pytest.mark.parametrize("arch", ["mlp", "cnn"])
def test_fold_batchnorm_keeps_float_outputs(arch):
    """In float (no quantizers) the folded model computes the same function: max |diff| relative
    to the output range is at float32 rounding level (measured, printed)."""
    tf.keras.utils.set_random_seed(7)
    rng = np.random.default_rng(7)
    if arch == "mlp":
        bn = R.build_mlp(64, (32, 16), 10, bn=True, quantized=False)
        x = rng.uniform(0, 1, size=(2000, 64)).astype(np.float32)
    else:
        bn = R.build_cnn((8, 8, 1), (6,), 10, bn=True, quantized=False)
        x = rng.uniform(0, 1, size=(2000, 8, 8, 1)).astype(np.float32)
    for layer in bn.layers:
        if isinstance(layer, tf.keras.layers.BatchNormalization):
            c = layer.gamma.shape[0]
            layer.set_weights([rng.uniform(-2, 2, c).astype(np.float32), rng.normal(size=c).astype(np.float32),
                               rng.normal(size=c).astype(np.float32), rng.uniform(0.1, 3, c).astype(np.float32)])
    build = R.build_mlp if arch == "mlp" else R.build_cnn
    args = (64, (32, 16), 10) if arch == "mlp" else ((8, 8, 1), (6,), 10)
    folded = R.fold_batchnorm(bn, build(*args, bn=False, quantized=False))
    a, b = predict(bn, x), predict(folded, x)
    rel = np.max(np.abs(a - b)) / np.max(np.abs(a))
    print(f"\nBN fold ({arch}): max |diff| / max |out| = {rel:.2e}")
    assert rel < 1e-5


def test_save_load_roundtrip(mlp, mlp_net, tmp_path):
    model = mlp.model
    h5 = tmp_path / "dyadic.h5"
    model.save(h5)
    arch = tmp_path / "dyadic.json"
    arch.write_text(model.to_json())
    weights = tmp_path / "dyadic_weights.h5"
    model.save_weights(weights)
    lo, hi, step = input_grid(mlp_net)
    x = M.real_inputs(mlp_net.inputs[0].shape, lo, hi, step, 2000, seed=4)
    for loaded in (R.load_model(h5), tf.keras.models.load_model(h5, custom_objects=R.custom_objects())):
        assert type(loaded.get_layer("fc0")).__name__ == "QDenseDyadic"
        assert str(loaded.get_layer("fc0").kernel_quantizer_internal) == "dyadic_quantized_bits(4,mult_bits=8)"
        assert np.array_equal(predict(loaded, x), predict(model, x))
    for net in (convert_file(h5), convert_file(arch, weights)):
        assert [(op.name, op.kind, op.type) for op in net.ops] == [(op.name, op.kind, op.type) for op in mlp_net.ops]
        for p, q in zip(net.ops, mlp_net.ops):
            assert p.attrs == q.attrs and all(np.array_equal(p.arrays[k], q.arrays[k]) for k in p.arrays)
        assert net.meta["dyadic"] == mlp_net.meta["dyadic"]
    with pytest.raises(ImportError_, match="more than mult_bits=2"):
        convert_file(h5, mult_bits=2)


def test_training_is_deterministic():
    xtr, ytr, _, _ = R.digits_data()
    runs = [R.train_dyadic(xtr[:600], ytr[:600], hidden=(8,), epochs_bn=1, epochs_finetune=1, seed=3)
            for _ in range(2)]
    for wa, wb in zip(runs[0].model.get_weights(), runs[1].model.get_weights()):
        assert np.array_equal(wa, wb)


# ---- RTL -------------------------------------------------------------------------------------------

def test_cosim_dyadic_mlp(mlp_net, tmp_path):
    """The imported dyadic MLP as Verilog, Verilator, 200 vectors (edges first), every layer traced."""
    from rtl_sim.vectors import random_vectors
    from rtl_sim.cosim import run_cosim

    x = random_vectors(mlp_net, 200, seed=3)
    res = run_cosim(mlp_net, x, tmp_path, "verilator", trace_layers=True)
    assert res.ok, res.describe()
    assert res.vectors == 200 and res.exact_vectors == 200 and res.mismatches == 0, res.describe()
