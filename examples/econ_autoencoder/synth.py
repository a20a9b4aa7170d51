"""The flagship flow (what `make synth` runs): the ECON-T style encoder from
the shipped trained checkpoint to co-simulated, synthesized RTL.

Steps (progress bars on each):
  1. load examples/econ_autoencoder/econ_encoder.h5 (retrain with train.py);
  2. EMD of the quantized autoencoder on fresh synthetic modules (POT);
  3. convert to the integer network; check golden == QKeras on those modules;
  4. for each weight storage variant
       fixed      weights folded into shift-and-add logic,
       registers  weights in registers loaded over the serial port: the
                  co-simulation loads the trained set, then a second,
                  different weight set (another detector region) and checks
                  the outputs against the golden model of *that* set,
       tmr        triplicated, voted registers: as above, then flips bits of
                  one register copy (single-event upsets) and requires
                  unchanged outputs,
     generate RTL, co-simulate with Verilator (synthetic modules + random and
     edge vectors), and run Yosys (FPGA LUT/FF for the board, ASIC NAND2
     equivalents);
  5. print and write build/econ/summary.json: EMD, exact-match counts,
     resources, latency, and whether one inference per 25 ns (40 MHz) is met.

Usage: .venv/bin/python examples/econ_autoencoder/synth.py [--out build/econ]
       [--board pynq-z2] [--variants fixed,registers,tmr] [--vectors 1000]
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from boards.catalog import board as get_board  # noqa: E402
from boards.yosys_report import synthesize, timing  # noqa: E402
from hls.rtl.reconfig import param_layout, worst_case_network  # noqa: E402
from hls.rtl.verilog import generate  # noqa: E402
from qat.ir import netfile  # noqa: E402
from qat.importers.input_quant import quantize_real  # noqa: E402
from qat.ir.intervals import analyze  # noqa: E402
from rtl_sim.vectors import random_vectors  # noqa: E402
from rtl_sim.cosim import run_cosim  # noqa: E402

ECON_CLOCK_MHZ = 40.0  # one inference per bunch crossing (25 ns)
VARIANTS = ("fixed", "registers", "tmr")


def second_weight_set(net, layout, seed: int = 7):
    """Another region's weights: the same architecture, new random weights and
    biases of the register widths (a valid golden network of its own)."""
    rng = np.random.default_rng(seed)
    other = copy.deepcopy(net)
    other.name = f"{net.name}_region2"
    by_op = {b.op: b for b in layout}
    for op in other.ops:
        if op.name in by_op:
            b = by_op[op.name]
            for key, bits in (("weight", b.w_bits), ("bias", b.b_bits)):
                # use the lower half of the range so the outputs are not all saturated
                lim = 1 << (bits - 2)
                op.arrays[key] = rng.integers(-lim, lim, size=op.arrays[key].shape).astype(np.int64)
    other = worst_case_network(other, layout)
    analyze(other)
    return other


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "build" / "econ"))
    ap.add_argument("--board", default="pynq-z2", help="FPGA board for LUT/FF (the ASIC count is always made)")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--vectors", type=int, default=1000, help="co-simulation vectors per phase")
    ap.add_argument("--synth-variants", default="fixed",
                    help="variants that also go through Yosys (default fixed: the register variants hold ~2,100 "
                         "multipliers and take Yosys far longer; 'all' for every variant)")
    ap.add_argument("--emd-modules", type=int, default=2000)
    args = ap.parse_args(argv)
    variants = [v for v in args.variants.split(",") if v]
    bad = [v for v in variants if v not in VARIANTS]
    if bad:
        print(f"error: unknown variants {bad} (known: {', '.join(VARIANTS)})", file=sys.stderr)
        return 1
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    con = Console(width=150)
    board = get_board(args.board)
    t_start = time.perf_counter()
    summary: dict = {"board": board.name, "part": board.part, "target_mhz": ECON_CLOCK_MHZ, "variants": {}}

    cols = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
            TimeElapsedColumn())
    with Progress(*cols, console=con) as prog:
        steps = prog.add_task("checkpoint, EMD, convert", total=3)
        from qat.econ.data import generate as generate_modules  # noqa: WPS433
        from qat.econ.metrics import evaluate_checkpoint  # noqa: WPS433
        from qat.importers.from_qkeras import convert_file  # noqa: WPS433

        ckpt = HERE / "econ_encoder.h5"
        prog.advance(steps)
        ev = evaluate_checkpoint(HERE, n=args.emd_modules, seed=2026, out_dir=out / "emd")
        summary["emd"] = ev
        prog.advance(steps)
        net = convert_file(ckpt)
        netfile.save(net, out / "econ.net")
        prog.advance(steps)

        # co-simulation vectors: fresh synthetic modules, then the input type's edges and random values
        x = generate_modules(args.vectors // 2, seed=99).x
        raw_mod = quantize_real(net.inputs[0], x)
        raw = np.concatenate([raw_mod, random_vectors(net, args.vectors - len(raw_mod), seed=5)])
        layout = param_layout(net)
        region2 = second_weight_set(net, layout)

        vt = prog.add_task("variants (RTL, co-sim, Yosys)", total=3 * len(variants))
        for v in variants:
            d = generate(net, top=f"econ_{v}", weights=v)
            t0 = time.perf_counter()
            d.write(out / v / "rtl")
            phases = None
            if v != "fixed":
                phases = [{"name": "trained weights", "net": net}, {"name": "second region's weights", "net": region2}]
                if v == "tmr":
                    blk = d.manifest["cfg"]["blocks"]
                    rng = np.random.default_rng(11)
                    faults = []
                    for b in blk:
                        nbits = b["n_w"] * b["w_bits"] + b["n_b"] * b["b_bits"]
                        faults += [{"op": b["op"], "copy": "b", "bit": int(k)}
                                   for k in rng.choice(nbits, size=min(25, nbits), replace=False)]
                    phases.append({"name": f"{len(faults)} upsets in copy b", "net": region2, "faults": faults})
            prog.advance(vt)
            res = run_cosim(net, raw, out / v / "cosim", "verilator", d, phases=phases, seed=3)
            prog.advance(vt)
            entry = {"latency_cycles": d.latency, "cosim": res.as_dict()}
            if args.synth_variants == "all" or v in args.synth_variants.split(","):
                syn = synthesize([out / v / "rtl" / f for f in d.verilog_files], d.top, board, out / v / "synth")
                entry.update({"synthesis": syn, "timing_fpga": timing({"fpga": syn["fpga"]}, ECON_CLOCK_MHZ),
                              "timing_asic": timing({"asic": syn["asic"]}, ECON_CLOCK_MHZ)})
            prog.advance(vt)
            entry["seconds"] = round(time.perf_counter() - t0, 1)
            summary["variants"][v] = entry
    summary["seconds"] = round(time.perf_counter() - t_start, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True, default=str) + "\n")
    _print(con, summary)
    ok = all(r["cosim"]["ok"] for r in summary["variants"].values())
    return 0 if ok else 1


def _print(con: Console, s: dict) -> None:
    emd = s["emd"]
    be = emd.get("bit_exact", {})
    con.print(f"EMD over {emd.get('modules', '?')} synthetic modules (cm): quantized encoder + float decoder "
              f"{_fmt_emd(emd.get('quantized', {}))}; float model {_fmt_emd(emd.get('float', {}))}; golden integer "
              f"encoder equals QKeras on {be.get('modules_equal')}/{be.get('modules')} modules")
    t = Table(title=f"ECON-T encoder: {s['board']} ({s['part']}) and generic ASIC; target 40 MHz, II 1")
    for c in ("variant", "bit-exact", "LUT", "FF", "CARRY", "DSP", "NAND2-eq", "latency", "FPGA fmax est.",
              "ASIC fmax est.", "40 MHz"):
        t.add_column(c, justify="left" if c == "variant" else "right")
    for v, r in s["variants"].items():
        c = r["cosim"]
        if "synthesis" not in r:
            t.add_row(v, f"{c['exact_vectors']}/{c['vectors']}", *(["-"] * 5), f"{r['latency_cycles']} cycles",
                      "-", "-", "not synthesized")
            continue
        f = r["synthesis"]["fpga"]["total"]
        a = r["synthesis"]["asic"]
        tf, ta = r["timing_fpga"], r["timing_asic"]
        met = "yes" if tf["meets_target"] and ta["meets_target"] else ("FPGA only" if tf["meets_target"] else "no")
        t.add_row(v, f"{c['exact_vectors']}/{c['vectors']}", str(f["LUT"]), str(f["FF"]), str(f["CARRY"]),
                  str(f["DSP"]), str(a["nand2_equivalent"]), f"{r['latency_cycles']} cycles",
                  f"{tf['estimated_fmax_mhz']} MHz", f"{ta['estimated_fmax_mhz']} MHz", met)
    con.print(t)
    con.print(f"total {s['seconds']} s; details in summary.json")


def _fmt_emd(q: dict) -> str:
    if "median" not in q:
        return "n/a"
    return f"median {q['median']:.3f}, 68% [{q['lo68']:.3f}, {q['hi68']:.3f}]"


if __name__ == "__main__":
    sys.exit(main())
