"""The hls4ml bridge: hls4ml's project for a QKeras model, configured from the integer network, compiled
with hls4ml's compile() and compared bit for bit with the golden model (which is itself checked against
QKeras here).  Jet-tagger MLP (softmax removed) and ECON-T encoder must agree on every output; a model
with BatchNormalization is reported as not exact, naming the layer, with the measured agreement."""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from qat.ir import netfile
from qat.ir.intervals import accumulator_bits

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "jet_tagger"


def keras_pre_softmax(model_path: Path, x: np.ndarray) -> np.ndarray:
    import tensorflow as tf

    from qat.importers.from_qkeras import load_model

    model = load_model(model_path)
    last = model.layers[-1]
    if type(last).__name__ == "Activation" and getattr(last.activation, "__name__", "") == "softmax":
        model = tf.keras.Model(model.inputs, model.layers[-2].output)
    return model.predict(x.astype(np.float32), verbose=0, batch_size=4096).astype(np.float64).reshape(len(x), -1)


def check_report(d: Path, model_path: Path) -> dict:
    """The report's numbers are recomputed from the saved arrays; the golden outputs equal QKeras's."""
    rep = json.loads((d / "hls4ml_agreement.json").read_text())
    x = np.load(d / "inputs.npy")
    want = np.load(d / "golden_outputs.npy")
    got = np.load(d / "hls4ml_outputs.npy")
    assert len(x) == rep["inputs"] == len(got) == len(want)
    eq = got == want
    assert rep["equal_outputs"] == int(eq.sum())
    assert rep["equal_vectors"] == int(eq.all(axis=1).sum())
    np.testing.assert_array_equal(want, keras_pre_softmax(model_path, x))  # golden == QKeras (pre-softmax)
    assert (d / "hls4ml_agreement.txt").read_text().startswith("hls4ml 1.3.0 vs golden integer model")
    return rep


def proven_precisions(d: Path) -> dict[str, int]:
    net = netfile.load(d / "qrtl_net")
    return accumulator_bits(net)


def width_of(precision: str) -> int:
    return int(precision.split("<")[1].split(",")[0])


def test_jet_tagger_bit_exact(tmp_path, capsys):
    from qrtl.cli import main

    model = EXAMPLE / "jet_tagger.h5"
    d = tmp_path / "jet"
    assert main(["hls4ml", str(model), "-o", str(d), "--random", "1000", "--require-exact"]) == 0
    out = capsys.readouterr().out
    assert "5000/5000 outputs bit-equal (100.00 %)" in out
    rep = check_report(d, model)
    assert rep["exact"] and rep["fraction_equal_outputs"] == 1.0
    assert [r["layer"] for r in rep["removed_layers"]] == ["softmax"]
    assert "lookup tables" in rep["removed_layers"][0]["reason"]
    assert rep["inexact_layers"] == []
    prec = rep["layer_precisions"]
    acc = proven_precisions(d)
    for layer in ("fc1", "fc2", "fc3", "output"):
        assert width_of(prec[layer]["accum_t"]) == acc[layer]
        assert prec[layer]["result_t"] == prec[layer]["accum_t"]
    for layer in ("relu1", "relu2", "relu3"):
        assert prec[layer]["result_t"].startswith("ufixed<6,") and "RND_CONV,SAT" in prec[layer]["result_t"]
    assert "RND_CONV,SAT" in prec["features"]["result_t"]  # the input quantizes like QKeras's first quantizer
    # the inputs include exact rounding ties and saturating values
    x = np.load(d / "inputs.npy")
    step = 2.0 ** -6
    assert (np.abs(x / step - np.round(x / step)) == 0.5).sum() > 1000
    assert (x > 511 * step).any() and (x < -512 * step).any()


@pytest.fixture(scope="module")
def econt_h5(tmp_path_factory) -> Path:
    from qkeras_models import econt_encoder

    p = tmp_path_factory.mktemp("econt") / "econt_encoder.h5"
    econt_encoder().save(p)
    return p


def test_econt_encoder_bit_exact(econt_h5, tmp_path):
    from hls.cpp.hls4ml_bridge import run_bridge

    d = tmp_path / "econt"
    rep = run_bridge(econt_h5, d, n=1000, seed=1)
    assert rep.exact, rep.text()
    assert rep.equal_outputs == 16000 and rep.removed_layers == [] and rep.inexact_layers == []
    saved = check_report(d, econt_h5)
    acc = proven_precisions(d)
    assert width_of(saved["layer_precisions"]["conv2d"]["accum_t"]) == acc["conv2d"]
    assert width_of(saved["layer_precisions"]["encoded"]["accum_t"]) == acc["encoded"]
    assert saved["layer_precisions"]["conv2d_act"]["result_t"] == "ufixed<11,3,RND_CONV,SAT,0>"
    assert saved["layer_precisions"]["encoded_act"]["result_t"] == "ufixed<9,1,RND_CONV,SAT,0>"


def test_batchnorm_is_named_and_measured(tmp_path):
    """BatchNormalization cannot be exact in hls4ml: the report says which layer and why, and the
    agreement is the measured one (recomputed from the saved outputs)."""
    import qkeras_models as qm

    from hls.cpp.hls4ml_bridge import run_bridge

    tf, q = qm._tf(), qm._q()
    rng = qm._seed(21)
    L = tf.keras.layers
    inp = L.Input((16,), name="x")
    x = q.QActivation(qm.qb(8, 2), name="input_q")(inp)
    x = q.QDense(12, kernel_quantizer=qm.qb(6, 0), bias_quantizer=qm.qb(6, 0), name="fc1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = q.QActivation(q.quantized_relu(6, 2), name="relu1")(x)
    x = q.QDense(4, kernel_quantizer=qm.qb(6, 0), bias_quantizer=qm.qb(6, 0), name="out")(x)
    model = tf.keras.Model(inp, x, name="bn_mlp")
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            qm.set_linear(layer, rng)
    qm.set_bn(model.get_layer("bn1"), rng, 3.0)
    path = tmp_path / "bn_mlp.h5"
    model.save(path)
    d = tmp_path / "bn"
    rep = run_bridge(path, d, n=1000)
    saved = check_report(d, path)
    assert [r["layer"] for r in rep.inexact_layers] == ["bn1"]
    assert "BatchNormalization" in rep.inexact_layers[0]["reason"]
    assert "not exact: layer 'bn1'" in rep.text()
    assert 0.9 < saved["fraction_equal_outputs"] <= 1.0  # measured, whatever it is
    if not rep.exact:  # the traced per-layer comparison names where hls4ml first differs
        assert rep.first_differing_layer["layer"] == "relu1"
