"""Simulation models of the two AMD/Xilinx primitives the ternary adders instantiate
(``--adders ternary``, hls.rtl.text.ModuleText.add3): LUT6_2 and CARRY4, as in the 7-series
libraries guide (UG953).  Each file is empty under ``SYNTHESIS`` (defined by Yosys, Vivado and
other synthesis tools), so synthesis maps the instances to the vendor's cells; simulators
(Verilator, Icarus) read the models.  Generic (non-Xilinx) synthesis defines QRTL_PRIM_MODELS to
synthesize the models as ordinary logic (boards.yosys_report.synth_asic)."""
from __future__ import annotations

_GUARD = ["`ifndef SYNTHESIS", "`define QRTL_PRIM_MODELS", "`endif", "`ifdef QRTL_PRIM_MODELS",
          "`default_nettype none"]
_END = ["`default_nettype wire", "`endif", ""]

LUT6_2 = "\n".join(["// LUT6_2 simulation model (qrtl): O6 = INIT[I5..I0], O5 = INIT[I4..I0]"] + _GUARD + [
    "module LUT6_2 #(parameter [63:0] INIT = 64'h0) (",
    "  output wire O6,",
    "  output wire O5,",
    "  input wire I0, input wire I1, input wire I2, input wire I3, input wire I4, input wire I5",
    ");",
    "  assign O6 = INIT[{I5, I4, I3, I2, I1, I0}];",
    "  assign O5 = INIT[{1'b0, I4, I3, I2, I1, I0}];",
    "endmodule",
] + _END)

CARRY4 = "\n".join(["// CARRY4 simulation model (qrtl): O[i] = S[i] ^ c[i], c[i+1] = S[i] ? c[i] : DI[i], "
                    "c[0] = CI | CYINIT"] + _GUARD + [
    "module CARRY4 (",
    "  output wire [3:0] CO,",
    "  output wire [3:0] O,",
    "  input wire CI,",
    "  input wire CYINIT,",
    "  input wire [3:0] DI,",
    "  input wire [3:0] S",
    ");",
    "  wire [4:0] chain;",
    "  assign chain[0] = CI | CYINIT;",
    "  assign chain[1] = S[0] ? chain[0] : DI[0];",
    "  assign chain[2] = S[1] ? chain[1] : DI[1];",
    "  assign chain[3] = S[2] ? chain[2] : DI[2];",
    "  assign chain[4] = S[3] ? chain[3] : DI[3];",
    "  assign O = S ^ chain[3:0];",
    "  assign CO = chain[4:1];",
    "endmodule",
] + _END)

FILES = {"LUT6_2.v": LUT6_2, "CARRY4.v": CARRY4}


def uses_primitives(files: dict[str, str]) -> bool:
    """Whether any module instantiates the primitives (a design built with ``--adders ternary``)."""
    return any("LUT6_2 #(" in text for text in files.values())
