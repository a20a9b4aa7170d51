"""Hardware price of one layer at one width, from qrtl's own generator.

A layer's price is the LUT count of its *integer sub-network*: the ops the importer made from
that framework layer and everything up to the next searched layer (e.g. dense + requant/ReLU),
fed by an input of the previous tensor's type, turned into Verilog by ``hls.rtl.verilog.generate``
(the generator of ``qrtl rtl``) and then priced

* ``yosys``: synthesized with ``boards.yosys_report.synthesize`` (synth_xilinx for the board's
  family), total LUTs of the sub-network's top; or
* ``fast``: the adder-graph cost model ``hls.engine.cost`` when it exists, otherwise the LUT bits
  counted in the generated Verilog: every adder/subtractor/negation and every saturation
  compare-and-select of w bits is w LUTs (a 6-input LUT plus carry per bit on 7-series).

The key of a price is the SHA-256 of the generated Verilog, the board and the method, so an
identical layer (same weights, widths and types) is never priced twice.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from qat.ir.network import Input, Network, Op
from qat.search.errors import SearchError

PRICE_VERSION = 1  # bump when the way a price is computed changes (invalidates cached prices)


def layer_groups(net: Network, layers: list[str]) -> tuple[dict[str, list[Op]], list[Op]]:
    """Ops of each searched layer (the op whose ``source`` is the layer, then the ops after it up to
    the next searched layer's op), and the ops before the first searched layer (priced as fixed)."""
    groups: dict[str, list[Op]] = {name: [] for name in layers}
    fixed: list[Op] = []
    current = None
    for op in net.ops:
        src = op.source.split(",")[0].strip() if op.source else ""
        if src in groups and not groups[src]:
            current = src
        (groups[current] if current else fixed).append(op)
    missing = [n for n, ops in groups.items() if not ops]
    if missing:
        raise SearchError(f"layer '{missing[0]}': no op of the integer network '{net.name}' comes from it "
                          f"(cannot price it)")
    return groups, fixed


def subnetwork(net: Network, ops: list[Op], name: str) -> Network:
    """The ops as a network of their own: one input per tensor they read from outside."""
    inside = {op.name for op in ops}
    types, shapes = net.tensor_types(), net.tensor_shapes()
    outer: list[str] = []
    for op in ops:
        for t in op.inputs:
            if t not in inside and t not in outer:
                outer.append(t)
    inputs = [Input(t, tuple(shapes[t]), types[t]) for t in outer]
    return Network(name=name, inputs=inputs, ops=list(ops), outputs=[ops[-1].name],
                   meta={k: v for k, v in net.meta.items() if k in ("output_conversion",)})


def design_of(sub: Network):
    from hls.rtl.verilog import generate

    return generate(sub)


def verilog_text(design) -> str:
    return "".join(f"// file {f}\n{design.files[f]}" for f in design.verilog_files)


_WIRE = re.compile(r"^\s*wire signed \[(\d+):0\] \w+ = (.*);\s*$")


def count_lut_bits(design) -> int:
    """LUT bits of the generated Verilog's operators (the fast price when hls.engine.cost is absent):
    w for each w-bit add/subtract/negate and each w-bit compare-and-select (saturation, ReLU, max)."""
    bits = 0
    for f in design.verilog_files:
        if f == f"{design.top}.v" or f.endswith("_axis.v"):
            continue
        for line in design.files[f].splitlines():
            m = _WIRE.match(line)
            if not m:
                continue
            w, expr = int(m.group(1)) + 1, m.group(2)
            body = re.sub(r"\{[^{}]*\}", "", re.sub(r"\[[^\]]*\]", "", expr))
            if "?" in expr or re.search(r"(?<![<>=!])[<>](?![<>])", body):
                bits += w
            elif re.search(r"[+-]", body.replace("'sd", "")):
                bits += w
    return bits


def fast_price(design) -> dict:
    """{'luts': ...} from the project's adder-graph cost model if present, else :func:`count_lut_bits`."""
    try:
        from hls.engine import cost  # written concurrently by another change; used when it is there
    except ImportError:
        cost = None
    if cost is not None and hasattr(cost, "design_luts"):
        return {"luts": float(cost.design_luts(design)), "model": "hls.engine.cost"}
    return {"luts": float(count_lut_bits(design)), "model": "verilog LUT bits"}


def yosys_price(design, board_name: str, work: str | Path | None = None) -> dict:
    """Total LUTs (and FF/CARRY/DSP) of the design's top after Yosys synth_xilinx for the board."""
    from boards.catalog import board as get_board
    from boards.yosys_report import synthesize

    b = get_board(board_name)
    with tempfile.TemporaryDirectory(dir=work) as d:
        files = design.write(Path(d) / "rtl")
        vfiles = [p for p in files if p.suffix == ".v" and not p.name.endswith("_axis.v")]
        rep = synthesize(vfiles, design.top, b, Path(d) / "synth", asic=False)
    tot = rep["fpga"]["total"]
    return {"luts": float(tot["LUT"]), "ff": tot["FF"], "carry": tot["CARRY"], "dsp": tot["DSP"],
            "model": f"yosys synth_xilinx ({rep['fpga']['family']})", "seconds": rep["fpga"]["seconds"]}


def price_key(design, board: str, method: str) -> str:
    from qat.search.cache import content_key

    return content_key("price", PRICE_VERSION, method, board, verilog_text(design))


def price(design, board: str, method: str) -> dict:
    """The price of a generated design by ``method`` ('yosys' or 'fast')."""
    if method == "yosys":
        return yosys_price(design, board)
    if method == "fast":
        return fast_price(design)
    raise SearchError(f"--price must be 'yosys' or 'fast', got {method!r}")
