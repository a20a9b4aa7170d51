"""qrtl vivado: the generated Vivado Tcl runs to completion in tclsh against tests/vivado_stub.tcl (every
Vivado command is a stub that checks its arguments) for every FPGA board of boards.json; the ASIC target
is refused with a one-line error; typos, missing files, wrong parts/ports/clocks fail the stub run."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from boards.catalog import boards
from qat.ir import netfile
from qat.ir.network import Input, Network, Op
from qat.ir.types import IntType
from qrtl.cli import main

ROOT = Path(__file__).resolve().parents[1]
STUB = ROOT / "tests" / "vivado_stub.tcl"
EXAMPLE = ROOT / "examples" / "jet_tagger"
FPGA_BOARDS = [b for b in boards().values() if not b.is_asic]
TCLSH = shutil.which("tclsh") or shutil.which("tclsh8.6")

pytestmark = pytest.mark.skipif(TCLSH is None, reason="tclsh is needed to run the Vivado scripts against the stub")


def stub_run(script: Path, *tclargs: str) -> subprocess.CompletedProcess:
    return subprocess.run([TCLSH, str(STUB), str(script), *tclargs], capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def small_net(tmp_path_factory) -> Path:
    """A small network: dense -> requant -> dense (fast to generate)."""
    rng = np.random.default_rng(3)
    w1 = rng.integers(-20, 21, size=(6, 5))
    w2 = rng.integers(-20, 21, size=(5, 3))
    net = Network("tiny_mlp", [Input("x", (6,), IntType(8, True, (2.0 ** -4,)))], [
        Op("fc1", "dense", ["x"], (5,), IntType(16, True, (2.0 ** -9,)), {},
           {"weight": w1, "bias": rng.integers(-50, 50, size=5)}),
        Op("act", "requant", ["fc1"], (5,), IntType(6, False, (2.0 ** -4,)),
           {"rounding": "half_even", "overflow": "saturate", "lo": 0, "hi": 63},
           {"mult": np.ones(1, np.int64), "shift": np.array([5])}),
        Op("fc2", "dense", ["act"], (3,), IntType(16, True, (2.0 ** -9,)), {},
           {"weight": w2, "bias": rng.integers(-50, 50, size=3)}),
    ], ["fc2"])
    out = tmp_path_factory.mktemp("viv") / "tiny.net"
    netfile.save(net, out)
    return out


@pytest.mark.parametrize("board", FPGA_BOARDS, ids=lambda b: b.name)
def test_every_board_runs_under_the_stub(small_net, tmp_path, board, capsys):
    d = tmp_path / board.name
    assert main(["vivado", str(small_net), "--board", board.name, "-o", str(d)]) == 0
    assert "vivado -mode batch -source" in capsys.readouterr().out
    tcl = (d / "vivado.tcl").read_text()
    assert f"set part {{{board.part}}}" in tcl
    xdc = (d / "constraints" / "tiny_mlp_axis.xdc").read_text()
    assert f"create_clock -period {1000.0 / board.clock_mhz:.3f} -name aclk [get_ports aclk]" in xdc
    res = stub_run(d / "vivado.tcl")
    assert res.returncode == 0, res.stderr + res.stdout
    assert f"vivado stub: OK" in res.stdout and board.part in res.stdout
    calls = (d / "vivado_stub_calls.log").read_text().splitlines()
    names = [c.split()[0] for c in calls]
    for cmd in ("create_project", "add_files", "ipx::package_project", "ipx::infer_bus_interfaces",
                "ipx::associate_bus_interfaces", "ipx::save_core", "read_xdc", "synth_design", "opt_design",
                "place_design", "route_design", "report_utilization", "report_timing_summary"):
        assert cmd in names, cmd
    assert names.index("synth_design") < names.index("opt_design") < names.index("place_design") \
        < names.index("route_design")
    synth = next(c for c in calls if c.startswith("synth_design"))
    assert "-mode out_of_context" in synth and f"-part {board.part}" in synth and "-top tiny_mlp_axis" in synth
    # every RTL file of the design is added to the project
    rtl = sorted(p.name for p in (d / "rtl").glob("*.v"))
    added = next(c for c in calls if c.startswith("add_files") and "sources_1" in c)
    assert all(name in added for name in rtl) and len(rtl) >= 5
    for rpt in ("utilization.rpt", "timing.rpt", "utilization_synth.rpt", "timing_synth.rpt"):
        assert (d / "reports" / rpt).is_file()
    readme = (d / "README.md").read_text()
    assert "vivado -mode batch -source vivado.tcl" in readme and board.part in readme


def test_package_only_stops_after_the_ip(small_net, tmp_path):
    d = tmp_path / "pkg"
    assert main(["vivado", str(small_net), "--board", "kc705", "-o", str(d)]) == 0
    res = stub_run(d / "vivado.tcl", "package_only")
    assert res.returncode == 0, res.stderr
    names = [c.split()[0] for c in (d / "vivado_stub_calls.log").read_text().splitlines()]
    assert "ipx::save_core" in names and "synth_design" not in names


def test_register_weights_and_layer_pipeline_options(small_net, tmp_path):
    """Weights in registers (cfg_* ports on the IP) and a deeper pipeline still pass the stub."""
    d = tmp_path / "reg"
    assert main(["vivado", str(small_net), "--board", "u250", "-o", str(d), "--weight-storage", "tmr",
                 "--pipeline", "none"]) == 0
    res = stub_run(d / "vivado.tcl")
    assert res.returncode == 0, res.stderr
    assert "cfg_sdi" in (d / "rtl" / "tiny_mlp_axis.v").read_text()
    assert "cfg_en" in (d / "README.md").read_text()


def test_asic_board_is_rejected(small_net, tmp_path, capsys):
    assert main(["vivado", str(small_net), "--board", "asic", "-o", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("qrtl: error:")
    assert "asic" in err[0] and "not an FPGA" in err[0]
    assert not (tmp_path / "a").exists()


def test_unknown_board_is_rejected(small_net, tmp_path, capsys):
    assert main(["vivado", str(small_net), "--board", "zcu999", "-o", str(tmp_path / "b")]) == 1
    assert "unknown board 'zcu999'" in capsys.readouterr().err


MUTATIONS = [
    ("command typo", "vivado.tcl", "synth_design -top", "synth_desing -top", "invalid command name"),
    ("unknown option", "vivado.tcl", "-mode out_of_context\n", "-mod out_of_context\n", "unknown option '-mod'"),
    ("wrong part", "vivado.tcl", "set part {xc7z020clg400-1}", "set part {xc7z020clg400-9}", "not an FPGA part"),
    ("top typo", "vivado.tcl", "set top tiny_mlp_axis", "set top tiny_mlp_axi", "is not defined"),
    ("missing step", "vivado.tcl", "place_design\n", "", "route_design: needs a design in state placed"),
    ("missing report", "vivado.tcl", "report_timing_summary -max_paths 10 -file [file join $reports timing.rpt]\n",
     "", "no timing report after route_design"),
    ("xdc port typo", "constraints/tiny_mlp_axis.xdc", "[get_ports aclk]", "[get_ports clk]", "no port 'clk'"),
    ("xdc clock", "constraints/tiny_mlp_axis.xdc", "-period 10.000", "-period 8.000", "not the board clock"),
    ("missing rtl file", None, "rtl/tiny_mlp_fc2.v", None, "no such file"),
    ("module not listed", "vivado.tcl", "    [file join $here rtl tiny_mlp_fc2.v] \\\n", "",
     "module 'tiny_mlp_fc2' (instance u_fc2"),
    ("no clock association", "vivado.tcl", "ipx::associate_bus_interfaces -busif m_axis -clock aclk $core\n", "",
     "'m_axis' has no associated clock"),
]


@pytest.mark.parametrize("what,path,old,new,message", MUTATIONS, ids=[m[0] for m in MUTATIONS])
def test_stub_catches_mistakes(small_net, tmp_path, what, path, old, new, message):
    d = tmp_path / "m"
    assert main(["vivado", str(small_net), "--board", "pynq-z2", "-o", str(d)]) == 0
    if path is None:
        (d / old).unlink()
    else:
        f = d / path
        text = f.read_text()
        assert old in text, (what, old)
        f.write_text(text.replace(old, new, 1))
    res = stub_run(d / "vivado.tcl")
    assert res.returncode == 1, res.stdout
    assert message in res.stderr, res.stderr


def test_vivado_from_qkeras_model(tmp_path, capsys):
    """A QKeras model is converted on the fly; the script names every generated RTL file."""
    d = tmp_path / "jet"
    assert main(["vivado", str(EXAMPLE / "jet_tagger.h5"), "--board", "vcu118", "-o", str(d)]) == 0
    res = stub_run(d / "vivado.tcl")
    assert res.returncode == 0, res.stderr
    manifest = json.loads((d / "rtl" / "manifest.json").read_text())
    tcl = (d / "vivado.tcl").read_text()
    listed = re.findall(r"\[file join \$here rtl (\S+\.v)\]", tcl)
    assert sorted(listed) == sorted(f for f in manifest["files"] if f.endswith(".v"))
    assert manifest["axis_top"] == "jet_tagger_axis"
