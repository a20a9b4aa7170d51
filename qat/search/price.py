"""Hardware price of one layer at one width, from qrtl's own generator.

A layer's price is the LUT count of its *integer sub-network*: the ops the importer made from
that framework layer and everything up to the next searched layer (e.g. dense + requant/ReLU),
fed by an input of the previous tensor's type, turned into Verilog by ``hls.rtl.verilog.generate``
(the generator of ``qrtl rtl``) and then priced

* ``yosys``: synthesized with ``boards.yosys_report.synthesize`` (synth_xilinx for the board's
  family), total LUTs of the sub-network's top; or
* ``fast``: the adder-graph cost model ``hls.engine.cost`` (its estimate, written by the generator
  into each module of constant-matrix arithmetic, where Yosys is slow) plus every other generated
  module (requantizers, ReLU, pooling: small) synthesized alone by Yosys, exactly as it is
  synthesized inside the whole network (``synth_xilinx`` keeps the hierarchy, so a module's LUTs do
  not depend on its neighbours); modules of wires only cost 0 without a Yosys run.

The key of a price is the SHA-256 of the generated Verilog, the board and the method, so an
identical layer (same weights, widths and types) is never priced twice; a module's Yosys count is
cached under the SHA-256 of its text (module name aside), so it is synthesized once for all layers,
widths and networks that contain it.
"""
from __future__ import annotations

import re
import tempfile
from pathlib import Path

from qat.ir.network import Input, Network, Op
from qat.search.errors import SearchError

PRICE_VERSION = 3  # bump when the way a price is computed changes (invalidates cached prices)


def layer_groups(net: Network, layers: list[str]) -> tuple[dict[str, list[Op]], list[Op]]:
    """Ops of each searched layer (the op whose ``source`` is the layer, then the ops after it up to
    the next searched layer's op), and the ops before the first searched layer (priced as fixed)."""
    groups: dict[str, list[Op]] = {name: [] for name in layers}
    fixed: list[Op] = []
    current = None
    for op in net.ops:
        src = op.source.split(",")[0].split(" (")[0].strip() if op.source else ""  # 'fc0 (node_linear)' -> fc0
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


_WIRE = re.compile(r"^\s*wire signed \[(\d+):0\] (\w+) = (.*);\s*$")
_ID = re.compile(r"[A-Za-z_]\w*")


def _operand(text: str, tz: dict[str, int]) -> str | None:
    """The wire an operand expression (a name, a sign extension or a slice of it) reads."""
    for name in _ID.findall(re.sub(r"\d+'[sb]?[dhb]?[0-9a-fA-F_]+", "", text)):
        if name in tz:
            return name
    return None


def _split_binary(expr: str) -> tuple[str, str, str] | None:
    """``A + B`` / ``A - B`` at brace depth 0, else None."""
    depth = 0
    for i, ch in enumerate(expr):
        depth += ch in "{([" and 1 or 0
        depth -= ch in "})]" and 1 or 0
        if depth == 0 and ch in "+-" and expr[i - 1:i] == " " and expr[i + 1:i + 2] == " ":
            return expr[:i].strip(), ch, expr[i + 2:].strip()
    return None


def count_lut_bits(design, skip: frozenset[str] = frozenset()) -> int:
    """LUT bits of the generated Verilog's operators outside the files in ``skip`` (those the cost
    model prices), after Yosys synth_xilinx on xc7: a w-bit adder needs one LUT per carry-chain bit
    where both operands vary (low bits known zero in one operand pass through, the carry-out is
    free: w - max(tz) - 1); a negation, an incrementer and a saturating compare-and-select of w bits
    cost w.  Known-zero low bits (tz) are tracked through shifts, extensions and slices."""
    bits = 0
    for f in design.verilog_files:
        if f == f"{design.top}.v" or f.endswith("_axis.v") or f in skip:
            continue
        tz: dict[str, int] = {}
        for line in design.files[f].splitlines():
            m = _WIRE.match(line)
            if not m:
                continue
            w, name, expr = int(m.group(1)) + 1, m.group(2), m.group(3).strip()
            tz[name] = 0
            sh = re.fullmatch(r"\{(\w+), (\d+)'b0\}", expr)
            if sh:
                tz[name] = tz.get(sh.group(1), 0) + int(sh.group(2))
                continue
            if "?" in expr or re.search(r"(?<![<>=!])[<>](?![<>])", expr.replace("<<", "").replace(">>", "")):
                bits += w
                continue
            if expr.startswith("-"):
                bits += w
                continue
            b = _split_binary(expr)
            if b is None:
                src = _operand(expr, tz)
                sl = re.fullmatch(r"(\w+)\[(\d+):(\d+)\]", expr)
                if sl and sl.group(1) in tz:
                    tz[name] = max(0, tz[sl.group(1)] - int(sl.group(3)))
                elif src is not None and re.fullmatch(r"\{\{\d+\{\w+\[\d+\]\}\}, \w+\}|\w+", expr):
                    tz[name] = tz[src]
                continue
            a, op, c = b
            ta = tz.get(_operand(a, tz) or "", 0)
            tc = tz.get(_operand(c, tz) or "", 0)
            if "'b0, " in c or "'b0," in c:  # increment by a 1-bit carry
                bits += w
                continue
            free = max(ta, tc) if (op == "+" or tc >= ta) else tc
            tz[name] = min(ta, tc)
            bits += max(1, w - free - 1)
    return bits


def _module_name(text: str) -> str:
    m = re.search(r"^module (\w+)", text, re.M)
    if m is None:
        raise SearchError("a generated Verilog file holds no module (cannot price it)")
    return m.group(1)


def module_luts(text: str, board_name: str, cache=None) -> float:
    """LUTs of one generated module (Verilog ``text`` of a leaf module) after Yosys synth_xilinx for
    the board, synthesized alone; cached (``cache``: a JobCache) by the text with the module renamed."""
    from qat.search.cache import content_key

    name = _module_name(text)
    key = content_key("module_luts", PRICE_VERSION, board_name, re.sub(rf"\b{name}\b", "m", text))
    hit = cache.get("module_luts", key) if cache is not None else None
    if hit is not None:
        return float(hit["luts"])
    from boards.catalog import board as get_board
    from boards.yosys_report import synth_fpga

    with tempfile.TemporaryDirectory() as d:
        v = Path(d) / f"{name}.v"
        v.write_text(text)
        (Path(d) / "synth").mkdir()
        luts = float(synth_fpga([v], name, get_board(board_name), Path(d) / "synth")["total"]["LUT"])
    if cache is not None:
        cache.put("module_luts", key, {"luts": luts})
    return luts


def fast_price(design, board_name: str = "pynq-z2", cache=None) -> dict:
    """{'luts': ...}: the adder-graph cost model's estimate (hls.engine.cost, written by the generator
    into every module holding constant-matrix arithmetic) for those modules, Yosys for each other
    module (:func:`module_luts`; 0 without a run when :func:`count_lut_bits` finds no operator in it).
    ``modules`` gives each module's share."""
    from hls.engine.cost import estimates

    est = {name: float(lut) for name, _, lut in estimates(design.files)}
    per: dict[str, float] = {}
    for f in design.verilog_files:
        if f == f"{design.top}.v" or f.endswith("_axis.v"):
            continue
        if f in est:
            per[f] = est[f]
        elif count_lut_bits(design, frozenset(design.verilog_files) - {f}) == 0:
            per[f] = 0.0  # wires only (reshape, slices)
        else:
            per[f] = module_luts(design.files[f], board_name, cache)
    return {"luts": float(sum(per.values())), "modules": per,
            "model": "hls.engine.cost (constant-matrix modules) + yosys per other module"}


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


def price(design, board: str, method: str, cache=None) -> dict:
    """The price of a generated design by ``method`` ('yosys' or 'fast'; ``cache``, a JobCache, keeps
    the per-module Yosys counts of the fast price)."""
    if method == "yosys":
        return yosys_price(design, board)
    if method == "fast":
        return fast_price(design, board, cache)
    raise SearchError(f"--price must be 'yosys' or 'fast', got {method!r}")
