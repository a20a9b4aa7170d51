"""``qrtl hls``, ``qrtl hls4ml`` and ``qrtl vivado``: HLS C++ projects, the hls4ml bridge and Vivado
project scripts.  Registered by qrtl.cli (``add_parsers`` / ``COMMANDS``); errors are raised as
ValueError subclasses so the command line prints them as one line with exit status 1."""
from __future__ import annotations

import json
from pathlib import Path

from .common import EPILOG_TYPES, add_model_arguments, add_schedule_arguments, load_network, vectors_from_args


def add_parsers(sub) -> None:
    h = sub.add_parser(
        "hls", help="generate a Vitis HLS C++ project; --csim compiles it with g++ and checks it bit for bit",
        description="Write a Vitis HLS project for an integer network: the top function on ap_int/ap_uint "
                    "(widths from the network's types, accumulators at the proven width), weights as constant "
                    "arrays, PIPELINE II=1 and complete ARRAY_PARTITION (--reuse R: layers folded over R clocks, "
                    "PIPELINE II=R, weights block-partitioned; --io stream: hls::stream of pixels, line buffers, "
                    "DATAFLOW), the golden model's rounding and saturation; a C testbench (tb.cpp) reading vector "
                    "files; build.tcl for Vitis HLS (csim, csynth, cosim, IP export). With --csim the testbench and top are compiled with plain g++ "
                    "and hls4ml's ap_types headers, run on the vectors and compared bit for bit with the golden "
                    "model: prints the exact-match count, exits 1 on any mismatch.",
        epilog=EPILOG_TYPES)
    add_model_arguments(h, "net")
    h.add_argument("-o", "--out", required=True, metavar="DIR", help="project directory")
    h.add_argument("--board", default="pynq-z2", help="target board: part and clock for build.tcl (default pynq-z2)")
    h.add_argument("--top", help="top function name (default: the network name)")
    h.add_argument("--csim", action="store_true", help="compile with g++ and compare with the golden model")
    add_schedule_arguments(h)
    src = h.add_mutually_exclusive_group()
    src.add_argument("--random", type=int, metavar="N", help="N test vectors: edge vectors, then uniform over the "
                                                               "input type's range (default 1000)")
    src.add_argument("--vectors", metavar="X.npy", help="test vectors (real values, as for predict)")
    h.add_argument("--raw-input", action="store_true", help="--vectors holds raw integers of the input type")
    h.add_argument("--seed", type=int, default=0, help="seed for --random")

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
    add_model_arguments(v, "net")
    v.add_argument("--board", required=True, help="target FPGA board (see 'qrtl boards'; 'asic' is not an FPGA)")
    v.add_argument("-o", "--out", required=True, metavar="DIR")
    v.add_argument("--top", help="top module name (default: the network name)")
    v.add_argument("--pipeline", default="layer", metavar="MODE", help="as for 'qrtl rtl' (default layer)")
    v.add_argument("--weight-storage", choices=("fixed", "registers", "tmr"), default="fixed",
                   help="as for 'qrtl rtl': fixed constants (default), or weights in registers loaded through the "
                        "cfg_* serial port (then also ports of the IP)")


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


def cmd_hls(args) -> int:
    from hls.cpp import hls_cpp
    from rtl_sim import csim
    from rtl_sim.vectors import random_inputs

    b = _fpga_board(args.board, "Vitis HLS")
    net = load_network(args, "net")
    proj = hls_cpp.generate(net, args.top, b, reuse=args.reuse, io=args.io)
    out = Path(args.out)
    proj.write(out)
    vectors = [vectors_from_args(args, net)] if len(net.inputs) == 1 or args.vectors else \
        random_inputs(net, 1000 if args.random is None else args.random, args.seed)
    csim.write_vectors(out, net, vectors)
    sched = proj.manifest["schedule"]
    print(f"wrote HLS project {out} (top {proj.top}, {b.part} at {b.clock_mhz:g} MHz, io {sched['io']}, II "
          f"{sched['ii_clocks']} clocks, {len(vectors[0])} test vectors); Vitis HLS: cd {out} && vitis_hls -f build.tcl")
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
    net = load_network(args, "net")
    res = write_project(net, b, args.out, top=args.top, pipeline=args.pipeline, weights=args.weight_storage)
    print(res.describe())
    return 0


COMMANDS = {"hls": cmd_hls, "hls4ml": cmd_hls4ml, "vivado": cmd_vivado}
