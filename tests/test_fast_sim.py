"""The compiled Verilator harness (rtl_sim.fast_sim): bit-exact against the golden model on
every test design, identical outputs to the cocotb testbench on the same vectors, vectorised
bus packing equal to hls.rtl.verilog.pack_bus/unpack_bus, the build cache, and one-line errors
for a design Verilator cannot build, an empty or wrongly shaped vector file and a design that
hangs (a hand-written top that never raises out_valid)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import rtl_nets
from hls.rtl.verilog import Design, generate, pack_bus, unpack_bus
from qat.ir import golden, netfile
from qrtl.cli import main
from rtl_sim import fast_sim
from rtl_sim.cosim import run_cosim
from rtl_sim.fast_sim import FastSimError, pack_words, run_fast, unpack_words

VECTORS = {"cnn2d": 800, "seq1d": 800, "requant_bank": 1000, "binary": 1000, "branch": 800}


def assert_exact(res, n: int) -> None:
    assert res.ok, res.describe()
    assert res.vectors == n and res.exact_vectors == n and res.mismatches == 0, res.describe()


@pytest.mark.parametrize("n,bits,signed,binary", [(16, 10, True, False), (7, 64, True, False), (3, 33, True, False),
                                                  (9, 31, False, False), (100, 1, False, True), (5, 63, True, False),
                                                  (13, 5, False, False), (1, 3, True, False)])
def test_packing_equals_pack_bus(n, bits, signed, binary):
    """Words (Verilator's VlWide order) hold exactly pack_bus's integers, wide buses included."""
    rng = np.random.default_rng(bits * 100 + n)
    if binary:
        x = rng.choice([-1, 1], size=(60, n))
    elif signed:
        x = rng.integers(-(1 << (bits - 1)), (1 << (bits - 1)) - 1, size=(60, n), endpoint=True)
    else:
        x = rng.integers(0, (1 << bits) - 1, size=(60, n), endpoint=True)
    x[0] = x.min() if not binary else -1
    width = n * (1 if binary else bits)
    w = pack_words(x, bits, binary, width)
    assert w.dtype == np.uint32 and w.shape == (60, -(-width // 32))
    ref = pack_bus(x, bits, binary)
    assert [sum(int(v) << (32 * k) for k, v in enumerate(row)) for row in w] == ref
    y = unpack_words(w, n, bits, signed, binary)
    assert np.array_equal(y, unpack_bus(ref, n, bits, signed, binary)) and np.array_equal(y, x)


@pytest.mark.parametrize("name", sorted(rtl_nets.ALL) + ["awkward_names"])
def test_fast_bit_exact(name):
    """Every op kind the generator supports (tests/rtl_nets.py), all vectors through the harness."""
    net = rtl_nets.ALL[name]() if name in rtl_nets.ALL else rtl_nets.awkward_names()
    x = rtl_nets.vectors(net, VECTORS.get(name, 300), seed=1)
    res = run_fast(net, x)
    assert_exact(res, len(x))
    assert res.simulator == "verilator-fast" and res.latency == generate(net).latency


def test_fast_equals_cocotb_on_the_same_vectors(tmp_path):
    """Both engines stream the same vectors (cocotb with valid gaps and a reset in flight) and
    put out the same bus elements, which equal the golden model's."""
    net = rtl_nets.branch()
    x = rtl_nets.vectors(net, 300, seed=21)
    d = generate(net, pipeline="depth:1")
    res = run_cosim(net, x, tmp_path, "verilator", design=d, seed=3)
    assert_exact(res, len(x))
    cocotb_out = np.load(tmp_path / "job" / "outputs_0.npy")
    fb = fast_sim.build(d)
    fast_out = fast_sim.simulate(fb, fast_sim.bus_input_elements(d.manifest, x, "test")).outputs
    assert fast_out.shape == cocotb_out.shape == (len(x), int(np.prod(d.manifest["output"]["shape"])))
    assert np.array_equal(fast_out, cocotb_out)
    assert np.array_equal(fast_out, np.asarray(golden.run(net, x)[net.outputs[0]]).reshape(len(x), -1))


def test_cli_cosim_engines_and_predict_rtl(tmp_path, capsys):
    """`qrtl cosim --engine both`: the harness checks all vectors, cocotb a printed sample;
    the report says which engine checked how many. `qrtl predict --engine rtl` equals the
    golden model's output file."""
    net = rtl_nets.seq1d()
    netfile.save(net, tmp_path / "net")
    rc = main(["cosim", str(tmp_path / "net"), "--random", "500", "--sample", "60", "-o", str(tmp_path / "w")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "verilator-fast: 500/500 vectors bit-exact" in out
    assert "cocotb protocol sample: 60 of 500 vectors" in out and "verilator: 60/60 vectors bit-exact" in out
    rep = json.loads((tmp_path / "w" / "cosim.json").read_text())
    assert rep["ok"] and rep["vectors"] == 500 and rep["vectors_checked"] == {"fast": 500, "cocotb": 60}
    rc = main(["cosim", str(tmp_path / "net"), "--random", "300", "--engine", "fast", "-o", str(tmp_path / "f")])
    assert rc == 0 and json.loads((tmp_path / "f" / "cosim.json").read_text())["vectors_checked"] == {"fast": 300}
    capsys.readouterr()

    from rtl_sim.vectors import random_vectors

    np.save(tmp_path / "x.npy", random_vectors(net, 700, 5))
    for engine in ("golden", "rtl"):
        assert main(["predict", str(tmp_path / "net"), "--input", str(tmp_path / "x.npy"), "--raw-input",
                     "--integers", "--engine", engine, "-o", str(tmp_path / f"{engine}.npy")]) == 0
    g, r = np.load(tmp_path / "golden.npy"), np.load(tmp_path / "rtl.npy")
    assert g.shape == r.shape and g.dtype == r.dtype and np.array_equal(g, r)
    assert main(["predict", str(tmp_path / "net"), "--input", str(tmp_path / "x.npy"), "--raw-input",
                 "--engine", "rtl", "-o", str(tmp_path / "real.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "real.npy"), golden.dequantize(net.tensor_types()[net.outputs[0]], g))


def test_fast_engine_finds_a_corrupted_design(tmp_path, capsys):
    """A wrong constant in one layer: vector index, output index, expected, got, as cocotb reports."""
    from test_cosim import _corrupt_constants

    net = rtl_nets.seq1d()
    d = generate(net)
    f = f"{d.top}_c_same_s2.v"
    d.files[f] = _corrupt_constants(d.files[f])
    x = rtl_nets.vectors(net, 200, seed=2)
    res = run_fast(net, x, d)
    assert not res.ok and res.mismatches > 0 and res.exact_vectors < len(x)
    m = res.first_mismatch
    exp = np.asarray(golden.run(net, x)[net.outputs[0]]).reshape(len(x), -1)
    assert exp[m["vector"], m["output_index"]] == m["expected"] != m["got"]
    assert f"first mismatch: vector {m['vector']}, output index {m['output_index']}" in res.describe()


def test_minifloat_design_codes_and_predict():
    """Minifloat input and output buses travel as codes; predict decodes them."""
    from test_rtl_minifloat import NETS, minifloat_vectors

    net = NETS["mf_to_mf"]()
    x = minifloat_vectors(net.inputs[0].type, tuple(net.inputs[0].shape), 400, np.random.default_rng(7))
    assert_exact(run_fast(net, x), len(x))
    d = generate(net)
    assert np.array_equal(fast_sim.predict_raw(d, x).reshape(len(x), -1),
                          np.asarray(golden.run(net, x)[net.outputs[0]]).reshape(len(x), -1))


def test_build_cache_hit_and_parallel_slices():
    """A second build of the same Verilog is a cache hit; slices in parallel processes give
    the same outputs as one process."""
    net = rtl_nets.awkward_names()
    d = generate(net)
    first = fast_sim.build(d)
    again = fast_sim.build(generate(net))
    assert again.cached and again.exe == first.exe and again.build_seconds < 2.0
    x = np.concatenate([rtl_nets.vectors(net, 300, seed=s) for s in range(80)])  # > 2 x 10,000 vectors
    elems = fast_sim.bus_input_elements(d.manifest, x, "test")
    one = fast_sim.simulate(again, elems, jobs=1)
    two = fast_sim.simulate(again, elems, jobs=2)
    assert two.processes == 2 and one.processes == 1
    assert np.array_equal(one.outputs, two.outputs)
    exp = np.asarray(golden.run(net, x)[net.outputs[0]]).reshape(len(x), -1)
    assert np.array_equal(one.outputs, exp)
    # the quick (-O0) build of the fuzzer is its own cache entry and computes the same integers
    assert fast_sim.build_key(d, quick_build=True) != fast_sim.build_key(d)
    quick = fast_sim.predict_raw(d, x[:300], quick_build=True)
    assert np.array_equal(quick.reshape(300, -1), exp[:300])


# ---- bad input --------------------------------------------------------------------------------

def _hand_design(body: str, top: str = "stuck", width: int = 8) -> Design:
    text = (f"module {top} (input wire clk, input wire rst, input wire in_valid, input wire [{width - 1}:0] in_data,\n"
            f"  output wire out_valid, output wire [{width - 1}:0] out_data);\n{body}\nendmodule\n")
    io = {"shape": [1], "element_bits": width, "width": width, "signed": False, "binary": False, "name": "x"}
    man = {"top": top, "latency": 1, "input": io, "output": dict(io), "ops": {}}
    return Design(top, {f"{top}.v": text}, 1, {}, man)


def test_hang_is_a_cycle_limit_error():
    d = _hand_design("  assign out_valid = 1'b0;\n  assign out_data = in_data;")
    with pytest.raises(FastSimError, match=r"design 'stuck' hangs: 0 of 5 outputs .*cycle limit") as e:
        fast_sim.predict_raw(d, np.arange(5).reshape(5, 1))
    assert "\n" not in str(e.value)


def test_build_failure_names_the_log():
    d = _hand_design("  assign out_valid = in_valid\n  assign out_data = in_data;", top="broken")
    with pytest.raises(FastSimError, match=r"Verilator build of design 'broken' failed .*; see \S+\.log$") as e:
        fast_sim.build(d)
    msg = str(e.value)
    assert "\n" not in msg
    log = msg.rsplit("see ", 1)[1]
    assert "broken.v" in open(log).read()


def test_bad_vector_files(tmp_path, capsys):
    net = rtl_nets.awkward_names()
    netfile.save(net, tmp_path / "net")
    np.save(tmp_path / "empty.npy", np.zeros((0, 4), np.int64))
    np.save(tmp_path / "wrong.npy", np.zeros((3, 5), np.int64))
    for f in ("empty", "wrong"):
        rc = main(["predict", str(tmp_path / "net"), "--input", str(tmp_path / f"{f}.npy"), "--raw-input",
                   "--engine", "rtl", "-o", str(tmp_path / "y.npy")])
        err = capsys.readouterr().err
        assert rc == 1 and err.startswith("qrtl: error: ") and err.count("\n") == 1, err
    with pytest.raises(FastSimError, match="no vectors"):
        fast_sim.predict_raw(generate(net), np.zeros((0, 4), np.int64))
    with pytest.raises(FastSimError, match=r"shape \(5,\) do not match the input 'in.x' of shape \(4,\)"):
        fast_sim.predict_raw(generate(net), np.zeros((3, 5), np.int64))


def test_reconfigurable_weights_loaded_through_the_serial_port():
    """Register (TMR) weights: the driver shifts each phase's bitstream in through cfg_en/cfg_sdi
    and commits it; phases with faults are left to cocotb."""
    from test_reconfig import small_net

    a, b = small_net(1), small_net(2)
    d = generate(a, weights="tmr")
    t = a.inputs[0].type
    raw = np.random.default_rng(5).integers(t.lo, t.hi + 1, size=(400,) + tuple(a.inputs[0].shape))
    phases = [{"name": "A", "net": a}, {"name": "B", "net": b}, {"name": "B, faults", "net": b, "faults": [{}]}]
    res = run_fast(a, raw, d, phases=phases)
    assert res.ok, res.describe()
    assert [p["name"] for p in res.phases] == ["A", "B"] and res.vectors == 800
    assert not np.array_equal(fast_sim.predict_raw(d, raw, net=a), fast_sim.predict_raw(d, raw, net=b))
    with pytest.raises(FastSimError, match="reconfigurable weights need the network"):
        fast_sim.predict_raw(d, raw)


def test_in_ready_and_initiation_interval():
    """Ready for designs with II > 1: a hand-written top with an in_ready port (ready every
    other clock) and a manifest II of 2, and one without in_ready at II 3."""
    body = ("  reg ph, v;\n  reg [7:0] d;\n  assign in_ready = ph;\n"
            "  always @(posedge clk) begin\n    if (rst) begin ph <= 1'b0; v <= 1'b0; d <= 8'd0; end\n"
            "    else begin ph <= ~ph; v <= in_valid & ph; d <= in_data + 8'd1; end\n  end\n"
            "  assign out_valid = v;\n  assign out_data = d;")
    d = _hand_design(body, top="ready2")
    d.files["ready2.v"] = d.files["ready2.v"].replace("output wire out_valid", "output wire in_ready, output wire out_valid")
    d.manifest["initiation_interval"] = 2
    assert fast_sim.has_in_ready(d)
    x = np.arange(300).reshape(300, 1) % 256
    fb = fast_sim.build(d)
    r = fast_sim.simulate(fb, x)
    assert np.array_equal(r.outputs[:, 0], (x[:, 0] + 1) % 256) and 2 * 300 <= r.cycles <= 2 * 300 + 10
    body3 = ("  reg v;\n  reg [7:0] d;\n  always @(posedge clk) begin\n    if (rst) v <= 1'b0; else v <= in_valid;\n"
             "    d <= in_data ^ 8'h5a;\n  end\n  assign out_valid = v;\n  assign out_data = d;")
    d3 = _hand_design(body3, top="ii3")
    d3.manifest["initiation_interval"] = 3
    assert not fast_sim.has_in_ready(d3)
    r3 = fast_sim.simulate(fast_sim.build(d3), x)
    assert np.array_equal(r3.outputs[:, 0], x[:, 0] ^ 0x5A) and 3 * 299 + 1 <= r3.cycles <= 3 * 300 + 10
