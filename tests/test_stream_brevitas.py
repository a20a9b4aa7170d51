"""The Brevitas MNIST CNN of issue #12 (bench/mnist_cnn_brevitas.py) and the Brevitas -> ``--io stream`` path.

The shipped model imports (from the module and from the QONNX file Brevitas exports) into the expected
integer network, golden == Brevitas exactly on MNIST images and edge inputs, its weights give the
recorded accuracy, and its stream schedule is 900 clocks per image (<= 1,000).  A tiny CNN built by
the same recipe (same layer kinds: unsigned input quantizer, QuantConv2d pad 1, QuantReLU, MaxPool 2
with an odd input that drops a row and a column, flatten, QuantLinear; 6-bit po2) is streamed and
co-simulated bit-exact with the compiled harness, lint clean.  The full model's RTL co-simulation and
Yosys run are in bench/streaming.py (make bench-stream)."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hls.rtl.verilog import generate
from qat.importers.convert import convert_model
from qat.importers.from_brevitas import agreement, import_brevitas
from qat.importers.input_quant import framework_to_network_layout, quantize_real
from qat.ir import golden
from qat.recipes.brevitas_recipes import cnn, evaluate, po2_preset, train
from rtl_sim.fast_sim import run_fast
from test_rtl import lint

_FILE = Path(__file__).resolve().parents[1] / "bench" / "mnist_cnn_brevitas.py"  # a script, as qrtl convert loads it
_spec = importlib.util.spec_from_file_location("mnist_cnn_brevitas", _FILE)
MODEL = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(MODEL)
INFO, INPUT_SHAPE, SPEC, mnist_nchw, trained = MODEL.INFO, MODEL.INPUT_SHAPE, MODEL.SPEC, MODEL.mnist_nchw, MODEL.trained


def _edges(shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """Real inputs (PyTorch layout) at the input quantizer's edges: all zero, all 1 - 2^-6 (the top code),
    above the range (saturates), below zero (clamps), half-way between codes (half-to-even ties), random."""
    rng = np.random.default_rng(seed)
    ties = (rng.integers(0, 63, size=(n,) + shape) + 0.5) / 64
    wide = rng.uniform(-0.3, 1.3, size=(n,) + shape)
    fixed = [np.zeros(shape), np.full(shape, 63 / 64), np.full(shape, 1.5), np.full(shape, -0.25)]
    return np.concatenate([np.stack(fixed), ties, wide]).astype(np.float32)


def _exact(a: dict) -> None:
    assert a["equal"] == a["outputs"] and a["max_diff_steps"] == 0, {k: a[k] for k in a if k != "mismatch_inputs"}


@pytest.fixture(scope="module")
def shipped():
    return trained(), convert_model(SPEC, input_shape=INPUT_SHAPE)


def test_shipped_brevitas_cnn_imports_bit_exact(shipped, tmp_path):
    from brevitas.export import export_qonnx

    m, net = shipped
    assert [(op.name, op.kind) for op in net.ops] == [
        ("conv0", "conv2d"), ("act0", "requant"), ("pool0", "maxpool"), ("conv1", "conv2d"), ("act1", "requant"),
        ("pool1", "maxpool"), ("flatten", "reshape"), ("fc_out", "dense")]
    assert net.inputs[0].shape == (28, 28, 1) and net.inputs[0].type.bits == 6 and not net.inputs[0].type.signed
    _, _, xb, yb = mnist_nchw()
    assert evaluate(m, xb, yb) == json.loads(INFO.read_text())["test_accuracy"]  # the shipped weights
    x = np.concatenate([xb[:150], _edges(INPUT_SHAPE, 2, 3)])
    _exact(agreement(m, net, x))
    path = tmp_path / "mnist_cnn_brevitas.onnx"  # Brevitas' own QONNX export -> qrtl's QONNX file import
    with torch.no_grad():
        export_qonnx(trained(), input_t=torch.zeros((1,) + INPUT_SHAPE), export_path=str(path))
    net_q = convert_model(path)
    raw = quantize_real(net.inputs[0], framework_to_network_layout(net, x))
    assert np.array_equal(golden.run(net, raw)[net.outputs[0]], golden.run(net_q, raw)[net_q.outputs[0]])


def test_shipped_brevitas_cnn_stream_schedule(shipped):
    """One input pixel per clock over the 30x30 padded frame: 900 clocks per image, <= 1,000 (issue #12)."""
    from hls.rtl.stream import clock_stages, plan

    _, net = shipped
    stages = plan(net, net.ops)[0]
    _, done = clock_stages(stages, 3)
    assert done[-1] - done[-2] == 900 == len(stages[0].pad)
    assert sum(not p for p in stages[0].pad) == 28 * 28


@pytest.fixture(scope="module")
def tiny():
    """The recipe's CNN on 1x10x10: conv pad 1 (10x10) -> pool (5x5) -> conv pad 1 -> pool (2x2, drops the
    fifth row and column) -> 16 -> 5; trained 2 epochs on random images so the learned scales are set."""
    m = cnn((1, 10, 10), (3, 4), 5, po2_preset(6), kernel_size=3, input_signed=False, seed=1)
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, size=(128, 1, 10, 10)).astype(np.float32)
    train(m, x, rng.integers(0, 5, size=128), epochs=2, lr=1e-2, seed=1, batch_size=32)
    return m.eval(), import_brevitas(m, (1, 10, 10), "tiny_brevitas_cnn")


def test_tiny_brevitas_cnn_streamed_bit_exact(tiny, tmp_path):
    m, net = tiny
    assert [op.kind for op in net.ops] == ["conv2d", "requant", "maxpool", "conv2d", "requant", "maxpool", "reshape",
                                           "dense"]
    x = _edges((1, 10, 10), 100, 5)
    _exact(agreement(m, net, x))
    raw = quantize_real(net.inputs[0], framework_to_network_layout(net, x))
    assert raw.min() == 0 and raw.max() == 63  # the input saturates at both ends
    d = generate(net, io="stream")
    assert d.manifest["stream"]["clocks_per_image"] == 144  # the 12x12 padded frame
    r = run_fast(net, raw, design=d)
    assert r.ok and r.mismatches == 0 and r.exact_vectors == r.vectors == len(raw), r.as_dict()
    assert lint(d, tmp_path / "core", d.top) == ""
