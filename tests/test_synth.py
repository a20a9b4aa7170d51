"""Yosys resource reports: a tiny network for an xc7 board and the ASIC target,
and `qrtl synth` end to end on a tiny QKeras model."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from boards.catalog import board
from boards.yosys_report import synthesize
from hls.rtl.verilog import generate
from qat.ir.network import Input, Network, Op
from qat.ir.types import IntType
from qrtl.cli import main

KEYS = ("LUT", "FF", "CARRY", "DSP", "BRAM")


def tiny_net() -> Network:
    """dense 4->3, requant (ReLU to uint4), dense 3->2, argmax."""
    rng = np.random.default_rng(21)
    s = (2.0 ** -3,)
    ops = [
        Op("fc1", "dense", ["x"], (3,), IntType(12, True, s), {},
           {"weight": rng.integers(-20, 21, size=(4, 3)), "bias": rng.integers(-30, 31, size=3)}),
        Op("relu", "requant", ["fc1"], (3,), IntType(4, False, s), {"rounding": "half_even", "lo": 0, "hi": 15},
           {"mult": np.array(3), "shift": np.array(4)}),
        Op("fc2", "dense", ["relu"], (2,), IntType(10, True, s), {},
           {"weight": rng.integers(-7, 8, size=(3, 2)), "bias": rng.integers(-9, 10, size=2)}),
        Op("cls", "argmax", ["fc2"], (1,), IntType(1, False), {}),
    ]
    return Network("tiny", [Input("x", (4,), IntType(5, True, s))], ops, ["cls"])


@pytest.fixture(scope="module")
def tiny_rtl(tmp_path_factory):
    d = generate(tiny_net())
    out = tmp_path_factory.mktemp("tiny_rtl")
    d.write(out)
    return d, [out / f for f in d.verilog_files]


def test_yosys_xc7_and_asic_report(tiny_rtl, tmp_path):
    d, files = tiny_rtl
    rep = synthesize(files, d.top, board("pynq-z2"), tmp_path / "xc7")
    assert rep["board"] == "pynq-z2" and rep["top"] == d.top
    f = rep["fpga"]
    assert f["family"] == "xc7"
    for k in KEYS:
        assert isinstance(f["total"][k], int) and f["total"][k] >= 0, k
    assert f["total"]["LUT"] > 0 and f["total"]["FF"] > 0 and f["total"]["CARRY"] > 0
    # one entry per op module, and the per-module counts add up to the design (the top holds the
    # valid pipeline)
    mods = {info["module"] for info in d.manifest["ops"].values()}
    assert mods <= set(f["per_module"]), sorted(f["per_module"])
    assert f["per_module"][f"{d.top}_fc1"]["LUT"] > 0
    assert all(f["per_module"][m]["FF"] > 0 for m in mods)  # every op registers its output
    assert sum(r["LUT"] for r in f["per_module"].values()) <= f["total"]["LUT"]
    assert isinstance(f["logic_depth"], int) and f["logic_depth"] > 0
    a = rep["asic"]
    assert a["nand2_equivalent"] > 0 and a["nand2"] > 0 and a["flip_flops"] > 0
    assert a["nand2_equivalent"] == round(a["nand2"] + a["inverters"] + 6 * a["flip_flops"])


def test_yosys_asic_board(tiny_rtl, tmp_path):
    d, files = tiny_rtl
    rep = synthesize(files, d.top, board("asic"), tmp_path / "asic")
    assert "fpga" not in rep
    assert rep["asic"]["nand2_equivalent"] > 0 and rep["asic"]["gate_depth"] > 0


def _tiny_qkeras_model(path: Path) -> None:
    import qkeras as q
    import tensorflow as tf

    tf.keras.utils.set_random_seed(5)
    L = tf.keras.layers
    inp = L.Input((6,), name="x")
    x = q.QActivation(q.quantized_bits(6, 2, alpha=1), name="input_q")(inp)
    x = q.QDense(4, kernel_quantizer=q.quantized_bits(4, 0, alpha=1), bias_quantizer=q.quantized_bits(4, 0, alpha=1),
                 name="fc1")(x)
    x = q.QActivation(q.quantized_relu(4, 2), name="relu1")(x)
    x = q.QDense(3, kernel_quantizer=q.quantized_bits(4, 0, alpha=1), bias_quantizer=q.quantized_bits(4, 0, alpha=1),
                 name="out")(x)
    model = tf.keras.Model(inp, x, name="tiny_qkeras")
    rng = np.random.default_rng(5)
    for layer in model.layers:
        if isinstance(layer, q.QDense):
            k, b = layer.get_weights()
            layer.set_weights([rng.uniform(-1, 1, size=k.shape).astype(np.float32),
                               rng.uniform(-0.5, 0.5, size=b.shape).astype(np.float32)])
    model.save(path)


def test_cli_synth_qkeras_end_to_end(tmp_path, capsys):
    model = tmp_path / "tiny.h5"
    _tiny_qkeras_model(model)
    out = tmp_path / "synth"
    assert main(["synth", str(model), "--board", "pynq-z2", "--random", "200", "-o", str(out)]) == 0
    printed = capsys.readouterr().out
    rep = json.loads((out / "report.json").read_text())
    assert rep["board"] == "pynq-z2" and rep["latency_cycles"] == 3  # fc1, relu1, out: one stage each
    assert rep["initiation_interval"] == 1
    assert rep["cosim"]["ok"] and rep["cosim"]["vectors"] == 200 and rep["cosim"]["exact_vectors"] == 200
    fpga = rep["synthesis"]["fpga"]
    assert fpga["total"]["LUT"] > 0 and fpga["total"]["FF"] > 0
    top = rep["network"]
    assert set(fpga["per_module"]) >= {f"{top}_fc1", f"{top}_relu1", f"{top}_out"}
    assert rep["synthesis"]["asic"]["nand2_equivalent"] > 0
    for sub in ("net/network.json", f"rtl/{top}.v", "rtl/manifest.json", "cosim/job/result.json"):
        assert (out / sub).exists(), sub
    assert "200/200 vectors bit-exact" in printed and "TOTAL" in printed


def test_board_overflow_is_refused_before_synthesis(tmp_path, capsys):
    """A design whose arithmetic estimate exceeds the board's LUTs is refused in one line, before the
    co-simulation and Yosys start, with the fold/stream hint (issue: streaming and folded hardware)."""
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from rtl_nets import Builder

    from boards.catalog import fit_problem
    from qat.ir import netfile

    nb = Builder("bigconv", (11, 11, 1), IntType(8, True, (2.0 ** -7,)), 3)
    nb.add("c", "conv2d", ["x"], attrs={"strides": [1, 1], "padding": "valid"},
           arrays={"weight": nb.weights((3, 3, 1, 8), -127, 127), "bias": nb.bias(8, 20)})
    netfile.save(nb.network("c"), tmp_path / "net")
    out = tmp_path / "synth"
    assert main(["synth", str(tmp_path / "net"), "--board", "pynq-z2", "-o", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "bigconv" in err[0] and "over the 53,200 LUTs of pynq-z2" in err[0]
    assert "--reuse" in err[0] and "--io stream" in err[0] and "--no-fit-check" in err[0]
    assert not (out / "cosim").exists() and not (out / "synth").exists()
    assert fit_problem(board("kc705"), 77_980, "n") is None  # fits the larger part
    assert fit_problem(board("asic"), 10 ** 9, "n") is None  # no fixed capacity
