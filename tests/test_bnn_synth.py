"""`qrtl synth` end to end on imported binary networks with MST-reordered layers (#14): a QKeras
binary model (.h5), a Brevitas module (file.py:NAME) and a QONNX file (onnx helpers, FINN TFC
shape).  Each is converted, generated with --bnn-order mst/auto, co-simulated bit-exact against the
golden model and synthesized by Yosys; the report carries the per-layer plain-vs-MST section.

The hidden layers' weight columns are near one base vector (some near its complement), as the MST
regulariser trains them, so the tree is cheaper than the plain popcounts; the models are small so
Yosys is fast."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from qrtl.cli import main

IN, HID, OUT = 16, 24, 4


def correlated_pm1(rng: np.random.Generator, n: int, c: int, p: float = 0.1) -> np.ndarray:
    """(n, c) +-1 columns near one base vector, every third one near its complement."""
    base = rng.integers(0, 2, (n, 1))
    w = np.where(rng.random((n, c)) < p, 1 - base, base)
    w[:, ::3] = 1 - w[:, ::3]
    return (2 * w - 1).astype(np.float32)


def _qkeras_bnn(path: Path) -> None:
    import qkeras as q
    import tensorflow as tf

    tf.keras.utils.set_random_seed(3)
    L = tf.keras.layers
    inp = L.Input((IN,), name="x")
    x = q.QActivation(q.binary(alpha=1), name="input_bin")(inp)
    x = q.QDense(HID, kernel_quantizer=q.binary(alpha=1), use_bias=False, name="bfc1")(x)
    x = L.BatchNormalization(name="bn1")(x)
    x = q.QActivation(q.binary(alpha=1), name="bin1")(x)
    x = q.QDense(OUT, kernel_quantizer=q.binary(alpha=1), use_bias=False, name="out")(x)
    model = tf.keras.Model(inp, x, name="bnn_qk")
    rng = np.random.default_rng(3)
    model.get_layer("bfc1").set_weights([correlated_pm1(rng, IN, HID)])
    model.get_layer("out").set_weights([rng.choice([-1.0, 1.0], (HID, OUT)).astype(np.float32)])
    bn = model.get_layer("bn1")
    bn.set_weights([rng.uniform(0.5, 2, HID), rng.normal(0, 1, HID), rng.normal(0, 2, HID), rng.uniform(1, 4, HID)])
    model.save(path)


def _brevitas_file(path: Path) -> None:
    path.write_text(
        "import numpy as np, torch\n"
        "from qat.recipes.brevitas_recipes import BinaryMLP\n"
        f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from test_bnn_synth import correlated_pm1\n"
        "def bnn():\n"
        f"    m = BinaryMLP({IN}, ({HID},), {OUT})\n"
        "    rng = np.random.default_rng(4)\n"
        "    lin = [l for l in m.modules() if isinstance(l, torch.nn.Linear)]\n"
        "    with torch.no_grad():\n"
        f"        lin[0].weight.copy_(torch.from_numpy(correlated_pm1(rng, {IN}, {HID}).T * 0.5))\n"
        f"        lin[1].weight.copy_(torch.from_numpy(rng.choice([-0.5, 0.5], ({OUT}, {HID})).astype(np.float32)))\n"
        "        bn = m.net[2]\n"
        f"        bn.running_mean.copy_(torch.from_numpy(rng.normal(0, 2, {HID}).astype(np.float32)))\n"
        f"        bn.running_var.copy_(torch.from_numpy(rng.uniform(1, 4, {HID}).astype(np.float32)))\n"
        f"        bn.bias.copy_(torch.from_numpy(rng.normal(0, 1, {HID}).astype(np.float32)))\n"
        "    return m.eval()\n")


def _qonnx_tfc(path: Path) -> None:
    """FINN TFC shape (Reshape, x*2-1, sign; binary MatMul + BatchNorm + sign; binary MatMul; affine tail)."""
    from test_qonnx_wild import G

    r = np.random.default_rng(5)
    g = G()
    x = g.op("Reshape", ["x", g.c([1, -1], np.int64)])
    x = g.bipolar(g.op("Sub", [g.op("Mul", [x, g.c(2.0)]), g.c([1.0])]))
    h = g.op("MatMul", [x, g.bipolar(g.c(correlated_pm1(r, IN, HID)))])
    h = g.op("BatchNormalization", [h, g.c(r.uniform(0.5, 2, HID)), g.c(r.normal(size=HID)),
                                    g.c(r.normal(0, 2, HID)), g.c(r.uniform(5, 20, HID))], epsilon=1e-5)
    h = g.bipolar(h)
    y = g.op("MatMul", [h, g.bipolar(g.c(r.normal(size=(HID, OUT))))])
    y = g.op("Add", [g.op("Mul", [y, g.c([0.73])]), g.c([-1.1])])
    onnx.save(g.model([1, 1, 4, 4], y, [1, OUT]), str(path))


@pytest.mark.parametrize("source,order,extra", [
    ("qkeras", "mst", []),
    ("brevitas", "auto", ["--input-shape", str(IN)]),
    ("qonnx", "mst", ["--mst-depth", "2", "--pipeline", "depth:1"]),
])
def test_synth_imported_bnn_with_mst_layers(tmp_path, capsys, source, order, extra):
    if source == "qkeras":
        model = str(tmp_path / "bnn.h5")
        _qkeras_bnn(Path(model))
    elif source == "brevitas":
        _brevitas_file(tmp_path / "bnn.py")
        model = f"{tmp_path / 'bnn.py'}:bnn"
    else:
        model = str(tmp_path / "tfc.onnx")
        _qonnx_tfc(Path(model))
    out = tmp_path / "synth"
    assert main(["synth", model, "--bnn-order", order, "--random", "150", "--no-asic", "-o", str(out)] + extra) == 0
    printed = capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert rep["cosim"]["ok"] and rep["cosim"]["exact_vectors"] == rep["cosim"]["vectors"] == 150
    layers = rep["bnn"]["layers"]
    assert rep["bnn"]["order"] == order and len(layers) == 2
    hidden = [r for r in layers.values() if r["channels"] == HID]
    assert len(hidden) == 1 and hidden[0]["form"] == "mst", layers  # the correlated layer is reordered
    h = hidden[0]
    assert h["mst"]["xnor"] < h["plain"]["xnor"] and h["mst"]["adder_bits_shared"] < h["plain"]["adder_bits_shared"]
    if "--mst-depth" in extra:
        assert rep["bnn"]["mst_depth"] == 2 and h["tree_depth"] <= 2 and 0 <= h["added_latency"] <= 2
    fpga = rep["synthesis"]["fpga"]
    assert fpga["total"]["LUT"] > 0 and rep["latency_cycles"] > 0
    assert "binary layers" in printed and f"+{h['added_latency']} cycles" in printed and "TOTAL" in printed
