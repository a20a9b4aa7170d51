"""LUT estimate of a constant-matrix adder graph (``hls.engine.cmvm.Graph``) after Yosys
``synth_xilinx`` (xc7: one LUT per carry-chain bit where both operands vary).

Per adder ``(a << sa) +- (b << sb)`` of ``w`` result bits: the ``min``-shift operand's low
``|sa - sb|`` bits pass through as wires (no logic) when the shifted operand is the one added
or subtracted, and the carry-out bit needs no LUT, so ``w - |sa - sb| - 1`` LUTs; a final
negation costs its width; adding a constant (a bias) maps to the carry chain alone (0 LUT).
``LUT_PER_BIT`` and ``LUT_OFFSET`` are fitted on Yosys runs of single layers
(bench/cost_calibration.py, data in bench/results/cost_calibration.json).
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hls.engine.cmvm import Graph


def bits_for(lo: int, hi: int) -> int:
    """Signed two's-complement bits holding [lo, hi]."""
    return max(int(hi).bit_length(), (-int(lo) - 1).bit_length() if lo < 0 else 0) + 1

# fitted by bench/cost_calibration.py (LUT ~ LUT_PER_BIT * adder bits + LUT_OFFSET * adders):
# 3 layers (16x64, 64x32, 9x8; 118-1649 adders), max error 3.4 % (bench/results/cost_calibration.json)
LUT_PER_BIT = 0.989
LUT_OFFSET = -0.154


def adder_lut_bits(lo: int, hi: int, low_free: int) -> int:
    """Bits of one two-input adder of range [lo, hi] that need a LUT: its width minus the ``low_free``
    low bits passed through as wires and the carry-out."""
    return max(1, bits_for(lo, hi) - low_free - 1)


def adder_bits(g: Graph) -> tuple[int, int]:
    """(sum over adders of the bits that need a LUT, number of adders), negations included."""
    bits = n = 0
    for nd in g.nodes:
        bits += adder_lut_bits(nd.lo, nd.hi, max(0, nd.sb - nd.sa))
        n += 1
    for o in g.outputs:
        if o.sig >= 0 and o.neg:
            bits += bits_for(o.lo, o.hi)
            n += 1
    return bits, n


def graph_luts(g: Graph) -> float:
    """Predicted Yosys xc7 LUTs of the graph's adders."""
    bits, n = adder_bits(g)
    return LUT_PER_BIT * bits + LUT_OFFSET * n


ESTIMATE_TAG = "// arithmetic estimate (hls.engine.cost):"
MULT_TAG = "// multipliers (one DSP48 each when mapped):"


def adder_luts(lo: int, hi: int, low_free: int) -> float:
    """Predicted LUTs of one two-input adder of range [lo, hi] whose ``low_free`` low bits are wires."""
    return LUT_PER_BIT * adder_lut_bits(lo, hi, low_free) + LUT_OFFSET


def comment(graphs: list[Graph], fused: int = 0, fused_luts: float = 0.0) -> str:
    """The one-line estimate written into a module that holds constant-matrix graphs; ``fused`` adders
    (``fused_luts`` LUTs) disappeared into ternary adders (one LUT per bit for three operands)."""
    adders = sum(adder_bits(g)[1] for g in graphs) - fused
    luts = sum(graph_luts(g) for g in graphs) - fused_luts
    notes = "; ".join(g.note for g in graphs if g.note)
    if fused:
        notes = (notes + "; " if notes else "") + f"{fused} adder pairs fused into ternary adders"
    return f"{ESTIMATE_TAG} {adders} adders, ~{round(luts)} LUT" + (f" ({notes})" if notes else "")


def multipliers(files: dict[str, str]) -> int:
    """General multipliers of a design (folded ``--fold dsp`` layers; one DSP48 each when mapped, so an
    upper bound on the DSPs: Yosys turns a slot whose weight is the same in every phase, e.g. 1, into
    logic)."""
    return sum(int(line[len(MULT_TAG):]) for text in files.values() for line in text.splitlines()[:8]
               if line.startswith(MULT_TAG))


def estimates(files: dict[str, str]) -> list[tuple[str, int, int]]:
    """(file, adders, LUTs) for every generated file carrying an estimate comment."""
    out = []
    for name in sorted(files):
        for line in files[name].splitlines()[:8]:
            if line.startswith(ESTIMATE_TAG):
                m = re.match(r" (\d+) adders, ~(\d+) LUT", line[len(ESTIMATE_TAG):])
                if m:
                    out.append((name, int(m.group(1)), int(m.group(2))))
    return out


def summary(files: dict[str, str]) -> str | None:
    """One line for ``qrtl rtl``: the predicted LUTs of the constant arithmetic, per layer."""
    est = estimates(files)
    if not est:
        return None
    per = ", ".join(f"{n.rsplit('.', 1)[0]} {lut:,}" for n, _, lut in est)
    return (f"constant arithmetic (hls.engine.cost, Yosys xc7 estimate): ~{sum(e[2] for e in est):,} LUT in "
            f"{sum(e[1] for e in est):,} adders ({per})")
