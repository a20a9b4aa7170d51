"""RTL generation: every op kind, Verilator -Wall lint of each design (core and
AXI4-Stream wrapper as top), byte-identical regeneration, bus packing, and
clear errors for what the generator cannot build."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rtl_nets
from hls.rtl.verilog import PIPELINE_MODES, EMITTERS, RTLError, generate, pack_bus, unpack_bus
from qat.ir import intervals, netfile
from qat.ir.network import Input, Network, Op
from qat.ir.spec import op_kinds
from qat.ir.types import BinaryType, IntType, MinifloatType
from qrtl.cli import main
from rtl_sim.cosim import tool_env

ROOT = Path(__file__).resolve().parents[1]
JET = ROOT / "examples" / "jet_tagger" / "jet_tagger.h5"


@pytest.fixture(scope="module")
def nets() -> dict[str, Network]:
    return {k: f() for k, f in rtl_nets.ALL.items()}


@pytest.fixture(scope="module")
def jet_net() -> Network:
    from qat.importers.from_qkeras import convert_file

    return convert_file(str(JET))


def lint(design, out_dir: Path, top: str) -> str:
    """verilator --lint-only -Wall on the written design with ``top`` as the top module."""
    design.write(out_dir)
    files = [str(out_dir / f) for f in design.verilog_files]
    res = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", top] + files,
                         capture_output=True, text=True, env=tool_env(), cwd=out_dir)
    return res.stdout + res.stderr if res.returncode else "".join(
        ln + "\n" for ln in (res.stdout + res.stderr).splitlines() if ln.startswith("%"))


# ---- coverage of the op kinds --------------------------------------------------------

def test_networks_cover_every_op_kind_the_generator_builds(nets):
    built = {k for k in op_kinds() if EMITTERS.get(k)}
    assert built == set(op_kinds()), f"op kinds without RTL: {set(op_kinds()) - built}"
    used = {op.kind for net in nets.values() for op in net.ops}
    assert used == built, f"not exercised by tests/rtl_nets.py: {built - used}"


def test_networks_cover_the_op_variants(nets):
    ops = [op for net in nets.values() for op in net.ops]

    def have(kind, **attrs):
        return any(op.kind == kind and all(op.attrs.get(k) == v for k, v in attrs.items()) for op in ops)

    for pad, st in (("same", 1), ("same", 2), ("valid", 1), ("valid", 2)):
        assert have("conv2d", padding=pad, strides=[st, st]), (pad, st)
    for pad, st in (("same", 1), ("same", 2), ("valid", 2)):
        assert have("conv1d", padding=pad, strides=[st]), (pad, st)
    for pad in ("same", "valid"):
        for dims in (1, 2):
            assert have("maxpool", padding=pad, dims=dims), (pad, dims)
    for dims in (1, 2):
        assert have("avgpool", dims=dims)
    rq = [op for op in ops if op.kind == "requant"]
    for r in rtl_nets.ROUNDINGS:
        for ovf in ("saturate", "wrap"):
            assert any(op.attrs["rounding"] == r and op.attrs["overflow"] == ovf for op in rq), (r, ovf)
    mults = np.concatenate([np.ravel(op.arrays["mult"]) for op in rq])
    shifts = np.concatenate([np.ravel(op.arrays["shift"]) for op in rq])
    assert mults.max() > 2 ** 30 and shifts.min() < 0 and any(op.arrays["mult"].size > 1 for op in rq)
    assert any(not op.type.signed for op in rq if op.attrs["overflow"] == "wrap")
    # binary ops: with and without threshold, both directions
    for kind in ("bdense", "bconv2d"):
        assert any(op.kind == kind and "threshold" not in op.arrays for op in ops), kind
        assert any(op.kind == kind and "threshold" in op.arrays and set(op.arrays["direction"].tolist()) == {-1, 1}
                   for op in ops), kind
    th = [op for op in ops if op.kind == "threshold"]
    assert any(isinstance(op.type, BinaryType) for op in th) and any(isinstance(op.type, IntType) for op in th)
    assert all({-1, 1} <= set(np.sign(op.arrays["direction"]).tolist()) for op in th if op.arrays["direction"].size > 1)
    # an add whose inputs arrive at different pipeline depths, argmax over per-channel po2 scales
    d = generate(nets["branch"])
    add = nets["branch"].op("sum")
    assert len({d.stages[i] for i in add.inputs}) > 1
    am = nets["branch"].op("am")
    assert len(set(nets["branch"].op(am.inputs[0]).type.scale)) > 1


# ---- generation, lint ----------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(rtl_nets.ALL))
@pytest.mark.parametrize("pipeline", ["layer", "none", "depth:2"])
def test_lint_clean(nets, name, pipeline, tmp_path):
    net = nets[name]
    d = generate(net, pipeline=pipeline)
    for top in (d.top, d.manifest["axis_top"]):
        assert lint(d, tmp_path, top) == "", f"{name} ({pipeline}), top {top}"


@pytest.mark.parametrize("weights", ["registers", "tmr"])
def test_lint_clean_weight_registers(nets, weights, tmp_path):
    d = generate(nets["branch"], weights=weights)
    for top in (d.top, d.manifest["axis_top"]):
        assert lint(d, tmp_path, top) == "", (weights, top)


def test_lint_clean_jet_tagger(jet_net, tmp_path):
    d = generate(jet_net)
    for top in (d.top, d.manifest["axis_top"]):
        assert lint(d, tmp_path, top) == "", top


def test_lint_reports_a_warning(nets, tmp_path):
    """The lint helper really fails on warnings: an unused wire must be reported."""
    d = generate(nets["branch"])
    f = f"{d.top}_r1.v"
    d.files[f] = d.files[f].replace("endmodule", "  wire spare_never_used = 1'b0;\nendmodule")
    assert "UNUSED" in lint(d, tmp_path, d.top)


def test_design_layout(nets):
    for name, net in nets.items():
        d = generate(net)
        man = d.manifest
        assert set(d.files) == set(man["files"])
        assert f"{d.top}.v" in d.files and f"{man['axis_top']}.v" in d.files
        for op in net.ops:  # one module per op, instantiated once in the top
            info = man["ops"][op.name]
            assert f"{info['module']}.v" in d.files
            assert d.files[f"{d.top}.v"].count(f" {info['instance']} (") == 1
            assert f"module {info['module']} (" in d.files[f"{info['module']}.v"]
        top = d.files[f"{d.top}.v"]
        for port in ("clk", "rst", "in_valid", "in_data", "out_valid", "out_data"):
            assert re.search(rf"\b(input|output) wire (\[\d+:0\] )?{port}\b", top), port
        assert f"localparam integer LATENCY = {d.latency};" in top
        assert d.latency == man["latency"] == d.stages[net.outputs[0]] >= 1
        # every compute op is one stage deeper than its latest input; wiring ops add nothing
        for op in net.ops:
            ins = max(d.stages[i] for i in op.inputs)
            want = ins if op.kind in ("reshape", "concat") and op.name != net.outputs[0] else ins + 1
            assert d.stages[op.name] == want, (name, op.name)
        assert man["input"]["width"] == int(np.prod(net.inputs[0].shape)) * man["input"]["element_bits"]


def test_identifiers_unique_and_dead_ops_dropped(tmp_path):
    net = rtl_nets.awkward_names()
    for pipeline in ("layer", "none"):
        d = generate(net, pipeline=pipeline)
        assert d.top == "module_net" and d.manifest["dropped_ops"] == ["dead"]
        mods = [info["module"] for info in d.manifest["ops"].values()]
        insts = [info["instance"] for info in d.manifest["ops"].values()]
        assert len(set(mods)) == len(mods) == 4 and len(set(insts)) == 4
        assert d.manifest["axis_top"] not in mods and f"{d.manifest['axis_top']}.v" in d.files
        assert not any("dead" in f for f in d.files)
        assert d.latency >= 1
        for top in (d.top, d.manifest["axis_top"]):
            assert lint(d, tmp_path / pipeline, top) == "", (pipeline, top)


def test_output_is_input_rejected():
    net = Network("empty", [Input("x", (2,), IntType(4))], [], ["x"])
    with pytest.raises(RTLError, match="nothing to build"):
        generate(net)


def test_pipeline_none_has_latency_one(nets):
    for net in nets.values():
        d = generate(net, pipeline="none")
        assert d.latency == 1
        assert sum(1 for info in d.manifest["ops"].values() if info["registered"]) == 1


def test_deterministic(nets, tmp_path):
    for name, net in nets.items():
        a, b = generate(net), generate(rtl_nets.ALL[name]())
        assert a.files == b.files and a.manifest == b.manifest, name
    # through the command line and the network file format: byte-identical directories
    netfile.save(nets["cnn2d"], tmp_path / "net")
    for out in ("a", "b"):
        assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / out)]) == 0
    fa = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert fa == sorted(p.name for p in (tmp_path / "b").iterdir()) and "manifest.json" in fa
    for f in fa:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    man = json.loads((tmp_path / "a" / "manifest.json").read_text())
    assert man["latency"] == generate(nets["cnn2d"]).latency


def test_pack_unpack_roundtrip():
    rng = np.random.default_rng(0)
    for bits, signed in ((1, False), (3, True), (5, False), (8, True), (13, True)):
        lo, hi = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
        x = rng.integers(lo, hi + 1, size=(50, 7))
        bus = pack_bus(x, bits, False)
        assert all(0 <= v < 1 << (7 * bits) for v in bus)
        assert np.array_equal(unpack_bus(bus, 7, bits, signed, False), x)
    xb = rng.choice([-1, 1], size=(20, 9))
    assert np.array_equal(unpack_bus(pack_bus(xb, 1, True), 9, 1, False, True), xb)
    # element 0 sits in the low bits
    assert pack_bus(np.array([[1, -1]]), 4, False) == [0xF1]


# ---- errors ----------------------------------------------------------------------------

def _dense_net(in_type=IntType(4), out_type=IntType(8), inputs=None) -> Network:
    w = np.array([[1, -2], [3, 1]])
    ins = inputs or [Input("x", (2,), in_type)]
    op = Op("d", "dense", ["x"], (2,), out_type, {}, {"weight": w, "bias": np.array([1, 0])})
    return Network("small", ins, [op], ["d"])


def test_unknown_pipeline_mode_rejected(nets):
    for bad in ("stage", "depth:0", "depth:x", ""):
        with pytest.raises(RTLError, match="pipeline"):
            generate(nets["branch"], pipeline=bad)
    assert "layer" in PIPELINE_MODES and "none" in PIPELINE_MODES


def test_minifloat_rejected():
    mf = MinifloatType(4, 0)  # minifloats with mantissa bits have RTL (tests/test_rtl_minifloat.py); M = 0 not
    net = Network("mf", [Input("x", (2,), IntType(4))],
                  [Op("d", "dense", ["x"], (2,), IntType(8), {}, {"weight": np.array([[1, 0], [0, 1]]),
                                                                   "bias": np.array([0, 0])}),
                   Op("q", "requant", ["d"], (2,), mf, {"rounding": "half_even"},
                      {"mult": np.array(1), "shift": np.array(0)})], ["q"])
    with pytest.raises(RTLError, match="minifloat") as exc:
        generate(net)
    assert "'q'" in str(exc.value)


def test_multi_input_and_multi_output_rejected():
    net = _dense_net(inputs=[Input("x", (2,), IntType(4)), Input("y", (2,), IntType(4))])
    with pytest.raises(RTLError, match="exactly one input"):
        generate(net)
    net = _dense_net()
    net.ops.append(Op("e", "clip", ["d"], (2,), IntType(8), {"lo": 0, "hi": 5}))
    net.outputs = ["d", "e"]
    with pytest.raises(RTLError, match="exactly one input and one output"):
        generate(net)


def test_integer_ops_on_binary_tensors(nets):
    """Binary tensors feed integer ops as +-1 (binary activations into QDense/QConv)."""
    kinds = {(op.kind, isinstance(op.type, BinaryType)) for op in nets["binary"].ops
             if isinstance(nets["binary"].tensor_types()[op.inputs[0]], BinaryType)}
    assert {("maxpool", True), ("conv2d", False), ("dense", False)} <= kinds
    generate(nets["binary"])


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qrtl.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          env=dict(tool_env(), TF_CPP_MIN_LOG_LEVEL="3"))


def one_line_error(res: subprocess.CompletedProcess) -> str:
    assert res.returncode == 1, (res.stdout, res.stderr)
    lines = [ln for ln in res.stderr.splitlines() if ln.startswith("qrtl: error: ")]
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    return lines[0]


def test_cli_bad_options(nets, tmp_path):
    netfile.save(nets["branch"], tmp_path / "net")
    res = run_cli("cosim", str(tmp_path / "net"), "--simulator", "foo")
    assert res.returncode == 2 and "invalid choice: 'foo'" in res.stderr
    err = one_line_error(run_cli("synth", str(tmp_path / "net"), "--board", "nosuch", "-o", str(tmp_path / "s")))
    assert "nosuch" in err and "pynq-z2" in err
    err = one_line_error(run_cli("rtl", str(tmp_path / "net"), "--pipeline", "fast", "-o", str(tmp_path / "r")))
    assert "--pipeline" in err and "fast" in err
    assert not (tmp_path / "r").exists()


# ---- build helpers -------------------------------------------------------------------

def test_tool_env_is_idempotent(monkeypatch):
    env = tool_env()
    monkeypatch.setenv("MAKEFLAGS", env.get("MAKEFLAGS", ""))
    again = tool_env()
    assert again["MAKEFLAGS"] == env["MAKEFLAGS"]  # run_cosim exports it: no growth per call
    assert again["MAKEFLAGS"].split().count("CFG_CXXFLAGS_PCH_I=-include") == 1


def test_objcache_caches_only_the_runtime_library(tmp_path, monkeypatch):
    from rtl_sim import objcache

    inc = tmp_path / "include"
    inc.mkdir()
    src = inc / "verilated.cpp"
    src.write_text("int verilated_answer() { return 42; }\n")
    (inc / "verilated.h").write_text("// header\n")
    build = tmp_path / "build"
    build.mkdir()
    monkeypatch.chdir(build)
    monkeypatch.setenv("QRTL_CACHE_DIR", str(tmp_path / "cache"))
    argv = ["c++", "-O0", "-MMD", f"-I{inc}", "-c", "-o", "verilated.o", str(src)]
    assert objcache._cacheable(argv) == (src, Path("verilated.o"))
    assert objcache._cacheable(["c++", "-O0", "-c", "-o", "Vtop__ALL.o", "Vtop__ALL.cpp"]) is None
    assert objcache._cacheable(["c++", "-include", "Vtop__pch.h.fast", "-c", "Vtop.cpp"]) is None
    assert objcache.run(argv) == 0
    first = (build / "verilated.o").read_bytes()
    entries = list((tmp_path / "cache").rglob("verilated.o"))
    assert len(entries) == 1 and entries[0].read_bytes() == first
    (build / "verilated.o").unlink()
    assert objcache.run(argv) == 0 and (build / "verilated.o").read_bytes() == first  # from the cache
    # another flag, or a changed source or header, is another entry
    assert objcache.run(argv[:1] + ["-O1"] + argv[2:]) == 0
    (inc / "verilated.h").write_text("// header, changed\n")
    assert objcache.run(argv) == 0
    assert len(list((tmp_path / "cache").rglob("verilated.o"))) == 3
    assert objcache.run(["c++", "-c", "-o", "bad.o", str(tmp_path / "missing.cpp")]) != 0


# ---- dense layers over inputs of rank > 1 (found by the fuzzer: only the first position was built) ----

def _positions_net(binary: bool) -> Network:
    rng = np.random.default_rng(21)
    if binary:
        w = rng.integers(0, 2, size=(5, 3))
        ops = [Op("b", "bdense", ["x"], (4, 3), IntType(4, True), {}, {"weight": w}),
               Op("t", "bdense", ["x"], (4, 3), BinaryType(), {},
                  {"weight": w, "threshold": np.array([-1, 1, 3]), "direction": np.array([1, -1, 1])}),
               Op("c", "concat", ["b", "t"], (4, 6), IntType(4, True))]
        net = Network("posb", [Input("x", (4, 5), BinaryType())], ops, ["c"])
    else:
        w = rng.integers(-7, 8, size=(5, 3))
        ops = [Op("d", "dense", ["x"], (4, 3), IntType(10, True), {}, {"weight": w, "bias": np.array([3, -2, 0])})]
        net = Network("posd", [Input("x", (4, 5), IntType(4, True))], ops, ["d"])
    intervals.analyze(net)
    return net


@pytest.mark.parametrize("binary,options", [(False, {}), (False, {"weights": "registers"}),
                                            (True, {"bnn_order": "plain"}), (True, {"bnn_order": "mst"})], ids=["dense", "dense-registers", "bdense",
                                                                               "bdense-mst"])
def test_dense_over_every_position(binary, options, tmp_path):
    from rtl_sim.fast_sim import run_fast
    from rtl_sim.vectors import random_vectors

    net = _positions_net(binary)
    res = run_fast(net, random_vectors(net, 300, seed=2), generate(net, **options), work_dir=tmp_path)
    assert res.ok and res.exact_vectors == res.vectors == 300, res.describe()
