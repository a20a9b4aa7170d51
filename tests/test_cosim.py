"""Co-simulation of the generated RTL against the golden model, bit for bit.

Every op kind the generator supports runs in one of the networks of
tests/rtl_nets.py; each is built once by the compiled Verilator harness
(rtl_sim.fast_sim, cached by content) and streamed with random vectors over
the whole input range plus edge vectors (and, for narrow inputs, every input
value on every element).  The protocol runs under cocotb: Icarus streams the
binary network and the other pipeline modes with valid gaps, a reset while a
vector is in flight and every layer's output compared (--trace-layers); the
AXI4-Stream wrapper runs under back-pressure; a deliberately corrupted layer
must be found and named.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import rtl_nets
from hls.rtl.verilog import generate
from qat.ir import golden, netfile
from qat.ir.network import Network
from qat.ir.types import BinaryType, IntType
from qrtl.cli import main
from rtl_sim.cosim import run_cosim
from rtl_sim.fast_sim import run_fast
from rtl_sim.vectors import random_vectors

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger" / "jet_tagger.h5"

VECTORS = {"cnn2d": 800, "seq1d": 800, "requant_bank": 1000, "binary": 1000, "branch": 800}


def assert_exact(res, n: int) -> None:
    assert res.ok, res.describe()
    assert res.vectors == n and res.exact_vectors == n and res.mismatches == 0, res.describe()
    assert res.first_mismatch is None and res.first_wrong_layer is None, res.describe()


def assert_stimulus(net: Network, x: np.ndarray) -> dict[str, np.ndarray]:
    """The vectors exercise the network: the edge vectors lead, and every op's output
    takes more than one value (a stuck layer would hide RTL errors downstream)."""
    t = net.inputs[0].type
    if not isinstance(t, BinaryType):
        assert (x[0] == t.lo).all() and (x[1] == t.hi).all() and (x[2] == 0).all()
        assert x.min() == t.lo and x.max() == t.hi
    env = golden.run(net, x, keep_all=True)
    for op in net.ops:
        v = np.asarray(env[op.name]).reshape(len(x), -1)
        assert len(np.unique(v)) > 1, f"{op.name} never changes"
    return env


@pytest.mark.parametrize("name", sorted(rtl_nets.ALL))
def test_cosim_bit_exact(name, tmp_path):
    net = rtl_nets.ALL[name]()
    x = rtl_nets.vectors(net, 5 * VECTORS[name], seed=1)
    assert_stimulus(net, x)
    res = run_fast(net, x)
    assert_exact(res, len(x))
    assert res.latency == generate(net).latency


def test_requant_vectors_hit_ties_saturation_and_wrap():
    """The requant bank's vectors tell every rounding mode apart (exact ties occur)
    and reach both saturation limits and wrapped values on every channel."""
    net = rtl_nets.requant_bank()
    x = rtl_nets.vectors(net, VECTORS["requant_bank"], seed=1)
    env = assert_stimulus(net, x)
    for kind in ("sat", "win", "wrap"):
        outs = {r: env[f"{kind}_{r}"] for r in rtl_nets.ROUNDINGS}
        for i, a in enumerate(rtl_nets.ROUNDINGS):
            for b in rtl_nets.ROUNDINGS[i + 1:]:
                assert not np.array_equal(outs[a], outs[b]), (kind, a, b)
    for r in rtl_nets.ROUNDINGS:
        sat, win, wrap = env[f"sat_{r}"], env[f"win_{r}"], env[f"wrap_{r}"]
        assert (sat.min(axis=0) == -128).all() and (sat.max(axis=0) == 127).all(), r
        assert (win.min(axis=0) == -50).all() and (win.max(axis=0) == 60).all(), r
        assert (wrap != np.clip(sat, -32, 31)).any(axis=0).all(), r
    assert (env["uwrap"] != np.clip(env["usat"], 0, 31)).any()


def test_cosim_jet_tagger(tmp_path):
    """The shipped QKeras example, converted and run through the compiled harness."""
    from qat.importers.from_qkeras import convert_file

    net = convert_file(str(JET))
    x = random_vectors(net, 5000, seed=3)
    res = run_fast(net, x)
    assert_exact(res, 5000)
    assert res.latency == len(net.ops)


def test_cosim_icarus(tmp_path):
    net = rtl_nets.binary()
    x = rtl_nets.vectors(net, 400, seed=4)
    res = run_cosim(net, x, tmp_path, "icarus", trace_layers=True, seed=5)
    assert res.simulator == "icarus"
    assert_exact(res, 400)


@pytest.mark.parametrize("pipeline,name", [("none", "seq1d"), ("depth:1", "branch")])
def test_cosim_other_pipeline_modes(pipeline, name, tmp_path):
    """--pipeline none (registers only at the output: latency 1) and depth:1 (a
    register after every adder level), every layer traced."""
    net = rtl_nets.ALL[name]()
    d = generate(net, pipeline=pipeline)
    if pipeline == "none":
        assert d.latency == 1
    else:
        assert d.latency > generate(net).latency
    x = rtl_nets.vectors(net, 300, seed=6)
    res = run_cosim(net, x, tmp_path, "icarus", design=d, trace_layers=True, seed=7)
    assert_exact(res, len(x))
    assert res.latency == d.latency


@pytest.mark.parametrize("pipeline", ["layer", "none"])
def test_cosim_awkward_names_and_dead_op(pipeline, tmp_path):
    """Clashing names, an op named 'axis', a dead op after the output."""
    net = rtl_nets.awkward_names()
    x = rtl_nets.vectors(net, 200, seed=10)
    res = run_cosim(net, x, tmp_path, "icarus", design=generate(net, pipeline=pipeline), trace_layers=True)
    assert_exact(res, len(x))


def test_cosim_axi_stream_backpressure(tmp_path):
    net = rtl_nets.branch()
    x = rtl_nets.vectors(net, 600, seed=8)
    res = run_cosim(net, x, tmp_path, "verilator", axis=True, seed=9, trace_layers=True)
    assert res.simulator == "verilator axi4-stream"
    assert_exact(res, len(x))
    r = json.loads((tmp_path / "job" / "result.json").read_text())
    assert r["frames_ok"] and r["frames"] > 100 and r["outputs_seen"] == len(x)
    assert r["traced_vectors"] == len(x)  # every layer of every vector compared
    # the sink really pushed back, and the wrapper really stopped accepting
    assert r["output_stall_cycles"] > 50 and r["input_stall_cycles"] > 50, r


def _corrupt_constants(text: str) -> str:
    """Move every constant (the biases) of a generated linear layer to the far end
    of its width: -2^(W-1) for a value >= 0, 2^(W-1)-1 for a negative one."""
    def far(m: re.Match) -> str:
        w = int(m.group(2)) + 1
        v = -(1 << (w - 1)) if not m.group(3) else (1 << (w - 1)) - 1
        return f"{m.group(1)}{'-' if v < 0 else ''}{w}'sd{abs(v)};"

    new, n = re.subn(r"(wire signed \[(\d+):0\] k_\d+ = )(-?)\d+'sd\d+;", far, text)
    assert n > 0, "no constant found"
    return new


def test_trace_layers_names_a_corrupted_layer(tmp_path, monkeypatch, capsys):
    """Corrupt one middle layer of the written design: `qrtl cosim` exits 1, names
    vector, output index, expected and got, and --trace-layers names that layer."""
    import hls.rtl.verilog

    net = rtl_nets.seq1d()
    netfile.save(net, tmp_path / "net")
    victim = "c_same_s2"  # conv1d between the first clip and a requant; 8 ops follow it
    real = hls.rtl.verilog.generate

    def corrupted(*args, **kw):
        d = real(*args, **kw)
        f = f"{d.top}_{victim}.v"
        d.files[f] = _corrupt_constants(d.files[f])
        assert d.files[f] != real(*args, **kw).files[f]
        return d

    monkeypatch.setattr(hls.rtl.verilog, "generate", corrupted)
    rc = main(["cosim", str(tmp_path / "net"), "--random", "120", "--simulator", "icarus", "--trace-layers",
               "-o", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert rc == 1, out
    res = json.loads((tmp_path / "work" / "cosim.json").read_text())
    assert res["ok"] is False and res["mismatches"] > 0 and res["exact_vectors"] < 120
    m = res["first_mismatch"]
    assert set(m) == {"vector", "output_index", "expected", "got"} and m["expected"] != m["got"]
    assert res["first_wrong_layer"]["layer"] == victim
    assert (f"first mismatch: vector {m['vector']}, output index {m['output_index']}: expected {m['expected']}, "
            f"got {m['got']}") in out
    assert f"first wrong layer: '{victim}'" in out
    # the golden model agrees with the reported expectation
    x = random_vectors(net, 120, seed=0)
    exp = np.asarray(golden.run(net, x)[net.outputs[0]]).reshape(120, -1)
    assert exp[m["vector"], m["output_index"]] == m["expected"]


def hidden_net() -> Network:
    """x int4 (6,) -> dense 'd' (2x + 3 per channel) -> argmax: a uniform change of the
    biases changes every value of 'd' but no argmax."""
    nb = rtl_nets.Builder("hidden", (6,), IntType(4, True, (0.25,)), seed=50)
    nb.add("d", "dense", ["x"], arrays={"weight": 2 * np.eye(6, dtype=np.int64), "bias": np.full(6, 3)})
    nb.add("cls", "argmax", ["d"], scale=(1.0,))
    return nb.network("cls")


def _hide_bias_change(d):
    """The hidden network's design with every bias of 'd' 3 -> 2 (3'sd3 -> 3'sd2)."""
    f = f"{d.top}_d.v"
    text, n = re.subn(r"= 3'sd3;", "= 3'sd2;", d.files[f])
    assert n == 6, d.files[f]
    d.files[f] = text
    return d


def test_cli_cosim_fails_on_a_layer_the_argmax_hides(tmp_path, monkeypatch, capsys):
    """A wrong internal layer whose error the argmax output hides: every output is exact,
    yet `qrtl cosim --trace-layers` exits 1 and names the layer, and cosim.json says not ok."""
    import hls.rtl.verilog

    net = hidden_net()
    x = random_vectors(net, 150, seed=0)
    # the change really is hidden: same argmax, different layer values
    env = golden.run(net, x, keep_all=True)
    assert np.array_equal(np.argmax(env["d"] - 1, axis=-1)[:, None], env["cls"])
    netfile.save(net, tmp_path / "net")
    real = hls.rtl.verilog.generate
    monkeypatch.setattr(hls.rtl.verilog, "generate", lambda *a, **kw: _hide_bias_change(real(*a, **kw)))
    rc = main(["cosim", str(tmp_path / "net"), "--random", "150", "--simulator", "icarus", "--trace-layers",
               "-o", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert rc == 1, out
    res = json.loads((tmp_path / "work" / "cosim.json").read_text())
    assert res["mismatches"] == 0 and res["exact_vectors"] == 150  # the output is exact ...
    assert res["ok"] is False and res["first_wrong_layer"] == {"vector": 0, "layer": "d"}  # ... the layer is not
    assert "first wrong layer: 'd'" in out


def test_axis_trace_finds_a_layer_the_argmax_hides(tmp_path):
    net = hidden_net()
    x = random_vectors(net, 100, seed=1)
    res = run_cosim(net, x, tmp_path, "verilator", design=_hide_bias_change(generate(net)), axis=True,
                    trace_layers=True, seed=2)
    assert res.mismatches == 0 and res.exact_vectors == 100, res.describe()
    assert not res.ok and res.first_wrong_layer == {"vector": 0, "layer": "d"}, res.describe()


@pytest.mark.parametrize("simulator", ["verilator", "icarus"])
def test_cli_cosim_waves(simulator, tmp_path, capsys):
    """`qrtl cosim --waves` writes a waveform with either simulator (Verilator: FST when
    its lz4/zlib headers are installed, else VCD) and exits 0 when bit-exact."""
    netfile.save(rtl_nets.awkward_names(), tmp_path / "net")
    rc = main(["cosim", str(tmp_path / "net"), "--random", "40", "--simulator", simulator, "--waves",
               "--trace-layers", "-o", str(tmp_path / "work")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert f"{simulator}: 40/40 vectors bit-exact" in out
    waves = Path(out.split("waves: ")[1].split()[0])
    assert waves.suffix in (".vcd", ".fst") and waves.stat().st_size > 0


def test_cosim_rejects_a_work_dir_make_cannot_handle(tmp_path):
    from rtl_sim.cosim import CosimError

    net = rtl_nets.awkward_names()
    with pytest.raises(CosimError, match="choose another directory"):
        run_cosim(net, rtl_nets.vectors(net, 4), tmp_path / "depth:1", "verilator")
    assert not (tmp_path / "depth:1").exists()

