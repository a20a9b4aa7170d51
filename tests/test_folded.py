"""Folded layers (``--reuse R``, hls.rtl.folded) and the II > 1 handshake: bit-exact against the
golden model with the compiled harness for several R and mixed per-layer settings, the cocotb
protocol test (valid gaps, random data while in_valid is low, a reset in flight) and the
AXI4-Stream wrapper (tready low while the core is busy, sink back-pressure), lint, refusals,
determinism, and unchanged unrolled designs."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest

import rtl_nets
from hls.rtl import folded
from hls.rtl.folded import plan_reuse
from hls.rtl.verilog import generate
from qat.ir.network import NetworkError
from qat.ir.types import IntType, MinifloatType
from rtl_sim.cosim import run_cosim
from rtl_sim.fast_sim import run_fast
from test_rtl import lint


def foldnet(seed: int = 31):
    """x (3, 4) int7 -> conv1d k2 'same' (4 -> 4) -> requant uint5 -> dense per position (4 -> 3)
    -> requant int6 -> reshape (9,) -> dense 9 -> 4 (one all-zero column: the output is its bias)."""
    nb = rtl_nets.Builder("foldnet", (3, 4), IntType(7, True, (2.0 ** -4,)), seed)
    nb.add("c1", "conv1d", ["x"], attrs={"strides": [1], "padding": "same"},
           arrays={"weight": nb.weights((2, 4, 4), -13, 13), "bias": nb.bias(4, 60)})
    nb.requant_to("r1", "c1", 5, signed=False)
    nb.add("d1", "dense", ["r1"], arrays={"weight": nb.weights((4, 3), -9, 9), "bias": nb.bias(3, 30)})
    nb.requant_to("r2", "d1", 6, signed=True)
    rtl_nets._reshape(nb, "flat", "r2", (9,))
    w = nb.weights((9, 4), -31, 31, 0.1)
    w[:, 2] = 0
    nb.add("d2", "dense", ["flat"], arrays={"weight": w, "bias": np.array([-77, 5, -3, 0])})
    return nb.network("d2")


@pytest.fixture(scope="module")
def net():
    return foldnet()


@pytest.fixture(scope="module")
def vectors(net):
    x = rtl_nets.vectors(net, 400, seed=3)
    t = net.inputs[0].type
    edges = np.stack([np.full(net.inputs[0].shape, v) for v in (0, t.lo, t.hi, -1, 1)])
    return np.concatenate([edges, x]).astype(np.int64)


@pytest.mark.parametrize("reuse, ii, style", [(2, 2, None), ({"c1": 7, "d2": 4}, 7, None),
                                              ("c1=2,d1=5,d2=3", 5, "rom")])
def test_folded_bit_exact(net, vectors, reuse, ii, style, monkeypatch):
    """Global R, and mixed designs (folded and unrolled layers in one top): II = the largest R.  Both
    digit-sum structures: the adder graph and distributed-arithmetic tables (the default for 1-bit
    digits; forced here for 4-, 1- and 2-bit digits, signed inputs in offset binary)."""
    monkeypatch.setattr(folded, "FORCE_STYLE", style)
    d = generate(net, reuse=reuse)
    man = d.manifest
    assert man["initiation_interval"] == ii and man["in_ready"] is True
    assert all(man["ops"][k].get("reuse", 1) == r for k, r in man["reuse"].items() for r in [r])
    unrolled = generate(net)
    assert d.latency > unrolled.latency
    res = run_fast(net, vectors, design=d)
    assert res.ok and res.vectors == len(vectors), res.describe()


def test_folded_protocol_cocotb_and_axis(net, vectors, tmp_path):
    """The cocotb network testbench (gaps, random data while in_valid is low, vectors held while
    in_ready is low, a reset in flight) and the AXI4-Stream wrapper (tready low at times)."""
    d = generate(net, reuse={"c1": 3, "d1": 2})
    res = run_cosim(net, vectors[:60], tmp_path / "tb", design=d, gap_probability=0.3)
    assert res.ok, res.describe()
    res = run_cosim(net, vectors[:60], tmp_path / "axis", design=d, axis=True)
    assert res.ok, res.describe()
    r = json.loads((tmp_path / "axis" / "job" / "result.json").read_text())
    assert r["input_stall_cycles"] > 0 and r["frames_ok"]


def test_lint_and_ports(net, tmp_path, monkeypatch):
    monkeypatch.setattr(folded, "FORCE_STYLE", "rom")
    r = generate(net, reuse="c1=2,d1=5,d2=3")
    assert lint(r, tmp_path / "rom", r.top) == ""
    monkeypatch.setattr(folded, "FORCE_STYLE", None)
    d = generate(net, reuse="2,d2=3")
    for top in (d.top, d.manifest["axis_top"]):
        assert lint(d, tmp_path / "rtl", top) == "", top
    top = d.files[f"{d.top}.v"]
    assert re.search(r"output wire in_ready", top) and "accept" in top
    assert "input wire start" in d.files[f"{d.top}_c1.v"]


def test_unrolled_designs_unchanged(net):
    """reuse None / 1 / R=1 everywhere: the same files as before folding existed (no in_ready)."""
    base = generate(net)
    for reuse in (None, 1, "1", {"d1": 1}):
        d = generate(net, reuse=reuse)
        assert d.files == base.files and d.manifest == base.manifest
    assert "in_ready" not in base.files[f"{base.top}.v"] and "initiation_interval" not in base.manifest


def test_deterministic(net):
    a, b = generate(net, reuse="3,d1=2"), generate(foldnet(), reuse="3,d1=2")
    assert a.files == b.files and a.manifest == b.manifest


def test_bad_reuse_one_line(net):
    cases = [("fc9=2", "no layer 'fc9'"), ("r1=2", "r1.*no multiplications"), ("c1=8", "c1=8.*R <= 7"),
             ("d1=0", "at least 1"), ("x", "integer")]
    for spec, msg in cases:
        with pytest.raises(NetworkError, match=msg) as e:
            generate(net, reuse=spec)
        assert "\n" not in str(e.value)
    with pytest.raises(NetworkError, match="c1=2.*weight-storage fixed"):
        generate(net, reuse="c1=2", weights="registers")
    nb = rtl_nets.Builder("mf", (4,), MinifloatType(4, 3), 5)
    nb.add("d", "dense", ["x"], arrays={"weight": nb.weights((4, 2), -3, 3), "bias": nb.bias(2, 3)})
    with pytest.raises(NetworkError, match="d=2.*minifloat input"):
        plan_reuse(nb.network("d"), "2", "fixed")


def test_cli_rtl_reuse(net, tmp_path, capsys):
    from qat.ir import netfile
    from qrtl.cli import main

    netfile.save(net, tmp_path / "net")
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl"), "--reuse", "2,d2=3"]) == 0
    out = capsys.readouterr().out
    assert "folded: c1 over 2 clocks, d1 over 2 clocks, d2 over 3 clocks; one inference every 3 clocks" in out
    man = json.loads((tmp_path / "rtl" / "manifest.json").read_text())
    assert man["initiation_interval"] == 3 and man["in_ready"] and man["reuse"] == {"c1": 2, "d1": 2, "d2": 3}
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "bad"), "--reuse", "fc9=2"]) == 1
    err = capsys.readouterr().err.strip()
    assert "no layer 'fc9'" in err and len(err.splitlines()) == 1
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "dsp"), "--reuse", "2", "--fold", "dsp"]) == 0
    out = capsys.readouterr().out
    man = json.loads((tmp_path / "dsp" / "manifest.json").read_text())
    assert man["fold"] == "dsp" and man["initiation_interval"] == 2
    n = sum(int(ln.split(":")[1]) for f in man["files"] if f.endswith(".v")
            for ln in (tmp_path / "dsp" / f).read_text().splitlines()[:8] if ln.startswith("// multipliers"))
    assert f"multipliers: {n:,} (--fold dsp" in out and n > 0


# ---- --fold dsp: each output's terms dealt to R phases of multiplier slots ----------------------------

def dsp_slots(net, plan: dict[str, int]) -> int:
    """Multipliers a --fold dsp design of dense layers should hold: per output (at every position),
    the slots ceil(terms / R) whose R phase weights are not all zero (terms: the layer's used inputs)."""
    shapes, total = net.tensor_shapes(), 0
    for name, r in plan.items():
        op = net.op(name)
        w = op.arrays["weight"]
        pos = int(np.prod(shapes[op.inputs[0]])) // w.shape[0]
        w = w[np.any(w != 0, axis=1)]  # inputs no output uses are left out
        total += pos * sum(bool(w[s * r:(s + 1) * r, o].any()) for o in range(w.shape[1])
                           for s in range(-(-w.shape[0] // r)))
    return total


@pytest.mark.parametrize("pack", [False, True])
@pytest.mark.parametrize("reuse", ["2", {"c1": 8, "d2": 9}, "c1=3,d1=4,d2=5"])
def test_folded_dsp_bit_exact(net, vectors, reuse, pack, monkeypatch):
    """--fold dsp: any R up to the terms per output (3 and 5 divide neither 8 nor 9 terms; 8 and 9 are
    one term per clock), mixed with unrolled layers, one output per slice or two packed into one
    (w_hi * 2^K + w_lo); edge and random vectors bit-exact."""
    monkeypatch.setattr(folded, "PACK_DSP", pack)
    d = generate(net, reuse=reuse, fold="dsp")
    assert d.manifest["fold"] == "dsp"
    res = run_fast(net, vectors, design=d)
    assert res.ok and res.vectors == len(vectors), res.describe()
    from hls.engine.cost import multipliers

    plan = plan_reuse(net, reuse, "fixed", "dsp")
    dense = {k: v for k, v in plan.items() if k != "c1"}
    d_dense = generate(net, reuse=dense, fold="dsp")
    if pack:  # pairs of outputs share a slice where the packed weights and sums fit
        assert dsp_slots(net, dense) / 2 <= multipliers(d_dense.files) < dsp_slots(net, dense)
    else:
        assert multipliers(d_dense.files) == dsp_slots(net, dense) > 0
    if "c1" in plan:  # conv1d k2 'same': 2 taps x 4 channels, fewer at the padded edges
        assert multipliers(d.files) > multipliers(d_dense.files)


def test_folded_dsp_lint_cocotb_and_bad_input(net, vectors, tmp_path):
    d = generate(net, reuse="3,d2=4", fold="dsp")
    for top in (d.top, d.manifest["axis_top"]):
        assert lint(d, tmp_path / "rtl", top) == "", top
    res = run_cosim(net, vectors[:60], tmp_path / "tb", design=d, gap_probability=0.3)
    assert res.ok, res.describe()
    with pytest.raises(NetworkError, match=r"c1=9 --fold dsp: .*8 multiplications per output of layer 'c1'") as e:
        generate(net, reuse="c1=9", fold="dsp")
    assert "\n" not in str(e.value)
    with pytest.raises(NetworkError, match="--fold must be one of"):
        generate(net, reuse="2", fold="dsp48")
    assert generate(net, fold="dsp").files == generate(net).files  # without --reuse nothing folds


def test_folded_dsp_maps_to_dsp48(net, tmp_path):
    """Yosys synth_xilinx puts every multiplier (packed: two outputs' products) and its chained addition
    into one DSP48E1: the DSP count equals the multipliers the generator wrote, the slices are
    registered (the timing proxy sees no chain of them), and the folded layer's LUTs are below the
    unrolled layer's."""
    from boards.catalog import board, fit_problem
    from boards.yosys_report import synth_fpga
    from hls.engine.cost import multipliers

    luts = {}
    for name, d in (("dsp", generate(net, reuse="d2=3", fold="dsp")), ("unrolled", generate(net))):
        d.write(tmp_path / name)
        (tmp_path / f"synth_{name}").mkdir()
        mod = f"{d.top}_d2"  # the layer alone
        rep = synth_fpga([tmp_path / name / f"{mod}.v"], mod, board("pynq-z2"), tmp_path / f"synth_{name}")
        luts[name] = rep["total"]["LUT"]
        if name == "dsp":
            assert rep["total"]["DSP"] == multipliers({mod: d.files[f"{mod}.v"]}) < dsp_slots(net, {"d2": 3})
            # the systolic chain: slices end paths with their registers, no path runs through two of them
            assert rep["registered_dsps"] > 0 and rep["path_dsp_cells"] <= 1, rep
    assert luts["dsp"] < luts["unrolled"], luts
    msg = fit_problem(board("pynq-z2"), 100, "net", multipliers=221)
    assert "221 multipliers" in msg and "220" in msg and "--reuse" in msg
    assert fit_problem(board("pynq-z2"), 100, "net", multipliers=220) is None


@pytest.mark.parametrize("mode", ["registers", "tmr"])
def test_folded_dsp_register_weights(mode, tmp_path):
    """--fold dsp with weights in registers (hls.rtl.reconfig): the phase-selected weight is a register
    word; every extreme weight set (the accumulators' worst cases) loads over the serial port and
    co-simulates bit-exact on the edge inputs; with TMR, upsets in one active copy are voted out."""
    from test_reconfig import _faults, extreme_inputs, extreme_sets, tight_net
    from hls.rtl.reconfig import param_layout

    net = tight_net()
    d = generate(net, weights=mode, reuse="2,fc=3", fold="dsp")
    assert d.manifest["initiation_interval"] == 3 and "cfg" in d.manifest
    x = extreme_inputs(net)
    sets = extreme_sets(net, param_layout(net))
    phases = [{"name": n, "net": e} for n, e in sets.items()]
    if mode == "tmr":
        phases.append({"name": "upsets in copy c", "net": sets["random limits"], "faults": _faults(d, "c", 20, 4)})
    res = run_cosim(net, x, tmp_path / "tb", design=d, phases=phases, seed=5)
    assert res.ok, res.describe()
    assert all(p["exact_vectors"] == len(x) and p["mismatches"] == 0 for p in res.phases), res.phases
    assert lint(d, tmp_path / "rtl", d.top) == ""
