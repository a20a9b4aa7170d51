"""``qrtl hls``, ``qrtl hls4ml`` and ``qrtl vivado``: HLS C++ projects, the hls4ml bridge and Vivado
project scripts.  Registered by qrtl.cli (``add_parsers`` / ``COMMANDS``); errors are raised as
ValueError subclasses so the command line prints them as one line with exit status 1."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

MODEL_HELP = ("integer network directory, or a QKeras model (.h5, or .json + --weights) that is converted first "
              "(a final softmax is dropped with a notice)")


def _model_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--weights", help="weights .h5 for a JSON architecture")
    p.add_argument("--input-type", metavar="T", help="input type fixed<W,I> or ufixed<W,I> (when converting a model)")
    p.add_argument("--default-type", metavar="T", help="type for unquantized kernels/biases (when converting)")
    p.add_argument("--output", choices=("logits", "argmax"), default="logits",
                   help="network output when converting a model: logits (default) or the class index")


def add_parsers(sub) -> None:
    from .cli import EPILOG_TYPES

    h = sub.add_parser(
        "hls", help="generate a Vitis HLS C++ project; --csim compiles it with g++ and checks it bit for bit",
        description="Write a Vitis HLS project for an integer network: the top function on ap_int/ap_uint "
                    "(widths from the network's types, accumulators at the proven width), weights as constant "
                    "arrays, PIPELINE II=1 and complete ARRAY_PARTITION, the golden model's rounding and "
                    "saturation; a C testbench (tb.cpp) reading vector files; build.tcl for Vitis HLS (csim, "
                    "csynth, cosim, IP export). With --csim the testbench and top are compiled with plain g++ "
                    "and hls4ml's ap_types headers, run on the vectors and compared bit for bit with the golden "
                    "model: prints the exact-match count, exits 1 on any mismatch.",
        epilog=EPILOG_TYPES)
    h.add_argument("net", help=MODEL_HELP)
    h.add_argument("-o", "--out", required=True, metavar="DIR", help="project directory")
    h.add_argument("--board", default="pynq-z2", help="target board: part and clock for build.tcl (default pynq-z2)")
    h.add_argument("--top", help="top function name (default: the network name)")
    h.add_argument("--csim", action="store_true", help="compile with g++ and compare with the golden model")
    src = h.add_mutually_exclusive_group()
    src.add_argument("--random", type=int, metavar="N", help="N test vectors: edge vectors, then uniform over the "
                                                               "input type's range (default 1000)")
    src.add_argument("--vectors", metavar="X.npy", help="test vectors (real values, as for predict)")
    h.add_argument("--raw-input", action="store_true", help="--vectors holds raw integers of the input type")
    h.add_argument("--seed", type=int, default=0, help="seed for --random")
    _model_options(h)

    k = sub.add_parser(
        "hls4ml", help="build the hls4ml project for a QKeras model and measure its agreement with the golden model",
        description="Convert the QKeras model to an integer network (the golden model), derive an hls4ml "
                    "configuration from it (input type, per-layer weight/bias/result/accumulator precisions from "
                    "the network's types and proven accumulator widths, activations as ap_(u)fixed with "
                    "AP_RND_CONV + AP_SAT to reproduce QKeras's round-half-even saturating quantizers), build the "
                    "hls4ml project (Vivado backend, io_parallel), run hls4ml's compile() and report the fraction "
                    "of bit-equal outputs on N inputs (DIR/hls4ml_agreement.json). A final softmax is removed "
                    "(hls4ml computes it with lookup tables, which cannot be exact); layers hls4ml cannot "
                    "reproduce exactly are named with the reason.",
        epilog=EPILOG_TYPES)
    k.add_argument("model", help="QKeras model: .h5 file, or .json architecture (needs --weights)")
    k.add_argument("-o", "--out", required=True, metavar="DIR", help="hls4ml project directory")
    k.add_argument("--weights", help="weights .h5 for a JSON architecture")
    k.add_argument("--input-type", metavar="T", help="input type fixed<W,I> or ufixed<W,I> (overrides the model's "
                                                       "first quantizer)")
    k.add_argument("--random", type=int, default=1000, metavar="N", help="number of test inputs (default 1000)")
    k.add_argument("--vectors", metavar="X.npy", help="real-valued test inputs instead of random ones")
    k.add_argument("--seed", type=int, default=0)
    k.add_argument("--board", default="pynq-z2", help="board whose part the hls4ml project targets (default pynq-z2)")
    k.add_argument("--require-exact", action="store_true", help="exit 1 unless every output is bit-equal")
    k.add_argument("--baseline", action="store_true", help="also build hls4ml with its default configuration and "
                                                           "report that agreement for comparison (one more compile)")
    k.add_argument("--no-trace", action="store_true", help="on a mismatch, do not recompile with tracing to name "
                                                           "the first differing layer")

    v = sub.add_parser(
        "vivado", help="write the RTL and a Vivado Tcl script: project, AXI4-Stream IP, OOC synthesis, reports",
        description="Write the generated Verilog (with its AXI4-Stream wrapper <top>_axis), an XDC with the board "
                    "clock, and DIR/vivado.tcl which creates a Vivado project for the board's part, adds the RTL "
                    "and constraints, packages the design as an AXI4-Stream IP (DIR/ip), runs out-of-context "
                    "synthesis and implementation, and writes utilization and timing reports (DIR/reports). "
                    "DIR/README.md says how to run it: vivado -mode batch -source DIR/vivado.tcl",
        epilog=EPILOG_TYPES)
    v.add_argument("net", help=MODEL_HELP)
    v.add_argument("--board", required=True, help="target FPGA board (see 'qrtl boards'; 'asic' is not an FPGA)")
    v.add_argument("-o", "--out", required=True, metavar="DIR")
    v.add_argument("--top", help="top module name (default: the network name)")
    v.add_argument("--pipeline", default="layer", metavar="MODE", help="as for 'qrtl rtl' (default layer)")
    v.add_argument("--weight-storage", choices=("fixed", "registers", "tmr"), default="fixed",
                   help="as for 'qrtl rtl': fixed constants (default), or weights in registers loaded through the "
                        "cfg_* serial port (then also ports of the IP)")
    _model_options(v)


def _load_net(args):
    """An integer network directory, or a QKeras model converted on the fly."""
    from qat.ir import netfile

    p = Path(args.net)
    if p.is_dir() or p.name == "network.json":
        return netfile.load(p)
    if p.is_file() and p.suffix.lower() in (".h5", ".json", ".keras"):
        from qat.importers.from_qkeras import convert_file

        return convert_file(p, args.weights, args.input_type, args.default_type, args.output)
    return netfile.load(p)  # raises the usual "no such network" error


def _fpga_board(name: str, what: str):
    from boards.catalog import board

    b = board(name)
    if b.is_asic:
        raise ValueError(f"board '{b.name}' is a generic ASIC target, not an FPGA part: {what} needs an FPGA board "
                         f"({', '.join(n for n, x in _boards().items() if not x.is_asic)})")
    return b


def _boards():
    from boards.catalog import boards

    return boards()


def _hls_vectors(args, net) -> list[np.ndarray]:
    from qat.importers.input_quant import check_raw, quantize_real
    from rtl_sim.vectors import random_inputs

    if args.vectors:
        if len(net.inputs) != 1:
            raise ValueError(f"network '{net.name}' has {len(net.inputs)} inputs; --vectors needs a single-input "
                             f"network (use --random)")
        try:
            x = np.load(args.vectors, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise ValueError(f"{args.vectors}: cannot read a .npy array ({exc})") from None
        inp = net.inputs[0]
        return [check_raw(inp, x) if args.raw_input else quantize_real(inp, x)]
    n = 1000 if args.random is None else args.random
    if n < 1:
        raise ValueError("--random must be at least 1")
    return random_inputs(net, n, args.seed)


def cmd_hls(args) -> int:
    from hls.cpp import hls_cpp
    from rtl_sim import csim

    b = _fpga_board(args.board, "Vitis HLS")
    net = _load_net(args)
    proj = hls_cpp.generate(net, args.top, b)
    out = Path(args.out)
    proj.write(out)
    vectors = _hls_vectors(args, net)
    csim.write_vectors(out, net, vectors)
    print(f"wrote HLS project {out} (top {proj.top}, {b.part} at {b.clock_mhz:g} MHz, {len(vectors[0])} test "
          f"vectors); Vitis HLS: cd {out} && vitis_hls -f build.tcl")
    if not args.csim:
        return 0
    res = csim.run_csim(net, out, vectors, proj.top)
    (out / "csim.json").write_text(json.dumps(res.as_dict(), indent=1, sort_keys=True) + "\n")
    print(res.describe())
    return 0 if res.ok else 1


def cmd_hls4ml(args) -> int:
    from hls.cpp.hls4ml_bridge import run_bridge

    b = _fpga_board(args.board, "hls4ml's Vivado backend")
    rep = run_bridge(args.model, args.out, weights=args.weights, input_type=args.input_type, n=args.random,
                     vectors=args.vectors, seed=args.seed, part=b.part, clock_mhz=b.clock_mhz,
                     trace=not args.no_trace, baseline=args.baseline)
    print(rep.text())
    return 1 if (args.require_exact and not rep.exact) else 0


def cmd_vivado(args) -> int:
    from boards.vivado import write_project

    b = _fpga_board(args.board, "Vivado")
    net = _load_net(args)
    res = write_project(net, b, args.out, top=args.top, pipeline=args.pipeline, weights=args.weight_storage)
    print(res.describe())
    return 0


COMMANDS = {"hls": cmd_hls, "hls4ml": cmd_hls4ml, "vivado": cmd_vivado}
