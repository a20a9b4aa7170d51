"""Integer network -> synthesizable Verilog-2005, fully pipelined (II = 1).

Layout of the generated design (``DIR/``):

* one module per op, ``<top>_<op>.v``: ports ``clk``, ``in0[, in1...]`` and
  ``out`` (flat buses); compute ops register their output (``--pipeline
  layer``, the default) so each op is one pipeline stage;
* the top module ``<top>.v``: ``clk``, ``rst`` (synchronous, active high,
  clears the valid pipeline), ``in_valid``, ``in_data``, ``out_valid``,
  ``out_data``; ``localparam LATENCY`` = cycles from ``in_valid`` to
  ``out_valid``; delay lines balance branches of unequal depth; with folded
  layers (``reuse``, hls.rtl.folded) also ``in_ready``: one vector per II clocks;
* ``manifest.json``: bus layouts, latency, per-op stage, file list.

Bus layout: a tensor is flattened in C order (channels last, batch
excluded); element i occupies bits [i*W +: W], W = the element type's bits,
two's complement for signed types; binary elements are one bit (1 <-> +1);
minifloat elements are their 1+E+M bit codes (hls.rtl.minifloat_code), decoded
to the exact raw integer where arithmetic consumes them, and produced by
requant (rounding to the grid, hls.rtl.minifloat), maxpool, clip,
reshape and concat (which pass or compare codes).

Constant weights become canonical-signed-digit shift-and-add terms summed
in balanced adder trees; zero weights vanish; every adder is exactly as
wide as the value range it can hold (interval analysis per node).
"""
from __future__ import annotations

from qat.ir.intervals import analyze
from qat.ir.network import Network
from qat.ir.schedule import check_io
from qat.ir.spec import spec_of
from qat.ir.types import MinifloatType

from hls.rtl.axis import axis_wrapper
from hls.rtl.emitters import EMITTERS, RTLError  # noqa: F401  (EMITTERS re-exported)
from hls.rtl.minifloat_code import type_to_manifest
from hls.rtl.reconfig import WEIGHT_MODES, ParamBlock, param_layout, worst_case_bounds, worst_case_network
from hls.rtl.text import GENERATOR
from hls.rtl.xilinx_prims import FILES as PRIM_FILES, uses_primitives
from hls.rtl.op_module import (Design, _identifiers, _KEYWORDS, _layout, _live_ops, _op_module, _port_decl,
                               _signed_bus, _tensor_infos, parse_pipeline, vname)
# re-exported: hls.rtl.verilog is the generator's public module
from hls.rtl.op_module import PIPELINE_MODES, OpModule, TensorInfo, pack_bus, unpack_bus  # noqa: F401

ADDERS = ("binary", "ternary")  # --adders


def generate(net: Network, top: str | None = None, pipeline: str = "layer", weights: str = "fixed",
             weight_bits: int | None = None, bias_bits: int | None = None, bnn_order: str = "auto",
             mst_depth: int | None = None, reuse=None, io: str = "parallel", adders: str = "binary",
             fold: str = "digits") -> Design:
    """Build the Verilog design for ``net`` (deterministic text).

    ``weights``: ``fixed`` (constants folded into shift-and-add logic),
    ``registers`` (reconfigurable through the serial cfg port, see
    hls.rtl.reconfig) or ``tmr`` (registers triplicated with majority voting).
    ``bnn_order``/``mst_depth``: binary layers plain, MST-reordered or (``auto``, default) per layer
    whichever the cost model says is smaller (hls.rtl.binary_mst; the report goes to manifest["bnn"];
    networks without binary layers are unaffected).
    ``adders``: ``binary`` (portable Verilog, default) or ``ternary`` (AMD/Xilinx 7-series and later:
    the unrolled constant-matrix layers fuse adder pairs into three-input adders, one LUT6_2 per bit
    on the CARRY4 chain; simulation models of the two primitives come with the design, see
    hls.rtl.xilinx_prims).
    """
    from hls.rtl.binary_mst import BnnOrder
    from hls.rtl.folded import plan_reuse

    if adders not in ADDERS:
        raise RTLError(f"--adders must be one of {ADDERS}, got {adders!r}")
    bnn = BnnOrder(net, bnn_order, mst_depth, weights)
    max_level = parse_pipeline(pipeline)
    if len(net.inputs) != 1 or len(net.outputs) != 1:
        raise RTLError(f"network '{net.name}': RTL needs exactly one input and one output")
    if weights not in WEIGHT_MODES:
        raise RTLError(f"--weights must be one of {WEIGHT_MODES}, got {weights!r}")
    top = vname(top or net.name)
    if top in _KEYWORDS:
        top += "_net"
    if net.outputs[0] == net.inputs[0].name:
        raise RTLError(f"network '{net.name}': the output is the input; there is nothing to build")
    live = _live_ops(net)  # ops the output does not depend on are left out (manifest: dropped_ops)
    dropped = [op.name for op in net.ops if op.name not in {o.name for o in live.ops}]
    net = live  # now the output is the last op
    ids = _identifiers(net)
    if check_io(io) == "stream":  # hls.rtl.stream: one pixel per clock, one kernel instance per layer
        from hls.rtl.stream import generate_stream

        if reuse:
            raise RTLError(f"network '{net.name}': --reuse with --io stream: streamed layers already share one "
                           f"kernel instance per layer; drop --reuse")
        return generate_stream(net, top, pipeline, weights, bnn_order)
    folds = plan_reuse(net, reuse, weights, fold)  # {op: R} folded layers (``--reuse``, hls.rtl.folded)
    ii = max(folds.values(), default=1)  # the network's initiation interval
    layout: list[ParamBlock] = []
    if weights != "fixed":
        mf = [n for n, t in net.tensor_types().items() if isinstance(t, MinifloatType)]
        if mf:
            raise RTLError(f"network '{net.name}': --weights {weights} with minifloat tensors ({', '.join(mf)}) "
                           f"has no RTL: weight registers hold two's-complement raw integers, not minifloat "
                           f"codes; use --weights fixed")
        layout = param_layout(net, weight_bits, bias_bits)
        net = worst_case_network(net, layout)
        bounds = worst_case_bounds(net, layout)  # every op sized for any loadable weight set
    else:
        bounds = analyze(net)
    blocks = {b.op: b for b in layout}
    infos = _tensor_infos(net, bounds)
    files: dict[str, str] = {}
    stage: dict[str, int] = {net.inputs[0].name: 0}
    inst: list[str] = []
    decls: list[str] = []
    delays: list[str] = []
    sig_of: dict[str, str] = {net.inputs[0].name: "in_data"}
    last = net.ops[-1].name if net.ops else None
    op_stage: dict[str, dict] = {}
    cfg_chain: list[str] = []
    for op in net.ops:
        ins = [infos[i] for i in op.inputs]
        out = infos[op.name]
        registered = not spec_of(op.kind).wiring and (pipeline != "none" or op.name == last)
        if op.name == last and not registered:
            registered = True
        blk = blocks.get(op.name)
        if op.name in folds:
            mname, text, cycles = _op_module(top, op, ins, out, False, 0, blk, weights == "tmr", ids[op.name],
                                             "folded", {"reuse": folds[op.name],
                                                        "style": "dsp" if fold == "dsp" else None})
            registered = True  # R clocks (digit-serial), R + the multiplier chain (dsp)
        else:
            mname, text, cycles = bnn.module(
                lambda variant, opts: _op_module(top, op, ins, out, registered, max_level, blk, weights == "tmr",
                                                 ids[op.name], variant, opts, adders), op)
        files[f"{mname}.v"] = text
        target = max(stage[i] for i in op.inputs)
        if op.name in folds:  # start: the valid pipeline at the layer's input stage
            conns_start = [f".start({'accept' if target == 0 else f'valid_pipe[{target - 1}]'})"]
        else:
            conns_start = []
        conns = []
        for k, i in enumerate(op.inputs):
            src = sig_of[i]
            for d in range(stage[i], target):
                dname = f"dly_{ids[i]}_{d + 1}"
                if dname not in sig_of.values():
                    w = infos[i].width
                    delays.append(f"  reg [{w - 1}:0] {dname};" if w > 1 else f"  reg {dname};")
                    delays.append(f"  always @(posedge clk) {dname} <= {src};")
                    sig_of[f"{i}@{d + 1}"] = dname
                src = dname
            conns.append(f".in{k}({src})")
        conns += conns_start
        wname = f"t_{ids[op.name]}"
        w = out.width
        decls.append(f"  wire [{w - 1}:0] {wname};" if w > 1 else f"  wire {wname};")
        if blk:
            chain_in = "cfg_sdi" if not cfg_chain else cfg_chain[-1]
            chain_out = f"cfg_chain_{len(cfg_chain)}"
            decls.append(f"  wire {chain_out};")
            cfg_chain.append(chain_out)
            conns += [".cfg_en(cfg_en)", f".cfg_sdi({chain_in})", ".cfg_commit(cfg_commit)", f".cfg_sdo({chain_out})"]
        inst.append(f"  {mname} u_{ids[op.name]} (.clk(clk), {', '.join(conns)}, .out({wname}));")
        sig_of[op.name] = wname
        stage[op.name] = target + cycles
        op_stage[op.name] = {"module": mname, "instance": f"u_{ids[op.name]}", "stage": stage[op.name],
                             "registered": bool(registered), "cycles": cycles, "width": out.width,
                             "element_bits": out.ew, "signed": _signed_bus(out), "binary": out.binary}
        if op.name in folds:
            op_stage[op.name]["reuse"] = folds[op.name]
        if out.mf:
            op_stage[op.name]["minifloat"] = type_to_manifest(out.mf)
    out_name = net.outputs[0]
    latency = stage[out_name]
    iw, ow = infos[net.inputs[0].name].width, infos[out_name].width
    top_lines = [
        f"// {top}: integer network '{net.name}' as a fully pipelined datapath (one inference per clock)"
        if ii == 1 else f"// {top}: integer network '{net.name}', folded layers: one inference every {ii} clocks",
        f"// generated by {GENERATOR}",
        f"// in_data : {infos[net.inputs[0].name].n} x {infos[net.inputs[0].name].ew}-bit "
        f"{_layout(infos[net.inputs[0].name])}, element i at bits [i*W +: W] (C order, channels last)",
        f"// out_data: {infos[out_name].n} x {infos[out_name].ew}-bit {_layout(infos[out_name])}",
        f"// out_valid follows in_valid after LATENCY = {latency} clock cycles; rst (synchronous) clears it",
    ] + ([
        f"// in_ready: in_valid is taken only while in_ready is high; after a vector is taken in_ready is low "
        f"for II - 1 = {ii - 1} clocks",
    ] if ii > 1 else []) + [
        "`default_nettype none",
        f"module {top} (",
        "  input wire clk,",
        "  input wire rst,",
        "  input wire in_valid,",
    ] + (["  output wire in_ready,"] if ii > 1 else []) + [
        _port_decl("input", "in_data", iw) + ",",
        "  output wire out_valid,",
        _port_decl("output", "out_data", ow) + ("," if layout else ""),
    ] + ([
        "  input wire cfg_en,      // shift cfg_sdi into the weight chain",
        "  input wire cfg_sdi,",
        "  input wire cfg_commit,  // copy the shifted weights to the active registers",
        "  output wire cfg_sdo",
    ] if layout else []) + [
        ");",
        f"  localparam integer LATENCY = {latency};",
    ]
    take = "in_valid"
    if ii > 1:
        top_lines += _ready_lines(ii)
        take = "accept"
    if latency > 0:
        top_lines += [
            "  reg [LATENCY-1:0] valid_pipe;",
            "  always @(posedge clk) begin",
            "    if (rst) valid_pipe <= {LATENCY{1'b0}};",
            "    else valid_pipe <= " + (f"{{valid_pipe[LATENCY-2:0], {take}}};" if latency > 1 else f"{take};"),
            "  end",
            "  assign out_valid = valid_pipe[LATENCY-1];",
        ]
    else:
        top_lines.append("  assign out_valid = in_valid;")
    top_lines += decls + delays + inst
    top_lines.append(f"  assign out_data = {sig_of[out_name]};")
    if layout:
        top_lines.append(f"  assign cfg_sdo = {cfg_chain[-1]};")
    if latency == 0:
        top_lines.append("  wire unused_ok = ^{1'b0, clk, rst};")
    top_lines += ["endmodule", "`default_nettype wire", ""]
    files[f"{top}.v"] = "\n".join(top_lines)

    if uses_primitives(files):  # --adders ternary: the primitives' simulation models (empty in synthesis)
        files.update(PRIM_FILES)
    axis_name, axis_text = axis_wrapper(top, iw, ow, latency, cfg=bool(layout), ii=ii)
    files[f"{axis_name}.v"] = axis_text
    manifest = {
        "generator": GENERATOR, "top": top, "network": net.name, "latency": latency, "pipeline": pipeline,
        "input": {"name": net.inputs[0].name, "shape": list(infos[net.inputs[0].name].shape),
                  "element_bits": infos[net.inputs[0].name].ew, "width": iw,
                  "signed": _signed_bus(infos[net.inputs[0].name]),
                  "binary": infos[net.inputs[0].name].binary},
        "output": {"name": out_name, "shape": list(infos[out_name].shape), "element_bits": infos[out_name].ew,
                   "width": ow, "signed": op_stage[out_name]["signed"] if out_name in op_stage else False,
                   "binary": infos[out_name].binary},
        "ops": op_stage, "files": sorted(files), "axis_top": axis_name, "weights": weights,
    }
    if adders != "binary":  # binary designs keep their manifest unchanged
        manifest["adders"] = adders
    if ii > 1:  # unrolled designs keep their manifest unchanged (II 1, no in_ready port)
        manifest.update({"initiation_interval": ii, "in_ready": True, "reuse": dict(sorted(folds.items())),
                         "fold": fold})
    for key, info in (("input", infos[net.inputs[0].name]), ("output", infos[out_name])):
        if info.mf:
            manifest[key]["minifloat"] = type_to_manifest(info.mf)
    if dropped:
        manifest["dropped_ops"] = dropped
    if bnn.report:  # binary layers built with --bnn-order mst|auto
        manifest["bnn"] = {"order": bnn.order, "mst_depth": mst_depth, "layers": bnn.report, "notices": bnn.notices}
    if layout:
        manifest["cfg"] = {"bits": sum(b.bits for b in layout), "mode": weights,
                           "blocks": [dict(b.__dict__, instance=f"u_{ids[b.op]}") for b in layout]}
    return Design(top, files, latency, stage, manifest)


def _ready_lines(ii: int) -> list[str]:
    """The II > 1 input handshake: ``accept`` = in_valid & in_ready; after a vector is accepted,
    in_ready stays low for II - 1 clocks (a down-counter; rst clears it)."""
    w = max(1, (ii - 1).bit_length())
    return [
        f"  reg [{w - 1}:0] busy;  // clocks until the next vector may enter (II = {ii})",
        f"  assign in_ready = busy == {w}'d0;",
        "  wire accept = in_valid & in_ready;",
        "  always @(posedge clk) begin",
        f"    if (rst) busy <= {w}'d0;",
        f"    else if (accept) busy <= {w}'d{ii - 1};",
        f"    else if (busy != {w}'d0) busy <= busy - {w}'d1;",
        "  end",
    ]
