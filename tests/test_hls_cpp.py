"""HLS C++ generator: C-simulation (g++ + hls4ml's ap_types) bit for bit against the golden model.

Small integer networks are built directly with random weights; each combines several op kinds so
that the suite needs only a few g++ compiles (each costs several seconds), and the compiles run in
parallel.  Every op kind of the integer network is covered: dense, conv1d, conv2d (same/valid,
strides), bdense/bconv2d (with and without thresholds), maxpool/avgpool (1-D/2-D, same/valid),
reshape, add, concat, clip, requant (every rounding mode, saturate and wrap, per-channel multipliers
and shifts including left shifts, products wider than 64 bits, minifloat outputs), threshold, lut
and argmax (per-tensor and non-power-of-two per-channel scales).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from hls.cpp import hls_cpp
from rtl_sim.csim import run_csim
from rtl_sim.vectors import random_inputs
from qat.ir.intervals import analyze, op_bounds, type_bounds, validate
from qat.ir.network import Input, Network, Op, ROUNDING_MODES
from qat.ir.types import BinaryType, IntType, MinifloatType, signed_bits_for, type_for_range, unsigned_bits_for

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "jet_tagger"
N_VECTORS = 1500


class NB:
    """Tiny network builder: shapes and (when not given) the narrowest type from interval analysis."""

    def __init__(self, name: str, inputs: list[Input]):
        self.net = Network(name, list(inputs), [], [])
        self.bounds = {i.name: type_bounds(i.type, tuple(i.shape)) for i in inputs}
        self.types = {i.name: i.type for i in inputs}

    def add(self, name, kind, inputs, type_=None, attrs=None, arrays=None, scale=(1.0,)) -> str:
        shape = tuple((attrs or {}).get("shape", ())) if kind == "reshape" else ()
        op = Op(name, kind, list(inputs), shape, type_ or IntType(200, True, scale), dict(attrs or {}),
                dict(arrays or {}))
        b = op_bounds(op, [self.bounds[i] for i in inputs], [self.types[i] for i in inputs])
        op.shape = tuple(b.lo.shape)
        if type_ is None:
            op.type = type_for_range(b.min, b.max, scale)
        self.net.ops.append(op)
        self.bounds[name], self.types[name] = b, op.type
        return name

    def done(self, *outputs) -> Network:
        self.net.outputs = list(outputs)
        validate(self.net)
        return self.net


def rq(mult, shift, rounding="half_even", overflow="saturate", **attrs) -> tuple[dict, dict]:
    a = {"rounding": rounding, "overflow": overflow, **attrs}
    return a, {"mult": np.atleast_1d(np.asarray(mult, dtype=np.int64)),
               "shift": np.atleast_1d(np.asarray(shift, dtype=np.int64))}


def rand_w(rng, shape, lo=-31, hi=31):
    return rng.integers(lo, hi + 1, size=shape).astype(np.int64)


def net_conv2d(rng) -> Network:
    """conv2d same/valid, stride 1/2 (asymmetric 'same' padding), maxpool same/valid, avgpool, requant,
    reshape, dense, argmax (per-tensor and non-power-of-two per-channel scales); several outputs."""
    b = NB("conv2d_net", [Input("img", (7, 7, 3), IntType(8, True, (2.0 ** -4,)))])
    b.add("c1", "conv2d", ["img"], attrs={"strides": [1, 1], "padding": "same"},
          arrays={"weight": rand_w(rng, (3, 3, 3, 4)), "bias": rand_w(rng, (4,), -500, 500)})
    a, r = rq(rng.integers(1, 1 << 10, 4), [14, 15, 13, 16], "half_even", lo=0, hi=63)
    b.add("r1", "requant", ["c1"], IntType(6, False), a, r)
    b.add("mp_same", "maxpool", ["r1"], b.types["r1"], {"pool": [2, 2], "strides": [2, 2], "padding": "same",
                                                          "dims": 2})  # 7 -> 4, padded border
    b.add("c2", "conv2d", ["mp_same"], attrs={"strides": [2, 2], "padding": "same"},
          arrays={"weight": rand_w(rng, (3, 3, 4, 5)), "bias": rand_w(rng, (5,), -300, 300)})  # 4 -> 2
    a, r = rq([3, 5, 7, 1, 2], [4, 5, -1, 3, 0], "half_up")  # one left shift, one plain copy
    b.add("r2", "requant", ["c2"], IntType(9, True), a, r)
    b.add("c3", "conv2d", ["r1"], attrs={"strides": [2, 2], "padding": "valid"},
          arrays={"weight": rand_w(rng, (2, 2, 4, 3), 0, 9), "bias": rand_w(rng, (3,), 0, 40)})  # >= 0: ap_uint acc
    b.add("mp_valid", "maxpool", ["c3"], b.types["c3"], {"pool": [3, 2], "strides": [1, 2], "padding": "valid",
                                                        "dims": 2})
    b.add("c4", "conv2d", ["img"], attrs={"strides": [1, 2], "padding": "valid"},
          arrays={"weight": rand_w(rng, (3, 2, 3, 2)), "bias": rand_w(rng, (2,))})
    b.add("ap", "avgpool", ["c4"], attrs={"pool": [2, 2], "strides": [2, 2], "padding": "valid", "dims": 2})
    b.add("flat", "reshape", ["r2"], b.types["r2"], {"shape": [20]})
    b.add("fc", "dense", ["flat"], arrays={"weight": rand_w(rng, (20, 6)), "bias": rand_w(rng, (6,), -99, 99)},
          scale=(2.0 ** -6,))
    b.add("cls", "argmax", ["fc"], IntType(3, False))
    a, r = rq([1], [6], "floor")
    scales = (0.3, 0.25, 0.7, 0.1, 0.55, 0.3)
    b.add("fc_q", "requant", ["fc"], IntType(12, True, scales), a, r)
    b.add("cls_pc", "argmax", ["fc_q"], IntType(3, False))
    return b.done("cls", "fc", "mp_valid", "ap", "cls_pc")


def net_conv1d(rng) -> Network:
    """conv1d same/valid with strides, maxpool1d same/valid, avgpool1d, add (3 inputs), concat, clip,
    threshold (multi-level both directions, step 2), lut, requant wrap, dense."""
    b = NB("conv1d_net", [Input("seq", (12, 2), IntType(6, False, (2.0 ** -3,)))])
    b.add("k3", "conv1d", ["seq"], attrs={"strides": [1], "padding": "same"},
          arrays={"weight": rand_w(rng, (3, 2, 4)), "bias": rand_w(rng, (4,))})
    b.add("k1", "conv1d", ["seq"], attrs={"strides": [1], "padding": "valid"},
          arrays={"weight": rand_w(rng, (1, 2, 4)), "bias": rand_w(rng, (4,))})
    b.add("k4s2", "conv1d", ["seq"], attrs={"strides": [2], "padding": "same"},
          arrays={"weight": rand_w(rng, (4, 2, 3)), "bias": rand_w(rng, (3,))})  # 12 -> 6
    b.add("k5v", "conv1d", ["seq"], attrs={"strides": [3], "padding": "valid"},
          arrays={"weight": rand_w(rng, (5, 2, 3)), "bias": rand_w(rng, (3,))})  # 12 -> 3
    b.add("sum3", "add", ["k3", "k1", "k3"])
    a, r = rq([5, 3, 1, 7], [3, 2, 4, 1], "floor", "wrap")
    b.add("wrapped", "requant", ["sum3"], IntType(6, True), a, r)
    b.add("cat", "concat", ["wrapped", "seq"], IntType(7, True), {"axis": -1})
    b.add("clipped", "clip", ["cat"], IntType(6, True), {"lo": -3, "hi": 20})
    b.add("mp1s", "maxpool", ["clipped"], b.types["clipped"],
          {"pool": [3], "strides": [2], "padding": "same", "dims": 1})  # 12 -> 6
    b.add("mp1v", "maxpool", ["k4s2"], b.types["k4s2"], {"pool": [2], "strides": [1], "padding": "valid",
                                                        "dims": 1})
    b.add("ap1", "avgpool", ["mp1s"], attrs={"pool": [2], "strides": [2], "padding": "valid", "dims": 1})
    # thresholds: 3 levels per channel, sorted, one sentinel beyond the range; directions +-1
    c = 6
    lo_, hi_ = int(b.bounds["ap1"].min), int(b.bounds["ap1"].max)
    thr = np.sort(rng.integers(lo_, hi_ + 1, size=(c, 3)), axis=1)
    thr[0, 2] = hi_ + 5
    b.add("thr", "threshold", ["ap1"], None, {"step": 2},
          {"thresholds": thr.astype(np.int64), "base": rng.integers(-3, 1, size=c).astype(np.int64),
           "direction": np.array([1, -1, 1, 1, -1, 1], dtype=np.int64)})
    a, r = rq([1], [0], "half_even", lo=0, hi=7)
    b.add("small", "requant", ["mp1v"], IntType(3, False), a, r)
    table = rng.integers(-100, 100, size=8).astype(np.int64)
    b.add("lut", "lut", ["small"], IntType(8, True), {"in_lo": 0}, {"table": table})
    b.add("flat", "reshape", ["k5v"], b.types["k5v"], {"shape": [9]})
    b.add("fc", "dense", ["flat"], arrays={"weight": rand_w(rng, (9, 4)), "bias": rand_w(rng, (4,))})
    a, r = rq([(1 << 20) + 12345, (1 << 19) + 1, 999_999, 3], [25, 24, 23, 1], "half_away", lo=-50, hi=50)
    b.add("fc_q", "requant", ["fc"], IntType(7, True), a, r)
    b.add("fc_seq", "dense", ["clipped"], arrays={"weight": rand_w(rng, (6, 3)), "bias": rand_w(rng, (3,))})  # (12, 3)
    return b.done("thr", "lut", "fc_q", "wrapped", "clipped", "fc_seq")


def net_binary(rng) -> Network:
    """bconv2d / bdense with thresholds (both directions, constant outputs) and without, binary maxpool,
    reshape and concat, a dense on +-1 integers, a clip of a popcount."""
    # named like a system header (<sched.h>): the generated sched.h must not shadow it in C-sim
    b = NB("sched", [Input("bits", (6, 6, 3), BinaryType())])
    co = 6
    n = 3 * 3 * 3
    thr = rng.integers(-n, n + 1, size=co)
    thr[4], thr[5] = -n - 1, n + 1  # constant +1 / -1 outputs
    dirs = np.array([1, -1, 1, -1, 1, 1])
    b.add("bc", "bconv2d", ["bits"], BinaryType(), {"strides": [1, 1], "padding": "valid"},
          {"weight": rng.integers(0, 2, size=(3, 3, 3, co)).astype(np.uint8), "threshold": thr.astype(np.int64),
           "direction": dirs.astype(np.int64)})  # (4, 4, 6)
    b.add("bmp", "maxpool", ["bc"], BinaryType(), {"pool": [2, 2], "strides": [2, 2], "padding": "valid", "dims": 2})
    b.add("bflat", "reshape", ["bmp"], BinaryType(), {"shape": [24]})
    b.add("bd", "bdense", ["bflat"], arrays={"weight": rng.integers(0, 2, size=(24, 5)).astype(np.uint8)})
    b.add("bd_t", "bdense", ["bflat"], BinaryType(),
          arrays={"weight": rng.integers(0, 2, size=(24, 7)).astype(np.uint8),
                  "threshold": rng.integers(-6, 7, size=7).astype(np.int64),
                  "direction": np.array([1, 1, -1, -1, 1, -1, 1], dtype=np.int64)})
    b.add("bcat", "concat", ["bd_t", "bflat"], BinaryType(), {"axis": -1})
    b.add("bc_raw", "bconv2d", ["bits"], attrs={"strides": [2, 1], "padding": "valid"},
          arrays={"weight": rng.integers(0, 2, size=(2, 3, 3, 2)).astype(np.uint8)})  # N = 18: integer output
    b.add("pm_dense", "dense", ["bcat"], arrays={"weight": rand_w(rng, (31, 3)), "bias": rand_w(rng, (3,))})
    b.add("clip_bd", "clip", ["bd"], IntType(5, True), {"lo": -9, "hi": 9})
    b.add("bd_pos", "bdense", ["bmp"], BinaryType(),  # per position of a (2, 2, 6) tensor
          arrays={"weight": rng.integers(0, 2, size=(6, 4)).astype(np.uint8),
                  "threshold": np.array([0, -2, 2, 1], dtype=np.int64), "direction": np.array([1, -1, 1, -1])})
    return b.done("bcat", "bd", "pm_dense", "bc_raw", "clip_bd", "bd_pos")


def net_requant(rng) -> Network:
    """Every rounding mode x saturate/wrap with per-channel multipliers and shifts (left shifts too),
    products wider than 64 bits, minifloat outputs (dense on minifloat inputs), two inputs."""
    b = NB("requant_net", [Input("v", (16,), IntType(10, True)), Input("wide", (4,), IntType(40, True)),
                           Input("mf", (8,), MinifloatType(4, 3))])
    outs = []
    for k, mode in enumerate(ROUNDING_MODES):
        mult = rng.integers(1, 1 << 12, 16)
        mult[:4] = 1  # plain shifts: many exact ties
        shift = rng.integers(-3, 13, 16)
        shift[:4] = [1, 2, 3, 0]
        a, r = rq(mult, shift, mode, lo=-100, hi=90)
        outs.append(b.add(f"sat_{mode}", "requant", ["v"], IntType(8, True), a, r))
        a, r = rq(mult, shift, mode, "wrap")
        outs.append(b.add(f"wrap_{mode}", "requant", ["v"], IntType(5, k % 2 == 0), a, r))
        a, r = rq(rng.integers(1, 1 << 30, 4) + (1 << 45), rng.integers(40, 70, 4), mode)
        outs.append(b.add(f"wide_{mode}", "requant", ["wide"], IntType(20, True), a, r))  # ~86-bit products
    a, r = rq([3, 1, 7, 5], [-20, -3, 0, -25], "half_even", "wrap")
    outs.append(b.add("left_wrap", "requant", ["wide"], IntType(64, True), a, r))
    b.add("wide_fc", "dense", ["wide"], arrays={"weight": rng.integers(-(1 << 60), 1 << 60, size=(4, 3)),
                                                "bias": rng.integers(-(1 << 62), 1 << 62, size=3)})  # ~103 bits
    outs.append("wide_fc")
    b.add("mf_fc", "dense", ["mf"], arrays={"weight": rand_w(rng, (8, 4), -7, 7), "bias": np.zeros(4, np.int64)})
    for mode, fmt in (("half_even", MinifloatType(5, 2)), ("floor", MinifloatType(2, 1)),
                      ("half_away", MinifloatType(4, 3, variant="fnuz")), ("toward_zero", MinifloatType(3, 2))):
        a, r = rq([1, 3, 5, 1], [4, 2, 7, -2], mode)
        outs.append(b.add(f"mf_{mode}", "requant", ["mf_fc"], fmt, a, r))
    a, r = rq([11], [3], "half_up")
    outs.append(b.add("int_to_e4m3", "requant", ["v"], MinifloatType(4, 3, variant="ocp"), a, r))
    return b.done(*outs)


NETS = {"conv2d": net_conv2d, "conv1d": net_conv1d, "binary": net_binary, "requant": net_requant}


@pytest.fixture(scope="module")
def csim_results(tmp_path_factory):
    """Generate every network's project and vectors, compile all in parallel, run and compare."""
    root = tmp_path_factory.mktemp("hls")
    jobs = {}
    for k, (name, fn) in enumerate(NETS.items()):
        net = fn(np.random.default_rng(100 + k))
        d = root / name
        hls_cpp.generate(net).write(d)
        jobs[name] = (net, d, random_inputs(net, N_VECTORS, seed=k))
    with ThreadPoolExecutor(max_workers=2) as pool:
        futs = {name: pool.submit(run_csim, net, d, x) for name, (net, d, x) in jobs.items()}
        return {name: (jobs[name], f.result()) for name, f in futs.items()}


@pytest.mark.parametrize("name", list(NETS))
def test_csim_bit_exact(csim_results, name):
    (net, d, x), res = csim_results[name]
    assert res.vectors == N_VECTORS
    assert res.ok, res.describe()
    assert res.exact_outputs == res.outputs > 0


def test_every_op_kind_is_covered():
    from qat.ir.spec import op_kinds

    kinds = {op.kind for fn in NETS.values() for op in fn(np.random.default_rng(0)).ops}
    assert kinds == set(op_kinds())


def test_rounding_ties_and_saturation_are_exercised(csim_results):
    """The random vectors really hit ties, saturation and wrap (otherwise exactness proves little)."""
    (net, d, x), res = csim_results["requant"]
    from qat.ir import golden

    env = golden.run(net, {i.name: v for i, v in zip(net.inputs, x)}, keep_all=True)
    v = env["v"].astype(np.int64)
    ties = (v[:, 0] % 2 != 0).sum()  # shift 1, mult 1 -> odd inputs are exact ties
    assert ties > 100
    sat = env["sat_half_even"]
    assert (sat == -100).any() and (sat == 90).any()
    even, up = env["sat_half_even"][:, 0], env["sat_half_up"][:, 0]
    assert (even != up).any()  # ties rounded differently


def test_generated_code_shape(csim_results):
    (net, d, x), res = csim_results["conv2d"]
    src = (d / "firmware" / "conv2d_net.cpp").read_text()
    assert "#pragma HLS PIPELINE II=1" in src
    assert "#pragma HLS ARRAY_PARTITION variable=w_c1 complete dim=0" in src
    assert "#pragma HLS ARRAY_PARTITION variable=t_r1 complete dim=0" in src
    weights = (d / "firmware" / "conv2d_net_weights.h").read_text()
    assert "static const ap_int<6> w_c1[108]" in weights
    # accumulators at the proven width; c3 is provably non-negative -> unsigned
    bounds = analyze(net)

    c1 = bounds["c1"]
    assert f"ap_int<{signed_bits_for(c1.min, c1.max)}> acc" in src
    assert bounds["c3"].min >= 0 and f"ap_uint<{unsigned_bits_for(bounds['c3'].max)}> acc" in src
    wide = (d.parent / "requant" / "firmware" / "requant_net.cpp").read_text()
    assert "ap_int<1" in wide and any(f"ap_int<{w}>" in wide for w in range(80, 140))
    tcl = (d / "build.tcl").read_text()
    for cmd in ("open_project", "set_top conv2d_net", "add_files -tb", "open_solution", "set_part {xc7z020clg400-1}",
                "create_clock -period 10.000", "csim_design", "csynth_design", "cosim_design",
                "export_design -format ip_catalog"):
        assert cmd in tcl


def test_generation_is_deterministic(tmp_path):
    net = net_conv1d(np.random.default_rng(5))
    a, b = hls_cpp.generate(net), hls_cpp.generate(net_conv1d(np.random.default_rng(5)))
    assert a.files == b.files


def test_testbench_reports_mismatch(csim_results, tmp_path):
    """A wrong expected line makes the C testbench exit 1 and name the vector."""
    import subprocess

    (net, d, x), res = csim_results["conv1d"]
    exp = (d / "tb_data" / "tb_expected.txt").read_text().splitlines()
    parts = exp[3].split()
    parts[0] = str(int(parts[0]) + 1)
    exp[3] = " ".join(parts)
    bad = tmp_path / "expected.txt"
    bad.write_text("\n".join(exp) + "\n")
    r = subprocess.run([str(d / "csim_tb"), str(d / "tb_data" / "tb_input.txt"), str(tmp_path / "out.txt"), str(bad)],
                       capture_output=True, text=True)
    assert r.returncode == 1
    assert "vector 3 differs" in r.stderr
    assert f"{N_VECTORS - 1} exact, 1 mismatching" in r.stdout


# ---- the shipped jet tagger through the command line -------------------------------------------

@pytest.fixture(scope="module")
def jet_net(tmp_path_factory) -> Path:
    from qrtl.cli import main

    out = tmp_path_factory.mktemp("jet") / "jet.net"
    assert main(["convert", str(EXAMPLE / "jet_tagger.h5"), "-o", str(out)]) == 0
    return out


def test_cli_hls_csim_jet_tagger(jet_net, tmp_path, capsys):
    from qrtl.cli import main

    d = tmp_path / "hls"
    assert main(["hls", str(jet_net), "-o", str(d), "--board", "zcu104", "--csim", "--random", "3000"]) == 0
    out = capsys.readouterr().out
    assert "3000/3000 vectors bit-exact" in out and "15000/15000 outputs" in out
    tcl = (d / "build.tcl").read_text()
    assert "set_part {xczu7ev-ffvc1156-2-e}" in tcl and "create_clock -period 5.000" in tcl
    # the shipped sample inputs (real values, quantized like QKeras), same binary (compile cache)
    assert main(["hls", str(jet_net), "-o", str(d), "--board", "zcu104", "--csim",
                 "--vectors", str(EXAMPLE / "sample_inputs.npy")]) == 0
    out = capsys.readouterr().out
    n = len(np.load(EXAMPLE / "sample_inputs.npy"))
    assert f"{n}/{n} vectors bit-exact" in out


def test_cli_hls_exits_1_on_mismatch(jet_net, tmp_path, capsys, monkeypatch):
    """A generator bug (here: one weight changed after generation) is caught: exit status 1."""
    from qrtl.cli import main

    real = hls_cpp.generate

    def broken(*a, **k):
        p = real(*a, **k)
        name = f"firmware/{p.top}_weights.h"
        p.files[name] = p.files[name].replace("static const ap_int<6> w_fc1[1024] = {\n    ",
                                              "static const ap_int<6> w_fc1[1024] = {\n    1 + ", 1)
        return p

    monkeypatch.setattr(hls_cpp, "generate", broken)
    assert main(["hls", str(jet_net), "-o", str(tmp_path / "bad"), "--csim", "--random", "200"]) == 1
    out = capsys.readouterr().out
    assert "first mismatch" in out


def test_cli_hls_rejects_asic_board(jet_net, tmp_path, capsys):
    from qrtl.cli import main

    assert main(["hls", str(jet_net), "-o", str(tmp_path / "x"), "--board", "asic"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qrtl: error:") and "asic" in err[0]
