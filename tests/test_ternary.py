"""``--adders ternary`` (hls.rtl.text.ModuleText.add3, hls.rtl.xilinx_prims): constant-matrix layers
with fused three-input adders (LUT6_2 + CARRY4) -- bit-exact against the golden model on random,
edge and per-row corner vectors through the compiled Verilator harness with the primitives'
simulation models, lint-clean, fewer LUTs than binary adders in Yosys, and binary designs unchanged."""
from __future__ import annotations

import re
import subprocess
import sys

import numpy as np
import pytest

from hls.rtl.verilog import RTLError, generate
from hls.rtl.xilinx_prims import FILES as PRIM_FILES
from qat.ir.types import IntType
from rtl_sim.fast_sim import run_fast
from rtl_sim.vectors import random_vectors
from fuzz.check import lint
from rtl_nets import Builder


def _mlp(seed: int, in_bits: int, signed: bool, w_lo: int, w_hi: int, sizes=(9, 12, 7)) -> tuple:
    """x (n0) -> dense n1 -> requant -> dense n2 (both with biases): weights of every sign."""
    nb = Builder(f"tern{seed}", (sizes[0],), IntType(in_bits, signed, (1.0,)), seed)
    h = nb.add("fc1", "dense", ["x"], arrays={"weight": nb.weights((sizes[0], sizes[1]), w_lo, w_hi, 0.15),
                                              "bias": nb.bias(sizes[1], 40)})
    q = nb.requant_to("q1", h, 6, signed=True)
    W2 = nb.weights((sizes[1], sizes[2]), w_lo, w_hi, 0.1)
    out = nb.add("fc2", "dense", [q], arrays={"weight": W2, "bias": nb.bias(sizes[2], 40)})
    return nb.network(out), nb


def _corners(net, n_in: int, lo: int, hi: int) -> np.ndarray:
    """Each first-layer row's max and min corner (the widest sums the adders must hold)."""
    W = net.ops[0].arrays["weight"]
    xs = [np.where(W[:, r] > 0, hi, lo) for r in range(W.shape[1])]
    xs += [np.where(W[:, r] > 0, lo, hi) for r in range(W.shape[1])]
    return np.stack(xs).astype(np.int64)


CASES = [(1, 8, True, -31, 31), (2, 6, False, -7, 7), (3, 16, True, -32, 31), (4, 3, False, -128, 127),
         (5, 12, True, 0, 63), (6, 10, True, -63, 0)]


@pytest.mark.parametrize("seed,in_bits,signed,w_lo,w_hi", [CASES[i] for i in (0, 2, 3, 5)])  # suite time
def test_ternary_layers_are_bit_exact_and_lint_clean(seed, in_bits, signed, w_lo, w_hi):
    net, _ = _mlp(seed, in_bits, signed, w_lo, w_hi)
    d = generate(net, adders="ternary")
    assert set(PRIM_FILES) <= set(d.files) and d.manifest["adders"] == "ternary"
    assert sum(len(re.findall(r"LUT6_2 #\(", d.files[f])) for f in d.verilog_files) > 3  # really fused
    assert lint(d) == ""
    lo, hi = (-(1 << (in_bits - 1)), (1 << (in_bits - 1)) - 1) if signed else (0, (1 << in_bits) - 1)
    x = np.concatenate([random_vectors(net, 1500, seed=seed), _corners(net, 9, lo, hi)])
    res = run_fast(net, x, design=d)
    assert res.ok and res.mismatches == 0


def test_every_sign_pattern_of_a_ternary_adder_is_generated():
    """The LUT INIT encodes which of the three operands are subtracted: at all-zero inputs O6 (INIT bit
    32) is their parity and O5 (bit 0) their majority.  The cases above generate adders with 0, 1 and 2
    negative operands (so their bit-exact checks cover each +1 correction) and never 3."""
    seen = set()
    for seed, in_bits, signed, w_lo, w_hi in CASES:
        d = generate(_mlp(seed, in_bits, signed, w_lo, w_hi)[0], adders="ternary")
        for f in d.verilog_files:
            for h in re.findall(r"INIT\(64'h([0-9A-F]+)\)", d.files[f]):
                v = int(h, 16)
                seen.add({(0, 0): 0, (1, 0): 1, (0, 1): 2, (1, 1): 3}[(v >> 32 & 1, v & 1)])
    assert seen == {0, 1, 2}


def test_binary_designs_are_unchanged_and_bad_value_is_refused():
    net, _ = _mlp(1, 8, True, -31, 31)
    d = generate(net)
    assert not set(PRIM_FILES) & set(d.files) and "adders" not in d.manifest
    assert "LUT6_2" not in "".join(d.files.values())
    with pytest.raises(RTLError, match="--adders must be one of"):
        generate(net, adders="quaternary")


def test_ternary_needs_fewer_luts_in_yosys_and_synthesizes_for_asic(tmp_path):
    from boards.catalog import board
    from boards.yosys_report import synth_asic, synth_fpga

    net, _ = _mlp(3, 10, True, -32, 31, sizes=(6, 8, 3))
    luts = {}
    for adders in ("binary", "ternary"):
        d = generate(net, adders=adders)
        d.write(tmp_path / adders / "rtl")
        files = [tmp_path / adders / "rtl" / f for f in d.verilog_files]
        (tmp_path / adders / "synth").mkdir()
        luts[adders] = synth_fpga(files, d.top, board("pynq-z2"), tmp_path / adders / "synth")["total"]["LUT"]
    assert luts["ternary"] < 0.85 * luts["binary"], luts
    asic = synth_asic(files, d.top, tmp_path / "ternary" / "synth")  # the models as generic logic
    assert asic["nand2"] > 0 and not any("LUT" in k or "CARRY" in k for k in asic["other_cells"])


def test_cli_writes_the_models(tmp_path):
    from qat.ir import netfile
    from qrtl.cli import main

    netfile.save(_mlp(2, 6, False, -7, 7)[0], tmp_path / "net")
    assert main(["rtl", str(tmp_path / "net"), "-o", str(tmp_path / "rtl"), "--adders", "ternary"]) == 0
    assert (tmp_path / "rtl" / "LUT6_2.v").exists() and (tmp_path / "rtl" / "CARRY4.v").exists()
    r = subprocess.run([sys.executable, "-m", "qrtl.cli", "rtl", str(tmp_path / "net"), "--adders", "four"],
                       capture_output=True, text=True)
    assert r.returncode != 0 and "invalid choice" in r.stderr
