"""Streaming RTL (``--io stream``, hls.rtl.stream): small streamed networks co-simulated bit for bit
against the golden model with the compiled harness (2-D: 'same', explicit and 'valid' pads,
strides, max and average pooling, flatten + dense, argmax; 1-D: convolutions, pooling, threshold,
lut, a dense over the channels, several output beats; binary convolutions and a binary maxpool),
one cocotb run with random valid gaps and back-pressure, Verilator -Wall lint, determinism, the
schedule figures in the manifest, and the one-line refusals."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rtl_nets
from hls.rtl.verilog import RTLError, generate
from qat.ir.network import Input, Network, NetworkError, Op
from qat.ir.types import BinaryType, IntType, MinifloatType
from rtl_sim.fast_sim import run_fast
from rtl_sim.vectors import random_vectors
from test_rtl import lint


def _reshape(nb, name: str, src: str, shape: tuple[int, ...]) -> str:
    return rtl_nets._reshape(nb, name, src, shape)


def s2d(seed: int = 21) -> Network:
    """7x6x2 int4 -> conv 3x2 same -> requant -> maxpool 2x2/2 same -> conv 3x3/2 same -> requant ->
    conv 2x2 explicit pads [[1,0],[0,2]] strides (1,2) -> clip -> avgpool 1x2 valid -> flatten -> dense -> argmax."""
    nb = rtl_nets.Builder("s2d", (7, 6, 2), IntType(4, True, (2.0 ** -3,)), seed)
    s = (2.0 ** -4,)

    def conv(name, src, k, st, pad, co):
        return nb.add(name, "conv2d", [src], attrs={"strides": list(st), "padding": pad},
                      arrays={"weight": nb.weights(k + (nb.channels(src), co), -7, 7), "bias": nb.bias(co, 20)})

    conv("c1", "x", (3, 2), (1, 1), "same", 3)
    nb.requant_to("r1", "c1", 4)
    nb.add("p1", "maxpool", ["r1"], attrs={"pool": [2, 2], "strides": [2, 2], "padding": "same", "dims": 2})
    conv("c2", "p1", (3, 3), (2, 2), "same", 4)
    nb.requant_to("r2", "c2", 5, scale=s, rounding="half_up")
    conv("c3", "r2", (2, 2), (1, 2), [[1, 0], [0, 2]], 3)
    nb.add("relu", "clip", ["c3"], attrs={"lo": 0, "hi": 60})
    nb.add("avg", "avgpool", ["relu"], attrs={"pool": [1, 2], "strides": [1, 1], "padding": "valid", "dims": 2})
    n = int(np.prod(nb.shape("avg")))
    _reshape(nb, "flat", "avg", (n,))
    nb.add("fc", "dense", ["flat"], arrays={"weight": nb.weights((n, 5), -9, 9, 0.1), "bias": nb.bias(5, 30)})
    nb.add("cls", "argmax", ["fc"], scale=(1.0,))
    return nb.network("cls")


def s1d(seed: int = 22) -> Network:
    """9x3 uint5 -> conv1d k3 same -> clip -> conv1d k4/2 same -> requant -> maxpool 3/2 same ->
    threshold -> lut -> dense over the channels (per position): 3 output beats."""
    nb = rtl_nets.Builder("s1d", (9, 3), IntType(5, False, (2.0 ** -5,)), seed)

    def conv(name, src, k, st, pad, co):
        return nb.add(name, "conv1d", [src], attrs={"strides": [st], "padding": pad},
                      arrays={"weight": nb.weights((k, nb.channels(src), co), -6, 6), "bias": nb.bias(co, 40)})

    conv("c1", "x", 3, 1, "same", 4)
    nb.add("relu", "clip", ["c1"], t=IntType(9, False, (2.0 ** -5,)), attrs={"lo": 0, "hi": 400})
    conv("c2", "relu", 4, 2, "same", 4)
    nb.requant_to("r2", "c2", 6, rounding="floor")
    nb.add("mp", "maxpool", ["r2"], attrs={"pool": [3], "strides": [2], "padding": "same", "dims": 1})
    c = nb.channels("mp")
    b = nb.bounds["mp"]
    th = np.sort(nb.rng.integers(b.min - 3, b.max + 3, size=(c, 3)), axis=1)
    nb.add("thr", "threshold", ["mp"], attrs={"step": 2},
           arrays={"thresholds": th, "base": nb.rng.integers(-3, 4, size=c),
                   "direction": np.where(np.arange(c) % 2 == 0, 1, -1)})
    tt = nb.types["thr"]
    nb.add("lut", "lut", ["thr"], attrs={"in_lo": int(tt.lo - 2)},
           arrays={"table": nb.rng.integers(-100, 101, size=tt.hi - tt.lo + 5)})
    nb.add("fc", "dense", ["lut"], arrays={"weight": nb.weights((c, 2), -5, 5), "bias": nb.bias(2, 10)})
    return nb.network("fc")


def sbin(seed: int = 23) -> Network:
    """6x6x3 binary -> bconv 3x3 with thresholds (binary) -> binary maxpool 2x2/1 -> bconv 2x2/2 -> requant."""
    nb = rtl_nets.Builder("sbin", (6, 6, 3), BinaryType(), seed)
    nb.add("b1", "bconv2d", ["x"], t=BinaryType(), attrs={"strides": [1, 1]},
           arrays={"weight": nb.rng.integers(0, 2, size=(3, 3, 3, 5)),
                   "threshold": nb.rng.integers(-9, 10, size=5), "direction": np.array([1, -1, 1, 1, -1])})
    nb.add("mp", "maxpool", ["b1"], t=BinaryType(), attrs={"pool": [2, 2], "strides": [1, 1], "dims": 2})
    nb.add("b2", "bconv2d", ["mp"], attrs={"strides": [2, 2]},
           arrays={"weight": nb.rng.integers(0, 2, size=(2, 2, 5, 4))})
    nb.requant_to("r", "b2", 4)
    return nb.network("r")


NETS = {"s2d": s2d, "s1d": s1d, "sbin": sbin}


def _vectors(net: Network, n: int) -> np.ndarray:
    """Random raw inputs plus the edges: all lowest, all highest, all zero (when representable)."""
    x = random_vectors(net, n, seed=5)
    t = net.inputs[0].type
    lo, hi = (-1, 1) if isinstance(t, BinaryType) else (t.lo, t.hi)
    edges = [np.full_like(x[0], lo), np.full_like(x[0], hi)]
    if not isinstance(t, BinaryType):
        edges.append(np.zeros_like(x[0]))
    return np.concatenate([np.stack(edges), x])


@pytest.fixture(scope="module")
def designs():
    return {k: (f(), generate(f(), io="stream")) for k, f in NETS.items()}


@pytest.mark.parametrize("name", sorted(NETS))
def test_stream_bit_exact_fast_harness(designs, name):
    net, d = designs[name]
    x = _vectors(net, 200)
    r = run_fast(net, x, design=d)
    assert r.ok and r.mismatches == 0 and r.exact_vectors == r.vectors == len(x), r.as_dict()


@pytest.mark.parametrize("name", sorted(NETS))
def test_stream_lint_and_determinism(designs, name, tmp_path):
    net, d = designs[name]
    assert lint(d, tmp_path / "core", d.top) == ""
    assert lint(d, tmp_path / "axis", d.manifest["axis_top"]) == ""
    again = generate(NETS[name](), io="stream")
    assert again.files == d.files and again.manifest == d.manifest


@pytest.mark.parametrize("name", sorted(NETS))
def test_stream_schedule_matches_the_harness(designs, name):
    """The manifest's clocks per image and latency come from a model of the handshakes: it must
    predict the harness's clock count exactly (input always valid, output always read)."""
    from hls.rtl.stream import clock_stages, plan
    from rtl_sim.fast_sim import build, bus_input_elements, simulate

    net, d = designs[name]
    x = _vectors(net, 20)
    run = simulate(build(d), bus_input_elements(d.manifest, x, name))
    _, done = clock_stages(plan(net, net.ops)[0], len(x))
    tail = d.manifest["latency"] + 4 + d.manifest["initiation_interval"]  # the harness's idle clocks at the end
    assert run.cycles == done[-1] + tail
    assert done[-1] - done[-2] == d.manifest["initiation_interval"]


def test_stream_manifest(designs):
    _, d = designs["s2d"]
    m = d.manifest
    assert m["io"] == "stream" and m["in_ready"] and m["out_ready"]
    assert m["stream"]["in_beats"] == 42 and m["stream"]["in_beat_elements"] == 2
    assert m["stream"]["out_beats"] == 1 and m["input"]["width"] == 8
    # the first stage walks the 9x7 padded image (same 3x2: one row above and below, one column right)
    assert m["ops"]["c1"]["positions_per_image"] == 63 and m["initiation_interval"] == 63
    _, d1 = designs["s1d"]
    assert d1.manifest["stream"]["out_beats"] == 3 and d1.manifest["stream"]["out_beat_elements"] == 2
    top = d.files[f"{d.top}.v"]
    assert "in_ready" in top and "out_ready" in top and "42 beats per image" in top
    assert "reg [" in d.files[f"{d.top}_c1.v"] and " lb [0:" in d.files[f"{d.top}_c1.v"]  # a line-buffer memory


def test_stream_cocotb_gaps_and_back_pressure(designs, tmp_path):
    from rtl_sim.cosim import run_cosim

    net, d = designs["s2d"]
    res = run_cosim(net, _vectors(net, 12), tmp_path, design=d, gap_probability=0.3, seed=3)
    assert res.ok and res.vectors == 15 and res.mismatches == 0, res.describe()
    detail = json.loads((tmp_path / "job" / "result.json").read_text())
    assert detail["input_stalls"] > 0 and detail["outputs_seen"] == 15  # in_ready went low; no beat lost or added


def test_stream_refusals():
    with pytest.raises(RTLError, match=r"input 'x' \(4,\): --io stream needs a spatial input"):
        generate(rtl_nets.requant_bank(), io="stream")
    with pytest.raises(RTLError, match=r"op 'c_valid_s2' \(conv2d.*--io stream: its input 'x' is not the previous"):
        generate(rtl_nets.cnn2d(), io="stream")
    cnn = rtl_nets.cnn2d()
    cnn.ops = [op for op in cnn.ops if op.name not in ("c_valid_s2", "r3", "p_valid")]
    with pytest.raises(RTLError, match=r"op 'sum' \(add.*--io stream: 2 inputs"):
        generate(cnn, io="stream")
    with pytest.raises(RTLError, match=r"--weight-storage registers with --io stream"):
        generate(s2d(), io="stream", weights="registers")
    with pytest.raises(RTLError, match=r"--pipeline depth:2 with --io stream"):
        generate(s2d(), io="stream", pipeline="depth:2")
    with pytest.raises(NetworkError, match=r"--io 'serial'"):
        generate(s2d(), io="serial")
    mf = MinifloatType(3, 2)
    net = Network("mf", [Input("x", (4, 4, 1), mf)],
                  [Op("m", "maxpool", ["x"], (2, 2, 1), mf, {"pool": [2, 2], "strides": [2, 2], "dims": 2})], ["m"])
    with pytest.raises(RTLError, match=r"tensor 'x' .*minifloat tensors with --io stream"):
        generate(net, io="stream")
    nb = rtl_nets.Builder("flatreq", (2, 2, 2), IntType(4, True, (1.0,)), 1)
    _reshape(nb, "flat", "x", (8,))
    nb.requant_to("r", "flat", 3)  # per-element multipliers over a flattened stream
    with pytest.raises(RTLError, match=r"op 'r' \(requant.*per-channel arrays over a flattened stream"):
        generate(nb.network("r"), io="stream")


def test_stream_command_line(tmp_path, capsys):
    from qat.ir import netfile
    from qrtl.cli import main

    netfile.save(s2d(), tmp_path / "s2d")
    assert main(["rtl", str(tmp_path / "s2d"), "--io", "stream", "-o", str(tmp_path / "rtl")]) == 0
    assert "one image every 63 clocks" in capsys.readouterr().out
    assert json.loads((tmp_path / "rtl" / "manifest.json").read_text())["io"] == "stream"
    netfile.save(rtl_nets.requant_bank(), tmp_path / "vec")
    assert main(["rtl", str(tmp_path / "vec"), "--io", "stream", "-o", str(tmp_path / "rtl2")]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "needs a spatial input" in err
