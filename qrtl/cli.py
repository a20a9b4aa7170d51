"""The ``qrtl`` command line.

Errors are one line on stderr (``qrtl: error: ...``) and exit status 1;
usage errors exit with status 2.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from .common import EPILOG_TYPES, add_design_arguments, add_model_arguments, load_network, parse_shape, read_vectors, vectors_from_args



def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="qrtl",
        description="qrtl: quantized networks -> exact integer networks -> hardware. "
                    "Every stage is checked against the golden integer model.",
        epilog="Run 'qrtl COMMAND --help' for each command's options.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    c = sub.add_parser(
        "convert", help="turn a trained QKeras model or QONNX/Brevitas graph into an integer network",
        description="Convert a QKeras model (.h5, or JSON architecture + --weights .h5) or a QONNX graph "
                    "(.onnx, e.g. from brevitas.export.export_qonnx) into an integer network directory whose "
                    "golden model reproduces the framework's pre-softmax outputs. QKeras: the input type comes "
                    "from the model's first quantizer or from --input-type; with neither, conversion stops. "
                    "QONNX: the graph must start with a Quant/FloatQuant node (Brevitas QuantIdentity); float "
                    "rescale ratios become dyadic multipliers b/2^c with b < 2^--mult-bits (exact when the "
                    "scales are powers of two or dyadic). A final softmax is dropped (outputs are logits) "
                    "unless --output argmax is given. A Brevitas module (file.py:NAME, with "
                    "--input-shape) is exported to QONNX and converted the same way.",
        epilog=EPILOG_TYPES)
    add_model_arguments(c, "model", help="QKeras model (.h5, or .json architecture + --weights), QONNX graph "
                                          "(.onnx), or Brevitas module as file.py:NAME (a module, or a function "
                                          "returning one)")
    c.add_argument("-o", "--out", required=True, metavar="NET", help="output network directory")
    c.add_argument("--json", metavar="FILE", help="also write the per-layer report as JSON")

    pr = sub.add_parser(
        "predict", help="run the golden integer model",
        description="Run the golden integer model on inputs from a .npy file (batch first). Real inputs are "
                    "quantized exactly as the framework's first quantizer does; without one they must be "
                    "exactly representable in the input type. Writes float64 real values, or raw integers "
                    "with --integers.")
    add_model_arguments(pr, "net")
    pr.add_argument("--input", required=True, metavar="X.npy", help="inputs, shape (N, *input_shape)")
    pr.add_argument("-o", "--out", required=True, metavar="Y.npy", help="where to write the outputs")
    pr.add_argument("--integers", action="store_true", help="write raw integers (int64) instead of reals")
    pr.add_argument("--raw-input", action="store_true", help="X.npy holds raw integers of the input type")
    pr.add_argument("--engine", choices=("golden", "rtl"), default="golden",
                    help="'golden' (default): the golden integer model; 'rtl': the generated Verilog (default "
                         "options), compiled with Verilator and run vector by vector (rtl_sim.fast_sim)")

    i = sub.add_parser(
        "info", help="per-layer table: shapes, types, accumulator widths, parameters, bit operations",
        description="Print a per-op table of an integer network: output shape and type, the accumulator "
                    "width proven by interval analysis, parameters and bit operations (BOPs = MACs x input "
                    "bits x weight bits). 'f32' flags accumulators that float32 frameworks compute exactly.")
    add_model_arguments(i, "net")
    i.add_argument("--json", action="store_true", help="print JSON instead of a table")
    r = sub.add_parser(
        "rtl", help="generate synthesizable Verilog from an integer network",
        description="Write a fully pipelined Verilog design (one inference per clock): one module per op, a top "
                    "module with clk, rst, in_valid/in_data, out_valid/out_data, an AXI4-Stream wrapper, and "
                    "manifest.json (bus layouts, latency). Output passes 'verilator --lint-only -Wall'.")
    add_model_arguments(r, "net")
    r.add_argument("-o", "--out", required=True, metavar="DIR", help="output directory for the Verilog")
    r.add_argument("--top", help="top module name (default: the network name)")
    add_design_arguments(r)

    cs = sub.add_parser(
        "cosim", help="co-simulate the generated RTL against the golden model",
        description="Generate the RTL, build it with Verilator (or Icarus), stream vectors one per clock with "
                    "valid gaps and a reset in flight, and compare every output with the golden model. Prints "
                    "the exact-match count; exits 1 on any mismatch (naming vector, output index, expected, got).")
    add_model_arguments(cs, "net")
    src = cs.add_mutually_exclusive_group()
    src.add_argument("--vectors", metavar="X.npy", help="input vectors (real values, as for predict)")
    src.add_argument("--random", type=int, metavar="N", help="N random vectors over the input type's whole range "
                                                               "plus edge vectors (default 1000)")
    cs.add_argument("--raw-input", action="store_true", help="--vectors holds raw integers of the input type")
    cs.add_argument("--simulator", choices=("verilator", "icarus"), default="verilator")
    cs.add_argument("--trace-layers", action="store_true", help="also compare every layer's output and name the "
                                                                  "first wrong layer")
    cs.add_argument("--waves", action="store_true", help="write a waveform (Icarus: FST; Verilator: FST when the lz4/zlib headers are installed, else VCD)")
    add_design_arguments(cs)
    cs.add_argument("-o", "--out", metavar="DIR", help="work directory (default: a build/ folder next to NET)")
    cs.add_argument("--seed", type=int, default=0, help="seed for --random and the valid gaps")
    cs.add_argument("--reload", metavar="NET2", help="with --weight-storage registers|tmr: afterwards load NET2's weights "
                                                     "(same architecture) through the serial port and check again")
    cs.add_argument("--inject-faults", type=int, default=0, metavar="N",
                    help="with --weight-storage tmr: then flip N random bits of one register copy; outputs must not change")
    cs.add_argument("--engine", choices=("fast", "cocotb", "both"), default="both",
                    help="'fast': a compiled Verilator harness streams every vector back to back; 'cocotb': the "
                         "cocotb testbench streams every vector (valid gaps, reset in flight, weight loading); "
                         "'both' (default): the harness checks every vector, cocotb the protocol on a sample")
    cs.add_argument("--sample", type=int, default=200, metavar="N",
                    help="with --engine both: vectors in the cocotb protocol sample (default 200, plus the first "
                         "vector the harness found wrong)")

    sy = sub.add_parser(
        "synth", help="convert (if needed), generate RTL, co-simulate, synthesize with Yosys, report",
        description="One command from a QKeras model (or an integer network directory) to verified RTL and a "
                    "resource report: LUT/FF/CARRY/DSP/BRAM per layer (Yosys synth_xilinx for the board's family), "
                    "logic depth, latency in cycles, and an ASIC NAND2-equivalent gate count. Writes DIR/net, "
                    "DIR/rtl, DIR/cosim, DIR/synth and DIR/report.json.",
        epilog=EPILOG_TYPES)
    add_model_arguments(sy, "model")
    sy.add_argument("--board", default="pynq-z2", help="target board (see 'qrtl boards'); default pynq-z2")
    sy.add_argument("-o", "--out", required=True, metavar="DIR")
    sy.add_argument("--random", type=int, default=1000, metavar="N", help="co-simulation vectors (default 1000)")
    add_design_arguments(sy)
    sy.add_argument("--no-asic", action="store_true", help="skip the ASIC gate count")
    sy.add_argument("--no-fit-check", action="store_true",
                    help="synthesize even when the arithmetic estimate exceeds the board's LUTs (by default such a "
                         "design is refused before co-simulation and synthesis, with a hint to fold or stream it)")
    sy.add_argument("--seed", type=int, default=0)

    sub.add_parser("boards", help="list the known boards and parts",
                   description="List the boards qrtl knows (name, part, family, default clock).")

    from .cli_hw import add_parsers as add_hw_parsers  # hls, hls4ml, vivado

    add_hw_parsers(sub)
    from .cli_search import add_parser as add_search_parser  # search

    add_search_parser(sub)
    return p


def _fail(msg: str) -> int:
    print(f"qrtl: error: {msg}", file=sys.stderr)
    return 1


def cmd_convert(args) -> int:
    from rich.console import Console

    from qat.ir import netfile
    from qat.importers.convert import convert_model
    from qat.ir.report import summary

    console = Console(stderr=True)
    with console.status(f"converting {args.model}"):
        net = convert_model(args.model, args.weights, args.input_type, args.default_type, args.output,
                            args.mult_bits, args.exact_scales, parse_shape(args.input_shape))
        netfile.save(net, args.out)
    rep = summary(net)
    if args.json:
        Path(args.json).write_text(json.dumps(rep, indent=1, sort_keys=True) + "\n")
    _print_table(rep)
    _print_notes(net.notes)
    print(f"wrote {args.out} ({len(net.ops)} ops)")
    return 0


def cmd_predict(args) -> int:
    from qat.ir import golden

    net = load_network(args, "net")
    raw = read_vectors(args.input, net, args.raw_input)
    if args.engine == "rtl":
        from hls.rtl.verilog import generate
        from rtl_sim.fast_sim import predict_raw

        out = predict_raw(generate(net), raw, net=net, what=f"{args.net}")
    else:
        out = golden.run(net, raw)[net.outputs[0]]
    conv = net.meta.get("output_conversion")
    if not args.integers:
        from qat.importers.float_steps import apply_output_conversion, describe

        out = golden.dequantize(net.tensor_types()[net.outputs[0]], out)
        if conv:
            out = apply_output_conversion(net, out).astype(np.float64)
            print(f"note: output conversion applied in float32 (not in hardware): {describe(conv['steps'])}")
    elif conv:
        print("note: raw integers are the hardware outputs, before the network's float output conversion")
    if args.integers:
        out = np.asarray(out).astype(np.int64) if np.asarray(out).dtype != object else out
    np.save(args.out, out, allow_pickle=False)
    print(f"wrote {args.out}: shape {tuple(out.shape)}, {'raw integers' if args.integers else 'float64 reals'}")
    return 0


def cmd_info(args) -> int:
    from qat.ir.report import summary

    rep = summary(load_network(args, "net"))
    if args.json:
        print(json.dumps(rep, indent=1, sort_keys=True))
    else:
        _print_table(rep)
        _print_notes(rep["notes"])
    return 0


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        print(note if note.startswith("note:") else f"note: {note}")


def _print_table(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    t = Table(title=f"{rep['network']}: {len(rep['ops'])} tensors, {rep['total_params']} parameters, "
                    f"{rep['total_bops']} BOPs")
    for col in ("op", "kind", "shape", "type", "acc bits", "range", "params", "BOPs", "f32", "from"):
        t.add_column(col, justify="right" if col in ("acc bits", "params", "BOPs") else "left")
    for r in rep["ops"]:
        f32 = {True: "exact", False: "RISK"}.get(r.get("float32_exact"), "")
        rng = "" if "range" not in r else f"[{r['range'][0]}, {r['range'][1]}]"
        t.add_row(r["name"], r["kind"], "x".join(map(str, r["shape"])), r["type"], str(r.get("proven_bits", "")),
                  rng, str(r["params"]), str(r["bops"]), f32, r["source"])
    Console(width=160).print(t)


def _weight_phases(args, net, design) -> list[dict] | None:
    """Co-simulation phases for reconfigurable weights: load the network's own
    weights, optionally a second set (--reload), optionally with faults."""
    if args.weight_storage == "fixed":
        if getattr(args, "reload", None) or getattr(args, "inject_faults", 0):
            raise ValueError("--reload and --inject-faults need --weight-storage registers or tmr")
        return None
    from hls.rtl.reconfig import same_architecture
    from qat.ir import netfile

    phases = [{"name": "own weights", "net": net}]
    last = net
    if getattr(args, "reload", None):
        other = netfile.load(args.reload)
        same_architecture(net, other)
        phases.append({"name": f"reloaded {args.reload}", "net": other})
        last = other
    n = getattr(args, "inject_faults", 0)
    if n:
        if args.weight_storage != "tmr":
            raise ValueError("--inject-faults needs --weight-storage tmr (without voting a fault changes the outputs)")
        rng = np.random.default_rng(args.seed)
        blocks = design.manifest["cfg"]["blocks"]
        copy = "abc"[int(rng.integers(3))]  # any number of upsets in one copy must be voted out
        sites = [(b["op"], k) for b in blocks for k in range(b["n_w"] * b["w_bits"] + b["n_b"] * b["b_bits"])]
        picks = rng.choice(len(sites), size=min(n, len(sites)), replace=False)
        faults = [{"op": sites[int(i)][0], "copy": copy, "bit": sites[int(i)][1]} for i in sorted(picks)]
        phases.append({"name": f"{n} register faults", "net": last, "faults": faults})
    return phases


def cmd_rtl(args) -> int:
    from hls.rtl.verilog import generate

    net = load_network(args, "net")
    d = generate(net, args.top, args.pipeline, args.weight_storage, bnn_order=args.bnn_order,
                 mst_depth=args.mst_depth, reuse=args.reuse, io=args.io, adders=args.adders,
                 fold=args.fold)
    d.write(args.out)
    print(f"wrote {len(d.files)} Verilog files to {args.out} (top {d.top}, latency {d.latency} cycles, "
          f"in {d.manifest['input']['width']} bits, out {d.manifest['output']['width']} bits)")
    if "reuse" in d.manifest:  # folded layers (hls.rtl.folded)
        print(f"folded: {', '.join(f'{k} over {r} clocks' for k, r in d.manifest['reuse'].items())}; one inference "
              f"every {d.manifest['initiation_interval']} clocks (in_ready)")
    from hls.engine.cost import multipliers, summary

    n_mult = multipliers(d.files)
    if n_mult:
        print(f"multipliers: {n_mult:,} (--fold dsp: one DSP48 each when synthesized)")
    if "stream" in d.manifest:
        st = d.manifest["stream"]
        print(f"streaming: {st['in_beats']} input beats of {st['in_beat_elements']} elements and "
              f"{st['out_beats']} output beat(s) per image, one image every {st['clocks_per_image']} clocks")
    if summary(d.files):
        print(summary(d.files))
    if "bnn" in d.manifest:
        from hls.rtl.binary_mst import print_report

        print_report(d.manifest["bnn"])
    return 0


def cmd_cosim(args) -> int:
    from hls.rtl.verilog import generate
    from rtl_sim.fast_sim import run_engines

    net = load_network(args, "net")
    raw = vectors_from_args(args, net)
    work = Path(args.out) if args.out else Path(args.net).resolve().parent / "build" / f"cosim_{Path(args.net).name}"
    design = generate(net, pipeline=args.pipeline, weights=args.weight_storage, bnn_order=args.bnn_order,
                      mst_depth=args.mst_depth, reuse=args.reuse, io=args.io, adders=args.adders,
                      fold=args.fold)
    res, report = run_engines(net, raw, work, args.engine, args.simulator, design, args.trace_layers, args.waves,
                              seed=args.seed, phases=_weight_phases(args, net, design), sample=args.sample)
    (work / "cosim.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    for key, e in report["engines"].items():
        if key == "cocotb" and args.engine == "both":
            print(f"cocotb protocol sample: {e['sample_size']} of {e['sample_of']} vectors ({e['checks']})")
        print(e["description"])
    if len(report["engines"]) > 1:
        print(res.describe())
    if report.get("note"):
        print(f"note: {report['note']}")
    if res.waves:
        print(f"waves: {res.waves}")
    return 0 if res.ok else 1


def cmd_synth(args) -> int:
    from rich.progress import Progress

    from boards.catalog import board as get_board
    from boards.yosys_report import synthesize
    from hls.rtl.verilog import generate
    from qat.ir import netfile
    from rtl_sim.cosim import run_cosim

    b = get_board(args.board)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with Progress(transient=False) as prog:
        task = prog.add_task("convert", total=4)
        net = load_network(args)
        netfile.save(net, out / "net")
        prog.update(task, advance=1, description="generate RTL")
        t0 = time.perf_counter()
        design = generate(net, pipeline=args.pipeline, weights=args.weight_storage, bnn_order=args.bnn_order,
                          mst_depth=args.mst_depth, reuse=args.reuse, io=args.io, adders=args.adders,
                          fold=args.fold)
        design.write(out / "rtl")
        rtl_s = time.perf_counter() - t0
        from boards.catalog import fit_problem
        from hls.engine.cost import estimates, multipliers

        est = sum(e[2] for e in estimates(design.files))
        problem = None if args.no_fit_check else fit_problem(b, est, net.name, multipliers(design.files))
        if problem:
            raise ValueError(problem)
        prog.update(task, advance=1, description=f"co-simulate {args.random} vectors")
        from rtl_sim.vectors import random_vectors

        res = run_cosim(net, random_vectors(net, args.random, args.seed), out / "cosim", "verilator", design,
                        seed=args.seed, phases=_weight_phases(args, net, design))
        prog.update(task, advance=1, description="synthesize (Yosys)")
        syn = synthesize([out / "rtl" / f for f in design.verilog_files], design.top, b, out / "synth",
                         asic=not args.no_asic)
        prog.update(task, advance=1, description="done")
    from boards.yosys_report import timing as clock_timing

    timing = clock_timing(syn, b.clock_mhz)
    report = {"network": net.name, "board": b.name, "part": b.part, "clock_mhz": b.clock_mhz,
              "weight_storage": args.weight_storage, "timing": timing,
              "latency_cycles": design.latency,
              "initiation_interval": int(design.manifest.get("initiation_interval", 1)), "rtl_seconds": round(rtl_s, 3),
              "cosim": res.as_dict(), "synthesis": syn, "notes": list(net.notes)}
    if "bnn" in design.manifest:
        report["bnn"] = design.manifest["bnn"]
    (out / "report.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
    _print_synth(report)
    if "bnn" in report:
        from hls.rtl.binary_mst import print_report

        print_report(report["bnn"])
    print(res.describe())
    return 0 if res.ok else 1


def _print_synth(rep: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    syn = rep["synthesis"]
    t = Table(title=f"{rep['network']} on {rep['board']} ({rep['part']}): latency {rep['latency_cycles']} cycles, "
                    f"II {rep.get('initiation_interval', 1)}")
    cols = ("module", "LUT", "FF", "CARRY", "DSP", "BRAM")
    for c in cols:
        t.add_column(c, justify="left" if c == "module" else "right")
    con = Console(width=160)
    if "fpga" in syn:
        for m, r in sorted(syn["fpga"]["per_module"].items()):
            t.add_row(m, *(str(r[k]) for k in cols[1:]))
        tot = syn["fpga"]["total"]
        t.add_row("TOTAL", *(str(tot[k]) for k in cols[1:]), style="bold")
        con.print(t)
    else:
        con.print(f"{rep['network']} on {rep['board']}: latency {rep['latency_cycles']} cycles, II 1")
    tm = rep["timing"]
    verdict = {True: "met", False: "NOT met", None: "unknown"}[tm["meets_target"]]
    depth = syn["fpga"]["logic_depth"] if "fpga" in syn else syn["asic"]["gate_depth"]
    con.print(f"logic depth: {depth}; estimated fmax {tm['estimated_fmax_mhz']} MHz ({tm.get('assumption', '')}): "
              f"{tm['target_mhz']} MHz {verdict}, one inference per clock")
    if "asic" in syn:
        a = syn["asic"]
        con.print(f"ASIC: {a['nand2_equivalent']} NAND2-equivalents ({a['nand2']} NAND2, {a['inverters']} inverters, "
                  f"{a['flip_flops']} flip-flops)")


def cmd_boards(args) -> int:
    from boards.catalog import boards

    for b in boards().values():
        cap = f"{b.luts:>9,} LUT {b.dsps:>6,} DSP" if b.luts else f"{'-':>13s} {'-':>10s}"
        print(f"{b.name:8s} {b.part:24s} {b.family:12s} {b.clock_mhz:6.1f} MHz {cap}  {b.description}")
    return 0


COMMANDS = {"convert": cmd_convert, "predict": cmd_predict, "info": cmd_info, "rtl": cmd_rtl, "cosim": cmd_cosim,
            "synth": cmd_synth, "boards": cmd_boards}

from .cli_hw import COMMANDS as HW_COMMANDS  # noqa: E402  (hls, hls4ml, vivado)

COMMANDS.update(HW_COMMANDS)
from .cli_search import COMMANDS as SEARCH_COMMANDS  # noqa: E402  (search)

COMMANDS.update(SEARCH_COMMANDS)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from qat.ir.netfile import NetFileError
    from qat.ir.network import NetworkError

    from boards.yosys_report import SynthError
    from rtl_sim.cosim import CosimError

    errors: tuple[type[BaseException], ...] = (NetFileError, NetworkError, ValueError, OSError, CosimError,
                                               SynthError)
    try:
        return COMMANDS[args.command](args)
    except errors as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)


if __name__ == "__main__":
    sys.exit(main())
